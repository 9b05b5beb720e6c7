//! DICOM dates and times (DA, TM) written from Unix times and checked on read, on the proleptic
//! Gregorian calendar of [`super::calendar`] (UTC, no time-zone database).

use super::calendar::{civil_from_days, days_from_civil};

/// The UTC calendar fields of a Unix time in milliseconds: `(year, month, day, hour, minute,
/// second)`; the milliseconds are `ms.rem_euclid(1000)`.
pub fn utc_fields(ms: i64) -> (i64, u32, u32, i64, i64, i64) {
    let seconds = ms.div_euclid(1000);
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    (year, month, day, second_of_day / 3600, second_of_day / 60 % 60, second_of_day % 60)
}

/// A DA value, `YYYYMMDD`.
pub fn da(year: i64, month: u32, day: u32) -> String {
    format!("{year:04}{month:02}{day:02}")
}

/// `(YYYYMMDD, HHMMSS)` (DA and TM values) of a Unix time in milliseconds, in UTC.
pub fn utc_date_time(ms: i64) -> (String, String) {
    let (year, month, day, h, m, s) = utc_fields(ms);
    (da(year, month, day), format!("{h:02}{m:02}{s:02}"))
}

/// A DA value: `YYYYMMDD`.
pub fn is_da(value: &str) -> bool {
    value.len() == 8 && value.bytes().all(|b| b.is_ascii_digit())
}

/// A TM value: `HH[MM[SS[.F{1,6}]]]`.
pub fn is_tm(value: &str) -> bool {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    matches!(whole.len(), 2 | 4 | 6)
        && whole.bytes().all(|b| b.is_ascii_digit())
        && (!value.contains('.') || (whole.len() == 6 && (1..=6).contains(&fraction.len())))
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

/// A DA (`YYYYMMDD`) and TM (`HH[MM[SS[.F]]]`) as Unix milliseconds, read as UTC; `None` when
/// either is not a valid value.
pub fn unix_ms_of_date_time(date: &str, time: &str) -> Option<i64> {
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if date.len() != 8 || !digits(date) {
        return None;
    }
    let (y, m, d): (i64, i64, i64) = (date[..4].parse().ok()?, date[4..6].parse().ok()?, date[6..].parse().ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let (whole, fraction) = time.split_once('.').unwrap_or((time, ""));
    if !digits(whole) || whole.len() % 2 == 1 || whole.len() > 6 || !digits(fraction) {
        return None;
    }
    let field = |i: usize| whole.get(i..i + 2).map_or(Some(0), |s| s.parse::<i64>().ok());
    let (hh, mm, ss) = (field(0)?, field(2)?, field(4)?);
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let ms = format!("{:0<3}", &fraction[..fraction.len().min(3)]).parse::<i64>().ok()?;
    let days = days_from_civil(y, m as u32, d as u32);
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + ms)
}

#[cfg(test)]
mod tests;
