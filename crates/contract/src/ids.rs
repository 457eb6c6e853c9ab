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

/// An identifier that is not one (§2), with what it was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{given:?} is not a valid identifier ([A-Za-z0-9._-], 1 to 128 characters, not starting with '.')")]
pub struct InvalidId {
    /// What was given.
    pub given: String,
}

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        ///
        /// It reads and writes as the plain JSON string. One is valid once it comes from a job
        /// [`crate::Job::parse`] accepted, or from [`Self::parse`]; the key functions of
        /// [`crate::keys`] and [`crate::review`] take only this type, so a job's id cannot
        /// stand where an item's belongs, nor the other way round.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// `s`, when it is a valid identifier.
            pub fn parse(s: &str) -> Result<$name, InvalidId> {
                if is_valid_id(s) {
                    Ok($name(s.to_string()))
                } else {
                    Err(InvalidId { given: s.to_string() })
                }
            }

            /// The identifier.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        /// Unchecked: for ids this program made or read back from its own records, and tests.
        impl From<&str> for $name {
            fn from(s: &str) -> $name {
                $name(s.to_string())
            }
        }

        /// Unchecked, as `From<&str>`.
        impl From<String> for $name {
            fn from(s: String) -> $name {
                $name(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }
    };
}

id_type!(
    /// A job's `job_id` (§2).
    JobId
);
id_type!(
    /// An item's `item_id` (§2), unique within its job.
    ItemId
);

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
        assert_eq!(JobId::parse("j-1").map(|j| j.to_string()), Ok("j-1".to_string()));
        assert!(JobId::parse("../x").is_err() && ItemId::parse("").is_err());
        assert!(!is_valid_id("a b"));
        assert!(!is_valid_id("é"));
        assert!(!is_valid_id("a\0"));
        assert!(!is_valid_id("a%2f"));
    }
}
