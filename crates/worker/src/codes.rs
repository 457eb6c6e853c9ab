//! The one place where crate errors become contract reason codes.
//!
//! Bad input becomes an item [`Reason`]; anything that is not the input's fault becomes a
//! [`Transient`] that sends the job back to the queue instead of a wrong `rejected`.

use mediagate_contract::{Reason, ReasonCode};
use mediagate_media::MediaError;
use mediagate_store::StoreError;

/// A fault that is not the job's. Storage faults are retried in place while the store is down
/// (they say nothing about the job, so they must not burn its delivery count); other faults
/// return the job to the broker, so the quorum queue's delivery limit decides when it is `failed`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Transient {
    pub cause: Cause,
    pub message: String,
}

/// Where a transient fault came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// S3 unreachable, 5xx, timeouts, 403: the dependency, not the job.
    Storage,
    /// A media budget overrun or an internal media error: may be the job's doing.
    Media,
    /// Anything else inside the worker.
    Internal,
}

impl Cause {
    /// Label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Storage => "storage",
            Cause::Media => "media",
            Cause::Internal => "internal",
        }
    }
}

impl Transient {
    pub fn storage(message: impl Into<String>) -> Transient {
        Transient { cause: Cause::Storage, message: message.into() }
    }
    pub fn media(message: impl Into<String>) -> Transient {
        Transient { cause: Cause::Media, message: message.into() }
    }
    pub fn internal(message: impl Into<String>) -> Transient {
        Transient { cause: Cause::Internal, message: message.into() }
    }
}

/// Maps a storage error on a *source* object: a missing or oversized input is the input's
/// fault; anything else (403, 5xx, timeouts) is not.
pub fn source_error(err: StoreError, bucket: &str, key: &str) -> Result<Reason, Transient> {
    match err {
        StoreError::NotFound { .. } => Ok(Reason::new(
            ReasonCode::InputMissing,
            format!("the source object s3://{bucket}/{key} does not exist; upload it before publishing the job"),
        )),
        StoreError::TooLarge { size, limit } => {
            Ok(Reason::new(ReasonCode::InputTooLarge, format!("the file is {size} bytes; the limit is {limit} bytes")))
        }
        other => Err(Transient::storage(format!("reading s3://{bucket}/{key}: {other}"))),
    }
}

/// Maps a media error to the item's reason. Media errors are always about the input, except
/// `Internal`, which is ours.
pub fn media_error(err: MediaError) -> Result<Reason, Transient> {
    let code = match &err {
        MediaError::Unsupported { .. } | MediaError::Unrecognized { .. } => ReasonCode::InputUnsupportedFormat,
        MediaError::UnsupportedCodec { .. } => ReasonCode::InputUnsupportedFormat,
        MediaError::Corrupt { .. } => ReasonCode::InputCorrupt,
        MediaError::TooLong { .. } => ReasonCode::InputTooLong,
        // A budget overrun is not necessarily the input's fault (an overloaded host looks the
        // same): retried, and `failed` at the delivery limit if it keeps happening.
        MediaError::TimedOut { .. } => return Err(Transient::media(format!("media processing: {err}"))),
        MediaError::TooManyPixels { .. } => ReasonCode::InputTooManyPixels,
        MediaError::Internal { .. } => return Err(Transient::media(format!("media processing: {err}"))),
    };
    Ok(Reason::new(code, err.to_string()))
}
