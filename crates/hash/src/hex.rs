//! Hex digits in, bytes out, with errors that say what was wrong where (bank files are written
//! by people and other systems; "line 3: `pdq` needs 64 hex digits, found 63" is fixable,
//! "invalid hex" is not).

/// Why a hex string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    /// Not the number of digits the kind needs (counted in characters).
    #[error("needs {expected} hex digits, found {found}")]
    Length { expected: usize, found: usize },
    /// A character that is not `0-9`, `a-f` or `A-F`; `at` is 1-based, in characters.
    #[error("character {at} ({ch:?}) is not a hex digit")]
    NotHex { at: usize, ch: char },
}

fn nibble(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes exactly `N` bytes from `2 * N` hex digits of either case. Lengths and positions
/// are counted in characters, as a person reading the line would count them.
pub(crate) fn decode<const N: usize>(s: &str) -> Result<[u8; N], HexError> {
    let found = s.chars().count();
    if found != 2 * N {
        return Err(HexError::Length { expected: 2 * N, found });
    }
    let mut out = [0u8; N];
    for (i, ch) in s.chars().enumerate() {
        let v = u8::try_from(ch).ok().and_then(nibble).ok_or(HexError::NotHex { at: i + 1, ch })?;
        out[i / 2] |= if i % 2 == 0 { v << 4 } else { v };
    }
    Ok(out)
}

/// Lower-case hex of `bytes`.
pub(crate) fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_either_case() {
        assert_eq!(decode::<2>("aBcD"), Ok([0xab, 0xcd]));
        assert_eq!(encode(&[0xab, 0xcd, 0x01]), "abcd01");
    }

    #[test]
    fn says_what_is_wrong() {
        assert_eq!(decode::<2>("abc"), Err(HexError::Length { expected: 4, found: 3 }));
        assert_eq!(decode::<2>("abxd"), Err(HexError::NotHex { at: 3, ch: 'x' }));
        // 4 bytes but 3 characters: the count is in characters
        assert_eq!(decode::<2>("aé1"), Err(HexError::Length { expected: 4, found: 3 }));
        assert_eq!(decode::<2>("aé1").unwrap_err().to_string(), "needs 4 hex digits, found 3");
        assert_eq!(decode::<2>("aéb1"), Err(HexError::NotHex { at: 2, ch: 'é' }));
        assert_eq!(decode::<2>("abc\u{0}").unwrap_err().to_string(), "character 4 ('\\0') is not a hex digit");
    }
}
