//! Identifier rule of the contract (§2): `[A-Za-z0-9._-]{1,128}`, never starting with `.`.
//!
//! Identifiers become parts of S3 keys, so this check is what keeps a job from writing
//! outside its own prefix (`..`, `/`, empty segments). Nothing builds a key from an id that
//! did not pass it.

/// The longest identifier the contract allows.
pub const MAX_ID_LEN: usize = 128;

/// True when `s` is a valid contract identifier (job, message, conversation, account, item).
pub fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && !s.starts_with('.')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_allowed_alphabet() {
        assert!(is_valid_id("j-01HZX3"));
        assert!(is_valid_id("a.b_c-D9"));
        assert!(is_valid_id("0"));
        assert!(is_valid_id(&"x".repeat(128)));
    }

    #[test]
    fn refuses_everything_else() {
        assert!(!is_valid_id(""));
        assert!(!is_valid_id(&"x".repeat(129)));
        assert!(!is_valid_id(".hidden"));
        assert!(!is_valid_id(".."));
        assert!(!is_valid_id("a/b"));
        assert!(!is_valid_id("a b"));
        assert!(!is_valid_id("é"));
        assert!(!is_valid_id("a\0"));
        assert!(!is_valid_id("a%2f"));
    }
}
