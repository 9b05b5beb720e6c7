//! Model manifests (`models/*.model.toml`): which ONNX file a model is, byte for byte, what it
//! takes as input and which of its outputs are findings.
//!
//! ```toml
//! name = "ct-head-bleed"
//! version = "0.1.0"
//! file = "demo/ct-head-bleed.onnx"      # relative to the manifest
//! sha256 = "3f1c…"                      # of that file; checked at load
//! task = "segmentation"                 # classification | detection | segmentation
//! validated_with = ["0.1.0"]            # radstream versions it was validated with
//!
//! [input]                               # a preprocessing spec (models/*.preprocess.toml);
//! modalities = ["CT"]                   # its `name` defaults to the manifest's
//! input = "slice"
//! size = [256, 256]
//! window = { center = 40, width = 80 }
//! normalization = { kind = "min_max", min = 0, max = 1 }
//! channels = 1
//!
//! [tensors]
//! input = "image"                       # the ONNX input, [N, C, H, W] float32
//! outputs = ["bleed_probability", "bleed_mask"]
//!
//! [[findings]]
//! output = "bleed_probability"          # an [N, K] output; `index` picks the column (0)
//! label = "intracranial hemorrhage"
//! code = { system = "SCT", value = "1386000", meaning = "Intracranial hemorrhage" }
//! threshold = 0.5                       # a score at or above it is a finding
//! critical = true
//! ```
//!
//! [`ModelManifest::validate`] is pure; [`ModelManifest::load`] reads the manifest, then reads
//! and hashes the ONNX file, and refuses a file whose SHA-256 is not the manifest's: a model
//! that is not the one validated must not produce findings.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::contract::results::{Code, CodeSystem};
use crate::preprocess::PreprocessSpec;
use crate::ConfigError;

/// A model manifest as written, with the ONNX path resolved against the manifest's folder by
/// [`ModelManifest::load`].
#[derive(Debug, Clone, PartialEq)]
pub struct ModelManifest {
    /// The model's name (logs, results, output names).
    pub name: String,
    /// The model's version, carried with every result.
    pub version: String,
    /// The ONNX file: relative to the manifest as written, resolved after `load`.
    pub file: PathBuf,
    /// Lowercase hex SHA-256 of the ONNX file.
    pub sha256: String,
    /// What the model does.
    pub task: Task,
    /// Its preprocessing: the same fields as a `models/*.preprocess.toml` spec.
    pub input: PreprocessSpec,
    /// Names of its input and output tensors.
    pub tensors: TensorNames,
    /// Outputs that are findings.
    pub findings: Vec<FindingSpec>,
    /// radstream versions the model was validated with.
    pub validated_with: Vec<String>,
}

/// What a model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Scores per image.
    Classification,
    /// Boxes per image.
    Detection,
    /// Masks per image (and usually a score).
    Segmentation,
}

/// The model's tensor names.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorNames {
    /// The input: `[N, C, H, W]` float32 for a model of slices (`N` symbolic or any fixed
    /// size; see `max_batch`), `[1, C, D, H, W]` for a model of whole series (`D` open).
    pub input: String,
    /// The outputs the pipeline reads (findings name some of them).
    pub outputs: Vec<String>,
    /// A model of whole series only: an output `[1, D]` of one score per slice, in the
    /// volume's slice order. The instances of slices that reach the first finding's threshold
    /// are listed with the result.
    #[serde(default)]
    pub slice_scores: Option<String>,
    /// A model of slices only: an output `[N, 1, H, W]` at the input's size, the per-pixel
    /// probability of the first finding. Results then carry it, to make segmentation objects.
    #[serde(default)]
    pub mask: Option<String>,
}

/// One output (or one column of it) that is a finding.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingSpec {
    /// The output tensor, `[N, K]`: one row of scores per image.
    pub output: String,
    /// Which column of the output (0 when absent).
    #[serde(default)]
    pub index: usize,
    /// What the finding is called in results and logs.
    pub label: String,
    /// Its coded concept.
    pub code: Code,
    /// A score at or above it is a finding; in `[0, 1]`.
    pub threshold: f32,
    /// Whether a finding must reach a radiologist at once (critical result notification).
    #[serde(default)]
    pub critical: bool,
}

/// The manifest as written; `input` is a table that becomes a spec once its name is filled in.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    version: String,
    file: PathBuf,
    sha256: String,
    task: Task,
    input: toml::Table,
    tensors: TensorNames,
    #[serde(default)]
    findings: Vec<FindingSpec>,
    validated_with: Vec<String>,
}

/// A model file read and checked against its manifest.
#[derive(Debug, Clone)]
pub struct VerifiedModel {
    /// The manifest, `file` resolved.
    pub manifest: ModelManifest,
    /// The ONNX file's bytes, whose SHA-256 is the manifest's.
    pub onnx: Vec<u8>,
}

impl ModelManifest {
    /// Parses a manifest from TOML text and validates it; `file` stays as written.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| ConfigError::new("", e.message().to_string()))?;
        let mut input = raw.input;
        input.entry("name").or_insert_with(|| toml::Value::String(raw.name.clone()));
        let input: PreprocessSpec =
            toml::Value::Table(input).try_into().map_err(|e| ConfigError::new("input", e.message().to_string()))?;
        let manifest = Self {
            name: raw.name,
            version: raw.version,
            file: raw.file,
            sha256: raw.sha256,
            task: raw.task,
            input,
            tensors: raw.tensors,
            findings: raw.findings,
            validated_with: raw.validated_with,
        };
        manifest.validate()?;
        Ok(manifest)
    }

    /// Reads and validates the manifest at `path`, then reads the ONNX file it names (relative
    /// to the manifest's folder) and checks its SHA-256. Errors name the file.
    pub fn load(path: &Path) -> Result<VerifiedModel, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&shown, format!("cannot read the model manifest: {e}")))?;
        let mut manifest = Self::from_toml(&text).map_err(|e| e.within(&shown))?;
        manifest.file = path.parent().unwrap_or(Path::new("")).join(&manifest.file);
        let onnx = std::fs::read(&manifest.file).map_err(|e| {
            ConfigError::new(format!("{shown}.file"), format!("cannot read {}: {e}", manifest.file.display()))
        })?;
        let actual = sha256_hex(&onnx);
        if actual != manifest.sha256 {
            return Err(ConfigError::new(
                format!("{shown}.sha256"),
                format!(
                    "{} has SHA-256 {actual}, the manifest says {}: refusing a model file that is not the one \
                     validated (update the manifest only after validating this file)",
                    manifest.file.display(),
                    manifest.sha256
                ),
            ));
        }
        Ok(VerifiedModel { manifest, onnx })
    }

    /// Checks every field; pure (the ONNX file is not read).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let nonblank = |key: &str, value: &str| {
            if value.trim().is_empty() || value.trim() != value {
                Err(ConfigError::new(key, "must not be empty or have surrounding spaces"))
            } else {
                Ok(())
            }
        };
        nonblank("name", &self.name)?;
        nonblank("version", &self.version)?;
        if self.file.as_os_str().is_empty() {
            return Err(ConfigError::new("file", "name the ONNX file (relative to the manifest)"));
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ConfigError::new(
                "sha256",
                "must be the file's SHA-256 as 64 lowercase hex digits (`sha256sum FILE`)",
            ));
        }
        self.input.validate().map_err(|e| e.within("input"))?;
        nonblank("tensors.input", &self.tensors.input)?;
        if self.tensors.outputs.is_empty() {
            return Err(ConfigError::new("tensors.outputs", "list the outputs the pipeline reads"));
        }
        for (i, output) in self.tensors.outputs.iter().enumerate() {
            nonblank(&format!("tensors.outputs[{i}]"), output)?;
            if self.tensors.outputs[..i].contains(output) {
                return Err(ConfigError::new(format!("tensors.outputs[{i}]"), format!("`{output}` is listed twice")));
            }
        }
        for (i, finding) in self.findings.iter().enumerate() {
            finding.validate(&self.tensors.outputs).map_err(|e| e.within(&format!("findings[{i}]")))?;
        }
        if let Some(slice_scores) = &self.tensors.slice_scores {
            if self.input.input != crate::preprocess::InputKind::Series {
                return Err(ConfigError::new(
                    "tensors.slice_scores",
                    "only a model of whole series (input = \"series\") has per-slice scores",
                ));
            }
            if !self.tensors.outputs.contains(slice_scores) {
                return Err(ConfigError::new(
                    "tensors.slice_scores",
                    format!("`{slice_scores}` is not one of tensors.outputs ({})", self.tensors.outputs.join(", ")),
                ));
            }
        }
        if let Some(mask) = &self.tensors.mask {
            if !self.tensors.outputs.contains(mask) {
                return Err(ConfigError::new(
                    "tensors.mask",
                    format!("`{mask}` is not one of tensors.outputs ({})", self.tensors.outputs.join(", ")),
                ));
            }
        }
        if self.validated_with.is_empty() || self.validated_with.iter().any(|v| v.trim().is_empty()) {
            return Err(ConfigError::new(
                "validated_with",
                "list the radstream versions the model was validated with, e.g. [\"0.1.0\"]",
            ));
        }
        Ok(())
    }

    /// Whether this radstream's version is one the model was validated with.
    pub fn validated_with_this_version(&self) -> bool {
        self.validated_with.iter().any(|v| v == env!("CARGO_PKG_VERSION"))
    }
}

impl FindingSpec {
    fn validate(&self, outputs: &[String]) -> Result<(), ConfigError> {
        if !outputs.contains(&self.output) {
            return Err(ConfigError::new(
                "output",
                format!("`{}` is not one of tensors.outputs ({})", self.output, outputs.join(", ")),
            ));
        }
        if self.label.trim().is_empty() {
            return Err(ConfigError::new("label", "must not be empty"));
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            return Err(ConfigError::new("threshold", "must be between 0 and 1"));
        }
        if self.code.meaning.trim().is_empty() {
            return Err(ConfigError::new("code.meaning", "must not be empty"));
        }
        let value = self.code.value.as_str();
        let well_formed = match self.code.system {
            // SNOMED CT identifiers: 6 to 18 digits, no leading zero.
            CodeSystem::SnomedCt => {
                (6..=18).contains(&value.len()) && !value.starts_with('0') && value.bytes().all(|b| b.is_ascii_digit())
            }
            CodeSystem::RadLex => {
                value.strip_prefix("RID").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            }
        };
        if !well_formed {
            let expected = match self.code.system {
                CodeSystem::SnomedCt => "a SNOMED CT identifier (6 to 18 digits)",
                CodeSystem::RadLex => "a RadLex identifier (RID followed by digits)",
            };
            return Err(ConfigError::new("code.value", format!("`{value}` is not {expected}")));
        }
        Ok(())
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    Sha256::digest(bytes).iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
pub(crate) mod tests;
