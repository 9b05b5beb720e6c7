//! `radstream deid` and `radstream keygen`: the de-identifier over files and folders, off the
//! stream, for data sets leaving the trusted side in bulk.
//!
//! [`DeidCommand::plan`] does every check that can fail before any file is read (key, profile
//! options, inputs, where outputs go), so a usage problem never leaves half an output tree behind;
//! [`DeidPlan::execute`] then de-identifies every file on a pool of threads. Nothing printed here
//! quotes a value from a file: files are named by path, problems by the de-identifier's own
//! PHI-free errors, burned-in decisions by modality and SOP class.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::Write as _;
use std::num::NonZeroUsize;
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use radstream_operators::pseudonymize::{
    BurnedIn, BurnedInRules, DeidKey, Deidentified, Deidentifier, ProfileOption, ProfileOptions, SafePrivateRule,
};

/// Where the pseudonymization key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A key file (`radstream keygen` writes one).
    File(PathBuf),
    /// An environment variable holding the key file's text.
    Env(String),
}

/// What happens to an instance whose pixels may hold burned-in text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum BurnedInPolicy {
    /// Write nothing; report the file as rejected (exit status 1).
    #[default]
    Reject,
    /// Write the de-identified file under --quarantine-dir for a person to review.
    Quarantine,
}

/// Parses `--option` values: the names of [`ProfileOption::name`], underscores accepted for
/// dashes; lists them, with what each keeps, in `--help`.
#[derive(Debug, Clone, Copy)]
pub struct ProfileOptionParser;

impl ProfileOptionParser {
    fn names() -> impl Iterator<Item = PossibleValue> {
        ProfileOption::ALL.into_iter().map(|o| PossibleValue::new(o.name()).help(option_help(o)))
    }
}

impl TypedValueParser for ProfileOptionParser {
    type Value = ProfileOption;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<ProfileOption, clap::Error> {
        if let Some(option) = value.to_str().and_then(ProfileOption::from_name) {
            return Ok(option);
        }
        // clap's own parser words the error (with the possible values and a "did you mean").
        let name = PossibleValuesParser::new(Self::names()).parse_ref(cmd, arg, value)?;
        ProfileOption::from_name(&name).ok_or_else(|| clap::Error::new(clap::error::ErrorKind::InvalidValue))
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(Self::names()))
    }
}

/// Parses a `--safe-private` value, `CREATOR:ELEMENT` or `CREATOR:GROUP:ELEMENT`, from the
/// right, so that a creator may hold colons: ELEMENT is the part after the last colon, GROUP the
/// part before it when that part is hex digits, CREATOR the rest. A creator whose own last
/// colon-separated part is hex digits therefore needs GROUP given. Padding spaces around the
/// creator are dropped, as DICOM ignores them.
pub fn parse_safe_private(value: &str) -> Result<SafePrivateRule, String> {
    const SHAPE: &str = "expected CREATOR:ELEMENT or CREATOR:GROUP:ELEMENT, e.g. `GEMS_ACQU_01:0019:23`";
    let (rest, element) = value.rsplit_once(':').ok_or(SHAPE)?;
    if element.len() != 2 || !element.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "ELEMENT `{element}` is not two hex digits: it is the element's offset in its private block, \
             `23` for (0019,1023); {SHAPE}"
        ));
    }
    let (creator, group) = match rest.rsplit_once(':') {
        Some((creator, group)) if !group.is_empty() && group.bytes().all(|b| b.is_ascii_hexdigit()) => {
            if group.len() != 4 {
                return Err(format!(
                    "GROUP `{group}` is not four hex digits (a creator whose last `:` part is hex digits needs \
                     GROUP given as well); {SHAPE}"
                ));
            }
            (creator, Some(group.to_string()))
        }
        _ => (rest, None),
    };
    let rule =
        SafePrivateRule { creator: creator.trim_matches([' ', '\0']).to_string(), group, element: element.into() };
    // ProfileOptions is the authority on what a rule may be (an odd group, a creator).
    let one = ProfileOptions { safe_private: vec![rule.clone()], ..ProfileOptions::default() };
    one.validate().map_err(|e| e.strip_prefix("safe_private[0].").unwrap_or(&e).to_string())?;
    Ok(rule)
}

fn option_help(option: ProfileOption) -> &'static str {
    match option {
        ProfileOption::RetainSafePrivate => {
            "Keep the private attributes given with --safe-private, and their creators (E.3.10)"
        }
        ProfileOption::RetainUids => "Keep Study, Series and SOP Instance UIDs (E.3.9)",
        ProfileOption::RetainDeviceIdentity => "Keep device serial numbers, station names and the like (E.3.8)",
        ProfileOption::RetainInstitutionIdentity => "Keep institution names, addresses and departments (E.3.11)",
        ProfileOption::RetainPatientCharacteristics => "Keep sex, age, size, weight and the like (E.3.7)",
        ProfileOption::RetainLongitudinalModifiedDates => {
            "Shift dates and times by a per-patient offset derived from the key (E.3.6)"
        }
        ProfileOption::CleanDescriptors => "Keep descriptions and comments, cleaned of identifiers (E.3.5)",
    }
}

/// `radstream deid`, as given on the command line.
#[derive(Debug, Clone)]
pub struct DeidCommand {
    /// The pseudonymization key.
    pub key: KeySource,
    /// Profile options on top of the Basic Profile.
    pub options: Vec<ProfileOption>,
    /// The allow-list of [`ProfileOption::RetainSafePrivate`]; given exactly when that option is.
    pub safe_private: Vec<SafePrivateRule>,
    /// What happens to instances that may have burned-in text.
    pub burned_in: BurnedInPolicy,
    /// Where [`BurnedInPolicy::Quarantine`] puts them.
    pub quarantine_dir: Option<PathBuf>,
    /// Worker threads; the available parallelism when absent.
    pub jobs: Option<NonZeroUsize>,
    /// Name outputs `STUDY/SERIES/SOP.dcm` by their pseudonymized UIDs instead of by the input's
    /// path, for inputs whose names carry identifiers.
    pub rename: bool,
    /// Output folder.
    pub out: PathBuf,
    /// Files and folders to de-identify.
    pub inputs: Vec<PathBuf>,
}

/// A problem with the command line or the configuration it names: nothing was written, exit
/// status 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(message: impl Into<String>) -> UsageError {
    UsageError(message.into())
}

/// One input file and where its output goes, relative to `--out` (or the quarantine folder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeidInput {
    /// The file as found (the input argument joined with the path below it).
    pub source: PathBuf,
    /// The output path below `--out`: the file name for a file argument, the path below the
    /// folder for a folder argument. Unused with `--rename`, where the UIDs name the output.
    pub relative: PathBuf,
}

/// A checked `deid` run: the key loaded, the options valid, the inputs listed, the output
/// folders known not to overlap any input.
#[derive(Debug)]
pub struct DeidPlan {
    deidentifier: Deidentifier,
    rules: BurnedInRules,
    policy: BurnedInPolicy,
    out: PathBuf,
    quarantine_dir: Option<PathBuf>,
    rename: bool,
    threads: usize,
    inputs: Vec<DeidInput>,
    warnings: Vec<String>,
}

impl DeidCommand {
    /// Checks everything that can be checked before a file is read: the key, the options, the
    /// inputs and the output folders. Creates nothing.
    pub fn plan(&self) -> Result<DeidPlan, UsageError> {
        let key = match &self.key {
            KeySource::File(path) => DeidKey::from_file(path),
            KeySource::Env(var) => DeidKey::from_env(var),
        }
        .map_err(|e| usage(e.to_string()))?;

        let mut options = ProfileOptions { safe_private: self.safe_private.clone(), ..ProfileOptions::default() };
        for option in &self.options {
            options.enable(*option);
        }
        match (options.retain_safe_private, options.safe_private.is_empty()) {
            (true, true) => {
                return Err(usage(
                    "--option retain-safe-private needs the private attributes it may keep: add \
                     --safe-private CREATOR:ELEMENT or CREATOR:GROUP:ELEMENT, once per attribute",
                ));
            }
            (false, false) => {
                return Err(usage(
                    "--safe-private is only used with --option retain-safe-private: add that option, or drop \
                     --safe-private",
                ));
            }
            _ => {}
        }
        options.validate().map_err(|e| {
            let flag = if e.starts_with("safe_private") { "--safe-private" } else { "--option" };
            usage(format!("{flag}: {e}"))
        })?;

        match (self.burned_in, &self.quarantine_dir) {
            (BurnedInPolicy::Quarantine, None) => {
                return Err(usage("--burned-in quarantine needs --quarantine-dir DIR"));
            }
            (BurnedInPolicy::Reject, Some(_)) => {
                return Err(usage("--quarantine-dir is only used with --burned-in quarantine"));
            }
            _ => {}
        }
        if self.inputs.is_empty() {
            return Err(usage("no inputs: name at least one file or folder"));
        }

        let out = resolve(&self.out).map_err(|e| usage(format!("--out {}: {e}", self.out.display())))?;
        for (flag, dir) in
            std::iter::once(("--out", &self.out)).chain(self.quarantine_dir.iter().map(|q| ("--quarantine-dir", q)))
        {
            if dir.exists() && !dir.is_dir() {
                return Err(usage(format!("{flag} {}: exists and is not a folder", dir.display())));
            }
        }
        let quarantine = match &self.quarantine_dir {
            Some(q) => {
                let resolved = resolve(q).map_err(|e| usage(format!("--quarantine-dir {}: {e}", q.display())))?;
                if resolved.starts_with(&out) || out.starts_with(&resolved) {
                    return Err(usage(format!(
                        "--quarantine-dir {} and --out {} overlap: quarantined files would mix with the \
                         de-identified ones; use two separate folders",
                        q.display(),
                        self.out.display()
                    )));
                }
                Some(resolved)
            }
            None => None,
        };

        let mut inputs = Vec::new();
        let mut warnings = Vec::new();
        for input in &self.inputs {
            let meta = std::fs::metadata(input).map_err(|e| usage(format!("{}: {e}", input.display())))?;
            let resolved = resolve(input).map_err(|e| usage(format!("{}: {e}", input.display())))?;
            let outputs = std::iter::once(("--out", &self.out, &out))
                .chain(quarantine.as_ref().zip(self.quarantine_dir.as_ref()).map(|(r, q)| ("--quarantine-dir", q, r)));
            for (flag, given, dir) in outputs {
                if meta.is_dir() && dir.starts_with(&resolved) {
                    return Err(usage(format!(
                        "{flag} {} is inside the input folder {}: outputs would be read back as inputs; \
                         choose a folder outside it",
                        given.display(),
                        input.display()
                    )));
                }
                if resolved.starts_with(dir) {
                    return Err(usage(format!(
                        "the input {} is inside {flag} {}: outputs could overwrite inputs; choose a folder \
                         outside it",
                        input.display(),
                        given.display()
                    )));
                }
            }
            if meta.is_dir() {
                list_folder(input, &mut inputs, &mut warnings)
                    .map_err(|e| usage(format!("{}: cannot list: {e}", input.display())))?;
            } else if meta.is_file() {
                let name = input.file_name().ok_or_else(|| usage(format!("{}: not a file name", input.display())))?;
                inputs.push(DeidInput { source: input.clone(), relative: PathBuf::from(name) });
            } else {
                return Err(usage(format!("{}: neither a regular file nor a folder", input.display())));
            }
        }
        if inputs.is_empty() {
            return Err(usage("no files found in the inputs"));
        }
        inputs.sort_by(|a, b| a.relative.cmp(&b.relative).then_with(|| a.source.cmp(&b.source)));
        // With --rename the UIDs name the outputs; two inputs of one instance are found as they
        // are de-identified.
        for pair in inputs.windows(2).filter(|_| !self.rename) {
            if pair[0].relative == pair[1].relative {
                return Err(usage(format!(
                    "{} and {} would both be written to {}: de-identify them into separate folders",
                    pair[0].source.display(),
                    pair[1].source.display(),
                    self.out.join(&pair[0].relative).display()
                )));
            }
        }

        let available = std::thread::available_parallelism().map(NonZeroUsize::get).unwrap_or(1);
        let threads = self.jobs.map_or(available, NonZeroUsize::get).min(inputs.len()).max(1);
        Ok(DeidPlan {
            deidentifier: Deidentifier::new(key, options),
            rules: BurnedInRules::default(),
            policy: self.burned_in,
            out: self.out.clone(),
            quarantine_dir: self.quarantine_dir.clone(),
            rename: self.rename,
            threads,
            inputs,
            warnings,
        })
    }
}

/// Every regular file below `root` (symbolic links to files included), with its path relative
/// to `root`. Symbolic links to folders are not followed (a link cycle would never end); they
/// and other special files are reported in `warnings`.
fn list_folder(root: &Path, inputs: &mut Vec<DeidInput>, warnings: &mut Vec<String>) -> std::io::Result<()> {
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let entry = entry?;
            let path = entry.path();
            let kind = entry.file_type()?;
            let is_file = if kind.is_dir() {
                folders.push(path);
                continue;
            } else if kind.is_symlink() {
                match std::fs::metadata(&path) {
                    Ok(target) if target.is_file() => true,
                    Ok(target) if target.is_dir() => {
                        warnings.push(format!("{}: skipped (a link to a folder is not followed)", path.display()));
                        false
                    }
                    Ok(_) => false,
                    Err(e) => {
                        warnings.push(format!("{}: skipped (broken link: {e})", path.display()));
                        false
                    }
                }
            } else {
                kind.is_file()
            };
            if is_file {
                let relative = path.strip_prefix(root).map(Path::to_path_buf).unwrap_or_else(|_| path.clone());
                inputs.push(DeidInput { source: path, relative });
            } else if !kind.is_symlink() {
                warnings.push(format!("{}: skipped (not a regular file)", path.display()));
            }
        }
    }
    Ok(())
}

/// `path` made absolute with symbolic links resolved as far as it exists, so that two spellings
/// of one folder compare equal, whether or not it exists yet.
fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(mut resolved) => {
                for part in rest.iter().rev() {
                    match part {
                        Component::ParentDir => {
                            resolved.pop();
                        }
                        Component::CurDir => {}
                        other => resolved.push(other),
                    }
                }
                return Ok(resolved);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let Some(parent) = existing.parent() else { return Err(e) };
                rest.push(existing.components().next_back().expect("a path with a parent has a last part"));
                existing = parent;
            }
            Err(e) => return Err(e),
        }
    }
}

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

impl DeidPlan {
    /// The files to de-identify, in the order they are reported.
    pub fn inputs(&self) -> &[DeidInput] {
        &self.inputs
    }

    /// Things skipped while listing the inputs (links to folders, special files).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Worker threads the run will use.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// De-identifies every input on [`DeidPlan::threads`] threads; `on_file` is called once per
    /// finished file, from the worker threads.
    pub fn execute(&self, on_file: impl Fn(&DeidInput, &FileOutcome) + Sync) -> DeidReport {
        let started = Instant::now();
        let next = AtomicUsize::new(0);
        let bytes_read = AtomicU64::new(0);
        let bytes_written = AtomicU64::new(0);
        let outcomes: Mutex<Vec<Option<FileOutcome>>> = Mutex::new(vec![None; self.inputs.len()]);
        let named = Mutex::new(HashMap::new());
        std::thread::scope(|scope| {
            for _ in 0..self.threads {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(input) = self.inputs.get(i) else { break };
                    let outcome = self.one(i, &named, &bytes_read, &bytes_written);
                    on_file(input, &outcome);
                    outcomes.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(outcome);
                });
            }
        });
        let outcomes = outcomes.into_inner().unwrap_or_else(|e| e.into_inner());
        DeidReport {
            files: self
                .inputs
                .iter()
                .cloned()
                .zip(outcomes)
                .map(|(input, outcome)| {
                    let outcome = outcome.unwrap_or(FileOutcome::Failed { reason: "not processed".into() });
                    (input, outcome)
                })
                .collect(),
            bytes_read: bytes_read.into_inner(),
            bytes_written: bytes_written.into_inner(),
            elapsed: started.elapsed(),
            key_id: self.deidentifier.key_id().to_string(),
            options: self.deidentifier.options().enabled(),
            out: self.out.clone(),
            quarantine_dir: self.quarantine_dir.clone(),
            rename: self.rename,
        }
    }

    /// De-identifies and writes input `index`. With `--rename`, `named` maps each pseudonymized
    /// SOPInstanceUID to the input that took its name, so that a second copy of an instance
    /// fails instead of replacing the first.
    fn one(
        &self,
        index: usize,
        named: &Mutex<HashMap<String, usize>>,
        bytes_read: &AtomicU64,
        bytes_written: &AtomicU64,
    ) -> FileOutcome {
        let input = &self.inputs[index];
        let failed = |reason: String| FileOutcome::Failed { reason };
        let bytes = match std::fs::read(&input.source) {
            Ok(b) => Bytes::from(b),
            Err(e) => return failed(format!("cannot read: {e}")),
        };
        bytes_read.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let deidentified = match self.deidentifier.deidentify(&bytes) {
            Ok(d) => d,
            Err(e) => return failed(e.to_string()),
        };
        let verdict = self.rules.assess(
            deidentified.burned_in_annotation,
            deidentified.modality.as_deref(),
            &deidentified.sop_class_uid,
        );
        let (dir, outcome) = match (verdict, self.policy, &self.quarantine_dir) {
            (BurnedIn::No, _, _) => (&self.out, FileOutcome::Written),
            (_, BurnedInPolicy::Quarantine, Some(q)) => {
                (q, FileOutcome::Quarantined { reason: burned_in_reason(&self.rules, verdict, &deidentified) })
            }
            _ => return FileOutcome::Rejected { reason: burned_in_reason(&self.rules, verdict, &deidentified) },
        };
        let dest = if self.rename {
            let relative = match uid_path(&deidentified) {
                Ok(relative) => relative,
                Err(reason) => return failed(reason),
            };
            let dest = dir.join(relative);
            let mut named = named.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(&first) = named.get(&deidentified.sop_instance_uid) {
                return failed(format!(
                    "the same instance (the same SOPInstanceUID) as {}, which takes the name {}; not written twice",
                    self.inputs[first].source.display(),
                    dest.display()
                ));
            }
            named.insert(deidentified.sop_instance_uid.clone(), index);
            dest
        } else {
            dir.join(&input.relative)
        };
        match write_atomically(&dest, &deidentified.parts) {
            Ok(n) => {
                bytes_written.fetch_add(n, Ordering::Relaxed);
                outcome
            }
            Err(e) => failed(format!("cannot write {}: {e}", dest.display())),
        }
    }
}

/// `STUDY/SERIES/SOP.dcm` from the de-identified UIDs (the layout of the `export` operator), each
/// checked to be a UID so that no value from a file can name a folder outside the output.
fn uid_path(d: &Deidentified) -> Result<PathBuf, String> {
    let uids = [
        ("StudyInstanceUID", &d.study_instance_uid),
        ("SeriesInstanceUID", &d.series_instance_uid),
        ("SOPInstanceUID", &d.sop_instance_uid),
    ];
    if let Some((name, _)) = uids.iter().find(|(_, uid)| !is_uid(uid)) {
        return Err(format!("{name} is missing or not a valid UID, so --rename cannot name the file by it"));
    }
    Ok([&d.study_instance_uid, &d.series_instance_uid, &format!("{}.dcm", d.sop_instance_uid)].iter().collect())
}

/// PS3.5 9.1: at most 64 characters, digits in dot-separated components.
fn is_uid(text: &str) -> bool {
    text.len() <= 64 && text.split('.').all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()))
}

/// Why an instance counts as possibly burned-in, in terms that are not PHI (the flag, the
/// modality, the SOP class).
fn burned_in_reason(rules: &BurnedInRules, verdict: BurnedIn, d: &Deidentified) -> String {
    if verdict == BurnedIn::Yes {
        return "BurnedInAnnotation is YES".into();
    }
    let modality = d.modality.as_deref().map(printable_code);
    match modality {
        Some(m) if rules.modalities.iter().any(|x| x.eq_ignore_ascii_case(&m)) => {
            format!("BurnedInAnnotation is absent on modality {m}")
        }
        _ => format!("BurnedInAnnotation is absent on SOP class {}", printable_code(&d.sop_class_uid)),
    }
}

/// A code string (CS, UI) safe to print even from a malformed file: what is not a code
/// character is replaced and the length is bounded.
fn printable_code(value: &str) -> String {
    value
        .trim()
        .chars()
        .take(64)
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ' ' | '-') { c } else { '?' })
        .collect()
}

/// Writes `parts` in order, whole or not at all; returns the bytes written.
fn write_atomically(dest: &Path, parts: &[Bytes]) -> std::io::Result<u64> {
    let mut total = 0u64;
    crate::files::write_atomically(dest, |file| {
        for part in parts {
            file.write_all(part)?;
            total += part.len() as u64;
        }
        Ok(())
    })?;
    Ok(total)
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

/// Runs `radstream deid`: plans, de-identifies with a progress bar when stderr is a terminal,
/// prints a line per file not written and the summary. Exit status 0 when every file was
/// written or quarantined, 1 when any failed or was rejected, 2 for a usage problem.
pub fn run(command: &DeidCommand) -> ExitCode {
    let plan = match command.plan() {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    for warning in plan.warnings() {
        eprintln!("{warning}");
    }
    let bar = crate::files::files_progress(plan.inputs().len());
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

/// Runs `radstream keygen`: writes a fresh key to `out` with mode 0600, never over an existing
/// file. Exit status 2 when `out` exists or the id is not valid.
pub fn keygen(id: &str, out: &Path) -> ExitCode {
    let text = DeidKey::generate_file_text(id);
    // The key parser is the authority on what an id may be.
    if let Err(e) = DeidKey::parse(&text, "--id") {
        eprintln!("error: {}", e.problem);
        return ExitCode::from(2);
    }
    match write_new_private_file(out, text.as_bytes()) {
        Ok(()) => {
            println!("wrote pseudonymization key `{id}` to {} (mode 0600)", out.display());
            println!("keep it on the trusted side only: whoever holds it can link pseudonyms back to patients");
            ExitCode::SUCCESS
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            eprintln!("error: {} already exists; refusing to overwrite a key (move it away first)", out.display());
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}

fn write_new_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    if written.is_err() {
        drop(file);
        let _ = std::fs::remove_file(path);
    }
    written
}

#[cfg(test)]
mod tests;
