//! Opaque pagination cursors.
//!
//! A cursor is the id of the last item of a page (ids are UUIDv7, so id order is creation order), with a
//! format byte in front so the encoding can change later without breaking cursors clients hold, all in
//! URL-safe base64 so it can be pasted into a query string unescaped. Clients must treat it as opaque.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

const FORMAT_V1: u8 = 1;

/// Every string this matches is a cursor [`decode`] accepts, and no other: `A` and a character from
/// `Q`–`f` spell the format byte 1, the last character carries 4 bits and two zero bits.
pub const PATTERN: &str = r"^A[Q-Za-f][A-Za-z0-9_-]{20}[AEIMQUYcgkosw048]$";

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;

pub fn encode(after: Uuid) -> String {
    let mut bytes = Vec::with_capacity(17);
    bytes.push(FORMAT_V1);
    bytes.extend_from_slice(after.as_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`cursor` is not a cursor this API issued; pass `next_cursor` from a previous page unchanged")]
pub struct InvalidCursor;

pub fn decode(cursor: &str) -> Result<Uuid, InvalidCursor> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| InvalidCursor)?;
    match bytes.split_first() {
        Some((&FORMAT_V1, id)) => Uuid::from_slice(id).map_err(|_| InvalidCursor),
        _ => Err(InvalidCursor),
    }
}

/// Checks `limit` (1–100, default 20).
pub fn limit(requested: Option<u32>) -> Result<u32, String> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(format!("`limit` is {n}; it must be between 1 and {MAX_LIMIT}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let id = Uuid::now_v7();
        let cursor = encode(id);
        assert_eq!(cursor.len(), 23);
        assert!(
            cursor
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(decode(&cursor), Ok(id));
        assert_eq!(decode(&encode(Uuid::nil())), Ok(Uuid::nil()));
    }

    #[test]
    fn foreign_cursors_are_rejected() {
        let id = Uuid::now_v7();
        assert_eq!(decode(""), Err(InvalidCursor));
        assert_eq!(decode("not base64!"), Err(InvalidCursor));
        assert_eq!(decode(&id.to_string()), Err(InvalidCursor));
        // Right length, wrong format byte.
        let mut bytes = vec![2u8];
        bytes.extend_from_slice(id.as_bytes());
        assert_eq!(decode(&URL_SAFE_NO_PAD.encode(bytes)), Err(InvalidCursor));
        // Truncated.
        assert_eq!(decode(&encode(id)[..20]), Err(InvalidCursor));
    }

    #[test]
    fn the_pattern_matches_exactly_the_cursors_decode_accepts() {
        let pattern = regex::Regex::new(PATTERN).unwrap();
        let alphabet: Vec<char> = ('A'..='Z')
            .chain('a'..='z')
            .chain('0'..='9')
            .chain("-_=+/".chars())
            .collect();
        let mut samples = crate::strings::over(&alphabet, 2, 20_000, 25);
        // Cursors with the right format byte and length, and their last characters varied.
        for c in &alphabet {
            samples.push(format!("{}{c}", &encode(Uuid::now_v7())[..22]));
            samples.push(format!("A{c}{}", &encode(Uuid::now_v7())[2..]));
        }
        for s in samples {
            assert_eq!(pattern.is_match(&s), decode(&s).is_ok(), "{s:?}");
        }
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(limit(None), Ok(20));
        assert_eq!(limit(Some(1)), Ok(1));
        assert_eq!(limit(Some(100)), Ok(100));
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(101)).is_err());
    }
}
