//! Parsing and normalising single values as the spec describes them. Each
//! parser returns the normalised value or a reason fit to show a person.

use chrono::NaiveDate;

/// The kind of a column's values.
#[derive(Debug, Clone, Copy)]
pub enum ValueKind {
    /// Free text, trimmed.
    Text,
    /// A date: `YYYY-MM-DD` or US `M/D/YYYY`.
    Date,
    /// A date and time: ISO 8601 or `M/D/YYYY h:mm AM`; without an offset, UTC.
    DateTime,
    /// An exact amount of money with two decimals: `1234.56`, `$1,234.56`,
    /// `(12.00)` for negatives.
    Money,
    /// `yes/no/true/false/y/n/1/0`.
    Bool,
    /// One of the listed canonical values, each with its aliases; matched
    /// case-insensitively, spaces and hyphens taken as underscores.
    Enum(&'static [(&'static str, &'static [&'static str])]),
    /// A syntactically valid e-mail address, stored in lower case.
    Email,
    /// A phone number, stored in E.164 (US numbers may omit the country code).
    Phone,
    /// A US state (or DC or territory) by code or name, stored as its code.
    UsState,
    /// A social security number `###-##-####`; sensitive.
    Ssn,
    /// A ZIP code: 5 digits, or ZIP+4 stored as `12345-6789`.
    Zip,
    /// A code of 2–32 letters, digits, `-` or `_`.
    Code,
}

impl ValueKind {
    /// PostgreSQL type of the target column holding parsed values.
    pub fn sql_type(self) -> &'static str {
        match self {
            ValueKind::Date => "date",
            ValueKind::DateTime => "timestamptz",
            ValueKind::Money => "numeric(14,2)",
            ValueKind::Bool => "boolean",
            ValueKind::Text
            | ValueKind::Enum(_)
            | ValueKind::Email
            | ValueKind::Phone
            | ValueKind::UsState
            | ValueKind::Ssn
            | ValueKind::Zip
            | ValueKind::Code => "text",
        }
    }

    /// Stable name of the kind for catalogs ("date", "money", "enum").
    pub fn name(self) -> &'static str {
        match self {
            ValueKind::Text => "text",
            ValueKind::Date => "date",
            ValueKind::DateTime => "datetime",
            ValueKind::Money => "money",
            ValueKind::Bool => "boolean",
            ValueKind::Enum(_) => "enum",
            ValueKind::Email => "email",
            ValueKind::Phone => "phone",
            ValueKind::UsState => "us_state",
            ValueKind::Ssn => "ssn",
            ValueKind::Zip => "zip",
            ValueKind::Code => "code",
        }
    }

    /// The canonical values of an enum kind; empty for other kinds.
    pub fn values(self) -> Vec<&'static str> {
        match self {
            ValueKind::Enum(values) => values.iter().map(|(v, _)| *v).collect(),
            _ => Vec::new(),
        }
    }

    /// Short description for catalogs and error messages.
    pub fn describe(self) -> String {
        match self {
            ValueKind::Text => "text".into(),
            ValueKind::Date => "date (YYYY-MM-DD or M/D/YYYY)".into(),
            ValueKind::DateTime => {
                "date-time (ISO 8601 or M/D/YYYY h:mm AM; UTC unless an offset is given)".into()
            }
            ValueKind::Money => "money (1234.56, $1,234.56, (12.00) for negatives)".into(),
            ValueKind::Bool => "yes/no, true/false, y/n or 1/0".into(),
            ValueKind::Enum(values) => format!(
                "one of {}",
                values
                    .iter()
                    .map(|(v, _)| *v)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ValueKind::Email => "e-mail address".into(),
            ValueKind::Phone => "phone number (stored as E.164; US by default)".into(),
            ValueKind::UsState => "US state, code or name (stored as the code)".into(),
            ValueKind::Ssn => "SSN ###-##-#### (masked in reports)".into(),
            ValueKind::Zip => "ZIP code, 5 or 9 digits".into(),
            ValueKind::Code => "2 to 32 letters, digits, - or _".into(),
        }
    }
}

/// Parses a value of a kind stored as text into its normalised form.
pub fn normalise_text(kind: ValueKind, raw: &str) -> Result<String, String> {
    use crate::normal::*;
    match kind {
        ValueKind::Enum(values) => parse_enum(raw, values).map(str::to_string),
        ValueKind::Email => parse_email(raw),
        ValueKind::Phone => parse_phone(raw),
        ValueKind::UsState => parse_us_state(raw).map(str::to_string),
        ValueKind::Ssn => parse_ssn(raw),
        ValueKind::Zip => parse_zip(raw),
        ValueKind::Code => parse_code(raw),
        ValueKind::Text
        | ValueKind::Date
        | ValueKind::DateTime
        | ValueKind::Money
        | ValueKind::Bool => Ok(raw.trim().to_string()),
    }
}

/// Cents as a decimal amount: `-12.5` dollars is `-12.50`.
pub fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

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

/// Matches an enum value or one of its aliases.
pub fn parse_enum(
    raw: &str,
    values: &'static [(&'static str, &'static [&'static str])],
) -> Result<&'static str, String> {
    let wanted = canonical_token(raw);
    for (value, aliases) in values {
        if canonical_token(value) == wanted || aliases.iter().any(|a| canonical_token(a) == wanted)
        {
            return Ok(value);
        }
    }
    Err(format!(
        "is not one of {}",
        values
            .iter()
            .map(|(v, _)| *v)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn canonical_token(s: &str) -> String {
    s.trim()
        .chars()
        .map(|c| {
            if c == ' ' || c == '-' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// Checks an e-mail address's syntax (one `@`, a non-empty local part, a
/// dotted domain, no spaces) and lower-cases it.
pub fn parse_email(raw: &str) -> Result<String, String> {
    let s = raw.trim();
    let bad = || Err("is not a valid e-mail address".to_string());
    let Some((local, domain)) = s.split_once('@') else {
        return bad();
    };
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.contains(char::is_whitespace)
        && !local.contains('@');
    if domain_ok && local_ok {
        Ok(s.to_lowercase())
    } else {
        bad()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cents_format_as_exact_decimals() {
        assert_eq!(format_cents(123456), "1234.56");
        assert_eq!(format_cents(-1200), "-12.00");
        assert_eq!(format_cents(5), "0.05");
        assert_eq!(format_cents(i64::MIN), "-92233720368547758.08");
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

    #[test]
    fn enums_accept_aliases_and_any_case() {
        const V: &[(&str, &[&str])] = &[("at_need", &["atneed"]), ("pre_need", &[])];
        assert_eq!(parse_enum("At Need", V), Ok("at_need"));
        assert_eq!(parse_enum("PRE-NEED", V), Ok("pre_need"));
        assert_eq!(parse_enum("atneed", V), Ok("at_need"));
        assert_eq!(
            parse_enum("someday", V),
            Err("is not one of at_need, pre_need".to_string())
        );
    }

    #[test]
    fn emails_are_checked_and_lower_cased() {
        assert_eq!(
            parse_email(" Dana@Example.COM "),
            Ok("dana@example.com".into())
        );
        for bad in ["dana", "dana@", "@x.com", "da na@x.com", "d@x", "d@x..com"] {
            assert!(parse_email(bad).is_err(), "{bad}");
        }
    }
}
