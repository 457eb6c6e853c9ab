//! The one error type of this crate's boundary.

/// Why media could not be processed. Each variant stands for one kind of refusal, which the
/// worker maps to exactly one contract reason code (`mediagate_worker`'s `codes.rs`, the only
/// place codes are chosen); the `Display` text is the verdict's `reason.message`, written for a
/// person to act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum MediaError {
    /// A recognised format this pipeline does not process → `input.unsupported_format`.
    #[error("{format} photos are not supported; send JPEG, PNG, WebP, GIF, HEIC or AVIF")]
    Unsupported {
        /// Human name of the sniffed format, e.g. "HEIC".
        format: String,
    },
    /// Bytes no sniffed format matches → `input.unsupported_format`.
    #[error(
        "the file is not a recognised image format (it starts with {head}); send JPEG, PNG, WebP, GIF, HEIC or AVIF"
    )]
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
    #[error("{what} is {width}×{height} = {} pixels; the limit is {limit}", *width as u64 * *height as u64)]
    TooManyPixels {
        /// "image" or "video frame", for the message.
        what: std::borrow::Cow<'static, str>,
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The configured pixel limit.
        limit: u64,
    },
    /// Sound or video that plays for longer than allowed → `input.too_long`. For audio,
    /// decoding stops soon after the limit is passed, so `duration_ms` is then a lower bound.
    #[error("{what} plays for at least {} s; the limit is {} s", fmt_secs(*duration_ms), fmt_secs(*limit_ms))]
    TooLong {
        /// "the voice note" or "the video", for the message.
        what: std::borrow::Cow<'static, str>,
        /// Measured length (decoded samples for audio, packet timestamps for video).
        duration_ms: u64,
        /// The configured limit, without the allowance.
        limit_ms: u64,
    },
    /// A recognised container whose codec or content the audio/video pipelines do not take
    /// (e.g. Speex audio, AV1 video, a video file sent as a voice note) → `input.unsupported_format`.
    #[error("{message}")]
    UnsupportedCodec {
        /// What was found and what to send instead.
        message: String,
    },
    /// The item's wall-clock budget ran out before FFmpeg finished. Not necessarily the input's
    /// fault (an overloaded host looks the same), so the worker returns the job to the queue
    /// (`failed` with `internal.delivery_limit` if it keeps happening).
    #[error("{stage} did not finish within its {} s budget", fmt_secs(*budget_ms))]
    TimedOut {
        /// What was running, e.g. "transcoding the video".
        stage: std::borrow::Cow<'static, str>,
        /// The budget that ran out.
        budget_ms: u64,
    },
    /// A bug or a misconfiguration on our side (never the input's fault): the job goes back to
    /// the queue.
    #[error("internal media error: {message}")]
    Internal {
        /// What failed.
        message: String,
    },
}

impl MediaError {
    pub(crate) fn corrupt(message: impl Into<String>) -> Self {
        MediaError::Corrupt { message: message.into() }
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        MediaError::Internal { message: message.into() }
    }
}

/// The message a panic carried (`panic!("…")` gives a `&str` or a `String`), or "a panic".
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string())
}

/// Milliseconds as seconds for messages: "60", "60.25", "75.3".
fn fmt_secs(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}", ms / 1000)
    } else {
        let s = format!("{:.2}", ms as f64 / 1000.0);
        s.trim_end_matches('0').to_string()
    }
}
