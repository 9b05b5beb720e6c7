//! Benchmark: the `pseudonymize` engine (PS3.15 Basic Profile, header-only rewrite) on one
//! thread, over files held in memory, beside the pydicom and dcmodify baselines that
//! `tests/bench/deid/run.sh` runs on the same files.
//!
//! Every file of `--dir` is read into memory first. Before any timing, each file is de-identified
//! once and the contiguous output is parsed back with dicom-object and checked (PatientIdentity
//! Removed is YES, no private attribute is left at the top level, Pixel Data keeps its length,
//! the SOP Instance UID is replaced); a file that fails stops the benchmark. Then R rounds, each
//! two timed passes on this one thread, each pass going over all files as many times as it takes
//! to last `--min-seconds` (default 0.5; one pass over 200 files can take milliseconds):
//! - `parts`: `Deidentifier::deidentify` alone; the output is the rewritten header plus the input's
//!   own Pixel Data bytes, shared, not copied (what the pipeline hands to its sinks);
//! - `to_bytes`: `deidentify` followed by `Deidentified::to_bytes`, the contiguous copy.
//!
//! MB/s counts input bytes. Prints one line per round and a summary on stderr, and one JSON line
//! per variant on stdout with the median round (`seconds` is the time for the N files at that
//! rate): `{"tool":"radstream","variant":"parts","files":N,"seconds":S,"per_second":R,...}`.
//!
//! usage: bench_deid --dir DIR [--rounds 3] [--min-seconds 0.5] [--key-file K] [--option NAME]...
//! (`--key-file`: a radstream key file; default a fixed benchmark key, the same bytes as the
//! pydicom baseline's default)
//! (`--option`: a profile option by name, for example `retain-uids`; repeatable)

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use radstream_operators::pseudonymize::{DeidKey, Deidentifier, ProfileOption, ProfileOptions};

struct Args {
    dir: PathBuf,
    rounds: usize,
    min_seconds: f64,
    key_file: Option<PathBuf>,
    options: Vec<ProfileOption>,
}

const USAGE: &str = "usage: bench_deid --dir DIR [--rounds R] [--min-seconds S] [--key-file K] [--option NAME]...";

fn args() -> Result<Args> {
    let mut a = Args { dir: PathBuf::new(), rounds: 3, min_seconds: 0.5, key_file: None, options: Vec::new() };
    let mut dir = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--dir" => dir = Some(PathBuf::from(value()?)),
            "--rounds" => a.rounds = value()?.parse().context("--rounds: not a number")?,
            "--min-seconds" => a.min_seconds = value()?.parse().context("--min-seconds: not a number")?,
            "--key-file" => a.key_file = Some(PathBuf::from(value()?)),
            "--option" => {
                let name = value()?;
                a.options.push(ProfileOption::from_name(&name).with_context(|| format!("unknown option {name}"))?);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown flag {other}\n{USAGE}"),
        }
    }
    ensure!(a.rounds > 0, "--rounds must be at least 1");
    a.dir = dir.context(USAGE)?;
    Ok(a)
}

/// The regular files of `dir`, sorted by name, each read whole.
fn load(dir: &Path) -> Result<Vec<(PathBuf, Bytes)>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.retain(|p| p.is_file());
    paths.sort();
    ensure!(!paths.is_empty(), "no files in {}", dir.display());
    paths
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
            Ok((p, Bytes::from(bytes)))
        })
        .collect()
}

fn parse(bytes: &[u8]) -> Result<DefaultDicomObject> {
    ensure!(bytes.len() > 132 && &bytes[128..132] == b"DICM", "no DICM magic at byte 128");
    Ok(OpenFileOptions::new().read_preamble(ReadPreamble::Never).from_reader(&bytes[128..])?)
}

fn text(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> Option<String> {
    obj.element_opt(tag).ok().flatten().and_then(|e| e.to_str().ok()).map(|s| s.trim().to_string())
}

fn pixel_data_len(obj: &DefaultDicomObject) -> Option<usize> {
    obj.element_opt(tags::PIXEL_DATA).ok().flatten().map(|e| e.to_bytes().map(|b| b.len()).unwrap_or(0))
}

/// De-identifies one file and checks that the output is a de-identified Part-10 object.
fn check(deid: &Deidentifier, path: &Path, input: &Bytes) -> Result<()> {
    let name = path.display();
    let out = deid.deidentify(input).with_context(|| format!("de-identifying {name}"))?;
    let input = parse(input).with_context(|| format!("{name}: the input does not parse"))?;
    let output = parse(&out.to_bytes()).with_context(|| format!("{name}: the output does not parse"))?;
    ensure!(
        text(&output, tags::PATIENT_IDENTITY_REMOVED).as_deref() == Some("YES"),
        "{name}: PatientIdentityRemoved is not YES"
    );
    if let Some(private) = output.iter().find(|e| e.header().tag.group() % 2 == 1) {
        bail!("{name}: private attribute {} left in the output", private.header().tag);
    }
    ensure!(pixel_data_len(&output) == pixel_data_len(&input), "{name}: the Pixel Data length changed");
    ensure!(
        deid.options().retain_uids || text(&output, tags::SOP_INSTANCE_UID) != text(&input, tags::SOP_INSTANCE_UID),
        "{name}: the SOP Instance UID was not replaced"
    );
    Ok(())
}

struct Pass {
    instances: usize,
    seconds: f64,
    output_bytes: usize,
}

impl Pass {
    fn per_second(&self) -> f64 {
        self.instances as f64 / self.seconds
    }
}

/// One timed pass on this thread: every input, again and again until at least `min_seconds` have
/// passed; `contiguous` adds `to_bytes()`. `output_bytes` is the size of one set of outputs.
fn pass(deid: &Deidentifier, inputs: &[(PathBuf, Bytes)], contiguous: bool, min_seconds: f64) -> Result<Pass> {
    let mut instances = 0;
    let started = Instant::now();
    loop {
        let mut output_bytes = 0;
        for (path, input) in inputs {
            let out =
                deid.deidentify(black_box(input)).with_context(|| format!("de-identifying {}", path.display()))?;
            output_bytes += if contiguous { black_box(out.to_bytes()).len() } else { black_box(&out).len() };
        }
        instances += inputs.len();
        let seconds = started.elapsed().as_secs_f64();
        if seconds >= min_seconds {
            return Ok(Pass { instances, seconds, output_bytes });
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() -> Result<()> {
    let a = args()?;
    let key = match &a.key_file {
        Some(path) => DeidKey::from_file(path)?,
        // The pydicom baseline's default secret.
        None => DeidKey::new("bench", (0u8..32).collect())?,
    };
    let mut options = ProfileOptions::default();
    for o in &a.options {
        options.enable(*o);
    }
    options.validate().map_err(anyhow::Error::msg)?;
    let deid = Deidentifier::new(key, options);

    let inputs = load(&a.dir)?;
    let n = inputs.len();
    let input_bytes: usize = inputs.iter().map(|(_, b)| b.len()).sum();
    let mb_per_instance = input_bytes as f64 / n as f64 / 1e6;
    let option_names = if a.options.is_empty() {
        "none (Basic Profile)".to_string()
    } else {
        a.options.iter().map(|o| o.name()).collect::<Vec<_>>().join(", ")
    };
    eprintln!(
        "bench_deid: {n} files, {:.1} MB in memory, from {}; options: {option_names}",
        input_bytes as f64 / 1e6,
        a.dir.display()
    );
    for (path, input) in &inputs {
        check(&deid, path, input)?;
    }
    eprintln!("bench_deid: all {n} outputs parse and are de-identified (checked before timing)");

    let (mut parts, mut contiguous) = (Vec::new(), Vec::new());
    let mut output_bytes = 0;
    for round in 1..=a.rounds {
        let p = pass(&deid, &inputs, false, a.min_seconds)?;
        let c = pass(&deid, &inputs, true, a.min_seconds)?;
        output_bytes = c.output_bytes;
        for (name, r) in [("parts", &p), ("to_bytes", &c)] {
            eprintln!(
                "radstream round {round} {name:>8}: {:.1} instances/s, {:.1} MB/s ({} instances in {:.2} s)",
                r.per_second(),
                r.per_second() * mb_per_instance,
                r.instances,
                r.seconds
            );
        }
        parts.push(p.per_second());
        contiguous.push(c.per_second());
    }

    for (variant, rates) in [("parts", parts), ("to_bytes", contiguous)] {
        let rate = median(rates.clone());
        eprintln!(
            "radstream {variant:>8} (median of {}): {:.1} instances/s, {:.1} MB/s, {:.1} µs per instance",
            rates.len(),
            rate,
            rate * mb_per_instance,
            1e6 / rate
        );
        let timed = if variant == "parts" {
            "Deidentifier::deidentify from in-memory Bytes, one thread"
        } else {
            "Deidentifier::deidentify + to_bytes, from in-memory Bytes, one thread"
        };
        let line = serde_json::json!({
            "tool": "radstream",
            "variant": variant,
            "files": n,
            "seconds": n as f64 / rate,
            "per_second": rate,
            "mb_per_second": rate * mb_per_instance,
            "rounds_per_second": rates,
            "output_bytes": output_bytes,
            "options": option_names,
            "timed": timed,
        });
        println!("{line}");
    }
    Ok(())
}
