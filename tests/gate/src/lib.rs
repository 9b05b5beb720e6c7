//! The one gate for tests that need something the build does not give them: a tool (dciodvfy,
//! promtool, kubectl), a library opened at run time (CharLS, NVRTC, ONNX Runtime), Python
//! packages and their files, the test stack, a GPU.
//!
//! A test asks [`needs`] whether its prerequisite is there and returns early when it is not;
//! [`missing`] is the same for an `else` branch. What a missing prerequisite does depends on
//! where the test runs:
//!
//! | where | set there | a missing prerequisite |
//! |---|---|---|
//! | CI and `infra/test.sh` | `RADSTREAM_REQUIRE_STACK=1` | fails the test: `infra/stack.sh install` installs every one |
//! | a developer's shell | | skips it: `SKIPPED <test>: needs <what>` on stderr, and a line in the skip log |
//!
//! A GPU is the one thing CI cannot have: [`needs_device`] skips there too and fails only under
//! `RADSTREAM_REQUIRE_GPU=1`, which `kernels/gpu-check.sh` sets on a machine with one.
//! [`needs_under`] names the variables that make a missing prerequisite fail, for one that has
//! a variable of its own (`RADSTREAM_REQUIRE_NVRTC`, which `kernels/gpu-check.sh` sets too).
//!
//! libtest cannot mark a test ignored once it runs, so a skipped test is one libtest counts as
//! passed. To count it apart, every skip is appended to the file `RADSTREAM_SKIP_LOG` names
//! (`infra/test.sh` sets it and names each skipped test in its closing summary), one line per
//! skip: `<test binary>\t<test name>\t<what>`, the binary without cargo's hash suffix, the test
//! as libtest names it (its thread's name), in one `O_APPEND` write, so tests running in
//! parallel, in one binary or several, do not interleave their lines.

use std::ffi::OsStr;
use std::io::Write;
use std::path::Path;

/// Makes every missing prerequisite but a GPU fail the test; `infra/test.sh` sets it to `1`.
pub const REQUIRE_STACK: &str = "RADSTREAM_REQUIRE_STACK";
/// Makes a GPU that does not start fail the test; `kernels/gpu-check.sh` sets it to `1`.
pub const REQUIRE_GPU: &str = "RADSTREAM_REQUIRE_GPU";
/// The file every skip is appended to, when set.
pub const SKIP_LOG: &str = "RADSTREAM_SKIP_LOG";

/// Whether `what`, which the calling test needs, is `present`. When it is not: a failure (a
/// panic naming `what`, located at the caller) under `RADSTREAM_REQUIRE_STACK=1`, else a skip,
/// said on stderr and logged; the test should then return. `what` names the thing and what installs it, as
/// `"dciodvfy (Debian's dicom3tools)"`.
#[track_caller]
pub fn needs(what: &str, present: bool) -> bool {
    needs_under(&[REQUIRE_STACK], what, present)
}

/// [`needs`] for a prerequisite already found missing: `needs(what, false)`.
#[track_caller]
pub fn missing(what: &str) {
    needs(what, false);
}

/// [`needs`] for hardware CI does not have (a GPU): a skip everywhere but under
/// `RADSTREAM_REQUIRE_GPU=1`, where it fails the test.
#[track_caller]
pub fn needs_device(what: &str, present: bool) -> bool {
    needs_under(&[REQUIRE_GPU], what, present)
}

/// [`needs`] with the variables that make a missing `what` fail the test: the first of
/// `strict_when` that is set to `1` does.
#[track_caller]
pub fn needs_under(strict_when: &[&str], what: &str, present: bool) -> bool {
    if present {
        return true;
    }
    let strict = strict_when.iter().copied().find(|var| std::env::var_os(var).is_some_and(|v| v == "1"));
    let binary = std::env::current_exe().ok().map(|exe| binary_name(&exe)).unwrap_or_default();
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("<unnamed thread>");
    match verdict(&binary, test, what, strict) {
        Verdict::Fail(message) => panic!("{message}"),
        Verdict::Skip { note, log_line } => {
            eprintln!("{note}");
            if let Some(log) = std::env::var_os(SKIP_LOG).filter(|path| !path.is_empty()) {
                if let Err(e) = append(Path::new(&log), &log_line) {
                    eprintln!("warning: {SKIP_LOG}={}: {e}; this skip is not counted", Path::new(&log).display());
                }
            }
        }
    }
    false
}

/// What a missing prerequisite comes to.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// The test fails with this message.
    Fail(String),
    /// The test is skipped: `note` for stderr, `log_line` for the skip log.
    Skip { note: String, log_line: String },
}

/// The verdict on `test` (in `binary`) without `what`; `strict` is the variable set to `1` that
/// makes it fail, if one is.
fn verdict(binary: &str, test: &str, what: &str, strict: Option<&str>) -> Verdict {
    match strict {
        Some(var) => {
            let why = if var == REQUIRE_GPU {
                "kernels/gpu-check.sh sets it: this run is meant to use the GPU".to_string()
            } else {
                format!("infra/stack.sh install installs what the tests need; without {var}=1 the test would skip")
            };
            Verdict::Fail(format!("{test}: {var}=1 but it needs {what}, which is missing here ({why})"))
        }
        None => {
            // One line per skip whatever `what` holds: tabs and line breaks become spaces.
            let flat = |s: &str| s.replace(['\t', '\n', '\r'], " ");
            Verdict::Skip {
                note: format!("SKIPPED {test}: needs {what}"),
                log_line: format!("{}\t{}\t{}\n", flat(binary), flat(test), flat(what)),
            }
        }
    }
}

/// A test binary's name as cargo's `Running` line shows it, without the `-<16 hex digits>`
/// cargo appends: `radstream_kernels`, `k8s_manifests`.
fn binary_name(exe: &Path) -> String {
    let stem = exe.file_stem().unwrap_or(OsStr::new("")).to_string_lossy();
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => name.to_string(),
        _ => stem.into_owned(),
    }
}

/// Appends `line` to `log` in one write (`O_APPEND`: whole lines, whoever else appends).
fn append(log: &Path, line: &str) -> std::io::Result<()> {
    std::fs::OpenOptions::new().create(true).append(true).open(log)?.write_all(line.as_bytes())
}

#[cfg(test)]
mod tests;
