//! The Part-10 editor: a byte-level view of a Part-10 object for operators that edit attributes
//! (de-identification, re-linking): elements with their value ranges in the source buffer, nested sequences parsed, everything else (Pixel Data above all, native or
//! encapsulated) kept as byte ranges and never decoded. Written back in the same transfer
//! syntax, with unchanged elements copied byte for byte and large values shared, not copied.
//!
//! This is deliberately narrower than `dicom-object`: it only has to find, replace, remove and
//! insert elements, and it must do so at tens of thousands of objects per second per core.

use std::io::{Read, Write};
use std::ops::Range;

use bytes::Bytes;
use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::{uids, StandardDataDictionary};

use crate::dicom::tag_numbers::{
    FILE_META_GROUP_LENGTH, ITEM, ITEM_END, PIXEL_DATA, SEQUENCE_END as SEQ_END, TRANSFER_SYNTAX_UID,
    UNDEFINED_LENGTH as UNDEFINED,
};

/// A Part-10 object that could not be read for editing. Names a byte offset and a problem, never
/// a value from the file. (The message speaks of de-identification, the editor's first user, as
/// `radstream deid` and its tests have always shown it.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a de-identifiable DICOM file{}: {problem}", offset.map(|o| format!(" (at byte {o})")).unwrap_or_default())]
pub struct EditError {
    /// Byte offset in the input where the problem was found.
    pub offset: Option<u64>,
    /// What is wrong.
    pub problem: String,
}

/// Deepest sequence nesting accepted (real objects rarely exceed 6): the pre-scan's limit.
const MAX_DEPTH: usize = super::prescan::MAX_SEQUENCE_DEPTH;
/// Largest inflated data set accepted from the deflated transfer syntax (a guard against
/// decompression bombs; real deflated objects are far smaller).
const MAX_INFLATED: usize = 512 << 20;
/// Values at least this long are shared with the input instead of copied.
const SHARE_AT: usize = 16 * 1024;

/// How the data set is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// Explicit VR little endian (and every encapsulated transfer syntax).
    ExplicitLe,
    /// Implicit VR little endian.
    ImplicitLe,
    /// Explicit VR big endian (retired, still seen).
    ExplicitBe,
}

impl Encoding {
    fn explicit(self) -> bool {
        self != Encoding::ImplicitLe
    }
    fn big(self) -> bool {
        self == Encoding::ExplicitBe
    }
}

/// An element's value.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// Bytes of the source buffer.
    Source(Range<usize>),
    /// A new value.
    Owned(Vec<u8>),
    /// A sequence (or a UN of undefined length, read as one). `implicit` is true when its
    /// items are encoded implicit VR little endian whatever the data set's encoding (UN).
    Seq { items: Vec<Vec<Element>>, undefined: bool, implicit: bool },
    /// An undefined-length value that is not a sequence (encapsulated Pixel Data): the bytes
    /// of its items and delimiter, passed through.
    Encapsulated(Range<usize>),
}

/// One element.
#[derive(Debug, Clone)]
pub(crate) struct Element {
    /// (group << 16) | element.
    pub tag: u32,
    /// The VR (from the stream when explicit, from the dictionary when implicit; `UN` when
    /// unknown).
    pub vr: VR,
    /// The value.
    pub value: Value,
    /// The whole element (header and value) in the source, while unchanged.
    pub whole: Option<Range<usize>>,
}

impl Element {
    /// A new element with an owned value.
    pub fn new(tag: u32, vr: VR, value: Vec<u8>) -> Self {
        Element { tag, vr, value: Value::Owned(value), whole: None }
    }

    /// Replaces the value.
    pub fn set(&mut self, value: Vec<u8>) {
        self.value = Value::Owned(value);
        self.whole = None;
    }

    /// The value bytes (empty for sequences and encapsulated values).
    pub fn bytes<'a>(&'a self, source: &'a [u8]) -> &'a [u8] {
        match &self.value {
            Value::Source(r) => &source[r.clone()],
            Value::Owned(v) => v,
            _ => &[],
        }
    }

    /// Mutable access to sequence items; marks the element changed.
    pub fn items_mut(&mut self) -> Option<&mut Vec<Vec<Element>>> {
        match &mut self.value {
            Value::Seq { items, .. } => {
                self.whole = None;
                Some(items)
            }
            _ => None,
        }
    }
}

/// A parsed Part-10 object.
#[derive(Debug)]
pub(crate) struct Part10 {
    /// The buffer element ranges point into: the input, or its inflated data set for the
    /// deflated transfer syntax (then `prefix` holds the preamble and meta group).
    pub source: Bytes,
    /// File meta elements (group 0002).
    pub meta: Vec<Element>,
    /// The data set.
    pub dataset: Vec<Element>,
    /// Data set encoding.
    pub encoding: Encoding,
    /// True for the deflated transfer syntax: the written data set is deflated again.
    pub deflated: bool,
    /// Preamble (128 bytes) range in `preamble_source`.
    preamble: Bytes,
}

fn err(offset: usize, problem: impl Into<String>) -> EditError {
    EditError { offset: Some(offset as u64), problem: problem.into() }
}

fn tag_str(tag: u32) -> String {
    format!("({:04X},{:04X})", tag >> 16, tag & 0xFFFF)
}

/// Trims DICOM padding (spaces and NULs) at both ends.
pub(crate) fn trim(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| *b != b' ' && *b != 0).unwrap_or(v.len());
    let end = v.iter().rposition(|b| *b != b' ' && *b != 0).map_or(start, |e| e + 1);
    &v[start..end.max(start)]
}

impl Part10 {
    /// Parses a Part-10 object. Fails on anything it cannot read whole.
    pub fn parse(input: &Bytes) -> Result<Part10, EditError> {
        if input.len() < 132 || &input[128..132] != b"DICM" {
            return Err(err(0, "no Part-10 preamble (128 bytes and `DICM`)"));
        }
        let mut reader = Reader { buf: input, encoding: Encoding::ExplicitLe, depth: 0 };
        let mut pos = 132;
        let mut meta = Vec::new();
        while pos + 4 <= input.len() && u16::from_le_bytes([input[pos], input[pos + 1]]) == 0x0002 {
            let (el, next) = reader.element(pos, input.len())?;
            meta.push(el);
            pos = next;
        }
        let ts = meta.iter().find(|e| e.tag == TRANSFER_SYNTAX_UID).map(|e| trim(e.bytes(input)).to_vec());
        let (mut encoding, deflated) = match ts.as_deref() {
            Some(ts) if ts == uids::IMPLICIT_VR_LITTLE_ENDIAN.as_bytes() => (Encoding::ImplicitLe, false),
            // Retired by the standard, still sent by old modalities.
            #[allow(deprecated)]
            Some(ts) if ts == uids::EXPLICIT_VR_BIG_ENDIAN.as_bytes() => (Encoding::ExplicitBe, false),
            Some(ts) if ts == uids::DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN.as_bytes() => (Encoding::ExplicitLe, true),
            _ => (Encoding::ExplicitLe, false),
        };
        // Writers that get the transfer syntax wrong (or leave it out) exist; like other
        // readers, trust the first element's shape over the meta group.
        if !deflated && pos + 6 <= input.len() {
            let vr = [input[pos + 4], input[pos + 5]];
            let looks_explicit = VR::from_binary(vr).is_some();
            if encoding == Encoding::ExplicitLe && !looks_explicit {
                encoding = Encoding::ImplicitLe;
            } else if encoding == Encoding::ImplicitLe && looks_explicit {
                encoding = Encoding::ExplicitLe;
            }
        }
        let preamble = input.slice(0..128);
        if deflated {
            let mut inflated = Vec::with_capacity((input.len() - pos) * 3);
            flate2::read::DeflateDecoder::new(&input[pos..])
                .take(MAX_INFLATED as u64 + 1)
                .read_to_end(&mut inflated)
                .map_err(|e| err(pos, format!("the deflated data set does not inflate: {e}")))?;
            if inflated.len() > MAX_INFLATED {
                return Err(err(
                    pos,
                    format!("the deflated data set inflates to more than {} MiB", MAX_INFLATED >> 20),
                ));
            }
            let source = Bytes::from(inflated);
            // Meta values are re-homed into owned buffers because `source` changes.
            let meta = meta
                .into_iter()
                .map(|e| {
                    let v = e.bytes(input).to_vec();
                    Element::new(e.tag, e.vr, v)
                })
                .collect();
            let mut r = Reader { buf: &source, encoding, depth: 0 };
            let dataset = r.dataset(0, source.len())?;
            return Ok(Part10 { source: source.clone(), meta, dataset, encoding, deflated, preamble });
        }
        reader.encoding = encoding;
        let dataset = reader.dataset(pos, input.len())?;
        Ok(Part10 { source: input.clone(), meta, dataset, encoding, deflated, preamble })
    }

    /// Writes the object: preamble, meta group (with a recomputed group length), data set.
    pub fn write(&self) -> Vec<Bytes> {
        let mut meta = Writer::new(&self.source, Encoding::ExplicitLe, 512);
        let meta_body: Vec<&Element> = self.meta.iter().filter(|e| e.tag != FILE_META_GROUP_LENGTH).collect();
        let len: usize = meta_body.iter().map(|e| encoded_len(e, Encoding::ExplicitLe, &self.source)).sum();
        meta.out.extend_from_slice(&self.preamble);
        meta.out.extend_from_slice(b"DICM");
        meta.element(&Element::new(FILE_META_GROUP_LENGTH, VR::UL, (len as u32).to_le_bytes().to_vec()));
        for e in meta_body {
            meta.element(e);
        }
        let mut parts = meta.finish();
        if self.deflated {
            let mut ds = Writer::new(&self.source, self.encoding, self.source.len() + 1024);
            ds.share = false;
            ds.elements(&self.dataset);
            let plain = ds.out;
            let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            z.write_all(&plain).expect("writing to a Vec cannot fail");
            let mut deflated = z.finish().expect("finishing into a Vec cannot fail");
            if deflated.len() % 2 == 1 {
                deflated.push(0);
            }
            parts.push(deflated.into());
        } else {
            let mut ds = Writer::new(&self.source, self.encoding, 8 * 1024);
            ds.elements(&self.dataset);
            parts.extend(ds.finish());
        }
        parts
    }
}

/// Finds an element in a sorted element list.
pub(crate) fn find(elements: &[Element], tag: u32) -> Option<&Element> {
    elements.binary_search_by_key(&tag, |e| e.tag).ok().map(|i| &elements[i])
}

/// Inserts or replaces an element, keeping the list sorted.
pub(crate) fn put(elements: &mut Vec<Element>, element: Element) {
    match elements.binary_search_by_key(&element.tag, |e| e.tag) {
        Ok(i) => elements[i] = element,
        Err(i) => elements.insert(i, element),
    }
}

/// Sorts a level that was out of order (writers that do this exist); duplicates are an error.
fn finish_level(mut elements: Vec<Element>, sorted: bool, pos: usize) -> Result<Vec<Element>, EditError> {
    if !sorted {
        elements.sort_by_key(|e| e.tag);
        if let Some(w) = elements.windows(2).find(|w| w[0].tag == w[1].tag) {
            return Err(err(pos, format!("element {} appears twice in one data set", tag_str(w[0].tag))));
        }
    }
    Ok(elements)
}

struct Reader<'a> {
    buf: &'a Bytes,
    encoding: Encoding,
    depth: usize,
}

fn long_length_vr(vr: [u8; 2]) -> bool {
    matches!(&vr, b"OB" | b"OD" | b"OF" | b"OL" | b"OV" | b"OW" | b"SQ" | b"UC" | b"UN" | b"UR" | b"UT" | b"SV" | b"UV")
}

fn dictionary_vr(tag: u32) -> VR {
    if tag & 0xFFFF == 0 {
        return VR::UL;
    }
    if (tag >> 16) % 2 == 1 {
        // Private creators are LO; private data elements are unknown without the vendor's
        // dictionary.
        return if (0x10..=0xFF).contains(&(tag & 0xFFFF)) { VR::LO } else { VR::UN };
    }
    match StandardDataDictionary.by_tag(Tag((tag >> 16) as u16, tag as u16)).map(|e| e.vr()) {
        Some(VirtualVr::Exact(vr)) => vr,
        Some(VirtualVr::Xs) => VR::US,
        Some(VirtualVr::Ox) | Some(VirtualVr::Px) => VR::OW,
        Some(VirtualVr::Lt) => VR::OW,
        _ => VR::UN,
    }
}

impl Reader<'_> {
    fn u16_at(&self, pos: usize) -> u16 {
        let b = [self.buf[pos], self.buf[pos + 1]];
        if self.encoding.big() {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }

    fn u32_at(&self, pos: usize) -> u32 {
        let b = [self.buf[pos], self.buf[pos + 1], self.buf[pos + 2], self.buf[pos + 3]];
        if self.encoding.big() {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }

    fn tag_at(&self, pos: usize) -> u32 {
        ((self.u16_at(pos) as u32) << 16) | self.u16_at(pos + 2) as u32
    }

    /// Elements from `pos` to `end`, or to an item delimiter when `end` is unknown (then the
    /// position after the delimiter is returned through `dataset_until`).
    fn dataset(&mut self, pos: usize, end: usize) -> Result<Vec<Element>, EditError> {
        let (elements, _) = self.dataset_until(pos, end, false)?;
        Ok(elements)
    }

    fn dataset_until(
        &mut self,
        mut pos: usize,
        end: usize,
        delimited: bool,
    ) -> Result<(Vec<Element>, usize), EditError> {
        let mut elements: Vec<Element> = Vec::with_capacity(if self.depth == 0 { 256 } else { 16 });
        let mut sorted = true;
        while pos < end {
            if pos + 8 > end {
                // Trailing padding shorter than an element header is tolerated at the top.
                if self.depth == 0 && self.buf[pos..end].iter().all(|b| *b == 0) {
                    break;
                }
                return Err(err(pos, "truncated element header"));
            }
            let tag = self.tag_at(pos);
            if tag == ITEM_END {
                if !delimited {
                    return Err(err(pos, "item delimiter outside an undefined-length item"));
                }
                return Ok((finish_level(elements, sorted, pos)?, pos + 8));
            }
            if tag == ITEM || tag == SEQ_END {
                return Err(err(pos, format!("unexpected {} in a data set", tag_str(tag))));
            }
            if elements.last().is_some_and(|l| tag <= l.tag) {
                sorted = false;
            }
            let (el, next) = self.element(pos, end)?;
            elements.push(el);
            pos = next;
        }
        if delimited {
            return Err(err(pos, "undefined-length item without an item delimiter"));
        }
        Ok((finish_level(elements, sorted, pos)?, pos))
    }

    fn element(&mut self, start: usize, end: usize) -> Result<(Element, usize), EditError> {
        let tag = self.tag_at(start);
        let (vr, len, header) = if self.encoding.explicit() {
            if start + 8 > end {
                return Err(err(start, "truncated element header"));
            }
            let code = [self.buf[start + 4], self.buf[start + 5]];
            if long_length_vr(code) {
                if start + 12 > end {
                    return Err(err(start, "truncated element header"));
                }
                (code, self.u32_at(start + 8), 12)
            } else {
                (code, self.u16_at(start + 6) as u32, 8)
            }
        } else {
            let vr = dictionary_vr(tag);
            let code = vr.to_bytes();
            (code, self.u32_at(start + 4), 8)
        };
        let mut vr =
            VR::from_binary(vr).ok_or_else(|| err(start, format!("element {} has an invalid VR", tag_str(tag))))?;
        if vr == VR::UN && len != UNDEFINED && (tag >> 16) & 1 == 0 {
            // A standard attribute written as UN (by a converter that lost the VR): act on it by
            // its dictionary VR; if it is rewritten, it is written with that VR.
            let known = dictionary_vr(tag);
            if known != VR::UN && known != VR::SQ {
                vr = known;
            }
        }
        let vstart = start + header;
        if len == UNDEFINED {
            if vr == VR::SQ || vr == VR::UN || (!self.encoding.explicit() && tag != PIXEL_DATA) {
                let implicit = vr == VR::UN || !self.encoding.explicit();
                let (items, next) = self.items(vstart, end, None, implicit)?;
                let vr = if vr == VR::UN && tag & 0xFFFF != 0 { VR::SQ } else { vr };
                let value = Value::Seq { items, undefined: true, implicit: implicit && self.encoding.explicit() };
                return Ok((Element { tag, vr, value, whole: Some(start..next) }, next));
            }
            // Encapsulated pixel data: items up to the sequence delimiter, kept as bytes.
            let next = self.skip_fragments(vstart, end)?;
            return Ok((Element { tag, vr, value: Value::Encapsulated(vstart..next), whole: Some(start..next) }, next));
        }
        let vend = vstart.checked_add(len as usize).filter(|e| *e <= end).ok_or_else(|| {
            err(
                start,
                format!("element {} claims {len} bytes but only {} remain", tag_str(tag), end.saturating_sub(vstart)),
            )
        })?;
        if vr == VR::SQ {
            let (items, _) = self.items(vstart, vend, Some(vend), !self.encoding.explicit())?;
            let value = Value::Seq { items, undefined: false, implicit: false };
            return Ok((Element { tag, vr, value, whole: Some(start..vend) }, vend));
        }
        Ok((Element { tag, vr, value: Value::Source(vstart..vend), whole: Some(start..vend) }, vend))
    }

    fn items(
        &mut self,
        mut pos: usize,
        end: usize,
        defined_end: Option<usize>,
        implicit: bool,
    ) -> Result<(Vec<Vec<Element>>, usize), EditError> {
        if self.depth >= MAX_DEPTH {
            return Err(err(pos, format!("sequences nested deeper than {MAX_DEPTH} levels")));
        }
        self.depth += 1;
        let saved = self.encoding;
        if implicit && saved != Encoding::ImplicitLe {
            self.encoding = Encoding::ImplicitLe;
        }
        let result = (|| {
            let mut items = Vec::new();
            loop {
                if defined_end == Some(pos) {
                    return Ok((items, pos));
                }
                if pos + 8 > end {
                    return Err(err(pos, "sequence ends before its delimiter"));
                }
                let tag = self.tag_at(pos);
                let len = self.u32_at(pos + 4);
                if tag == SEQ_END {
                    if defined_end.is_some() {
                        return Err(err(pos, "sequence delimiter in a defined-length sequence"));
                    }
                    return Ok((items, pos + 8));
                }
                if tag != ITEM {
                    return Err(err(pos, format!("expected an item in a sequence, found {}", tag_str(tag))));
                }
                let body = pos + 8;
                if len == UNDEFINED {
                    let (elements, next) = self.dataset_until(body, end, true)?;
                    items.push(elements);
                    pos = next;
                } else {
                    let item_end = body
                        .checked_add(len as usize)
                        .filter(|e| *e <= end)
                        .ok_or_else(|| err(pos, format!("item claims {len} bytes but fewer remain")))?;
                    let (elements, _) = self.dataset_until(body, item_end, false)?;
                    items.push(elements);
                    pos = item_end;
                }
            }
        })();
        self.encoding = saved;
        self.depth -= 1;
        result
    }

    fn skip_fragments(&self, mut pos: usize, end: usize) -> Result<usize, EditError> {
        loop {
            if pos + 8 > end {
                return Err(err(pos, "encapsulated pixel data ends before its delimiter"));
            }
            let tag = self.tag_at(pos);
            let len = self.u32_at(pos + 4) as usize;
            match tag {
                SEQ_END => return Ok(pos + 8),
                ITEM => {
                    pos = (pos + 8)
                        .checked_add(len)
                        .filter(|e| *e <= end)
                        .ok_or_else(|| err(pos, "a pixel data fragment runs past the end of the file"))?;
                }
                _ => return Err(err(pos, format!("expected a pixel data fragment, found {}", tag_str(tag)))),
            }
        }
    }
}

/// The encoded length of an element (header and value).
fn encoded_len(e: &Element, enc: Encoding, source: &[u8]) -> usize {
    if let Some(w) = &e.whole {
        return w.len();
    }
    let header = if enc.explicit() && long_length_vr(e.vr.to_bytes()) { 12 } else { 8 };
    header + value_len(e, enc, source)
}

fn value_len(e: &Element, enc: Encoding, source: &[u8]) -> usize {
    match &e.value {
        Value::Source(r) => r.len(),
        Value::Owned(v) => v.len(),
        Value::Encapsulated(r) => r.len(),
        Value::Seq { items, undefined, implicit } => {
            let inner = if *implicit { Encoding::ImplicitLe } else { enc };
            let body: usize = items.iter().map(|i| 8 + item_len(i, inner, source) + 8 * (*undefined as usize)).sum();
            body + 8 * (*undefined as usize)
        }
    }
}

fn item_len(item: &[Element], enc: Encoding, source: &[u8]) -> usize {
    item.iter().map(|e| encoded_len(e, enc, source)).sum()
}

struct Writer<'a> {
    source: &'a Bytes,
    encoding: Encoding,
    out: Vec<u8>,
    parts: Vec<Bytes>,
    share: bool,
}

impl<'a> Writer<'a> {
    fn new(source: &'a Bytes, encoding: Encoding, capacity: usize) -> Self {
        Writer { source, encoding, out: Vec::with_capacity(capacity), parts: Vec::new(), share: true }
    }

    fn finish(mut self) -> Vec<Bytes> {
        if !self.out.is_empty() {
            self.parts.push(std::mem::take(&mut self.out).into());
        }
        self.parts
    }

    fn raw(&mut self, range: Range<usize>) {
        if self.share && range.len() >= SHARE_AT {
            if !self.out.is_empty() {
                let out = std::mem::replace(&mut self.out, Vec::with_capacity(1024));
                self.parts.push(out.into());
            }
            self.parts.push(self.source.slice(range));
        } else {
            self.out.extend_from_slice(&self.source[range]);
        }
    }

    fn u16(&mut self, v: u16) {
        if self.encoding.big() {
            self.out.extend_from_slice(&v.to_be_bytes())
        } else {
            self.out.extend_from_slice(&v.to_le_bytes())
        }
    }

    fn u32(&mut self, v: u32) {
        if self.encoding.big() {
            self.out.extend_from_slice(&v.to_be_bytes())
        } else {
            self.out.extend_from_slice(&v.to_le_bytes())
        }
    }

    fn tag(&mut self, tag: u32) {
        self.u16((tag >> 16) as u16);
        self.u16(tag as u16);
    }

    fn elements(&mut self, elements: &[Element]) {
        for e in elements {
            self.element(e);
        }
    }

    fn header(&mut self, tag: u32, vr: VR, len: u32) {
        self.tag(tag);
        if self.encoding.explicit() {
            let code = vr.to_bytes();
            self.out.extend_from_slice(&code);
            if long_length_vr(code) {
                self.out.extend_from_slice(&[0, 0]);
                self.u32(len);
            } else {
                self.u16(len as u16);
            }
        } else {
            self.u32(len);
        }
    }

    fn element(&mut self, e: &Element) {
        if let Some(w) = &e.whole {
            self.raw(w.clone());
            return;
        }
        match &e.value {
            Value::Source(r) => {
                self.header(e.tag, e.vr, r.len() as u32);
                self.raw(r.clone());
            }
            Value::Owned(v) => {
                self.header(e.tag, e.vr, v.len() as u32);
                self.out.extend_from_slice(v);
            }
            Value::Encapsulated(r) => {
                self.header(e.tag, e.vr, UNDEFINED);
                self.raw(r.clone());
            }
            Value::Seq { items, undefined, implicit } => {
                let len = if *undefined { UNDEFINED } else { value_len(e, self.encoding, self.source) as u32 };
                let vr = if *implicit { VR::UN } else { e.vr };
                self.header(e.tag, vr, len);
                let saved = self.encoding;
                if *implicit {
                    self.encoding = Encoding::ImplicitLe;
                }
                for item in items {
                    self.tag(ITEM);
                    if *undefined {
                        self.u32(UNDEFINED);
                        self.elements(item);
                        self.tag(ITEM_END);
                        self.u32(0);
                    } else {
                        self.u32(item_len(item, self.encoding, self.source) as u32);
                        self.elements(item);
                    }
                }
                if *undefined {
                    self.tag(SEQ_END);
                    self.u32(0);
                }
                self.encoding = saved;
            }
        }
    }
}
