//! What the file commands (`deid`, `preprocess`) share: whole-or-absent writes and a progress
//! bar on a terminal.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressStyle};

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes through a temporary file beside `dest` (created new, never shared with another writer)
/// and renames it into place, so that `dest` is absent, the previous file, or the whole new file.
/// Creates the parent folders.
pub fn write_atomically(dest: &Path, write: impl FnOnce(&mut File) -> std::io::Result<()>) -> std::io::Result<()> {
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let name = dest.file_name().unwrap_or_default().to_string_lossy();
    let temp = parent.join(format!(
        ".{name}.radstream-{}-{}.tmp",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&temp)?;
        write(&mut file)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, dest)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// A progress bar over `len` files on stderr when it is a terminal, hidden otherwise.
pub fn files_progress(len: usize) -> ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    ProgressBar::new(len as u64).with_style(
        ProgressStyle::with_template("{spinner} [{bar:40}] {pos}/{len} files ({per_sec}, eta {eta}) {msg}")
            .expect("static template")
            .progress_chars("=> "),
    )
}

/// Runs `execute` over `len` files with [`files_progress`]: `execute` gets a callback to call
/// after each file with its outcome; outcomes `is_failure` accepts are counted in the bar's
/// message. The bar is cleared before returning `execute`'s result.
pub fn with_files_progress<O, R>(
    len: usize,
    is_failure: impl Fn(&O) -> bool + Sync,
    execute: impl FnOnce(&(dyn Fn(&O) + Sync)) -> R,
) -> R {
    let bar = files_progress(len);
    let failed = std::sync::atomic::AtomicUsize::new(0);
    let done = |outcome: &O| {
        if is_failure(outcome) {
            let n = failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            bar.set_message(format!("{n} failed"));
        }
        bar.inc(1);
    };
    let result = execute(&done);
    bar.finish_and_clear();
    result
}

#[cfg(test)]
mod tests;
