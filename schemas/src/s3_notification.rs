//! S3 event notifications (AWS and MinIO): which objects were created, and when.
//!
//! ```json
//! {"Records":[{"eventName":"ObjectCreated:Put","eventTime":"2024-01-01T00:00:00.000Z",
//!   "s3":{"bucket":{"name":"b"},"object":{"key":"a%2Fb+c.dcm","size":123,"eTag":"abc"}}}]}
//! ```
//!
//! MinIO wraps the same `Records` array with top-level `EventName` and `Key` fields and prefixes
//! event names with `s3:`; both shapes are accepted. Keys arrive URL-encoded form-style (`+` is
//! a space), as AWS documents.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;
use serde::Deserialize;

use crate::instance_event::ObjectLocation;
use crate::wire::error::{json_error, DecodeError};

/// One object an S3 event notification reports as created.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedObject {
    /// Where the object is; the key is already URL-decoded.
    pub location: ObjectLocation,
    /// The notification's `eventTime`, in milliseconds since the Unix epoch (UTC).
    pub event_time_ms: i64,
}

/// The event AWS sends once when a notification configuration is created; it has no records.
const AWS_TEST_EVENT: &str = "s3:TestEvent";

#[derive(Deserialize)]
struct Notification {
    #[serde(rename = "Records")]
    records: Option<Vec<Record>>,
    #[serde(rename = "Event")]
    event: Option<String>,
}

// Everything below `Records` is optional so that records we skip (deletes, restores) may have
// any shape; what a created object needs is checked by hand, naming the missing field.
#[derive(Deserialize)]
struct Record {
    #[serde(rename = "eventName")]
    event_name: Option<String>,
    #[serde(rename = "eventTime")]
    event_time: Option<String>,
    s3: Option<S3Entity>,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: Option<Bucket>,
    object: Option<Object>,
}

#[derive(Deserialize)]
struct Bucket {
    name: Option<String>,
}

#[derive(Deserialize)]
struct Object {
    key: Option<String>,
    size: Option<i64>,
    #[serde(rename = "eTag")]
    e_tag: Option<String>,
}

/// The objects an S3 event notification reports as created (`ObjectCreated:*` records), in
/// record order. Other records are skipped; an empty result means there was nothing to do.
pub fn parse(value: &[u8]) -> Result<Vec<CreatedObject>, DecodeError> {
    let notification: Notification =
        serde_json::from_slice(value).map_err(|e| json_error("S3 event notification", &e))?;
    let Some(records) = notification.records else {
        if notification.event.as_deref() == Some(AWS_TEST_EVENT) {
            return Ok(Vec::new());
        }
        return Err(DecodeError::S3Notification(
            "there is no `Records` array: is the topic configured with the right format?".to_owned(),
        ));
    };
    let mut created = Vec::with_capacity(records.len());
    for (index, record) in records.into_iter().enumerate() {
        let Some(event_name) = record.event_name.as_deref() else {
            return Err(missing(index, "eventName"));
        };
        if !is_object_created(event_name) {
            continue;
        }
        created.push(created_object(index, record)?);
    }
    Ok(created)
}

fn is_object_created(event_name: &str) -> bool {
    let name = event_name.strip_prefix("s3:").unwrap_or(event_name);
    name.starts_with("ObjectCreated:")
}

fn created_object(index: usize, record: Record) -> Result<CreatedObject, DecodeError> {
    let event_time = record.event_time.ok_or_else(|| missing(index, "eventTime"))?;
    let event_time_ms = parse_rfc3339_ms(&event_time).ok_or_else(|| {
        record_error(index, "`eventTime` is not an RFC 3339 timestamp (like 2024-01-01T00:00:00.000Z)")
    })?;
    let s3 = record.s3.ok_or_else(|| missing(index, "s3"))?;
    let bucket = s3.bucket.and_then(|b| b.name).ok_or_else(|| missing(index, "s3.bucket.name"))?;
    let object = s3.object.ok_or_else(|| missing(index, "s3.object"))?;
    let raw_key = object.key.ok_or_else(|| missing(index, "s3.object.key"))?;
    let key = decode_key(&raw_key)
        .ok_or_else(|| record_error(index, "`s3.object.key` is not valid UTF-8 once URL-decoded"))?;
    let etag = object.e_tag.map(|tag| tag.trim_matches('"').to_owned()).filter(|tag| !tag.is_empty());
    Ok(CreatedObject { location: ObjectLocation { bucket, key, size: object.size, etag }, event_time_ms })
}

fn missing(index: usize, field: &str) -> DecodeError {
    record_error(index, &format!("`{field}` is missing"))
}

fn record_error(index: usize, problem: &str) -> DecodeError {
    DecodeError::S3Notification(format!(
        "record {index}: {problem}; check the bucket's notification configuration or the \
         producer of this message"
    ))
}

/// Form-style URL decoding: `+` is a space, `%XX` a byte. `None` when the bytes are not UTF-8.
fn decode_key(raw: &str) -> Option<String> {
    // `+` must become a space before percent-decoding, or `%2B` (a literal plus) would too.
    let spaced: Cow<'_, str> = if raw.contains('+') { Cow::Owned(raw.replace('+', " ")) } else { Cow::Borrowed(raw) };
    percent_decode_str(&spaced).decode_utf8().ok().map(Cow::into_owned)
}

/// Milliseconds since the Unix epoch of an RFC 3339 timestamp
/// (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`). Digits of the fraction beyond milliseconds are
/// truncated. `None` when it is not one.
fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let year = number(b, 0, 4)?;
    let month = number(b, 5, 2)?;
    let day = number(b, 8, 2)?;
    let hour = number(b, 11, 2)?;
    let minute = number(b, 14, 2)?;
    let second = number(b, 17, 2)?;
    let separators_ok = b.get(4) == Some(&b'-')
        && b.get(7) == Some(&b'-')
        && matches!(b.get(10), Some(b'T' | b't' | b' '))
        && b.get(13) == Some(&b':')
        && b.get(16) == Some(&b':');
    if !separators_ok
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        // 60 is a leap second; it rolls into the next minute.
        || second > 60
    {
        return None;
    }

    let mut at = 19;
    let mut millis = 0;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == start {
            return None;
        }
        for (position, digit) in b[start..at].iter().take(3).enumerate() {
            millis += i64::from(digit - b'0') * [100, 10, 1][position];
        }
    }

    let offset_minutes = match b.get(at) {
        Some(b'Z' | b'z') => {
            at += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let hours = number(b, at + 1, 2)?;
            let minutes = number(b, at + 4, 2)?;
            if b.get(at + 3) != Some(&b':') || hours > 23 || minutes > 59 {
                return None;
            }
            at += 6;
            let offset = hours * 60 + minutes;
            if sign == b'-' {
                -offset
            } else {
                offset
            }
        }
        _ => return None,
    };
    if at != b.len() {
        return None;
    }

    let seconds =
        days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

/// The decimal number in `b[start..start + len]`, all digits.
fn number(b: &[u8], start: usize, len: usize) -> Option<i64> {
    let digits = b.get(start..start + len)?;
    digits.iter().try_fold(0, |acc, &d| d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0')))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests;
