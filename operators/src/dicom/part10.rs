//! Opening untrusted Part-10 bytes: the checks that run before dicom-object sees them (the
//! element pre-scan, the deflate bomb check, data sets mislabelled as explicit VR) and the parse
//! itself. Both the header parse and the pixel decoder open objects here.

use dicom_dictionary_std::{tags, uids};
use dicom_object::file::ReadPreamble;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::{TransferSyntaxIndex, TransferSyntaxRegistry};

use super::prescan::EXPLICIT_VR_BIG_ENDIAN;

/// The largest decoded size accepted (all frames), checked before any codec runs so that a
/// forged Rows/Columns/NumberOfFrames cannot make us allocate without bound.
pub const MAX_DECODED_BYTES: u64 = 2 << 30;

const IMPLICIT_VR_LITTLE_ENDIAN: &str = uids::IMPLICIT_VR_LITTLE_ENDIAN;
const DEFLATED: &str = uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN;

/// The transfer syntax, as named in error messages.
pub struct Syntax {
    /// The UID, reduced to the characters a UID may have.
    pub uid: String,
    /// Its name in the transfer syntax registry, or `unknown transfer syntax`.
    pub name: &'static str,
}

impl std::fmt::Display for Syntax {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "transfer syntax {} ({})", self.uid, self.name)
    }
}

/// Refuses what would make dicom-parser allocate without bound (see prescan.rs): declared
/// lengths past the end of the object, UN of undefined length, deflate bombs. `body` starts at
/// "DICM". Call it before handing untrusted bytes to dicom-object.
pub fn check_parsable(body: &[u8]) -> Result<(), String> {
    // Without a readable meta group there is no transfer syntax to pre-scan the data set by,
    // and dicom-object, which reads it more leniently when it opens a file, would parse the
    // data set unchecked (found by the header fuzz target: a sequence item declaring 2.6 GB).
    let meta = read_meta(body)?.map_err(|()| "the file meta group is unreadable".to_string())?;
    let syntax = syntax_of(meta.transfer_syntax());
    super::prescan::check(body, &syntax.uid).map_err(|what| format!("{syntax}: {what}"))?;
    if syntax.uid == DEFLATED {
        check_inflated_size(&body[data_set_offset(body, &meta).min(body.len())..])
            .map_err(|what| format!("{syntax}: {what}"))?;
    }
    Ok(())
}

/// dicom-object's reading of the file meta group of `body` (from "DICM"), after the pre-scan
/// of its element lengths: `Err` (what is wrong) where they would make dicom-object reserve
/// more than the object holds, `Ok(Err)` where dicom-object cannot read the group.
pub fn read_meta(body: &[u8]) -> Result<Result<dicom_object::FileMetaTable, ()>, String> {
    super::prescan::check_meta(body).map_err(|what| format!("the file meta group: {what}"))?;
    Ok(dicom_object::FileMetaTable::from_reader(body).map_err(|_| ()))
}

/// Checks `body` (from "DICM") with [`check_parsable`] and parses it: the whole object, or with
/// `header_only` the data set up to Pixel Data. Data sets written in implicit VR under an
/// explicit VR transfer syntax are read as what they are (`mislabelled_implicit_vr`). `Err`
/// when the checks refuse it, `Ok(None)` when the parser fails (its message is withheld: some of
/// its errors quote the token they choked on).
pub fn open_part10(
    body: &[u8],
    header_only: bool,
) -> Result<Option<dicom_object::FileDicomObject<InMemDicomObject>>, String> {
    super::prescan::check_meta(body).map_err(|what| format!("the file meta group: {what}"))?;
    match mislabelled_implicit_vr(body) {
        Some((meta, data_set)) => {
            super::prescan::check(body, IMPLICIT_VR_LITTLE_ENDIAN)
                .map_err(|what| format!("{}: {what}", syntax_of(meta.transfer_syntax())))?;
            let implicit = dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN.erased();
            Ok(InMemDicomObject::read_dataset_with_ts(data_set, &implicit).ok().map(|d| d.with_exact_meta(meta)))
        }
        None => {
            check_parsable(body)?;
            let options = OpenFileOptions::new().read_preamble(ReadPreamble::Never);
            let options = if header_only { options.read_until(tags::PIXEL_DATA) } else { options };
            Ok(options.from_reader(body).ok())
        }
    }
}

/// Some writers encode the data set in implicit VR little endian while the meta group names an
/// explicit VR transfer syntax (pydicom's `SC_rgb_jpeg.dcm` is one); pydicom reads such files by
/// looking at the data, and so does this: when the first element of the data set has no valid
/// VR where one should be, the data set is read as implicit VR little endian, and the meta
/// group's transfer syntax still decides how Pixel Data is decoded. Returns the meta group and
/// the data set's bytes in that case, `None` otherwise.
fn mislabelled_implicit_vr(body: &[u8]) -> Option<(dicom_object::FileMetaTable, &[u8])> {
    let meta = read_meta(body).ok()?.ok()?;
    let uid = syntax_of(meta.transfer_syntax()).uid;
    if matches!(uid.as_str(), IMPLICIT_VR_LITTLE_ENDIAN | EXPLICIT_VR_BIG_ENDIAN | DEFLATED) {
        return None;
    }
    let data_set = body.get(data_set_offset(body, &meta)..)?;
    let vr = data_set.get(4..6)?;
    (!vr.iter().all(u8::is_ascii_uppercase)).then_some((meta, data_set))
}

/// Where the data set starts in `body` (from "DICM"): where dicom-object stops reading the
/// meta group, which is after the element that completes the group's own declared length
/// (0002,0000), as the pre-scan measures it. dicom-object's `information_group_length` is the
/// length it would write, which differs from the file's when the file lacks an element
/// dicom-object adds (an Implementation Class UID): taken as the offset, it would land inside
/// the data set; and an element that overruns the declared length is still read as meta.
fn data_set_offset(body: &[u8], meta: &dicom_object::FileMetaTable) -> usize {
    match super::prescan::check_meta(body) {
        Ok(Some(end)) => end,
        _ => 16 + meta.information_group_length as usize,
    }
}

/// Inflates a deflated data set into nothing, to refuse a decompression bomb before the parser
/// inflates it into memory: the data set may be at most [`MAX_DECODED_BYTES`] plus 64 MiB of
/// attributes. `data_set` starts after the meta group ("DICM", then (0002,0000) in 12 bytes, then
/// the group).
fn check_inflated_size(data_set: &[u8]) -> Result<(), &'static str> {
    use std::io::Read;
    let limit = MAX_DECODED_BYTES + (64 << 20);
    let mut inflated = flate2::read::DeflateDecoder::new(data_set).take(limit + 1);
    match std::io::copy(&mut inflated, &mut std::io::sink()) {
        Ok(n) if n > limit => Err("the inflated data set would exceed the size limit"),
        Ok(_) => Ok(()),
        Err(_) => Err("the deflated data set is not a valid deflate stream"),
    }
}

/// The transfer syntax of a meta group, its UID reduced to the characters a UID may have.
pub fn syntax_of(raw_uid: &str) -> Syntax {
    let uid: String =
        raw_uid.trim_end_matches(['\0', ' ']).chars().filter(|c| c.is_ascii_digit() || *c == '.').take(64).collect();
    let name = TransferSyntaxRegistry.get(&uid).map_or("unknown transfer syntax", |ts| ts.name());
    Syntax { uid, name }
}
