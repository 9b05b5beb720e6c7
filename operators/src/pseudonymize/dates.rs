//! Date shifting for Retain Longitudinal Temporal Information with Modified Dates: every date
//! of a patient moves by the same whole number of days, so intervals survive.

use crate::dicom::calendar::{civil_from_days, days_from_civil};

fn digits(s: &[u8]) -> Option<i64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Shifts a `YYYYMMDD` date by `days`; `None` when it is not a valid full date.
fn shift_date(date: &[u8], days: i64) -> Option<[u8; 8]> {
    if date.len() != 8 {
        return None;
    }
    let (y, m, d) = (digits(&date[0..4])?, digits(&date[4..6])?, digits(&date[6..8])?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let (y, m, d) = civil_from_days(days_from_civil(y, m as u32, d as u32) + days);
    if !(0..=9999).contains(&y) {
        return None;
    }
    let s = crate::dicom::datetime::da(y, m, d);
    let mut out = [0u8; 8];
    out.copy_from_slice(s.as_bytes());
    Some(out)
}

/// Shifts a DA value (backslash-separated, padded). A value that is not a full date becomes
/// empty rather than leaking through unshifted.
pub fn shift_da(value: &[u8], days: i64) -> Vec<u8> {
    shift_values(value, |v| shift_date(v, days).map(|d| d.to_vec()))
}

/// Shifts the date part of a DT value; a DT without a full date becomes empty.
pub fn shift_dt(value: &[u8], days: i64) -> Vec<u8> {
    shift_values(value, |v| {
        if v.len() < 8 {
            return None;
        }
        let mut out = shift_date(&v[..8], days)?.to_vec();
        out.extend_from_slice(&v[8..]);
        Some(out)
    })
}

fn shift_values(value: &[u8], f: impl Fn(&[u8]) -> Option<Vec<u8>>) -> Vec<u8> {
    let value = crate::dicom::editor::trim(value);
    let mut out = Vec::with_capacity(value.len() + 1);
    for (i, v) in value.split(|b| *b == b'\\').enumerate() {
        if i > 0 {
            out.push(b'\\');
        }
        match f(crate::dicom::editor::trim(v)) {
            Some(shifted) => out.extend_from_slice(&shifted),
            None => return Vec::new(),
        }
    }
    if out.len() % 2 == 1 {
        out.push(b' ');
    }
    out
}

#[cfg(test)]
mod tests;
