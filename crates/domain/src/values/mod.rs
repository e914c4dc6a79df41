//! Parsing and normalising single values as the spec describes them. Each
//! parser takes the text of one cell and returns the normalised value, or a
//! reason fit to show a person that reads after the offending value ("… is
//! not a ZIP code (5 or 9 digits)").

use std::borrow::Cow;

mod codes;
mod contact;
mod dates;
mod money;

pub use codes::{parse_bool, parse_code, parse_enum, parse_ssn};
pub use contact::{parse_email, parse_phone, parse_us_state, parse_zip};
pub use dates::{parse_date, parse_datetime};
pub use money::{format_cents, parse_money};

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

/// Parses a value of a kind stored as text into its normalised form;
/// borrowed from `raw` (or a constant) where normalising copies nothing.
pub fn normalise_text(kind: ValueKind, raw: &str) -> Result<Cow<'_, str>, String> {
    match kind {
        ValueKind::Enum(values) => parse_enum(raw, values).map(Cow::Borrowed),
        ValueKind::Email => parse_email(raw).map(Cow::Owned),
        ValueKind::Phone => parse_phone(raw).map(Cow::Owned),
        ValueKind::UsState => parse_us_state(raw).map(Cow::Borrowed),
        ValueKind::Ssn => parse_ssn(raw).map(Cow::Owned),
        ValueKind::Zip => parse_zip(raw).map(Cow::Owned),
        ValueKind::Code => parse_code(raw).map(Cow::Owned),
        ValueKind::Text
        | ValueKind::Date
        | ValueKind::DateTime
        | ValueKind::Money
        | ValueKind::Bool => Ok(Cow::Borrowed(raw.trim())),
    }
}
