//! Result objects: what a model said, as DICOM objects a PACS files into the source's study.
//!
//! * [`sr`]: a structured report, TID 1500 "Measurement Report" in a Comprehensive 3D SR, as
//!   the IHE AI Results profile asks: the model as the observer device, one measurement group
//!   per finding with its code, probability and the image it was found on.
//! * [`uids`]: the UIDs of result objects, derived from the source's UIDs and the model's
//!   identity, so that a replayed event replaces its result instead of adding a duplicate.
//!
//! Building is pure: no I/O, no clock; the caller passes the content time.

pub mod sr;
pub mod uids;

pub use sr::{build_sr, InstanceRef, SrDocument, SrError};
