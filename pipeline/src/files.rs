//! What the commands over files and folders share (`publish`, `route`, `deid`, `preprocess`,
//! `infer`): the one folder walker, the pool of threads that works through the files,
//! whole-or-absent writes and a progress bar on a terminal.

use std::collections::HashSet;
use std::fs::File;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

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

/// What a walk lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkMode {
    /// Every entry that is not a folder (special files and broken links too, so that reading
    /// them names the problem); links to folders are followed.
    Everything,
    /// Regular files and links to them; links to folders are not followed, and they, broken
    /// links and special files are reported as skipped.
    RegularFiles,
}

/// One file a walk found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Found {
    /// The file as found (the root joined with the path below it).
    pub path: PathBuf,
    /// Its path below the root.
    pub relative: PathBuf,
}

/// What a walk of one folder found.
#[derive(Debug, Default)]
pub struct Listing {
    /// The files, in the order found.
    pub files: Vec<Found>,
    /// `path: why` for every entry left out.
    pub skipped: Vec<String>,
}

/// A folder that could not be listed.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", dir.display())]
pub struct WalkError {
    /// The folder.
    pub dir: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

/// Identifies a folder whatever path reached it, so that a link cycle (or a bind mount of a
/// parent) is listed once instead of forever.
#[cfg(unix)]
fn folder_id(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn folder_id(_meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    None
}

/// Every file below `root`, by `mode`. Each folder is listed once, however many links lead to
/// it, so a walk always ends.
pub fn walk(root: &Path, mode: WalkMode) -> Result<Listing, WalkError> {
    let mut listing = Listing::default();
    let mut visited = HashSet::new();
    let mut folders = vec![root.to_path_buf()];
    if let Some(id) = std::fs::metadata(root).ok().as_ref().and_then(folder_id) {
        visited.insert(id);
    }
    while let Some(dir) = folders.pop() {
        let failed = |source| WalkError { dir: dir.clone(), source };
        for entry in std::fs::read_dir(&dir).map_err(failed)? {
            let entry = entry.map_err(failed)?;
            let path = entry.path();
            let kind = entry.file_type().map_err(failed)?;
            let target = if kind.is_symlink() { Some(std::fs::metadata(&path)) } else { None };
            let is_folder = kind.is_dir() || matches!(&target, Some(Ok(t)) if t.is_dir());
            if is_folder {
                if kind.is_symlink() && mode == WalkMode::RegularFiles {
                    listing.skipped.push(format!("{}: skipped (a link to a folder is not followed)", path.display()));
                    continue;
                }
                let meta = match &target {
                    Some(Ok(t)) => Some(t.clone()),
                    _ => entry.metadata().ok(),
                };
                match meta.as_ref().and_then(folder_id) {
                    Some(id) if !visited.insert(id) => {
                        listing.skipped.push(format!("{}: skipped (a folder already listed)", path.display()))
                    }
                    _ => folders.push(path),
                }
                continue;
            }
            let take = match (mode, &target) {
                (WalkMode::Everything, _) => true,
                (WalkMode::RegularFiles, None) if kind.is_file() => true,
                (WalkMode::RegularFiles, None) => {
                    listing.skipped.push(format!("{}: skipped (not a regular file)", path.display()));
                    false
                }
                (WalkMode::RegularFiles, Some(Ok(t))) => t.is_file(),
                (WalkMode::RegularFiles, Some(Err(e))) => {
                    listing.skipped.push(format!("{}: skipped (broken link: {e})", path.display()));
                    false
                }
            };
            if take {
                let relative = path.strip_prefix(root).map(Path::to_path_buf).unwrap_or_else(|_| path.clone());
                listing.files.push(Found { path, relative });
            }
        }
    }
    Ok(listing)
}

/// Every file under each of `paths` (a file stands for itself, named by its file name; a folder
/// for [`WalkMode::Everything`] below it, named by the path below it with `/` separators),
/// sorted: what `publish`, `route`, `preprocess` and `infer` take.
pub fn collect_files(paths: &[PathBuf]) -> std::io::Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    for root in paths {
        if root.is_file() {
            let name = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            out.push((root.clone(), name));
            continue;
        }
        // The folder in the error: "No such file or directory" alone does not say which.
        let listing =
            walk(root, WalkMode::Everything).map_err(|e| std::io::Error::new(e.source.kind(), e.to_string()))?;
        out.extend(listing.files.into_iter().map(|f| (f.path, f.relative.to_string_lossy().replace('\\', "/"))));
    }
    out.sort();
    Ok(out)
}

/// Threads for `items` files: `jobs` when given, else the available parallelism, never more
/// than there are files, at least one.
pub fn worker_threads(jobs: Option<NonZeroUsize>, items: usize) -> usize {
    let available = std::thread::available_parallelism().map(NonZeroUsize::get).unwrap_or(1);
    jobs.map_or(available, NonZeroUsize::get).min(items).max(1)
}

/// Runs `work` (with each item's index) on every item on `threads` threads; results in item
/// order (`None` only where a thread died before finishing its item).
pub fn on_threads<I: Sync, T: Send>(
    items: &[I],
    threads: usize,
    work: impl Fn(usize, &I) -> T + Sync,
) -> Vec<Option<T>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<T>>> = Mutex::new(items.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let result = work(i, item);
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(result);
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
