//! Parsing and normalising the values of client records that need more than
//! trimming: dates with times, amounts of money, yes/no flags, phone numbers,
//! US states, Social Security numbers, ZIP codes and short codes. Each parser
//! takes the text of one cell and returns the normalised value, or a reason
//! fit to show a person that reads after the offending value ("… is not a
//! ZIP code (5 or 9 digits)").

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDateTime, NaiveTime};

use crate::values::parse_date;

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
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Ok(dt.timestamp_micros());
    }
    if let Some(dt) = OFFSET_FORMATS
        .iter()
        .find_map(|f| DateTime::parse_from_str(s, f).ok())
    {
        return Ok(dt.timestamp_micros());
    }
    LOCAL_FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .map(|dt| dt.and_utc().timestamp_micros())
        .ok_or_else(not_datetime)
}

/// Parses an amount of money into an exact number of cents.
///
/// Accepts digits with up to two decimal places (`1234.56`, `1234`, `1234.5`,
/// `.5`), an optional `$` and thousands separators in their proper places
/// (`$1,234.56`, but not `1,23.00`). A negative amount is written with a
/// minus before or after the `$` (`-12.00`, `-$12.00`, `$-12.00`) or in
/// parentheses (`(12.00)`, `($1,234.56)`, `( 12.00 )`). A third decimal
/// place is an error rather than being rounded, and so is an amount too large
/// to store.
pub fn parse_money(raw: &str) -> Result<i64, String> {
    let not_money = || {
        "is not an amount of money (expected e.g. 1234.56, $1,234.56, -12.00 or (12.00))"
            .to_string()
    };
    let s = raw.trim();
    let (parenthesised, s) = match s.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        Some(inner) => (true, inner.trim()),
        None => (false, s),
    };
    let (minus, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest.strip_prefix('$').unwrap_or(rest)),
        None => match s.strip_prefix('$') {
            Some(rest) => match rest.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, rest),
            },
            None => (false, s),
        },
    };
    if minus && parenthesised {
        return Err(not_money());
    }

    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_money());
    }
    if frac.len() > 2 {
        return Err("has more than two decimal places".to_string());
    }
    let int_digits = if int.contains(',') {
        let mut groups = int.split(',');
        let first = groups.next().unwrap_or_default();
        let first_ok = (1..=3).contains(&first.len());
        let groups: Vec<&str> = groups.collect();
        if !first_ok || groups.iter().any(|g| g.len() != 3) {
            return Err(not_money());
        }
        std::iter::once(first).chain(groups).collect::<String>()
    } else {
        int.to_string()
    };
    if !int_digits.bytes().all(|b| b.is_ascii_digit()) || (int_digits.is_empty() && frac.is_empty())
    {
        return Err(not_money());
    }

    let too_large = || "is too large an amount".to_string();
    let digit = |b: u8| i64::from(b - b'0');
    let whole = int_digits
        .bytes()
        .try_fold(0i64, |acc, b| acc.checked_mul(10)?.checked_add(digit(b)));
    let frac_cents = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(2)
        .fold(0i64, |acc, b| acc * 10 + digit(b));
    let cents = whole
        .and_then(|w| w.checked_mul(100))
        .and_then(|c| c.checked_add(frac_cents))
        .ok_or_else(too_large)?;
    Ok(if minus || parenthesised {
        -cents
    } else {
        cents
    })
}

/// Parses a yes/no flag: `yes`, `no`, `true`, `false`, `y`, `n`, `t`, `f`,
/// `1` or `0`, in any case.
pub fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" | "t" | "1" => Ok(true),
        "no" | "n" | "false" | "f" | "0" => Ok(false),
        _ => Err("is not yes or no (expected yes/no, true/false, y/n or 1/0)".to_string()),
    }
}

/// Parses a phone number into E.164 form (`+14158675309`).
///
/// A number without a country code is taken as a US number
/// (`(415) 867-5309`, `415.867.5309`, `1-415-867-5309`). Numbers elsewhere
/// need their `+` and country code (`+44 20 7946 0958`) or the US
/// international prefix `011` (`011 44 20 7946 0958`). The number must be
/// one its country's numbering plan actually assigns (so `(555) 123-4567`,
/// with no such area code, is rejected), not merely have the right count of
/// digits. A number with an extension (`x12`, `ext. 12`) is rejected rather
/// than imported without it, so the extension is not silently lost.
pub fn parse_phone(raw: &str) -> Result<String, String> {
    let invalid = || "is not a valid phone number".to_string();
    let s = raw.trim();
    // Given a default country, the `phonenumber` crate strips that country's
    // trunk prefix (`1` for the US) even after an explicit country code,
    // turning `+61 1300 975 707` into the different but still valid
    // `+61 300 975 707`. Numbers written in international form therefore
    // carry their own country and are parsed without the US default.
    let number = match s.strip_prefix("011") {
        Some(rest) => phonenumber::parse(None, format!("+{rest}")),
        None if s.contains('+') => phonenumber::parse(None, s),
        None => phonenumber::parse(Some(phonenumber::country::Id::US), s),
    }
    .map_err(|_| invalid())?;
    if number.extension().is_some() {
        return Err("has an extension (only the phone number itself can be imported)".to_string());
    }
    if !phonenumber::is_valid(&number) {
        return Err(invalid());
    }
    let mut e164 = String::new();
    write!(e164, "{}", number.format().mode(phonenumber::Mode::E164)).map_err(|_| invalid())?;
    Ok(e164)
}

/// The 50 states, the District of Columbia and the inhabited territories.
const US_STATES: &[(&str, &str)] = &[
    ("AL", "Alabama"),
    ("AK", "Alaska"),
    ("AZ", "Arizona"),
    ("AR", "Arkansas"),
    ("CA", "California"),
    ("CO", "Colorado"),
    ("CT", "Connecticut"),
    ("DE", "Delaware"),
    ("FL", "Florida"),
    ("GA", "Georgia"),
    ("HI", "Hawaii"),
    ("ID", "Idaho"),
    ("IL", "Illinois"),
    ("IN", "Indiana"),
    ("IA", "Iowa"),
    ("KS", "Kansas"),
    ("KY", "Kentucky"),
    ("LA", "Louisiana"),
    ("ME", "Maine"),
    ("MD", "Maryland"),
    ("MA", "Massachusetts"),
    ("MI", "Michigan"),
    ("MN", "Minnesota"),
    ("MS", "Mississippi"),
    ("MO", "Missouri"),
    ("MT", "Montana"),
    ("NE", "Nebraska"),
    ("NV", "Nevada"),
    ("NH", "New Hampshire"),
    ("NJ", "New Jersey"),
    ("NM", "New Mexico"),
    ("NY", "New York"),
    ("NC", "North Carolina"),
    ("ND", "North Dakota"),
    ("OH", "Ohio"),
    ("OK", "Oklahoma"),
    ("OR", "Oregon"),
    ("PA", "Pennsylvania"),
    ("RI", "Rhode Island"),
    ("SC", "South Carolina"),
    ("SD", "South Dakota"),
    ("TN", "Tennessee"),
    ("TX", "Texas"),
    ("UT", "Utah"),
    ("VT", "Vermont"),
    ("VA", "Virginia"),
    ("WA", "Washington"),
    ("WV", "West Virginia"),
    ("WI", "Wisconsin"),
    ("WY", "Wyoming"),
    ("DC", "District of Columbia"),
    ("PR", "Puerto Rico"),
    ("GU", "Guam"),
    ("VI", "U.S. Virgin Islands"),
    ("AS", "American Samoa"),
    ("MP", "Northern Mariana Islands"),
];

/// Other names people write for a place in [`US_STATES`].
const US_STATE_ALIASES: &[(&str, &str)] = &[
    ("VI", "US Virgin Islands"),
    ("VI", "Virgin Islands"),
    ("VI", "United States Virgin Islands"),
];

/// Parses a US state, the District of Columbia or a territory (Puerto Rico,
/// Guam, U.S. Virgin Islands, American Samoa, Northern Mariana Islands) into
/// its two-letter postal code. Accepts the code (`tx`, `TX`) or the full name
/// (`Texas`, `new  york`, `District of Columbia`), in any case and with runs
/// of spaces taken as one.
pub fn parse_us_state(raw: &str) -> Result<&'static str, String> {
    let wanted = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    US_STATES
        .iter()
        .find(|(code, name)| {
            code.eq_ignore_ascii_case(&wanted) || name.eq_ignore_ascii_case(&wanted)
        })
        .or_else(|| {
            US_STATE_ALIASES
                .iter()
                .find(|(_, name)| name.eq_ignore_ascii_case(&wanted))
        })
        .map(|(code, _)| *code)
        .ok_or_else(|| {
            "is not a US state, DC or territory (expected a two-letter code or the full name)"
                .to_string()
        })
}

/// Parses a Social Security number written `123-45-6789`, `123 45 6789` or
/// `123456789` into `123-45-6789`. Numbers that are never issued (area 000,
/// 666 or 900–999, group 00, serial 0000) are rejected. The reasons given
/// never repeat the digits, so they are safe to show next to a masked value.
pub fn parse_ssn(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    let (area, group, serial) = if s.len() == 9 {
        (s.get(0..3), s.get(3..5), s.get(5..9))
    } else {
        let sep = s.get(3..4).filter(|sep| *sep == "-" || *sep == " ");
        match sep {
            Some(sep) if s.len() == 11 && s.get(6..7) == Some(sep) => {
                (s.get(0..3), s.get(4..6), s.get(7..11))
            }
            _ => (None, None, None),
        }
    };
    fn digits(part: Option<&str>) -> Option<&str> {
        part.filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
    }
    let (Some(area), Some(group), Some(serial)) = (digits(area), digits(group), digits(serial))
    else {
        return Err("is not an SSN (expected 123-45-6789 or nine digits)".to_string());
    };
    if area == "000" || area == "666" || area.starts_with('9') || group == "00" || serial == "0000"
    {
        return Err("is not a valid SSN".to_string());
    }
    Ok(format!("{area}-{group}-{serial}"))
}

/// Parses a US ZIP code: five digits (`02134`, leading zeros kept) or ZIP+4,
/// written `12345-6789` or `123456789`, stored as `12345-6789`.
pub fn parse_zip(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let (zip, plus4) = match s.split_once('-') {
        Some((zip, plus4)) => (zip, Some(plus4)),
        None if s.len() == 9 => (s.get(0..5).unwrap_or_default(), s.get(5..9)),
        None => (s, None),
    };
    let zip_ok = zip.len() == 5 && all_digits(zip);
    match plus4 {
        None if zip_ok => Ok(zip.to_string()),
        Some(plus4) if zip_ok && plus4.len() == 4 && all_digits(plus4) => {
            Ok(format!("{zip}-{plus4}"))
        }
        _ => Err("is not a ZIP code (5 or 9 digits)".to_string()),
    }
}

/// Parses a short code: 2 to 32 ASCII letters, digits, `-` or `_`, kept as
/// given apart from surrounding spaces (case is not changed).
pub fn parse_code(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    if (2..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(s.to_string())
    } else {
        Err("is not a code (2 to 32 letters, digits, - or _)".to_string())
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
    fn datetimes_in_iso_form_with_and_without_offsets() {
        let ten = Ok(utc(2026, 3, 1, 10, 0, 0, 0));
        assert_eq!(parse_datetime("2026-03-01T10:00:00Z"), ten);
        assert_eq!(parse_datetime(" 2026-03-01T10:00:00z "), ten);
        assert_eq!(parse_datetime("2026-03-01T10:00:00"), ten);
        assert_eq!(parse_datetime("2026-03-01 10:00:00"), ten);
        assert_eq!(parse_datetime("2026-03-01 10:00"), ten);
        assert_eq!(parse_datetime("2026-03-01T10:00"), ten);
        assert_eq!(parse_datetime("2026-03-01T10:00:00+00:00"), ten);
        assert_eq!(parse_datetime("2026-03-01 10:00:00Z"), ten);
        assert_eq!(parse_datetime("2026-03-01T05:00:00-05:00"), ten);
        assert_eq!(parse_datetime("2026-03-01T05:00-05:00"), ten);
        assert_eq!(parse_datetime("2026-03-01T05:00:00-0500"), ten);
        assert_eq!(parse_datetime("2026-03-01 05:00-05"), ten);
        assert_eq!(parse_datetime("2026-03-01T11:30:00+01:30"), ten);
        assert_eq!(
            parse_datetime("2026-03-01T10:00:00.25Z"),
            Ok(utc(2026, 3, 1, 10, 0, 0, 250_000))
        );
        assert_eq!(
            parse_datetime("2026-03-01T10:00:00.123456"),
            Ok(utc(2026, 3, 1, 10, 0, 0, 123_456))
        );
        assert_eq!(
            parse_datetime("2026-03-01T00:30:00+01:00"),
            Ok(utc(2026, 2, 28, 23, 30, 0, 0))
        );
        assert_eq!(
            parse_datetime("1950-03-07T00:00:00Z"),
            Ok(utc(1950, 3, 7, 0, 0, 0, 0))
        );
        assert!(parse_datetime("1950-03-07T00:00:00Z").is_ok_and(|t| t < 0));
    }

    #[test]
    fn datetimes_in_us_form() {
        let ten = Ok(utc(2026, 3, 1, 10, 0, 0, 0));
        assert_eq!(parse_datetime("3/1/2026 10:00 AM"), ten);
        assert_eq!(parse_datetime("03/01/2026 10:00 am"), ten);
        assert_eq!(parse_datetime("3/1/2026 10:00AM"), ten);
        assert_eq!(parse_datetime("3/1/2026 10:00:00 Am"), ten);
        assert_eq!(parse_datetime("3/1/2026 10:00"), ten);
        assert_eq!(parse_datetime("3/1/2026 10:00:00"), ten);
        let afternoon = Ok(utc(2026, 3, 1, 14, 5, 0, 0));
        assert_eq!(parse_datetime("3/1/2026 2:05 PM"), afternoon);
        assert_eq!(parse_datetime("3/1/2026 02:05 pm"), afternoon);
        assert_eq!(parse_datetime("3/1/2026 14:05"), afternoon);
        assert_eq!(
            parse_datetime("3/1/2026 12:00 AM"),
            Ok(utc(2026, 3, 1, 0, 0, 0, 0))
        );
        assert_eq!(
            parse_datetime("3/1/2026 12:30 PM"),
            Ok(utc(2026, 3, 1, 12, 30, 0, 0))
        );
        assert_eq!(
            parse_datetime("12/31/2025 11:59:59 PM"),
            Ok(utc(2025, 12, 31, 23, 59, 59, 0))
        );
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

    #[test]
    fn money_in_plain_and_dollar_forms() {
        assert_eq!(parse_money("1234.56"), Ok(123_456));
        assert_eq!(parse_money("1234"), Ok(123_400));
        assert_eq!(parse_money("1234.5"), Ok(123_450));
        assert_eq!(parse_money("1234."), Ok(123_400));
        assert_eq!(parse_money(".5"), Ok(50));
        assert_eq!(parse_money(".05"), Ok(5));
        assert_eq!(parse_money("0"), Ok(0));
        assert_eq!(parse_money("0.01"), Ok(1));
        assert_eq!(parse_money("007.00"), Ok(700));
        assert_eq!(parse_money(" $1,234.56 "), Ok(123_456));
        assert_eq!(parse_money("$1234.56"), Ok(123_456));
        assert_eq!(parse_money("1,234,567.89"), Ok(123_456_789));
        assert_eq!(parse_money("$999"), Ok(99_900));
        assert_eq!(parse_money("$1,000"), Ok(100_000));
    }

    #[test]
    fn negative_money() {
        assert_eq!(parse_money("-12.00"), Ok(-1200));
        assert_eq!(parse_money("-$12.00"), Ok(-1200));
        assert_eq!(parse_money("$-12.00"), Ok(-1200));
        assert_eq!(parse_money("(12.00)"), Ok(-1200));
        assert_eq!(parse_money("($1,234.56)"), Ok(-123_456));
        assert_eq!(parse_money("( 12.00 )"), Ok(-1200));
        assert_eq!(parse_money("(0.10)"), Ok(-10));
        assert_eq!(parse_money("-.5"), Ok(-50));
        assert_eq!(parse_money("-0.00"), Ok(0));
    }

    #[test]
    fn money_limits() {
        assert_eq!(
            parse_money("$92,233,720,368,547,758.07"),
            Ok(i64::MAX),
            "the largest amount that fits"
        );
        assert_eq!(parse_money("-92233720368547758.07"), Ok(-i64::MAX));
        for too_large in [
            "$99999999999999999999.00",
            "92233720368547758.08",
            "92233720368547759",
            "(99999999999999999999)",
        ] {
            assert_eq!(
                parse_money(too_large),
                Err("is too large an amount".to_string()),
                "{too_large}"
            );
        }
    }

    #[test]
    fn money_that_is_rejected() {
        assert_eq!(
            parse_money("12.345"),
            Err("has more than two decimal places".to_string())
        );
        assert_eq!(
            parse_money("$0.001"),
            Err("has more than two decimal places".to_string())
        );
        for bad in [
            "()",
            "$",
            "-",
            "-$",
            "( )",
            ".",
            "$.",
            "1,23.00",
            "1234,567.00",
            ",123.00",
            "1,234,56",
            "1,,234",
            "1,234,",
            "12,34",
            "--12",
            "-$-12",
            "$$12",
            "12$",
            "(-12.00)",
            "-(12.00)",
            "(12.00",
            "12.00)",
            "1.2.3",
            "12.a",
            "+12",
            "1 234",
            "$ 12",
            "12e3",
            "NaN",
            "１２",
            "abc",
        ] {
            assert_eq!(
                parse_money(bad),
                Err(
                    "is not an amount of money (expected e.g. 1234.56, $1,234.56, -12.00 or (12.00))"
                        .to_string()
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn booleans_in_any_case() {
        for yes in [
            "yes", "YES", "Yes", "y", "Y", "true", "TRUE", "t", "T", "1", " yes ",
        ] {
            assert_eq!(parse_bool(yes), Ok(true), "{yes}");
        }
        for no in [
            "no", "NO", "No", "n", "N", "false", "False", "f", "F", "0", " no ",
        ] {
            assert_eq!(parse_bool(no), Ok(false), "{no}");
        }
        for bad in ["maybe", "2", "-1", "yess", "on", "off", "ye s"] {
            assert_eq!(
                parse_bool(bad),
                Err("is not yes or no (expected yes/no, true/false, y/n or 1/0)".to_string()),
                "{bad}"
            );
        }
    }

    #[test]
    fn phones_become_e164() {
        for us in [
            "(415) 867-5309",
            "415-867-5309",
            "415.867.5309",
            "4158675309",
            "1-415-867-5309",
            "1 (415) 867-5309",
            "+1 415 867 5309",
            "+14158675309",
            " (415) 867-5309 ",
        ] {
            assert_eq!(parse_phone(us), Ok("+14158675309".to_string()), "{us}");
        }
        assert_eq!(
            parse_phone("(212) 555-0142"),
            Ok("+12125550142".to_string())
        );
        assert_eq!(
            parse_phone("+44 20 7946 0958"),
            Ok("+442079460958".to_string())
        );
        // International numbers whose national part starts with 1 keep it.
        for (written, e164) in [
            ("+33 1 42 68 53 00", "+33142685300"),
            ("+61 1300 975 707", "+611300975707"),
            ("+44 121 496 0000", "+441214960000"),
            ("+353 1 234 5678", "+35312345678"),
            ("011 61 1300 975 707", "+611300975707"),
            ("01161 1300975707", "+611300975707"),
            ("011 44 20 7946 0958", "+442079460958"),
            ("+44 (0)20 7946 0958", "+442079460958"),
            ("+1 (415) 867-5309", "+14158675309"),
        ] {
            assert_eq!(parse_phone(written), Ok(e164.to_string()), "{written}");
        }
    }

    #[test]
    fn phones_that_are_rejected() {
        let invalid = Err("is not a valid phone number".to_string());
        for bad in [
            "(555) 123-4567",
            "(415) 123-4567",
            "+1 1 415 867 5309",
            "00 33 1 42 68 53 00",
            "+999 1234567",
            "867-5309",
            "12345",
            "415-867-530",
            "415-867-53090",
            "+44 20 7946",
            "phone",
            "n/a",
            "+",
            "()",
            "---",
        ] {
            assert_eq!(parse_phone(bad), invalid, "{bad}");
        }
        let extension =
            Err("has an extension (only the phone number itself can be imported)".to_string());
        assert_eq!(parse_phone("(415) 867-5309 x12"), extension);
        assert_eq!(parse_phone("415-867-5309 ext. 12"), extension);
        assert_eq!(parse_phone("+61 1300 975 707 ext 5"), extension);
    }

    #[test]
    fn us_states_by_code_or_name() {
        assert_eq!(parse_us_state("TX"), Ok("TX"));
        assert_eq!(parse_us_state("tx"), Ok("TX"));
        assert_eq!(parse_us_state(" Tx "), Ok("TX"));
        assert_eq!(parse_us_state("Texas"), Ok("TX"));
        assert_eq!(parse_us_state("TEXAS"), Ok("TX"));
        assert_eq!(parse_us_state("new  york"), Ok("NY"));
        assert_eq!(parse_us_state(" New\tYork "), Ok("NY"));
        assert_eq!(parse_us_state("District of Columbia"), Ok("DC"));
        assert_eq!(parse_us_state("dc"), Ok("DC"));
        assert_eq!(parse_us_state("Washington"), Ok("WA"));
        assert_eq!(parse_us_state("west virginia"), Ok("WV"));
        assert_eq!(parse_us_state("Puerto Rico"), Ok("PR"));
        assert_eq!(parse_us_state("gu"), Ok("GU"));
        assert_eq!(parse_us_state("U.S. Virgin Islands"), Ok("VI"));
        assert_eq!(parse_us_state("US Virgin Islands"), Ok("VI"));
        assert_eq!(parse_us_state("virgin islands"), Ok("VI"));
        assert_eq!(parse_us_state("American Samoa"), Ok("AS"));
        assert_eq!(parse_us_state("Northern Mariana Islands"), Ok("MP"));
        assert_eq!(parse_us_state("MP"), Ok("MP"));
    }

    #[test]
    fn us_state_table_is_complete_and_consistent() {
        assert_eq!(US_STATES.len(), 50 + 1 + 5);
        for (i, (code, name)) in US_STATES.iter().enumerate() {
            assert_eq!(code.len(), 2);
            assert!(code.bytes().all(|b| b.is_ascii_uppercase()), "{code}");
            assert!(
                US_STATES[..i]
                    .iter()
                    .all(|(c, n)| c != code && !n.eq_ignore_ascii_case(name)),
                "{code} {name} listed twice"
            );
            assert_eq!(parse_us_state(code), Ok(*code));
            assert_eq!(parse_us_state(&name.to_lowercase()), Ok(*code));
        }
        for (code, name) in US_STATE_ALIASES {
            assert!(US_STATES.iter().any(|(c, _)| c == code), "{code}");
            assert_eq!(parse_us_state(name), Ok(*code));
        }
    }

    #[test]
    fn us_states_that_are_rejected() {
        for bad in [
            "XX", "T", "TXX", "T.X.", "Tex", "New-York", "NewYork", "Ontario", "ON", "UK",
        ] {
            assert_eq!(
                parse_us_state(bad),
                Err(
                    "is not a US state, DC or territory (expected a two-letter code or the full name)"
                        .to_string()
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn ssns_are_normalised() {
        let ssn = Ok("123-45-6789".to_string());
        assert_eq!(parse_ssn("123-45-6789"), ssn);
        assert_eq!(parse_ssn("123456789"), ssn);
        assert_eq!(parse_ssn("123 45 6789"), ssn);
        assert_eq!(parse_ssn(" 123-45-6789 "), ssn);
        assert_eq!(parse_ssn("001-01-0001"), Ok("001-01-0001".to_string()));
        assert_eq!(parse_ssn("899-99-9999"), Ok("899-99-9999".to_string()));
        assert_eq!(parse_ssn("665-45-6789"), Ok("665-45-6789".to_string()));
    }

    #[test]
    fn ssns_that_are_rejected_without_echoing_them() {
        let shape = "is not an SSN (expected 123-45-6789 or nine digits)".to_string();
        for bad in [
            "12345678",
            "1234567890",
            "123-456-789",
            "123-45 6789",
            "12-345-6789",
            "123--456789",
            "123.45.6789",
            "abc-de-fghi",
            "123-4a-6789",
            "+23456789",
            "１２３-45-6789",
            "unknown",
        ] {
            assert_eq!(parse_ssn(bad), Err(shape.clone()), "{bad}");
            assert!(!shape.contains(bad));
        }
        let invalid = "is not a valid SSN".to_string();
        for bad in [
            "000-45-6789",
            "666-45-6789",
            "900-45-6789",
            "999-45-6789",
            "123-00-6789",
            "123-45-0000",
            "000000000",
        ] {
            assert_eq!(parse_ssn(bad), Err(invalid.clone()), "{bad}");
            assert!(!invalid.contains(bad) && !invalid.contains(&bad[..3]));
        }
    }

    #[test]
    fn zip_codes() {
        assert_eq!(parse_zip("12345"), Ok("12345".to_string()));
        assert_eq!(parse_zip("02134"), Ok("02134".to_string()));
        assert_eq!(parse_zip(" 00501 "), Ok("00501".to_string()));
        assert_eq!(parse_zip("12345-6789"), Ok("12345-6789".to_string()));
        assert_eq!(parse_zip("123456789"), Ok("12345-6789".to_string()));
        assert_eq!(parse_zip("021340001"), Ok("02134-0001".to_string()));
        for bad in [
            "1234",
            "123456",
            "12345678",
            "1234567890",
            "12345-678",
            "12345-67890",
            "12345-",
            "-6789",
            "1234-56789",
            "12345 6789",
            "12345-67-89",
            "ABCDE",
            "K1A 0B1",
            "１２３４５",
        ] {
            assert_eq!(
                parse_zip(bad),
                Err("is not a ZIP code (5 or 9 digits)".to_string()),
                "{bad}"
            );
        }
    }

    #[test]
    fn codes_are_trimmed_and_kept_as_given() {
        assert_eq!(parse_code("AB"), Ok("AB".to_string()));
        assert_eq!(parse_code(" Pre-Need_2 "), Ok("Pre-Need_2".to_string()));
        assert_eq!(parse_code("x1"), Ok("x1".to_string()));
        let longest = "a".repeat(32);
        assert_eq!(parse_code(&longest), Ok(longest.clone()));
        for bad in [
            "A".to_string(),
            "a".repeat(33),
            "two words".to_string(),
            "a.b".to_string(),
            "a/b".to_string(),
            "café".to_string(),
            "ab!".to_string(),
        ] {
            assert_eq!(
                parse_code(&bad),
                Err("is not a code (2 to 32 letters, digits, - or _)".to_string()),
                "{bad}"
            );
        }
    }
}
