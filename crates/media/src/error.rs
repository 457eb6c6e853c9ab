//! The one error type of this crate's boundary.

/// Why media could not be processed. Each variant maps to exactly one contract reason code
/// (see [`MediaError::code`]) so the worker can turn it into a verdict item without guessing;
/// the `Display` text is the verdict's `reason.message`, written for a person to act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// A recognised format this pipeline does not process → `input.unsupported_format`.
    #[error("{format} photos are not supported; send JPEG, PNG, WebP or GIF")]
    Unsupported {
        /// Human name of the sniffed format, e.g. "HEIC".
        format: String,
    },
    /// Bytes no sniffed format matches → `input.unsupported_format`.
    #[error("the file is not a recognised image format (it starts with {head}); send JPEG, PNG, WebP or GIF")]
    Unrecognized {
        /// The first bytes in hex, so a person can tell HTML, text or an empty file apart.
        head: String,
    },
    /// The data does not decode cleanly (truncated, garbage, bad header) → `input.corrupt`.
    #[error("{message}")]
    Corrupt {
        /// What is wrong, e.g. "JPEG data ends after 1203 bytes, before the image is complete".
        message: String,
    },
    /// The header declares more pixels than allowed; refused before any pixel buffer is
    /// allocated → `input.too_many_pixels`.
    #[error("image is {width}×{height} = {} pixels; the limit is {limit}", *width as u64 * *height as u64)]
    TooManyPixels {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The configured pixel limit.
        limit: u64,
    },
    /// A bug or a misconfiguration on our side (never the input's fault) → `internal.media`.
    #[error("internal media error: {message}")]
    Internal {
        /// What failed.
        message: String,
    },
}

impl MediaError {
    /// The contract reason code (§3) this error stands for.
    pub fn code(&self) -> &'static str {
        match self {
            MediaError::Unsupported { .. } | MediaError::Unrecognized { .. } => "input.unsupported_format",
            MediaError::Corrupt { .. } => "input.corrupt",
            MediaError::TooManyPixels { .. } => "input.too_many_pixels",
            MediaError::Internal { .. } => "internal.media",
        }
    }

    /// Whether the input is to blame (an explicit `rejected` item) rather than us (`failed`).
    pub fn is_input_error(&self) -> bool {
        !matches!(self, MediaError::Internal { .. })
    }

    pub(crate) fn corrupt(message: impl Into<String>) -> Self {
        MediaError::Corrupt { message: message.into() }
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        MediaError::Internal { message: message.into() }
    }
}
