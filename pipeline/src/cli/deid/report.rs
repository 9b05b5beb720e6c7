//! What a `deid` run did, file by file, and its summary.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use radstream_operators::pseudonymize::ProfileOption;

use crate::cli::deid::plan::DeidInput;

/// What happened to one input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// De-identified and written under `--out`.
    Written,
    /// Possibly burned-in: de-identified and written under `--quarantine-dir`.
    Quarantined {
        /// Why it may have burned-in text.
        reason: String,
    },
    /// Possibly burned-in: nothing written.
    Rejected {
        /// Why it may have burned-in text.
        reason: String,
    },
    /// Not de-identified (unreadable, not DICOM, truncated, not writable); nothing written.
    Failed {
        /// What went wrong; never a value from the file.
        reason: String,
    },
}

/// The result of a `deid` run.
#[derive(Debug)]
pub struct DeidReport {
    /// Every input with its outcome, in input order.
    pub files: Vec<(DeidInput, FileOutcome)>,
    /// Bytes read from the inputs.
    pub bytes_read: u64,
    /// Bytes written under `--out` and `--quarantine-dir`.
    pub bytes_written: u64,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
    /// The key id used.
    pub key_id: String,
    /// The profile options used.
    pub options: Vec<ProfileOption>,
    /// Where outputs went.
    pub out: PathBuf,
    /// Where quarantined outputs went.
    pub quarantine_dir: Option<PathBuf>,
    /// Whether outputs were named by their pseudonymized UIDs.
    pub rename: bool,
}

impl DeidReport {
    fn count(&self, f: impl Fn(&FileOutcome) -> bool) -> usize {
        self.files.iter().filter(|(_, o)| f(o)).count()
    }

    /// Files written under `--out`.
    pub fn written(&self) -> usize {
        self.count(|o| matches!(o, FileOutcome::Written))
    }

    /// Files written under `--quarantine-dir`.
    pub fn quarantined(&self) -> usize {
        self.count(|o| matches!(o, FileOutcome::Quarantined { .. }))
    }

    /// Files rejected as possibly burned-in.
    pub fn rejected(&self) -> usize {
        self.count(|o| matches!(o, FileOutcome::Rejected { .. }))
    }

    /// Files that failed.
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, FileOutcome::Failed { .. }))
    }

    /// 0 when every file was written or quarantined, 1 otherwise.
    pub fn exit_code(&self) -> ExitCode {
        if self.rejected() + self.failed() == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    /// One `path: what happened` line per file that was not simply written.
    pub fn notes(&self) -> Vec<String> {
        self.files
            .iter()
            .filter_map(|(input, outcome)| {
                let what = match outcome {
                    FileOutcome::Written => return None,
                    FileOutcome::Quarantined { reason } => format!("quarantined: {reason}"),
                    FileOutcome::Rejected { reason } => format!("rejected: {reason}"),
                    FileOutcome::Failed { reason } => format!("failed: {reason}"),
                };
                Some(format!("{}: {what}", input.source.display()))
            })
            .collect()
    }

    /// The summary table printed at the end.
    pub fn table(&self) -> String {
        let seconds = self.elapsed.as_secs_f64();
        let options = if self.options.is_empty() {
            "none (Basic Profile)".to_string()
        } else {
            self.options.iter().map(|o| o.name()).collect::<Vec<_>>().join(", ")
        };
        let mut t = String::new();
        let _ = write!(
            t,
            "\n  files            {:>8}\n  written          {:>8}\n  quarantined      {:>8}\n  rejected         {:>8}\n  \
             failed           {:>8}\n  bytes read       {:>8}\n  bytes written    {:>8}\n  elapsed          {:>8.2} s\n  \
             throughput       {:>8.1} files/s\n  key id           {}\n  options          {}\n  output           {}{}\n",
            self.files.len(),
            self.written(),
            self.quarantined(),
            self.rejected(),
            self.failed(),
            human_bytes(self.bytes_read),
            human_bytes(self.bytes_written),
            seconds,
            self.files.len() as f64 / seconds.max(1e-9),
            self.key_id,
            options,
            self.out.display(),
            if self.rename { " (named by pseudonymized UIDs)" } else { "" },
        );
        if let Some(q) = &self.quarantine_dir {
            let _ = writeln!(t, "  quarantine       {}", q.display());
        }
        t
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}
