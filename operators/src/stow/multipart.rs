//! `multipart/related` bodies (RFC 2046 5.1, RFC 2387) as STOW-RS uses them (PS3.18 8.6.1.2):
//! one body part per instance, each `Content-Type: application/dicom`.
//!
//! The sink encodes; the parser is here too so that tests and the demo's stand-in PACS read
//! bodies with the same understanding of the format.

use std::sync::LazyLock;

use bytes::{BufMut, Bytes, BytesMut};

/// Every boundary radstream generates starts with this.
const BOUNDARY_PREFIX: &str = "radstream-";

/// Finds `--radstream-` (the start of any delimiter line we could generate) in a payload. A
/// compiled literal search runs at memory speed, which matters for multi-hundred-megabyte
/// objects on the async executor.
static DELIMITER_PREFIX: LazyLock<regex::bytes::Regex> = LazyLock::new(|| {
    regex::bytes::Regex::new(&regex::escape(&format!("--{BOUNDARY_PREFIX}"))).expect("a literal is a valid pattern")
});

const PART_HEADERS: &[u8] = b"\r\nContent-Type: application/dicom\r\n\r\n";

/// A `multipart/related` body holding one Part-10 object, ready to POST.
#[derive(Debug, Clone)]
pub struct RelatedBody {
    /// The boundary; it does not occur in the payload.
    pub boundary: String,
    /// The encoded body.
    pub body: Bytes,
}

impl RelatedBody {
    /// Encodes one Part-10 object as a single `application/dicom` part. The body is built in one
    /// allocation of the exact size.
    pub fn single_dicom(object: &[u8]) -> Self {
        let boundary = choose_boundary(object);
        let b = boundary.as_bytes();
        let len = 2 + b.len() + PART_HEADERS.len() + object.len() + 4 + b.len() + 4;
        let mut body = BytesMut::with_capacity(len);
        body.put_slice(b"--");
        body.put_slice(b);
        body.put_slice(PART_HEADERS);
        body.put_slice(object);
        body.put_slice(b"\r\n--");
        body.put_slice(b);
        body.put_slice(b"--\r\n");
        debug_assert_eq!(body.len(), len);
        Self { boundary, body: body.freeze() }
    }

    /// The request's `Content-Type`.
    pub fn content_type(&self) -> String {
        format!("multipart/related; type=\"application/dicom\"; boundary={}", self.boundary)
    }
}

/// A random boundary that provably does not occur in `payload`. Nearly always the payload does
/// not even contain the fixed prefix, and one search settles it; otherwise candidates are
/// checked one by one.
fn choose_boundary(payload: &[u8]) -> String {
    let prefix_present = DELIMITER_PREFIX.is_match(payload);
    loop {
        let candidate = format!("{BOUNDARY_PREFIX}{:032x}", fastrand::u128(..));
        if !prefix_present || find(payload, candidate.as_bytes()).is_none() {
            return candidate;
        }
    }
}

/// Why a multipart body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    /// The Content-Type is not `multipart/related` or has no boundary.
    #[error("Content-Type is not multipart/related with a boundary parameter")]
    NotMultipartRelated,
    /// No delimiter line opens the body.
    #[error("the body does not start with a --boundary delimiter")]
    NoOpeningDelimiter,
    /// A delimiter line is followed by something other than CRLF or `--`.
    #[error("a delimiter line is not followed by CRLF")]
    MalformedDelimiter,
    /// A part has no closing delimiter.
    #[error("the body ends before the closing --boundary-- delimiter")]
    Unterminated,
    /// A part's headers do not end with an empty line.
    #[error("a part's headers do not end with an empty line")]
    UnterminatedHeaders,
}

/// The boundary of a `multipart/related` Content-Type, or `None` for any other type.
pub fn related_boundary(content_type: &str) -> Option<String> {
    let mut fields = split_unquoted(content_type, b';');
    let media_type = fields.next()?.trim();
    if !media_type.eq_ignore_ascii_case("multipart/related") {
        return None;
    }
    fields.find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim();
        let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(quoted) => quoted.replace("\\\"", "\"").replace("\\\\", "\\"),
            None => value.to_string(),
        };
        (!value.is_empty()).then_some(value)
    })
}

/// Splits `s` at `sep` outside double-quoted strings.
fn split_unquoted(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut pos = 0;
    let mut quoted = false;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        while pos < bytes.len() {
            let c = bytes[pos];
            if c == b'\\' && quoted {
                pos += 2;
                continue;
            }
            if c == b'"' {
                quoted = !quoted;
            } else if c == sep && !quoted {
                let field = &s[start..pos];
                pos += 1;
                start = pos;
                return Some(field);
            }
            pos += 1;
        }
        done = true;
        Some(&s[start.min(s.len())..])
    })
}

/// One body part: its raw header block and its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part<'a> {
    /// The header lines, without the empty line that ends them.
    pub headers: &'a [u8],
    /// The content.
    pub body: &'a [u8],
}

impl Part<'_> {
    /// The value of the part's `Content-Type` header, if it has one.
    pub fn content_type(&self) -> Option<&str> {
        self.headers.split(|&c| c == b'\n').find_map(|line| {
            let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
            let (name, value) = line.split_once(':')?;
            name.trim().eq_ignore_ascii_case("content-type").then(|| value.trim())
        })
    }
}

/// Splits a multipart body into its parts (preamble and epilogue are ignored).
pub fn split_parts<'a>(body: &'a [u8], boundary: &str) -> Result<Vec<Part<'a>>, MultipartError> {
    // "\r\n--boundary": the delimiter as it appears after a part (RFC 2046: the CRLF belongs to
    // the delimiter, not to the part).
    let mut delimiter = Vec::with_capacity(boundary.len() + 4);
    delimiter.extend_from_slice(b"\r\n--");
    delimiter.extend_from_slice(boundary.as_bytes());

    let mut pos = if body.starts_with(&delimiter[2..]) {
        delimiter.len() - 2
    } else {
        find(body, &delimiter).ok_or(MultipartError::NoOpeningDelimiter)? + delimiter.len()
    };

    let mut parts = Vec::new();
    loop {
        let rest = &body[pos..];
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        // Transport padding (linear white space) may follow a delimiter before its CRLF.
        let padding = rest.iter().take_while(|&&c| c == b' ' || c == b'\t').count();
        if !rest[padding..].starts_with(b"\r\n") {
            return Err(if rest[padding..].is_empty() {
                MultipartError::Unterminated
            } else {
                MultipartError::MalformedDelimiter
            });
        }
        let start = pos + padding + 2;
        let end = find(&body[start..], &delimiter).ok_or(MultipartError::Unterminated)? + start;
        parts.push(split_headers(&body[start..end])?);
        pos = end + delimiter.len();
    }
}

fn split_headers(part: &[u8]) -> Result<Part<'_>, MultipartError> {
    if let Some(body) = part.strip_prefix(b"\r\n") {
        return Ok(Part { headers: &[], body });
    }
    let end = find(part, b"\r\n\r\n").ok_or(MultipartError::UnterminatedHeaders)?;
    Ok(Part { headers: &part[..end], body: &part[end + 4..] })
}

/// Position of the first `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, tail) = needle.split_first()?;
    let mut from = 0;
    while let Some(offset) = haystack.get(from..)?.iter().position(|&c| c == first) {
        let at = from + offset;
        let candidate = haystack.get(at + 1..at + needle.len())?;
        if candidate == tail {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests;
