//! A walk over element headers before the real parse, to refuse objects whose declared lengths
//! run past the end of the input, or whose sequences nest too deep.
//!
//! dicom-parser reserves and zero-fills an element's declared length before reading it, so a
//! few hundred bytes of malformed input (a data set encoded in another VR than its transfer
//! syntax says, a UN of undefined length) cost gigabytes and tens of seconds; and dicom-object
//! builds nested sequences by recursion without a depth limit, so a file of 100,000 nested
//! sequences overflows the stack and aborts the process. The walk is conservative: it refuses
//! what is certainly broken (a length past the end, an explicit VR that is not two capital
//! letters, sequences nested deeper than [`MAX_SEQUENCE_DEPTH`], an attribute longer than
//! [`MAX_ATTRIBUTE_BYTES`]) and the one valid construct the parser cannot read (UN of undefined
//! length). It walks every encoding the parser reads: little and big endian, implicit and
//! explicit VR, and deflated data sets as they inflate (streamed, never held in memory).

use std::io::Read;

use dicom_dictionary_std::uids;

use super::tag_numbers::{ITEM, ITEM_END, PIXEL_DATA, SEQUENCE_END, UNDEFINED_LENGTH as UNDEFINED};

/// Explicit VR Big Endian: retired from the standard, but objects written in it are still read.
#[allow(deprecated)]
pub(crate) const EXPLICIT_VR_BIG_ENDIAN: &str = uids::EXPLICIT_VR_BIG_ENDIAN;

/// Deepest sequence nesting accepted (real objects rarely exceed 6); the de-identification
/// editor applies the same limit.
pub(crate) const MAX_SEQUENCE_DEPTH: usize = 32;

/// Longest attribute accepted other than pixel data (Pixel Data, Float and Double Float Pixel
/// Data are bounded by the decoder's own size limit instead): the header parse holds every
/// attribute before Pixel Data in memory.
pub(crate) const MAX_ATTRIBUTE_BYTES: u32 = 64 << 20;

/// Float Pixel Data (7FE0,0008) and Double Float Pixel Data (7FE0,0009).
const FLOAT_PIXEL_DATA: u32 = 0x7FE0_0008;
const DOUBLE_FLOAT_PIXEL_DATA: u32 = 0x7FE0_0009;

/// What an open container holds.
#[derive(Clone, Copy, PartialEq)]
enum Frame {
    /// A sequence (`sequence`) or an item of one, in the encoding given; `end` is where a
    /// defined-length one ends.
    Nested { sequence: bool, implicit: bool, end: Option<u64> },
    /// Encapsulated pixel data: items of raw bytes.
    Fragments,
}

/// Where the walk reads from.
trait Source {
    /// The next `n` bytes (at most 12) without consuming them; fewer at the end of the input.
    fn peek(&mut self, n: usize) -> &[u8];
    /// Consumes `n` bytes; false when the input ends first.
    fn skip(&mut self, n: u64) -> bool;
    /// Bytes consumed so far.
    fn pos(&self) -> u64;
    /// Bytes left, where known without reading them.
    fn remaining(&self) -> Option<u64>;
}

/// Bytes in memory.
struct Memory<'a> {
    body: &'a [u8],
    pos: usize,
}

impl Source for Memory<'_> {
    fn peek(&mut self, n: usize) -> &[u8] {
        &self.body[self.pos..(self.pos + n).min(self.body.len())]
    }

    fn skip(&mut self, n: u64) -> bool {
        let ok = n <= (self.body.len() - self.pos) as u64;
        self.pos = if ok { self.pos + n as usize } else { self.body.len() };
        ok
    }

    fn pos(&self) -> u64 {
        self.pos as u64
    }

    fn remaining(&self) -> Option<u64> {
        Some((self.body.len() - self.pos) as u64)
    }
}

/// A deflated data set, inflated as the walk goes and dropped behind it. An invalid deflate
/// stream ends the input (the inflated-size check reports it).
struct Inflating<R: Read> {
    inflate: R,
    window: Vec<u8>,
    pos: u64,
}

impl<R: Read> Inflating<R> {
    fn fill(&mut self, n: usize) {
        let mut chunk = [0u8; 64];
        while self.window.len() < n {
            match self.inflate.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(k) => self.window.extend_from_slice(&chunk[..k]),
            }
        }
    }
}

impl<R: Read> Source for Inflating<R> {
    fn peek(&mut self, n: usize) -> &[u8] {
        self.fill(n);
        &self.window[..n.min(self.window.len())]
    }

    fn skip(&mut self, n: u64) -> bool {
        let buffered = (self.window.len() as u64).min(n);
        self.window.drain(..buffered as usize);
        let rest = n - buffered;
        let copied = std::io::copy(&mut (&mut self.inflate).take(rest), &mut std::io::sink()).unwrap_or(0);
        self.pos += buffered + copied;
        copied == rest
    }

    fn pos(&self) -> u64 {
        self.pos
    }

    fn remaining(&self) -> Option<u64> {
        None
    }
}

/// Whether an explicit VR element of this VR has a 4-byte length (after 2 reserved bytes): all
/// but the standard VRs of 2-byte lengths, for dicom-parser reads a VR it does not know as UN
/// (PS3.5 7.1.2), and the pre-scan must measure each element as the parser will.
fn has_long_length(vr: &[u8]) -> bool {
    !matches!(
        vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SS"
            | b"ST"
            | b"TM"
            | b"UI"
            | b"UL"
            | b"US"
    )
}

/// Checks the file meta group of `body` (starting at "DICM") before dicom-object reads it, the
/// way dicom-object reads it: after (0002,0000), every element (of whatever group) until the
/// declared group length is consumed. dicom-object reserves what a meta element declares, so a
/// few bytes declaring 2 GiB would cost 2 GiB. Returns where the meta group ends. `Err` names
/// what is broken, without values.
pub(super) fn check_meta(body: &[u8]) -> Result<Option<usize>, &'static str> {
    let mut source = Memory { body, pos: 4 };
    // The meta group is explicit VR little endian whatever the transfer syntax.
    // With its group length, the group is what dicom-object reads; without one (which
    // dicom-object refuses), the elements of group 0002.
    // dicom-object takes (0002,0000) of any VR whose value is 4 bytes long (found by the
    // header fuzz target: a group length of VR DT).
    let group_length = {
        let h = source.peek(16);
        let header = if has_long_length(h.get(4..6).unwrap_or_default()) { 12 } else { 8 };
        let declared = match header {
            12 => h.get(8..12).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            _ => h.get(6..8).map(|b| u32::from(u16::from_le_bytes([b[0], b[1]]))),
        };
        match (h.get(..4), declared, h.get(header..header + 4)) {
            (Some([0x02, 0x00, 0x00, 0x00]), Some(4), Some(v)) => {
                let length = u32::from_le_bytes([v[0], v[1], v[2], v[3]]);
                source.skip(header as u64 + 4);
                Some(u64::from(length))
            }
            _ => None,
        }
    };
    let mut consumed = 0u64;
    loop {
        let more = match group_length {
            Some(length) => consumed < length,
            None => source.peek(2) == [0x02, 0x00],
        };
        if !more {
            break;
        }
        let h = source.peek(12);
        let short = "the file meta group ends before its declared length";
        if h.len() < 8 {
            return if group_length.is_some() { Err(short) } else { Ok(Some(source.pos)) };
        }
        let (len, header) = if has_long_length(&h[4..6]) {
            let Some(b) = h.get(8..12) else {
                return if group_length.is_some() { Err(short) } else { Ok(Some(source.pos)) };
            };
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]), 12)
        } else {
            (u32::from(u16::from_le_bytes([h[6], h[7]])), 8)
        };
        if len == UNDEFINED {
            return Err("an element of the file meta group has an undefined length");
        }
        source.skip(header);
        if !source.skip(u64::from(len)) {
            return Err("an element's length runs past the end of the object");
        }
        consumed += header as u64 + u64::from(len);
    }
    Ok(Some(source.pos))
}

/// Checks `body` (starting at "DICM"). `Err` names what is broken, without values.
pub(super) fn check(body: &[u8], transfer_syntax: &str) -> Result<(), &'static str> {
    let Some(pos) = check_meta(body)? else { return Ok(()) };
    let mut source = Memory { body, pos };
    match transfer_syntax {
        uids::IMPLICIT_VR_LITTLE_ENDIAN => walk(&mut source, true, false),
        EXPLICIT_VR_BIG_ENDIAN => walk(&mut source, false, true),
        uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN | uids::JPIP_REFERENCED_DEFLATE => {
            let deflated = &body[source.pos..];
            let mut inflating =
                Inflating { inflate: flate2::read::DeflateDecoder::new(deflated), window: Vec::new(), pos: 0 };
            walk(&mut inflating, false, false)
        }
        _ => walk(&mut source, false, false),
    }
}

/// Walks a data set from `source`'s position to its end.
fn walk(source: &mut impl Source, implicit: bool, big_endian: bool) -> Result<(), &'static str> {
    let u16_of =
        |b: &[u8]| if big_endian { u16::from_be_bytes([b[0], b[1]]) } else { u16::from_le_bytes([b[0], b[1]]) };
    let u32_of = |b: &[u8]| {
        let b = [b[0], b[1], b[2], b[3]];
        if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let item_tag: [u8; 4] = if big_endian { [0xFF, 0xFE, 0xE0, 0x00] } else { [0xFE, 0xFF, 0x00, 0xE0] };
    let mut stack: Vec<Frame> = Vec::new();
    let mut depth = 0usize;
    let enter = |stack: &mut Vec<Frame>, frame: Frame, depth: &mut usize| {
        if matches!(frame, Frame::Nested { sequence: true, .. }) {
            *depth += 1;
            if *depth > MAX_SEQUENCE_DEPTH {
                return Err("sequences are nested deeper than 32 levels");
            }
        }
        stack.push(frame);
        Ok(())
    };
    let leave = |stack: &mut Vec<Frame>, depth: &mut usize| {
        let frame = stack.pop();
        if matches!(frame, Some(Frame::Nested { sequence: true, .. })) {
            *depth -= 1;
        }
        frame
    };
    loop {
        // Defined-length items and sequences end where their length says.
        while let Some(Frame::Nested { end: Some(end), .. }) = stack.last() {
            if source.pos() < *end {
                break;
            }
            // An element that overran its item or sequence puts the walk out of step with the
            // parser, which reads on from the end the length said (found by the header fuzz
            // target: an implicit VR value that opens with an item tag, walked as a sequence,
            // hid an element declaring 1.4 GB).
            if source.pos() > *end {
                return Err("an element runs past the end of the item or sequence that holds it");
            }
            leave(&mut stack, &mut depth);
        }
        // The next element header, copied out of the source (no allocation per element).
        let mut buf = [0u8; 12];
        let peeked = source.peek(12);
        buf[..peeked.len()].copy_from_slice(peeked);
        let h = &buf[..peeked.len()];
        if h.len() < 8 {
            return Ok(());
        }
        let (group, element) = (u16_of(&h[0..2]), u16_of(&h[2..4]));
        let tag = (u32::from(group) << 16) | u32::from(element);
        let current = stack.last().copied();
        if group == 0xFFFE {
            let len = u32_of(&h[4..8]);
            source.skip(8);
            match tag {
                ITEM if current == Some(Frame::Fragments) => {
                    if !source.skip(u64::from(len)) {
                        return Err("a pixel data fragment runs past the end of the object");
                    }
                }
                // Items of a sequence are walked into; an undefined-length one is closed by its
                // delimiter.
                ITEM if matches!(current, Some(Frame::Nested { sequence: true, .. })) => {
                    let Some(Frame::Nested { implicit, .. }) = current else { return Ok(()) };
                    let end = if len == UNDEFINED {
                        None
                    } else {
                        if source.remaining().is_some_and(|r| u64::from(len) > r) {
                            return Err("a sequence item runs past the end of the object");
                        }
                        Some(source.pos() + u64::from(len))
                    };
                    enter(&mut stack, Frame::Nested { sequence: false, implicit, end }, &mut depth)?;
                }
                // Each delimiter closes only what it delimits: an item, or a sequence (or the
                // fragments of pixel data).
                ITEM_END if matches!(current, Some(Frame::Nested { sequence: false, .. })) => {
                    leave(&mut stack, &mut depth);
                }
                SEQUENCE_END if matches!(current, Some(Frame::Nested { sequence: true, .. } | Frame::Fragments)) => {
                    leave(&mut stack, &mut depth);
                }
                // Any other tag of group FFFE, and an item or delimiter where it delimits nothing
                // (a sequence delimiter inside an item, say), is read by dicom-parser as an
                // element of VR UN with this length: it must fit (found by the header fuzz
                // target: a sequence delimiter inside an item declaring 1.2 GB).
                _ => {
                    if len == UNDEFINED {
                        return Err("an item or delimiter tag stands outside a sequence with an undefined length");
                    }
                    if !source.skip(u64::from(len)) {
                        return Err("an element's length runs past the end of the object");
                    }
                }
            }
            continue;
        }
        let implicit_here = current.map_or(implicit, |f| matches!(f, Frame::Nested { implicit: true, .. }));
        let (vr, len, header) = if implicit_here {
            (None, u32_of(&h[4..8]), 8)
        } else {
            let vr = [h[4], h[5]];
            if !vr.iter().all(u8::is_ascii_uppercase) {
                return Err("an element has no valid VR where the transfer syntax says explicit VR");
            }
            if has_long_length(&vr) {
                let Some(len) = h.get(8..12).map(&u32_of) else { return Ok(()) };
                (Some(vr), len, 12)
            } else {
                (Some(vr), u32::from(u16_of(&h[6..8])), 8)
            }
        };
        source.skip(header);
        if len == UNDEFINED {
            // As dicom-parser reads them: Pixel Data of undefined length, at any depth, is
            // encapsulated fragments; any other element of undefined length is a sequence of
            // data sets, whatever its VR says.
            if tag == PIXEL_DATA {
                stack.push(Frame::Fragments);
            } else {
                match vr.as_ref() {
                    // Implicit VR: undefined length means a sequence.
                    None => enter(&mut stack, Frame::Nested { sequence: true, implicit: true, end: None }, &mut depth)?,
                    Some(b"SQ") => {
                        enter(&mut stack, Frame::Nested { sequence: true, implicit: false, end: None }, &mut depth)?
                    }
                    // A UN of undefined length is a sequence encoded implicit VR (PS3.5
                    // 6.2.2); dicom-parser 0.10 reads its contents as explicit VR and takes
                    // minutes and gigabytes to fail (pydicom's UN_sequence.dcm), so refuse it.
                    Some(b"UN") => {
                        return Err(
                            "a UN element of undefined length (an implicit VR sequence) is not supported by the parser",
                        )
                    }
                    Some(_) => enter(
                        &mut stack,
                        Frame::Nested { sequence: true, implicit: implicit_here, end: None },
                        &mut depth,
                    )?,
                }
            }
            continue;
        }
        if source.remaining().is_some_and(|r| u64::from(len) > r) {
            return Err("an element's length runs past the end of the object");
        }
        let is_pixels = tag == PIXEL_DATA || tag == FLOAT_PIXEL_DATA || tag == DOUBLE_FLOAT_PIXEL_DATA;
        if len > MAX_ATTRIBUTE_BYTES && !is_pixels {
            return Err("an attribute other than pixel data is longer than 64 MiB");
        }
        // A defined-length sequence is walked into: explicit SQ, or in implicit VR a value that
        // opens with an item tag. Anything else is skipped whole.
        let opens_with_item = vr.is_none() && !is_pixels && len >= 8 && {
            let first = source.peek(8);
            first.len() == 8 && first[..4] == item_tag && {
                let item_len = u32_of(&first[4..8]);
                item_len == UNDEFINED || item_len <= len - 8
            }
        };
        let sequence = vr == Some(*b"SQ") || opens_with_item;
        if sequence {
            let end = Some(source.pos() + u64::from(len));
            enter(&mut stack, Frame::Nested { sequence: true, implicit: implicit_here, end }, &mut depth)?;
        } else if !source.skip(u64::from(len)) {
            return Err("an element's length runs past the end of the object");
        }
    }
}

#[cfg(test)]
mod tests;
