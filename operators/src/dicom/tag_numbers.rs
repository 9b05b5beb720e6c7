//! Tags as the 32-bit numbers (group in the high half) that the two byte-level Part-10 readers
//! compare: the pre-scan (`prescan.rs`) and the Part-10 editor (`editor.rs`).
//! One list, so that the two agree on what they skip and where they stop.

use dicom_core::Tag;
use dicom_dictionary_std::tags;

/// `tag` as one number, group in the high half: the order tags sort in.
pub const fn number(tag: Tag) -> u32 {
    ((tag.0 as u32) << 16) | tag.1 as u32
}

/// Item (PS3.5 7.5); the delimiters are not data elements, so the dictionary has none of them.
pub const ITEM: u32 = number(Tag(0xFFFE, 0xE000));
/// Item Delimitation Item (PS3.5 7.5).
pub const ITEM_END: u32 = number(Tag(0xFFFE, 0xE00D));
/// Sequence Delimitation Item (PS3.5 7.5).
pub const SEQUENCE_END: u32 = number(Tag(0xFFFE, 0xE0DD));
/// Pixel Data (7FE0,0010).
pub const PIXEL_DATA: u32 = number(tags::PIXEL_DATA);
/// Transfer Syntax UID (0002,0010).
pub const TRANSFER_SYNTAX_UID: u32 = number(tags::TRANSFER_SYNTAX_UID);
/// File Meta Information Group Length (0002,0000).
pub const FILE_META_GROUP_LENGTH: u32 = number(tags::FILE_META_INFORMATION_GROUP_LENGTH);
/// The value length that means "undefined, up to a delimiter" (PS3.5 7.1.1).
pub const UNDEFINED_LENGTH: u32 = 0xFFFF_FFFF;
