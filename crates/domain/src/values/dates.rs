//! Dates and date-times: `YYYY-MM-DD` or US `M/D/YYYY`, and ISO 8601 or US
//! date-times (UTC unless an offset is given).

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};

/// Parses a date as `YYYY-MM-DD` or `M/D/YYYY` (a four-digit year either way).
pub fn parse_date(raw: &str) -> Result<NaiveDate, String> {
    let s = raw.trim();
    let parts = if s.contains('-') {
        split3(s, '-')
    } else {
        split3(s, '/').map(|(m, d, y)| (y, m, d))
    };
    parts
        .filter(|(y, _, _)| y.len() == 4)
        .and_then(|(y, m, d)| {
            let number = |t: &str, max_len: usize| {
                (!t.is_empty() && t.len() <= max_len && t.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| t.parse::<u32>().ok())
                    .flatten()
            };
            NaiveDate::from_ymd_opt(number(y, 4)? as i32, number(m, 2)?, number(d, 2)?)
        })
        .ok_or_else(|| "is not a date (expected YYYY-MM-DD or M/D/YYYY)".to_string())
}

fn split3(s: &str, sep: char) -> Option<(&str, &str, &str)> {
    let mut it = s.splitn(3, sep);
    Some((it.next()?, it.next()?, it.next()?))
}

/// Date-and-time forms with an offset that RFC 3339 does not cover: minutes
/// without seconds, offsets without a colon (`+0500`) or without minutes
/// (`+05`), a space instead of the `T`.
const OFFSET_FORMATS: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M%#z",
    "%Y-%m-%d %H:%M%#z",
];

/// Date-and-time forms without an offset, taken as UTC. `%.f` makes the
/// fraction of a second optional; a space before AM/PM is optional too.
const LOCAL_FORMATS: &[&str] = &[
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
];

/// Parses a date with a time of day into microseconds since
/// 1970-01-01T00:00:00 UTC.
///
/// Accepted forms:
/// - ISO 8601 / RFC 3339: `2026-03-01T10:00:00Z`,
///   `2026-03-01T10:00:00-05:00`, `2026-03-01T10:00:00`, `2026-03-01 10:00`,
///   with optional fractions of a second and a space or `T` between date and
///   time; offsets may also be written `-0500` or `-05`;
/// - US: `3/1/2026 10:00 AM`, `03/01/2026 10:00:00 pm` (AM/PM in any case,
///   the space before it optional) and 24-hour `3/1/2026 14:30` or
///   `3/1/2026 14:30:00`;
/// - a date alone, `2026-03-01` or `3/1/2026`, meaning midnight.
///
/// The year always has four digits. A value without an offset (`Z`,
/// `+02:00`, …) is taken as UTC, not as the funeral home's local time.
pub fn parse_datetime(raw: &str) -> Result<i64, String> {
    let s = raw.trim();
    let not_datetime = || {
        "is not a date and time (expected e.g. 2026-03-01T10:00:00Z, \
         2026-03-01 10:00 or 3/1/2026 10:00 AM)"
            .to_string()
    };
    // The date part decides the shape (and the four-digit year) up front, so
    // chrono's lenient field widths cannot let `26-3-1` or `3/1/26` through.
    let (date_part, time_part) = match s.split_once(['T', 't', ' ']) {
        Some((date, time)) => (date, Some(time)),
        None => (s, None),
    };
    let date = parse_date(date_part).map_err(|_| not_datetime())?;
    if time_part.is_none() {
        return Ok(date.and_time(NaiveTime::MIN).and_utc().timestamp_micros());
    }
    let micros = if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        dt.timestamp_micros()
    } else if let Some(dt) = OFFSET_FORMATS
        .iter()
        .find_map(|f| DateTime::parse_from_str(s, f).ok())
    {
        dt.timestamp_micros()
    } else {
        LOCAL_FORMATS
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
            .map(|dt| dt.and_utc().timestamp_micros())
            .ok_or_else(not_datetime)?
    };
    within_four_digit_years(micros)
}

/// An instant whose UTC year has four digits, as the service writes
/// date-times back (RFC 3339) and reads them: an offset must not carry
/// `0000-01-01T00:00-01:00` into year -1 or `9999-12-31T23:30-01:00` into
/// year 10000, which no file could then hold.
fn within_four_digit_years(micros: i64) -> Result<i64, String> {
    let bound = |y, m, d, h, mi, sec, micro| {
        NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|date| date.and_hms_micro_opt(h, mi, sec, micro))
            .map_or(0, |dt| dt.and_utc().timestamp_micros())
    };
    let first = bound(0, 1, 1, 0, 0, 0, 0);
    let last = bound(9999, 12, 31, 23, 59, 59, 999_999);
    if (first..=last).contains(&micros) {
        Ok(micros)
    } else {
        Err("is outside the years 0000 to 9999 once converted to UTC".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Microseconds of a UTC date and time, for expectations.
    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, micro: u32) -> i64 {
        chrono::NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|date| date.and_hms_micro_opt(h, mi, s, micro))
            .map(|dt| dt.and_utc().timestamp_micros())
            .unwrap_or(i64::MIN)
    }

    #[test]
    fn dates_in_iso_and_us_forms() {
        let d = NaiveDate::from_ymd_opt(1950, 3, 7);
        assert_eq!(parse_date("1950-03-07").ok(), d);
        assert_eq!(parse_date("3/7/1950").ok(), d);
        assert_eq!(parse_date(" 03/07/1950 ").ok(), d);
        assert!(parse_date("1950-02-30").is_err());
        assert!(parse_date("yesterday").is_err());
        assert!(parse_date("3/7/50").is_err());
        assert!(parse_date("1950-3-7x").is_err());
        assert!(parse_date("+950-03-07").is_err());
        assert!(parse_date("13/1/1950").is_err());
    }

    /// A UTC time: year, month, day, hour, minute, second, microsecond.
    type Utc = (i32, u32, u32, u32, u32, u32, u32);

    /// Each text with the UTC time it means.
    fn assert_datetimes(cases: &[(&str, Utc)]) {
        for &(text, (y, mo, d, h, mi, s, micro)) in cases {
            assert_eq!(
                parse_datetime(text),
                Ok(utc(y, mo, d, h, mi, s, micro)),
                "{text}"
            );
        }
    }

    #[test]
    #[rustfmt::skip]
    fn datetimes_in_iso_form_with_and_without_offsets() {
        let ten = (2026, 3, 1, 10, 0, 0, 0);
        assert_datetimes(&[
            ("2026-03-01T10:00:00Z", ten), (" 2026-03-01T10:00:00z ", ten), ("2026-03-01T10:00:00", ten),
            ("2026-03-01 10:00:00", ten), ("2026-03-01 10:00", ten), ("2026-03-01T10:00", ten),
            ("2026-03-01T10:00:00+00:00", ten), ("2026-03-01 10:00:00Z", ten),
            ("2026-03-01T05:00:00-05:00", ten), ("2026-03-01T05:00-05:00", ten),
            ("2026-03-01T05:00:00-0500", ten), ("2026-03-01 05:00-05", ten),
            ("2026-03-01T11:30:00+01:30", ten),
            ("2026-03-01T10:00:00.25Z", (2026, 3, 1, 10, 0, 0, 250_000)),
            ("2026-03-01T10:00:00.123456", (2026, 3, 1, 10, 0, 0, 123_456)),
            ("2026-03-01T00:30:00+01:00", (2026, 2, 28, 23, 30, 0, 0)),
            ("1950-03-07T00:00:00Z", (1950, 3, 7, 0, 0, 0, 0)),
        ]);
        assert!(parse_datetime("1950-03-07T00:00:00Z").is_ok_and(|t| t < 0));
    }

    #[test]
    #[rustfmt::skip]
    fn datetimes_in_us_form() {
        let (ten, afternoon) = ((2026, 3, 1, 10, 0, 0, 0), (2026, 3, 1, 14, 5, 0, 0));
        assert_datetimes(&[
            ("3/1/2026 10:00 AM", ten), ("03/01/2026 10:00 am", ten), ("3/1/2026 10:00AM", ten),
            ("3/1/2026 10:00:00 Am", ten), ("3/1/2026 10:00", ten), ("3/1/2026 10:00:00", ten),
            ("3/1/2026 2:05 PM", afternoon), ("3/1/2026 02:05 pm", afternoon),
            ("3/1/2026 14:05", afternoon), ("3/1/2026 12:00 AM", (2026, 3, 1, 0, 0, 0, 0)),
            ("3/1/2026 12:30 PM", (2026, 3, 1, 12, 30, 0, 0)),
            ("12/31/2025 11:59:59 PM", (2025, 12, 31, 23, 59, 59, 0)),
        ]);
    }

    #[test]
    fn a_date_alone_means_midnight_utc() {
        let midnight = Ok(utc(2026, 3, 1, 0, 0, 0, 0));
        assert_eq!(parse_datetime("2026-03-01"), midnight);
        assert_eq!(parse_datetime("3/1/2026"), midnight);
        assert_eq!(parse_datetime(" 03/01/2026 "), midnight);
        assert_eq!(parse_datetime("1970-01-01"), Ok(0));
    }

    #[test]
    fn datetimes_that_are_rejected() {
        for bad in [
            "tomorrow",
            "10:00",
            "26-03-01 10:00",
            "3/1/26 10:00 AM",
            "02026-03-01T10:00:00Z",
            "2026-02-30T10:00:00Z",
            "2026-03-01T25:00:00Z",
            "2026-03-01T10:00:00+25:00",
            "3/1/2026 13:00 PM",
            "3/1/2026 0:30 AM",
            "3/1/2026 10:00 XM",
            "2026-03-01T10:00:00Z extra",
            "2026-03-01T",
            "2026-03-01 10",
            "13/1/2026 10:00",
            "3/1/2026T10:00",
        ] {
            assert_eq!(
                parse_datetime(bad),
                Err(
                    "is not a date and time (expected e.g. 2026-03-01T10:00:00Z, \
                     2026-03-01 10:00 or 3/1/2026 10:00 AM)"
                        .to_string()
                ),
                "{bad}"
            );
        }
    }

    /// Found with the `values` fuzz target's read-back check: an offset moved
    /// the instant out of the four-digit years, and the value written back
    /// could not be read again.
    #[test]
    fn an_offset_cannot_carry_a_datetime_out_of_four_digit_years() {
        let outside = Err("is outside the years 0000 to 9999 once converted to UTC".to_string());
        assert_eq!(parse_datetime("0000-01-01T00:00:00+01:00"), outside);
        assert_eq!(parse_datetime("9999-12-31 23:30-01:00"), outside);
        assert_eq!(
            parse_datetime("0000-01-01T00:00:00Z"),
            Ok(utc(0, 1, 1, 0, 0, 0, 0))
        );
        assert_eq!(
            parse_datetime("9999-12-31T23:59:59.999999Z"),
            Ok(utc(9999, 12, 31, 23, 59, 59, 999_999))
        );
    }
}
