//! [`DeidCommand::plan`]: every check that can fail before any file is read (key, profile
//! options, inputs, where outputs go), so a usage problem never leaves half an output tree behind.

use std::num::NonZeroUsize;
use std::path::{Component, Path, PathBuf};

use radstream_operators::pseudonymize::{
    BurnedInRules, DeidKey, Deidentifier, ProfileOption, ProfileOptions, SafePrivateRule,
};

use crate::cli::common::{usage, UsageError};
use crate::files::{walk, worker_threads, WalkMode};

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
    pub(crate) deidentifier: Deidentifier,
    pub(crate) rules: BurnedInRules,
    pub(crate) policy: BurnedInPolicy,
    pub(crate) out: PathBuf,
    pub(crate) quarantine_dir: Option<PathBuf>,
    pub(crate) rename: bool,
    pub(crate) threads: usize,
    pub(crate) inputs: Vec<DeidInput>,
    pub(crate) warnings: Vec<String>,
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
                let listing = walk(input, WalkMode::RegularFiles)
                    .map_err(|e| usage(format!("{}: cannot list: {}", input.display(), e.source)))?;
                inputs.extend(listing.files.into_iter().map(|f| DeidInput { source: f.path, relative: f.relative }));
                warnings.extend(listing.skipped);
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

        let threads = worker_threads(self.jobs, inputs.len());
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

/// `path` made absolute with symbolic links resolved as far as it exists, so that two spellings
/// of one folder compare equal, whether or not it exists yet.
pub(crate) fn resolve(path: &Path) -> std::io::Result<PathBuf> {
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
