//! Files made as an attacker would (issue 16), for the hostile-input run on the real stack
//! (`tests/tests/hostile_input.rs`) and the commands' refusals (`tests/tests/hostile_cli.rs`).
//!
//! Each carries a synthetic patient (the [`CANARY_NAME`] and [`CANARY_ID`]) where it has a data
//! set, so that the tests can require that nothing of it reaches a log line, a metric or a dead
//! letter. Before issue 16, the first two aborted `route --dry-run`, `preprocess` and a worker
//! with a stack overflow, the declared-gigabyte ones cost over a gigabyte, the JPEG one 1.5 GB
//! and an abort, and the bare preamble was written out by `deid` as an instance.

use std::io::Write;

use radstream_schemas::ErrorClass;

/// The synthetic patient name every hostile file with a data set carries.
pub const CANARY_NAME: &str = "CANARY^HOSTILE";
/// The synthetic patient ID every hostile file with a data set carries.
pub const CANARY_ID: &str = "MRN-CANARY-7731";

/// One hostile file and the refusal it must get.
#[derive(Debug, Clone)]
pub struct Hostile {
    /// A short name (also the last part of its object key).
    pub name: &'static str,
    /// The file.
    pub bytes: Vec<u8>,
    /// The SOP Instance UID its event names.
    pub sop: String,
    /// The dead letter's class.
    pub class: ErrorClass,
    /// Words the dead letter's reason and the commands' refusals must hold.
    pub reason: &'static str,
}

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Explicit,
    Deflated,
    BigEndian,
}

impl Encoding {
    fn uid(self) -> &'static str {
        match self {
            Encoding::Explicit => "1.2.840.10008.1.2.1",
            Encoding::Deflated => "1.2.840.10008.1.2.1.99",
            Encoding::BigEndian => "1.2.840.10008.1.2.2",
        }
    }
}

fn uid_bytes(u: &str) -> Vec<u8> {
    let mut b = u.as_bytes().to_vec();
    if b.len() % 2 == 1 {
        b.push(0);
    }
    b
}

fn text_bytes(t: &str) -> Vec<u8> {
    let mut b = t.as_bytes().to_vec();
    if b.len() % 2 == 1 {
        b.push(b' ');
    }
    b
}

/// A short explicit-VR element in `encoding`'s byte order.
fn el(big: bool, g: u16, e: u16, vr: &[u8; 2], v: &[u8]) -> Vec<u8> {
    let n = |x: u16| if big { x.to_be_bytes() } else { x.to_le_bytes() };
    [&n(g)[..], &n(e), vr, &n(v.len() as u16), v].concat()
}

/// Preamble, meta group and a data set of `encoding`: SOP Class (CT) and Instance UIDs (unless
/// `without_sop_uids`), Modality CT, the canary patient, study and series UIDs, then `rest`
/// (written in the data set's byte order by the caller) at the end.
fn part10(encoding: Encoding, ids: &Ids, without_sop_uids: bool, rest: &[u8]) -> Vec<u8> {
    let meta_el = |g, e, vr, v: &[u8]| el(false, g, e, vr, v);
    let mut meta = [&[0x02u8, 0, 0x01, 0, b'O', b'B', 0, 0, 2, 0, 0, 0, 0, 1][..]].concat();
    meta.extend(meta_el(2, 2, b"UI", &uid_bytes("1.2.840.10008.5.1.4.1.1.2")));
    meta.extend(meta_el(2, 3, b"UI", &uid_bytes(&ids.sop)));
    meta.extend(meta_el(2, 0x10, b"UI", &uid_bytes(encoding.uid())));
    meta.extend(meta_el(2, 0x12, b"UI", &uid_bytes("2.25.2")));
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    out.extend_from_slice(&[0x02, 0, 0, 0, b'U', b'L', 4, 0]);
    out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    out.extend(meta);
    let big = encoding == Encoding::BigEndian;
    let mut data_set = Vec::new();
    if !without_sop_uids {
        data_set.extend(el(big, 8, 0x16, b"UI", &uid_bytes("1.2.840.10008.5.1.4.1.1.2")));
        data_set.extend(el(big, 8, 0x18, b"UI", &uid_bytes(&ids.sop)));
    }
    data_set.extend(el(big, 8, 0x60, b"CS", &text_bytes("CT")));
    data_set.extend(el(big, 0x10, 0x10, b"PN", &text_bytes(CANARY_NAME)));
    data_set.extend(el(big, 0x10, 0x20, b"LO", &text_bytes(CANARY_ID)));
    data_set.extend(el(big, 0x20, 0x0D, b"UI", &uid_bytes(&ids.study)));
    data_set.extend(el(big, 0x20, 0x0E, b"UI", &uid_bytes(&ids.series)));
    data_set.extend_from_slice(rest);
    if encoding == Encoding::Deflated {
        let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&data_set).unwrap();
        data_set = z.finish().unwrap();
    }
    out.extend(data_set);
    out
}

/// 100,000 sequences, each in the first item of the one before (little endian).
pub fn deep_nesting() -> Vec<u8> {
    let open: &[u8] =
        &[0x08, 0, 0x15, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF];
    let close: &[u8] = &[0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0];
    [open.repeat(100_000), close.repeat(100_000)].concat()
}

/// A private OB attribute declaring 1 GiB (and holding nothing).
fn declared_gigabyte(big: bool) -> Vec<u8> {
    let n16 = |x: u16| if big { x.to_be_bytes() } else { x.to_le_bytes() };
    let n32 = |x: u32| if big { x.to_be_bytes() } else { x.to_le_bytes() };
    [&n16(0x0029)[..], &n16(0x1010), b"OB", &[0, 0], &n32(1 << 30)].concat()
}

/// The UIDs the hostile files carry.
#[derive(Debug, Clone)]
pub struct Ids {
    /// StudyInstanceUID.
    pub study: String,
    /// SeriesInstanceUID.
    pub series: String,
    /// SOPInstanceUID (each file gets this with its own suffix).
    pub sop: String,
}

/// A 16 x 16 CT whose JPEG baseline stream (a real one, Pillow's libjpeg) declares 65500 x 65500
/// in its frame header.
fn jpeg_bomb(ids: &Ids) -> Vec<u8> {
    const BASELINE_U8: &[u8] = include_bytes!("../../operators/src/dicom/decode/testdata/bomb_baseline_u8.jpg");
    let at = BASELINE_U8.windows(2).position(|w| w == [0xFF, 0xC0]).expect("a frame header");
    let mut stream = BASELINE_U8.to_vec();
    stream[at + 5..at + 7].copy_from_slice(&65500u16.to_be_bytes());
    stream[at + 7..at + 9].copy_from_slice(&65500u16.to_be_bytes());
    if stream.len() % 2 == 1 {
        stream.push(0);
    }
    let us = |e: u16, v: u16| el(false, 0x28, e, b"US", &v.to_le_bytes());
    let mut rest = us(0x0002, 1);
    rest.extend(el(false, 0x28, 0x0004, b"CS", &text_bytes("MONOCHROME2")));
    rest.extend(us(0x0010, 16));
    rest.extend(us(0x0011, 16));
    rest.extend(us(0x0100, 8));
    rest.extend(us(0x0101, 8));
    rest.extend(us(0x0102, 7));
    rest.extend(us(0x0103, 0));
    rest.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
    rest.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0]);
    rest.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
    rest.extend_from_slice(&(stream.len() as u32).to_le_bytes());
    rest.extend(stream);
    rest.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
    // JPEG baseline's data set is explicit VR little endian, as written: only the meta group's
    // transfer syntax changes.
    relabel(part10(Encoding::Explicit, ids, false, &rest), "1.2.840.10008.1.2.4.50")
}

/// `file` with its meta group's transfer syntax replaced by `uid` (and the group length fixed).
fn relabel(file: Vec<u8>, uid: &str) -> Vec<u8> {
    let group_len = u32::from_le_bytes([file[140], file[141], file[142], file[143]]) as usize;
    let meta = &file[144..144 + group_len];
    let mut out_meta = Vec::new();
    let mut i = 0;
    while i < meta.len() {
        let (g, e) = (u16::from_le_bytes([meta[i], meta[i + 1]]), u16::from_le_bytes([meta[i + 2], meta[i + 3]]));
        let vr = [meta[i + 4], meta[i + 5]];
        let (header, len) = if &vr == b"OB" {
            (12, u32::from_le_bytes([meta[i + 8], meta[i + 9], meta[i + 10], meta[i + 11]]) as usize)
        } else {
            (8, u16::from_le_bytes([meta[i + 6], meta[i + 7]]) as usize)
        };
        if (g, e) == (2, 0x10) {
            out_meta.extend(el(false, 2, 0x10, b"UI", &uid_bytes(uid)));
        } else {
            out_meta.extend_from_slice(&meta[i..i + header + len]);
        }
        i += header + len;
    }
    let mut out = file[..140].to_vec();
    out.extend_from_slice(&(out_meta.len() as u32).to_le_bytes());
    out.extend(out_meta);
    out.extend_from_slice(&file[144 + group_len..]);
    out
}

/// Every hostile file, with the UIDs of `ids` (each file's SOP Instance UID is `ids.sop` and a
/// suffix of its own).
pub fn files(ids: &Ids) -> Vec<Hostile> {
    let with = |n: u32| Ids { sop: format!("{}.{n}", ids.sop), ..ids.clone() };
    let malformed = ErrorClass::MalformedDicom;
    let mut truncated = part10(Encoding::Explicit, &with(8), false, &[]);
    truncated.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0]);
    truncated.extend_from_slice(&(1u32 << 20).to_le_bytes());
    truncated.extend_from_slice(&[0; 64]);
    let mut bare = vec![0u8; 128];
    bare.extend_from_slice(b"DICM");
    vec![
        Hostile {
            name: "nested.dcm",
            bytes: part10(Encoding::Explicit, &with(1), false, &deep_nesting()),
            sop: with(1).sop,
            class: malformed,
            reason: "sequences are nested deeper than 32 levels",
        },
        Hostile {
            name: "nested-deflated.dcm",
            bytes: part10(Encoding::Deflated, &with(2), false, &deep_nesting()),
            sop: with(2).sop,
            class: malformed,
            reason: "sequences are nested deeper than 32 levels",
        },
        Hostile {
            name: "declared-gigabyte-deflated.dcm",
            bytes: part10(Encoding::Deflated, &with(3), false, &declared_gigabyte(false)),
            sop: with(3).sop,
            class: malformed,
            reason: "longer than 64 MiB",
        },
        Hostile {
            name: "declared-gigabyte-big-endian.dcm",
            bytes: part10(Encoding::BigEndian, &with(4), false, &declared_gigabyte(true)),
            sop: with(4).sop,
            class: malformed,
            reason: "runs past the end",
        },
        Hostile {
            name: "jpeg-65500.dcm",
            bytes: jpeg_bomb(&with(5)),
            sop: with(5).sop,
            class: malformed,
            reason: "declares 65500\u{d7}65500",
        },
        Hostile { name: "bare-preamble.dcm", bytes: bare, sop: with(6).sop, class: malformed, reason: "meta" },
        Hostile {
            name: "no-sop-uids.dcm",
            bytes: part10(Encoding::Explicit, &with(7), true, &[]),
            sop: with(7).sop,
            class: malformed,
            reason: "not a DICOM instance: no SOP Class UID",
        },
        Hostile {
            name: "truncated.dcm",
            bytes: truncated,
            sop: with(8).sop,
            class: malformed,
            reason: "runs past the end",
        },
    ]
}
