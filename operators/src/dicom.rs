//! The DICOM layer every operator uses: opening untrusted Part-10 bytes ([`part10`], with the
//! element pre-scan of `prescan`), the header parse ([`header`]), the byte-level Part-10 editor
//! that de-identification and re-linking edit attributes with, sharing the pixel data instead of
//! copying it ([`editor`]), reading and building data elements ([`elements`]), DA/TM values ([`datetime`], on the days of [`calendar`]), UIDs
//! derived from hashes ([`uids`]) and the pixel data decoders ([`decode`]). Nothing here knows
//! about operators or envelopes.

pub mod calendar;
pub mod datetime;
pub mod decode;
pub mod editor;
pub mod elements;
pub mod header;
pub mod part10;
mod prescan;
pub(crate) mod tag_numbers;
pub mod uids;

pub use elements::element_text;
pub use header::{event_from_header, parse_header};
