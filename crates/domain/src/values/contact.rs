//! How people are reached: e-mail addresses, phone numbers (to E.164), US
//! states (to their code) and ZIP codes.

use std::fmt::Write as _;

/// Checks an e-mail address's syntax (one `@`, a non-empty local part, a
/// dotted domain, no spaces) and lower-cases it.
pub fn parse_email(raw: &str) -> Result<String, String> {
    // Checked once lower-cased, as stored: lower-casing can lengthen a
    // character or add a combining mark (`İ` becomes `i̇`).
    let s = raw.trim().to_lowercase();
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
    if domain_ok && local_ok { Ok(s) } else { bad() }
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
    // What is stored must read back as itself: the crate's clean-up (letters
    // read as keypad digits, a trunk prefix dropped) can give a form that is
    // no valid number, e.g. `+559090098t098t` became `+559009880988`.
    match phonenumber::parse(None, &e164) {
        Ok(again)
            if phonenumber::is_valid(&again)
                && again.format().mode(phonenumber::Mode::E164).to_string() == e164 =>
        {
            Ok(e164)
        }
        _ => Err(invalid()),
    }
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
    US_STATES
        .iter()
        .find(|(code, name)| same_words(raw, code) || same_words(raw, name))
        .or_else(|| {
            US_STATE_ALIASES
                .iter()
                .find(|(_, name)| same_words(raw, name))
        })
        .map(|(code, _)| *code)
        .ok_or_else(|| {
            "is not a US state, DC or territory (expected a two-letter code or the full name)"
                .to_string()
        })
}

/// Whether two texts hold the same words, in ASCII case and however many
/// spaces separate them; runs for every cell, so it allocates nothing.
fn same_words(a: &str, b: &str) -> bool {
    let (mut a, mut b) = (a.split_whitespace(), b.split_whitespace());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => {}
            _ => return false,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Found by the `values` fuzz target: the E.164 form of a number written
    /// with letters was no valid number, so it could not be imported again.
    #[test]
    fn a_phone_number_is_accepted_only_if_its_stored_form_reads_back() {
        assert_eq!(
            parse_phone("+559090098t098t"),
            Err("is not a valid phone number".to_string())
        );
        // A vanity number whose letters make a valid number stays accepted.
        let stored = parse_phone("1-800-FLOWERS");
        assert_eq!(stored, Ok("+18003569377".to_string()));
        assert_eq!(parse_phone("+18003569377"), stored);
    }

    /// Found with the `values` fuzz target's read-back check: the address
    /// was checked before being lower-cased, so what was stored did not pass
    /// the check again.
    #[test]
    fn an_email_is_checked_as_it_is_stored() {
        // `İ` lower-cases to `i` and a combining dot, which no domain holds.
        assert!(parse_email("a@\u{130}.com").is_err());
        // `Ⱥ` (2 bytes) lower-cases to `ⱥ` (3 bytes): 32 of them exceed 64 bytes.
        let local = "\u{23A}".repeat(32);
        assert!(parse_email(&format!("{local}@x.com")).is_err());
        let stored = parse_email("Zo\u{CB}@X.com");
        assert_eq!(stored, Ok("zo\u{EB}@x.com".into()));
        assert_eq!(parse_email("zo\u{EB}@x.com"), stored);
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
}
