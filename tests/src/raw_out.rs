//! What the benchmarks write beside their tables: the machine they ran on and every sample, as
//! JSON lines (`--raw-out PATH`), so that each figure in BENCHMARKS.md can be recomputed.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;

/// The machine, for the raw output: cores, CPU model, load average at the time of the call.
pub fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo.lines().find_map(|l| l.strip_prefix("model name")?.split(':').nth(1)).map(str::trim);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": model,
        "loadavg": load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    })
}

/// JSON lines of every sample, when `--raw-out` asks for them; a no-op without a path.
pub struct RawOut(Option<std::io::BufWriter<std::fs::File>>);

impl RawOut {
    /// Creates (truncates) `path`, if given.
    pub fn create(path: Option<&Path>) -> Result<Self> {
        let file =
            path.map(|p| std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))).transpose()?;
        Ok(Self(file.map(std::io::BufWriter::new)))
    }

    /// Writes one record as a line, flushed at once so that a run stopped part way keeps what
    /// it measured.
    pub fn record(&mut self, value: serde_json::Value) -> Result<()> {
        if let Some(w) = &mut self.0 {
            serde_json::to_writer(&mut *w, &value)?;
            w.write_all(b"\n")?;
            w.flush()?;
        }
        Ok(())
    }

    /// Flushes what is buffered (every record already is).
    pub fn finish(&mut self) -> Result<()> {
        if let Some(w) = &mut self.0 {
            w.flush()?;
        }
        Ok(())
    }
}
