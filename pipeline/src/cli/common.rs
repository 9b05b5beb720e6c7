//! What every command shares: loading the config (exit status 2 for any problem with it), usage
//! errors, how a fatal error is said, signals, and how the commands over files name their
//! outputs. The folder walker and the thread pool are [`crate::files`]'s.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use radstream_operators::preprocess::DeviceChoice;
use tracing::error;

use crate::config::Config;
use crate::files::collect_files;

/// The exit status of a usage or configuration problem: nothing was done.
pub const USAGE_EXIT: u8 = 2;

/// A problem with the command line or the configuration it names: nothing was written, exit
/// status 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A [`UsageError`] saying `message`.
pub fn usage(message: impl Into<String>) -> UsageError {
    UsageError(message.into())
}

/// Says `error: {message}` on stderr; returns exit status 2.
pub fn usage_exit(message: impl Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(USAGE_EXIT)
}

/// Loads `path` with the `RADSTREAM__…` overrides of the environment, and where
/// `objects.key_hash_secret_*` is set, names every object of this process by the keyed hash of
/// its key from now on. Any problem (unreadable, not TOML, invalid, a secret that cannot be read
/// or is too short) is said as `path: problem` on stderr, and the `Err` is exit status 2.
pub fn load_config(path: &Path) -> Result<Config, ExitCode> {
    let config = check_config(path)?;
    hash_object_keys(&config.objects).map_err(|e| {
        eprintln!("{}: {e}", path.display());
        ExitCode::from(USAGE_EXIT)
    })?;
    Ok(config)
}

/// [`load_config`] without reading any file but the config (for `radstream validate`).
pub fn check_config(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path, std::env::vars()).map_err(|e| {
        eprintln!("{}: {e}", path.display());
        ExitCode::from(USAGE_EXIT)
    })
}

/// Applies `objects.key_hash_secret_file` / `_env` to this process.
fn hash_object_keys(objects: &crate::config::ObjectsConfig) -> Result<(), String> {
    let secret = match (&objects.key_hash_secret_file, &objects.key_hash_secret_env) {
        (Some(file), _) => std::fs::read(file)
            .map_err(|e| format!("objects.key_hash_secret_file: cannot read {}: {e}", file.display()))?,
        (None, Some(var)) => std::env::var(var)
            .map_err(|_| format!("objects.key_hash_secret_env: the environment variable {var} is not set"))?
            .into_bytes(),
        (None, None) => return Ok(()),
    };
    let secret = secret.strip_suffix(b"\n").unwrap_or(&secret);
    radstream_schemas::object_names::hash_object_keys(secret).map_err(|e| format!("objects.key_hash_secret: {e}"))
}

/// Whether logs are JSON (`--log-format json`), for [`report_error`].
static JSON_LOGS: AtomicBool = AtomicBool::new(false);

/// Makes [`report_error`] log instead of print (`--log-format json`).
pub fn set_json_logs(json: bool) {
    JSON_LOGS.store(json, Ordering::Relaxed);
}

/// A fatal error, said once: as a structured log line for log pipelines (`--log-format json`),
/// else as `error: ...` on stderr.
pub fn report_error(message: &str) {
    if JSON_LOGS.load(Ordering::Relaxed) {
        error!("{message}");
    } else {
        eprintln!("error: {message}");
    }
}

/// Waits for SIGTERM or Ctrl-C (SIGINT).
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// `--device` of `preprocess` and `infer`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum DeviceArg {
    // Plain comments: a doc comment here would show in `--help`.
    Auto,
    Cpu,
}

impl From<DeviceArg> for DeviceChoice {
    fn from(device: DeviceArg) -> Self {
        match device {
            DeviceArg::Auto => DeviceChoice::Auto,
            DeviceArg::Cpu => DeviceChoice::Cpu,
        }
    }
}

/// One input file of `preprocess` or `infer` and the name of its outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// The file as found.
    pub source: PathBuf,
    /// Its outputs' path below `--out`, without extension: the file's name (less `.dcm`) for a
    /// file argument, its path below the folder for a folder argument.
    pub stem: PathBuf,
}

/// Checks `--out` against the inputs, lists the files below them and names each one's outputs
/// (see [`InputFile::stem`]), sorted by source path; `ext` is the extension named when two
/// inputs would get the same output name. Creates nothing.
pub fn plan_inputs(inputs: &[PathBuf], out_arg: &Path, ext: &str) -> Result<Vec<InputFile>, UsageError> {
    if out_arg.is_file() {
        return Err(usage(format!("--out {} is a file; give a folder", out_arg.display())));
    }
    let out = std::path::absolute(out_arg).map_err(|e| usage(format!("--out {}: {e}", out_arg.display())))?;
    for input in inputs {
        if !input.exists() {
            return Err(usage(format!("{}: no such file or folder", input.display())));
        }
        let absolute = std::path::absolute(input).map_err(|e| usage(format!("{}: {e}", input.display())))?;
        if input.is_dir() && out.starts_with(&absolute) {
            return Err(usage(format!(
                "--out {} is inside the input folder {}: a later run would read its outputs as inputs",
                out_arg.display(),
                input.display()
            )));
        }
    }
    let files = collect_files(inputs).map_err(|e| usage(format!("listing the inputs: {e}")))?;
    if files.is_empty() {
        return Err(usage("no files found under the inputs"));
    }
    let mut listed: Vec<InputFile> =
        files.into_iter().map(|(source, relative)| InputFile { source, stem: stem(&relative) }).collect();
    listed.sort_by(|a, b| a.stem.cmp(&b.stem));
    for pair in listed.windows(2) {
        if pair[0].stem == pair[1].stem {
            return Err(usage(format!(
                "{} and {} would both be written as {}.{ext}: give them in separate runs",
                pair[0].source.display(),
                pair[1].source.display(),
                out_arg.join(&pair[0].stem).display()
            )));
        }
    }
    listed.sort_by(|a, b| a.source.cmp(&b.source));
    Ok(listed)
}

/// The output stem of a relative input path: `a/b/x.dcm` → `a/b/x`.
fn stem(relative: &str) -> PathBuf {
    let path = PathBuf::from(relative);
    match path.extension() {
        Some(ext) if ext.eq_ignore_ascii_case("dcm") => path.with_extension(""),
        _ => path,
    }
}

/// `base` with `suffix` appended to its last component (`x` → `x.npy`).
pub fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let mut name = base.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// `base`, or the first of `base-2`, `base-3`, ... that is not `taken`: the name of a series'
/// or volume's outputs, unique within one run.
pub fn first_free_name(base: PathBuf, taken: &[PathBuf]) -> PathBuf {
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = with_suffix(&base, &format!("-{n}"));
        n += 1;
    }
    name
}

#[cfg(test)]
mod tests;
