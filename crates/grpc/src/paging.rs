//! Pages of every list: a `page_size` with a default and a maximum, and one
//! opaque, versioned page token carrying the cursor of the last item of a
//! page, tagged with its list so a token of one list is refused by another.

use passare_imports_app::error::ApiError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// `page_size` of a list request: 0 means `default`; more than `max` is `max`.
pub fn page_size(requested: i32, default: u64, max: u64) -> Result<u64, ApiError> {
    match requested {
        n if n < 0 => Err(ApiError::invalid("page_size", "must not be negative")),
        0 => Ok(default),
        n => Ok((n as u64).min(max)),
    }
}

/// Encodes a cursor of the list `list` as an opaque token.
pub fn encode<C: Serialize>(list: &str, cursor: &C) -> String {
    let json = serde_json::to_string(cursor).unwrap_or_default();
    hex::encode(format!("v2|{list}|{json}"))
}

/// Decodes a token of the list `list`; an empty token is the first page.
pub fn decode<C: DeserializeOwned>(list: &str, token: &str) -> Result<Option<C>, ApiError> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || ApiError::invalid("page_token", "is not a token this service issued");
    let raw = String::from_utf8(hex::decode(token).map_err(|_| bad())?).map_err(|_| bad())?;
    let json = raw
        .strip_prefix("v2|")
        .and_then(|rest| rest.strip_prefix(list))
        .and_then(|rest| rest.strip_prefix('|'))
        .ok_or_else(bad)?;
    serde_json::from_str(json).map(Some).map_err(|_| bad())
}

/// One page of `rows` fetched with a limit of `page_size + 1`: the rows of
/// the page, and the token of the next page (empty on the last).
pub fn page<T, C: Serialize>(
    list: &str,
    mut rows: Vec<T>,
    page_size: u64,
    cursor_of: impl Fn(&T) -> C,
) -> (Vec<T>, String) {
    let more = rows.len() as u64 > page_size;
    rows.truncate(page_size as usize);
    let token = match (more, rows.last()) {
        (true, Some(last)) => encode(list, &cursor_of(last)),
        _ => String::new(),
    };
    (rows, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_forgeries_and_other_lists() {
        let token = encode("imports", &("2026-11-28T10:00:00Z", 7));
        let back: Option<(String, i64)> = decode("imports", &token).unwrap();
        assert_eq!(back, Some(("2026-11-28T10:00:00Z".to_string(), 7)));
        assert!(decode::<(String, i64)>("audit", &token).is_err());
        assert!(decode::<(String, i64)>("imports", "zz").is_err());
        assert!(decode::<(String, i64)>("imports", &hex::encode("v1|x|y")).is_err());
        assert_eq!(decode::<(String, i64)>("imports", "").unwrap(), None);
    }

    #[test]
    fn a_page_has_a_token_only_when_more_rows_follow() {
        let (rows, token) = page("ids", vec![1, 2, 3], 2, |r| *r);
        assert_eq!(rows, vec![1, 2]);
        assert_eq!(decode::<i64>("ids", &token).unwrap(), Some(2));
        let (rows, token) = page("ids", vec![1, 2], 2, |r| *r);
        assert_eq!(rows, vec![1, 2]);
        assert!(token.is_empty());
    }
}
