//! `radstream deid`: the de-identifier over files and folders, off the stream, for data sets
//! leaving the trusted side in bulk.
//!
//! [`plan::DeidCommand::plan`] does every check that can fail before any file is read (key,
//! profile options, inputs, where outputs go), so a usage problem never leaves half an output
//! tree behind; [`plan::DeidPlan::execute`] then de-identifies every file on the shared pool of
//! threads. Nothing printed here quotes a value from a file: files are named by path, problems
//! by the de-identifier's own PHI-free errors, burned-in decisions by modality and SOP class.

pub mod deidentify;
pub mod options;
pub mod plan;
pub mod report;

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use radstream_operators::pseudonymize::{ProfileOption, SafePrivateRule};

use crate::cli::common::usage_exit;
use crate::cli::deid::options::{parse_safe_private, ProfileOptionParser};
use crate::cli::deid::plan::{BurnedInPolicy, DeidCommand, KeySource};
use crate::cli::deid::report::FileOutcome;
use crate::files::files_progress;

/// De-identify DICOM files and folders (PS3.15 Basic Profile, keyed pseudonyms) into a folder.
///
/// Every regular file under each INPUT is de-identified and written under --out: a file
/// argument by its name, a folder's files by their path below that folder. Names are copied
/// as they are, so names made of original UIDs or patient names leave with the data: when
/// input names carry identifiers (synth and many PACS exports name files by original UIDs),
/// use --rename, which names each output by its pseudonymized UIDs. Files are written whole
/// or not at all. Instances whose pixels may hold burned-in text
/// (BurnedInAnnotation YES, or absent on ultrasound, secondary capture and the like) are
/// never written to --out: they are rejected or quarantined. The same key always gives the
/// same pseudonyms, so studies de-identified in separate runs still line up.
///
/// Exit status: 0 when every file was written (or quarantined), 1 when any failed or was
/// rejected (each is named on stderr as `path: reason`), 2 for a usage or configuration
/// problem (nothing is written then).
#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("key").required(true).args(["key_file", "key_env"])),
    after_help = "Example:\n  radstream keygen --id 2026-11 --out /secure/deid.key\n  \
                  radstream deid --key-file /secure/deid.key --option retain-longitudinal-modified-dates \\\n      \
                  --burned-in quarantine --quarantine-dir /data/review --out /data/deid /data/incoming"
)]
pub struct DeidArgs {
    /// Key file written by `radstream keygen`.
    #[arg(long, value_name = "KEY")]
    pub key_file: Option<PathBuf>,
    /// Environment variable holding the key file's text (instead of --key-file).
    #[arg(long, value_name = "VAR")]
    pub key_env: Option<String>,
    /// A profile option on top of the Basic Profile; repeat for several.
    #[arg(long = "option", value_name = "NAME", value_parser = ProfileOptionParser)]
    pub options: Vec<ProfileOption>,
    /// A private attribute that `--option retain-safe-private` keeps, with its Private
    /// Creator: CREATOR:ELEMENT (in any odd group) or CREATOR:GROUP:ELEMENT, GROUP four hex
    /// digits, ELEMENT the two hex digits of the offset in the block (`GEMS_ACQU_01:0019:23`
    /// keeps (0019,xx23) of the block reserved by GEMS_ACQU_01). Read from the right, so a
    /// creator may hold colons (then give GROUP if the creator ends in `:` and hex digits).
    /// Repeat for several; every other private attribute is removed.
    #[arg(long, value_name = "CREATOR:[GROUP:]ELEMENT", value_parser = parse_safe_private)]
    pub safe_private: Vec<SafePrivateRule>,
    /// What happens to instances that may have burned-in text.
    #[arg(long, value_enum, default_value_t = BurnedInPolicy::Reject)]
    pub burned_in: BurnedInPolicy,
    /// Where `--burned-in quarantine` writes them (de-identified header, pixels untouched),
    /// named as they would be under --out; must not overlap --out.
    #[arg(long, value_name = "DIR", required_if_eq("burned_in", "quarantine"))]
    pub quarantine_dir: Option<PathBuf>,
    /// Files de-identified at once (default: the available parallelism).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<NonZeroUsize>,
    /// Name each output STUDY/SERIES/SOP.dcm by its pseudonymized Study, Series and SOP
    /// Instance UIDs instead of by the input's path (the layout `export` writes), under --out
    /// and --quarantine-dir alike: the choice when input names carry identifiers. A second
    /// input of the same instance fails instead of replacing the first.
    #[arg(long)]
    pub rename: bool,
    /// Output folder (created if needed); must not be inside an input folder.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// DICOM files or folders (searched recursively).
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
}

/// Plans, de-identifies with a progress bar when stderr is a terminal, prints a line per file
/// not written and the summary. Exit status 0 when every file was written or quarantined, 1
/// when any failed or was rejected, 2 for a usage problem.
pub fn execute(args: DeidArgs) -> ExitCode {
    let DeidArgs { key_file, key_env, options, safe_private, burned_in, quarantine_dir, jobs, rename, out, inputs } =
        args;
    let key = match (key_file, key_env) {
        (Some(file), _) => KeySource::File(file),
        (None, Some(var)) => KeySource::Env(var),
        // clap requires one of them (the `key` group); said like any usage problem all the same.
        (None, None) => return usage_exit("give --key-file or --key-env"),
    };
    run(&DeidCommand { key, options, safe_private, burned_in, quarantine_dir, jobs, rename, out, inputs })
}

/// Runs `radstream deid`: plans, de-identifies with a progress bar when stderr is a terminal,
/// prints a line per file not written and the summary. Exit status 0 when every file was
/// written or quarantined, 1 when any failed or was rejected, 2 for a usage problem.
pub fn run(command: &DeidCommand) -> ExitCode {
    let plan = match command.plan() {
        Ok(plan) => plan,
        Err(e) => return usage_exit(e),
    };
    for warning in plan.warnings() {
        eprintln!("{warning}");
    }
    let bar = files_progress(plan.inputs().len());
    let problems = AtomicUsize::new(0);
    let report = plan.execute(|_, outcome| {
        if matches!(outcome, FileOutcome::Rejected { .. } | FileOutcome::Failed { .. }) {
            let n = problems.fetch_add(1, Ordering::Relaxed) + 1;
            bar.set_message(format!("{n} failed or rejected"));
        }
        bar.inc(1);
    });
    bar.finish_and_clear();
    for note in report.notes() {
        eprintln!("{note}");
    }
    println!("{}", report.table());
    report.exit_code()
}

#[cfg(test)]
mod tests;
