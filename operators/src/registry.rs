//! The registry: the only file that names every operator. Each line of `operators!` registers
//! one operator config type (an [`OperatorSpec`]) under an [`OperatorConfig`] variant; the macro
//! makes the serde-tagged enum of the `[[operators]]` chain and its dispatch from those lines.
//! Adding an operator means one new file (its config and runtime type) and one line here; the
//! compliance test in `registry/tests.rs` then checks it with the others.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::contract::{BuildContext, ConfigError, Operator, OperatorSpec, ReadinessProbe};

/// Makes [`OperatorConfig`] from one line per operator: `Variant(ConfigType)`, with the doc
/// comment and any attributes (such as `#[cfg(test)]`) of the variant before it. The variant's
/// snake-case name is the TOML `type`; the compliance test checks that it equals the config's
/// [`OperatorSpec::KIND`].
macro_rules! operators {
    ($($(#[$attr:meta])* $variant:ident($config:ty),)+) => {
        /// One entry of the `[[operators]]` chain, selected by its `type`.
        #[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        pub enum OperatorConfig {
            $($(#[$attr])* $variant($config),)+
        }

        // Each arm repeats its line's attributes so that a `#[cfg]` line vanishes whole; the doc
        // comments repeated with them document nothing there.
        #[allow(unused_doc_comments)]
        impl OperatorConfig {
            /// The operator kind, used as the `operator` metric label.
            pub fn kind(&self) -> &'static str {
                match self {
                    $($(#[$attr])* Self::$variant(_) => <$config as OperatorSpec>::KIND,)+
                }
            }

            /// True when the operator delivers to a destination.
            pub fn is_sink(&self) -> bool {
                match self {
                    $($(#[$attr])* Self::$variant(_) => <$config as OperatorSpec>::IS_SINK,)+
                }
            }

            /// Checks the configuration without touching the network or the filesystem.
            pub fn validate(&self) -> Result<(), ConfigError> {
                match self {
                    $($(#[$attr])* Self::$variant(c) => OperatorSpec::validate(c),)+
                }
            }

            /// Builds the runtime operator (reads secrets from the environment or files).
            pub fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Operator>, ConfigError> {
                match self {
                    $($(#[$attr])* Self::$variant(c) => OperatorSpec::build(c, ctx),)+
                }
            }

            /// The probe of the operator's destination, for a sink that has one.
            pub fn readiness(&self) -> Option<Arc<dyn ReadinessProbe>> {
                match self {
                    $($(#[$attr])* Self::$variant(c) => OperatorSpec::readiness(c),)+
                }
            }

            /// Every registered kind with its example config (see [`OperatorSpec::example`]),
            /// for the compliance test and for documentation.
            pub fn examples() -> Vec<(&'static str, &'static str)> {
                Vec::from([$($(#[$attr])* (<$config as OperatorSpec>::KIND, <$config as OperatorSpec>::example()),)+])
            }
        }
    };
}

operators! {
    /// Rules on DICOM attributes choose a branch or drop the instance.
    Route(crate::route::RouteConfig),
    /// PS3.15 Annex E de-identification with keyed pseudonyms and re-identification links.
    Pseudonymize(crate::pseudonymize::PseudonymizeConfig),
    /// Restores original UIDs, patient and study on results (trusted side only).
    Relink(crate::relink::RelinkConfig),
    /// Decodes the pixel data and attaches the model's input tensor.
    Preprocess(crate::preprocess::PreprocessConfig),
    /// Runs a model (named by its manifest) on the preprocessed tensor and attaches the result.
    Infer(crate::infer::InferConfig),
    /// Sends critical findings to a topic at once and raises the instance's priority.
    Alert(crate::alert::AlertConfig),
    /// Result objects (SR, SEG, overlays) of the model's results, for the PACS.
    Results(crate::results::ResultsConfig),
    /// Replaces the instance with a Key Object Selection document that references it.
    KeyObject(crate::key_object::KeyObjectConfig),
    /// Writes the instance to a bucket and optionally announces it on a topic (a sink that
    /// forwards).
    Export(crate::export::ExportConfig),
    /// STOW-RS to a DICOMweb PACS (a sink).
    Stow(crate::stow::StowConfig),
    /// FHIR R4 bundles of the results, to a topic, a FHIR server or a folder.
    Fhir(crate::fhir::FhirConfig),
    /// The example operator of the compliance test: records a label on each envelope.
    #[cfg(test)]
    Tag(crate::tag::TagConfig),
}

#[cfg(test)]
mod tests;
