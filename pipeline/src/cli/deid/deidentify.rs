//! [`DeidPlan::execute`]: de-identifies every file of a plan on the shared pool of threads.
//! Nothing said here quotes a value from a file: files are named by path, problems by the
//! de-identifier's own PHI-free errors, burned-in decisions by modality and SOP class.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use radstream_operators::pseudonymize::{BurnedIn, BurnedInRules, Deidentified};

use crate::cli::deid::plan::{BurnedInPolicy, DeidInput, DeidPlan};
use crate::cli::deid::report::{DeidReport, FileOutcome};
use crate::files::on_threads;
use radstream_operators::dicom::uids::is_uid;

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
        let bytes_read = AtomicU64::new(0);
        let bytes_written = AtomicU64::new(0);
        let named = Mutex::new(HashMap::new());
        let outcomes = on_threads(&self.inputs, self.threads, |i, input| {
            let outcome = self.one(i, &named, &bytes_read, &bytes_written);
            on_file(input, &outcome);
            outcome
        });
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
pub(crate) fn uid_path(d: &Deidentified) -> Result<PathBuf, String> {
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
pub(crate) fn write_atomically(dest: &Path, parts: &[Bytes]) -> std::io::Result<u64> {
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

#[cfg(test)]
mod tests;
