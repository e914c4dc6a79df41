//! Values chosen from a set or written to a pattern: yes/no flags, enums
//! with aliases, Social Security numbers and short codes.

/// Parses a yes/no flag: `yes`, `no`, `true`, `false`, `y`, `n`, `t`, `f`,
/// `1` or `0`, in any case.
pub fn parse_bool(raw: &str) -> Result<bool, String> {
    let s = raw.trim();
    let is = |words: &[&str]| words.iter().any(|w| s.eq_ignore_ascii_case(w));
    if is(&["yes", "y", "true", "t", "1"]) {
        Ok(true)
    } else if is(&["no", "n", "false", "f", "0"]) {
        Ok(false)
    } else {
        Err("is not yes or no (expected yes/no, true/false, y/n or 1/0)".to_string())
    }
}

/// Matches an enum value or one of its aliases. Runs for every cell of an
/// enum column, so the comparison allocates nothing, and the cell is
/// trimmed once, not once per value it is compared with (the catalog's
/// values and aliases are trimmed already: a test holds them to it).
pub fn parse_enum(
    raw: &str,
    values: &'static [(&'static str, &'static [&'static str])],
) -> Result<&'static str, String> {
    let raw = raw.trim();
    for (value, aliases) in values {
        if same_token(raw, value) || aliases.iter().any(|a| same_token(raw, a)) {
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

/// Whether two trimmed tokens are the same with ASCII case, spaces and
/// hyphens ignored (`At-Need` is `at_need`). Compared byte by byte: only
/// ASCII bytes are folded, so the bytes of other characters compare as
/// they are.
fn same_token(a: &str, b: &str) -> bool {
    fn canonical(b: u8) -> u8 {
        if b == b' ' || b == b'-' {
            b'_'
        } else {
            b.to_ascii_lowercase()
        }
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| canonical(*x) == canonical(*y))
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
    fn enums_accept_aliases_and_any_case() {
        const V: &[(&str, &[&str])] = &[("at_need", &["atneed"]), ("pre_need", &[])];
        assert_eq!(parse_enum("At Need", V), Ok("at_need"));
        assert_eq!(parse_enum("PRE-NEED", V), Ok("pre_need"));
        assert_eq!(parse_enum("atneed", V), Ok("at_need"));
        assert_eq!(parse_enum(" AT_need\t", V), Ok("at_need"));
        assert_eq!(parse_enum("Pre Need", V), Ok("pre_need"));
        for bad in [
            "at",
            "at_needs",
            "at__need",
            "ät_need",
            "at need now",
            "",
            "AT NEEDx",
        ] {
            assert!(parse_enum(bad, V).is_err(), "{bad}");
        }
        assert_eq!(
            parse_enum("someday", V),
            Err("is not one of at_need, pre_need".to_string())
        );
    }

    #[test]
    fn every_catalog_enum_value_and_alias_is_trimmed_and_not_empty() {
        for def in crate::catalog::CATALOG {
            for col in def.columns {
                let crate::values::ValueKind::Enum(values) = col.kind else {
                    continue;
                };
                for (value, aliases) in values {
                    for token in std::iter::once(value).chain(aliases.iter()) {
                        assert!(
                            !token.is_empty() && token.trim() == *token,
                            "{}.{}: {token:?}",
                            def.key,
                            col.name
                        );
                    }
                }
            }
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
