//! A walk over element headers before the real parse, to refuse objects whose declared lengths
//! run past the end of the input.
//!
//! dicom-parser reserves and zero-fills an element's declared length before reading it, so a
//! few hundred bytes of malformed input (a data set encoded in another VR than its transfer
//! syntax says, a UN of undefined length) cost gigabytes and tens of seconds. The walk is
//! conservative: it refuses what is certainly broken (a length past the end, an explicit VR
//! that is not two capital letters) and the one valid construct the parser cannot read (UN of
//! undefined length), and stops checking wherever it does not model the encoding (big endian,
//! deflate), leaving those to the parser.

use dicom_dictionary_std::uids;

use super::tag_numbers::{ITEM, ITEM_END, PIXEL_DATA, SEQUENCE_END, UNDEFINED_LENGTH as UNDEFINED};

/// Explicit VR Big Endian: retired from the standard, but objects written in it are still read.
#[allow(deprecated)]
pub(crate) const EXPLICIT_VR_BIG_ENDIAN: &str = uids::EXPLICIT_VR_BIG_ENDIAN;

/// What an open undefined-length container holds.
#[derive(Clone, Copy, PartialEq)]
enum Frame {
    /// A sequence or item, in the encoding given.
    Nested { implicit: bool },
    /// Encapsulated pixel data: items of raw bytes.
    Fragments,
}

/// Checks `body` (starting at "DICM"). `Err` names what is broken, without values.
pub(super) fn check(body: &[u8], transfer_syntax: &str) -> Result<(), &'static str> {
    let implicit = match transfer_syntax {
        uids::IMPLICIT_VR_LITTLE_ENDIAN => true,
        EXPLICIT_VR_BIG_ENDIAN | uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN | uids::JPIP_REFERENCED_DEFLATE => {
            return Ok(())
        }
        _ => false,
    };
    let u16_at = |i: usize| body.get(i..i + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |i: usize| body.get(i..i + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let mut pos = 4;
    // The meta group is explicit VR little endian whatever the transfer syntax.
    let mut stack: Vec<Frame> = Vec::new();
    while pos + 8 <= body.len() {
        let (Some(group), Some(element)) = (u16_at(pos), u16_at(pos + 2)) else { return Ok(()) };
        let tag = (u32::from(group) << 16) | u32::from(element);
        let in_meta = group == 0x0002 && stack.is_empty();
        let current = stack.last().copied();
        if group == 0xFFFE {
            let len = u32_at(pos + 4).unwrap_or(0);
            pos += 8;
            match tag {
                ITEM if current == Some(Frame::Fragments) => {
                    if len as usize > body.len() - pos {
                        return Err("a pixel data fragment runs past the end of the object");
                    }
                    pos += len as usize;
                }
                // Items are walked into; an undefined-length one is closed by its delimiter.
                ITEM if len == UNDEFINED => {
                    let implicit = match current {
                        Some(Frame::Nested { implicit }) => implicit,
                        _ => return Ok(()),
                    };
                    stack.push(Frame::Nested { implicit });
                }
                ITEM => {
                    if len as usize > body.len() - pos {
                        return Err("a sequence item runs past the end of the object");
                    }
                }
                ITEM_END | SEQUENCE_END => {
                    if stack.pop().is_none() {
                        return Ok(());
                    }
                }
                _ => return Ok(()),
            }
            continue;
        }
        let implicit_here = !in_meta && current.map_or(implicit, |f| matches!(f, Frame::Nested { implicit: true }));
        let (vr, len, header) = if implicit_here {
            (None, u32_at(pos + 4).unwrap_or(0), 8)
        } else {
            let vr = [body[pos + 4], body[pos + 5]];
            if !vr.iter().all(u8::is_ascii_uppercase) {
                return Err("an element has no valid VR where the transfer syntax says explicit VR");
            }
            if matches!(
                &vr,
                b"OB" | b"OD" | b"OF" | b"OL" | b"OV" | b"OW" | b"SQ" | b"UC" | b"UN" | b"UR" | b"UT" | b"SV" | b"UV"
            ) {
                let Some(len) = u32_at(pos + 8) else { return Ok(()) };
                (Some(vr), len, 12)
            } else {
                (Some(vr), u32::from(u16_at(pos + 6).unwrap_or(0)), 8)
            }
        };
        pos += header;
        if len == UNDEFINED {
            if tag == PIXEL_DATA && stack.is_empty() {
                stack.push(Frame::Fragments);
            } else {
                match vr.as_ref() {
                    // Implicit VR: undefined length means a sequence.
                    None => stack.push(Frame::Nested { implicit: true }),
                    Some(b"SQ") => stack.push(Frame::Nested { implicit: false }),
                    // A UN of undefined length is a sequence encoded implicit VR (PS3.5
                    // 6.2.2); dicom-parser 0.10 reads its contents as explicit VR and takes
                    // minutes and gigabytes to fail (pydicom's UN_sequence.dcm), so refuse it.
                    Some(b"UN") => {
                        return Err(
                            "a UN element of undefined length (an implicit VR sequence) is not supported by the parser",
                        )
                    }
                    _ => return Ok(()),
                }
            }
            continue;
        }
        if len as usize > body.len() - pos {
            return Err("an element's length runs past the end of the object");
        }
        // A defined-length explicit SQ is walked into; anything else is skipped whole.
        if vr != Some(*b"SQ") {
            pos += len as usize;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
