//! The one place where crate errors become contract reason codes.
//!
//! Bad input becomes an item [`Reason`]; anything that is not the input's fault becomes a
//! [`Transient`] that sends the job back to the queue instead of a wrong `rejected`.

use mediagate_contract::{Reason, ReasonCode};
use mediagate_media::MediaError;
use mediagate_store::StoreError;

/// A fault that is not the job's: the job is returned to the broker and retried, so the
/// quorum queue's delivery limit decides when it becomes `failed`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Transient(pub String);

/// Maps a storage error on a *source* object: a missing or oversized input is the input's
/// fault; anything else (403, 5xx, timeouts) is not.
pub fn source_error(err: StoreError, bucket: &str, key: &str) -> Result<Reason, Transient> {
    match err {
        StoreError::NotFound { .. } => Ok(Reason::new(
            ReasonCode::InputMissing,
            format!("the source object s3://{bucket}/{key} does not exist; upload it before publishing the job"),
        )),
        StoreError::TooLarge { size, limit } => Ok(Reason::new(
            ReasonCode::InputTooLarge,
            format!("the file is {size} bytes; the limit is {limit} bytes"),
        )),
        other => Err(Transient(format!("reading s3://{bucket}/{key}: {other}"))),
    }
}

/// Maps a media error to the item's reason. Media errors are always about the input, except
/// `Internal`, which is ours.
pub fn media_error(err: MediaError) -> Result<Reason, Transient> {
    let code = match &err {
        MediaError::Unsupported { .. } | MediaError::Unrecognized { .. } => {
            ReasonCode::InputUnsupportedFormat
        }
        MediaError::Corrupt { .. } => ReasonCode::InputCorrupt,
        MediaError::TooManyPixels { .. } => ReasonCode::InputTooManyPixels,
        MediaError::Internal { .. } => return Err(Transient(format!("media processing: {err}"))),
    };
    Ok(Reason::new(code, err.to_string()))
}
