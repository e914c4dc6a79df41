//! Exact amounts of money, parsed digit by digit into cents: `1234.56`,
//! `$1,234.56`, `(12.00)` for negatives.

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

/// Cents as a decimal amount: `-12.5` dollars is `-12.50`.
pub fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
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
}
