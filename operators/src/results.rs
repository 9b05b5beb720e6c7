//! Result objects: what a model said, as DICOM objects a PACS files into the source's study.
//!
//! * [`sr`]: a structured report, TID 1500 "Measurement Report" in a Comprehensive 3D SR, as
//!   the IHE AI Results profile asks: the model as the observer device, one measurement group
//!   per finding with its code, probability and the image it was found on.
//! * [`seg`]: a binary DICOM Segmentation of a segmentation output, resampled onto the source
//!   images, one segment coded with the finding, referencing the source frames.
//! * [`fhir`]: a FHIR R4 transaction Bundle of a study's results (ImagingStudy, Device, an
//!   Observation per finding, DiagnosticReport), conditional so that a replay updates in place.
//! * [`uids`]: the UIDs of result objects, derived from the source's UIDs and the model's
//!   identity, so that a replayed event replaces its result instead of adding a duplicate.
//!
//! * [`overlay`]: a secondary capture of the source image with the result burned in, for
//!   viewers that render neither SR nor SEG.
//! * [`step`]: the `results` operator, which makes these objects of each model result for the
//!   sink after it; the `fhir` sink POSTs the bundles to a FHIR server ([`crate::fhir::post`]).
//!
//! Building is pure: no I/O, no clock; the caller passes the content time (the event's, so a
//! replay gives the same bytes).

pub mod fhir;
pub mod overlay;
pub mod seg;
pub mod sr;
pub mod step;
pub mod uids;

#[cfg(test)]
mod test_support;

pub use fhir::{build_fhir_bundle, FhirBundle, FhirError, PatientRef, SourceResult, StudyResults};
pub use seg::{build_seg, MaskShape, SegDocument, SegError, SegSource, SegmentConcept};
pub use sr::{build_sr, InstanceRef, SrDocument, SrError};
pub use step::{Negatives, ResultsConfig, ResultsStep};
