//! The one place where crate errors become contract reason codes.
//!
//! Bad input becomes an item [`Rejection`] (a [`ReasonCode`] and a message a person can act
//! on); anything that is not the input's fault becomes a [`Requeue`], which sends the job back
//! to the queue instead of giving it a wrong `rejected`. Each function below maps one crate's
//! error type, and each is tested here.
//!
//! Architecture invariant: no other module builds a [`Reason`]. (`job.rs`'s job-level reasons
//! come from `mediagate_contract`'s rules, which own them.)

use mediagate_contract::{MediaType, NudityResult, Reason, ReasonCode};
use mediagate_media::{Format, MediaClass, MediaError};
use mediagate_sandbox::{Admit, Refusal, SandboxError};
use mediagate_store::StoreError;

/// A fault that is not the job's: the job goes back to the queue (storage faults are first
/// retried in place while the store is down: they say nothing about the job, so they must not
/// burn its delivery count). The quorum queue's delivery limit decides when it is `failed`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Requeue {
    /// Where it came from: decides whether it is retried in place.
    pub cause: Cause,
    /// What went wrong, for the log.
    pub message: String,
}

/// Where a [`Requeue`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// S3 unreachable, 5xx, timeouts, 403: the dependency, not the job.
    Storage,
    /// A media budget overrun or an internal media error: may be the job's doing.
    Media,
    /// Anything else inside the worker, bugs included.
    Internal,
}

impl Cause {
    /// The metric label of a job handed back for this cause.
    pub fn label(self) -> crate::metrics::label::Retry {
        match self {
            Cause::Storage => crate::metrics::label::Retry::Storage,
            Cause::Media => crate::metrics::label::Retry::Media,
            Cause::Internal => crate::metrics::label::Retry::Internal,
        }
    }

    /// Label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Storage => "storage",
            Cause::Media => "media",
            Cause::Internal => "internal",
        }
    }
}

impl Requeue {
    /// A storage fault.
    pub fn storage(message: impl Into<String>) -> Requeue {
        Requeue { cause: Cause::Storage, message: message.into() }
    }
    /// A media fault that is not (necessarily) the input's.
    pub fn media(message: impl Into<String>) -> Requeue {
        Requeue { cause: Cause::Media, message: message.into() }
    }
    /// Anything else.
    pub fn internal(message: impl Into<String>) -> Requeue {
        Requeue { cause: Cause::Internal, message: message.into() }
    }
}

/// An item refused for what it is: its verdict entry is `rejected` with this reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The verdict's `media_type`, when the file got far enough to have one.
    pub media_type: Option<MediaType>,
    /// Code and message.
    pub reason: Reason,
}

impl Rejection {
    fn new(media_type: Option<MediaType>, code: ReasonCode, message: impl Into<String>) -> Rejection {
        Rejection { media_type, reason: Reason::new(code, message) }
    }
}

/// How an item's processing stops short of a cleared or blocked verdict.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The input's fault: a `rejected` item.
    Rejected(Rejection),
    /// Ours: the job goes back to the queue.
    Requeue(Requeue),
}

impl From<Requeue> for Stop {
    fn from(r: Requeue) -> Stop {
        Stop::Requeue(r)
    }
}

impl From<Rejection> for Stop {
    fn from(r: Rejection) -> Stop {
        Stop::Rejected(r)
    }
}

/// The verdict's media type of a media class.
pub fn media_type_of(class: MediaClass) -> MediaType {
    match class {
        MediaClass::Image => MediaType::Image,
        MediaClass::Video => MediaType::Video,
        MediaClass::Audio => MediaType::Audio,
    }
}

/// A storage error on a *source* object: a missing or oversized input is the input's fault;
/// anything else (403, 5xx, timeouts) is not.
pub fn source_error(err: StoreError, bucket: &str, key: &str) -> Stop {
    match err {
        StoreError::NotFound { .. } => Stop::Rejected(Rejection::new(
            None,
            ReasonCode::InputMissing,
            format!("the source object s3://{bucket}/{key} does not exist; upload it before publishing the job"),
        )),
        StoreError::TooLarge { size, limit } => Stop::Rejected(Rejection::new(
            None,
            ReasonCode::InputTooLarge,
            format!("the file is {size} bytes; the limit is {limit} bytes"),
        )),
        other => Stop::Requeue(Requeue::storage(format!("reading s3://{bucket}/{key}: {other}"))),
    }
}

/// A media error on a file of a known class. Media errors are about the input, except a
/// budget overrun (an overloaded host looks the same) and `Internal`, which are ours.
pub fn media_error(err: MediaError, class: MediaClass) -> Stop {
    let code = match &err {
        MediaError::Unsupported { .. } | MediaError::Unrecognized { .. } | MediaError::UnsupportedCodec { .. } => {
            ReasonCode::InputUnsupportedFormat
        }
        MediaError::Corrupt { .. } => ReasonCode::InputCorrupt,
        MediaError::TooLong { .. } => ReasonCode::InputTooLong,
        MediaError::TooManyPixels { .. } => ReasonCode::InputTooManyPixels,
        MediaError::TimedOut { .. } | MediaError::Internal { .. } => {
            return Stop::Requeue(Requeue::media(format!("media processing: {err}")))
        }
    };
    Stop::Rejected(Rejection::new(Some(media_type_of(class)), code, err.to_string()))
}

/// What the sandbox's child refused, as the item's verdict.
pub fn refusal(r: Refusal) -> Stop {
    match r {
        Refusal::Unrecognized { head } => Stop::Rejected(Rejection::new(
            None,
            ReasonCode::InputUnsupportedFormat,
            if head.is_empty() {
                "the file is empty".to_string()
            } else {
                let hex: String = head.iter().map(|b| format!("{b:02x}")).collect();
                format!(
                    "the file is not a recognised image, video or audio format (it starts with {hex}); \
                     send JPEG, PNG, WebP, GIF, HEIC or AVIF photos"
                )
            },
        )),
        Refusal::NotAdmitted { format, class, admit } => Stop::Rejected(not_admitted(format, class, admit)),
        Refusal::Media { class, error, .. } => media_error(error, class),
    }
}

/// Rule "sniffed type fits the kind": images and videos for `media`, audio for `voice_note`.
fn not_admitted(format: Format, class: MediaClass, admit: Admit) -> Rejection {
    let message = match admit {
        Admit::Visual => format!(
            "the file is {} audio, but a media job takes photos and videos; send it as a voice_note job",
            format.name()
        ),
        Admit::Audio => format!(
            "the file is a {} {}, but a voice_note job takes one audio file",
            format.name(),
            if class == MediaClass::Image { "image" } else { "video" }
        ),
    };
    Rejection::new(Some(media_type_of(class)), ReasonCode::InputTypeMismatch, message)
}

/// Why the sandbox gave no report: a decoder that died twice is the file's doing (it is
/// `input.corrupt`, with how it died); a budget overrun or a sandbox that cannot start is not.
pub fn sandbox_error(err: SandboxError) -> Stop {
    match err {
        e @ SandboxError::Crashed { .. } => {
            Stop::Rejected(Rejection::new(None, ReasonCode::InputCorrupt, e.to_string()))
        }
        e @ SandboxError::TimedOut { .. } => Stop::Requeue(Requeue::media(e.to_string())),
        e @ SandboxError::Spawn { .. } => Stop::Requeue(Requeue::internal(e.to_string())),
    }
}

/// The reason of a job the broker dead-lettered after its delivery limit (its `failed` verdict).
pub fn delivery_limit() -> Reason {
    Reason::new(
        ReasonCode::InternalDeliveryLimit,
        "the job could not be processed within its delivery limit (storage or broker faults, \
         or a worker crash); nothing was wrong with the request as far as mediagate can tell — \
         publish it again, and check the workers' logs for this job_id",
    )
}

/// The reason of an item that matched a hash bank (§8). The message names the bank and how
/// close the match was, never the entry's label (it may describe the content).
pub fn hash_matched(media_type: MediaType, m: &mediagate_hash::Match) -> Reason {
    let what = match media_type {
        MediaType::Video => "video",
        MediaType::Audio => "file",
        MediaType::Image => "photo",
    };
    let how = match m.kind {
        mediagate_hash::Kind::Pdq => match m.frame_ms {
            Some(ms) => format!("its frame at {ms} ms is within {} bits of a PDQ entry", m.distance),
            None => format!("it is within {} bits of a PDQ entry", m.distance),
        },
        kind => format!("its {} is an entry", kind.as_str()),
    };
    Reason::new(
        ReasonCode::HashMatched,
        format!("this {what} matches known harmful media in the hash bank `{}` ({how}); it was not delivered", m.bank),
    )
}

/// The reason of an item the nudity filter flagged.
pub fn flagged(media_type: MediaType, nudity: &NudityResult) -> Reason {
    Reason::new(
        ReasonCode::NudityFlagged,
        format!(
            "the nudity filter flagged this {} (score {:.3} at or above the threshold {:.2} that applies to this \
             conversation); it was not delivered",
            match media_type {
                MediaType::Video => "video",
                _ => "photo",
            },
            nudity.score,
            nudity.threshold
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::time::Duration;

    use super::*;

    fn rejected(stop: Stop) -> Rejection {
        match stop {
            Stop::Rejected(r) => r,
            Stop::Requeue(q) => panic!("expected a rejection, got a requeue: {q}"),
        }
    }

    fn requeued(stop: Stop) -> Requeue {
        match stop {
            Stop::Requeue(q) => q,
            Stop::Rejected(r) => panic!("expected a requeue, got a rejection: {r:?}"),
        }
    }

    #[test]
    fn a_dead_lettered_job_is_failed_by_its_delivery_limit_and_says_what_to_do() {
        let r = delivery_limit();
        assert_eq!(r.code, ReasonCode::InternalDeliveryLimit);
        assert!(r.message.contains("publish it again"), "{}", r.message);
        assert!(r.message.contains("job_id"), "{}", r.message);
    }

    #[test]
    fn source_errors_blame_the_input_only_when_it_is_missing_or_too_large() {
        let r = rejected(source_error(
            StoreError::NotFound { bucket: "incoming".into(), key: "a/b.jpg".into() },
            "incoming",
            "a/b.jpg",
        ));
        assert_eq!((r.reason.code, r.media_type), (ReasonCode::InputMissing, None));
        assert!(r.reason.message.contains("s3://incoming/a/b.jpg"), "{}", r.reason.message);
        let r = rejected(source_error(StoreError::TooLarge { size: 10, limit: 5 }, "incoming", "k"));
        assert_eq!(r.reason.code, ReasonCode::InputTooLarge);
        let q = requeued(source_error(
            StoreError::Denied { op: "GetObject", bucket: "b".into(), key: "k".into(), detail: "403".into() },
            "b",
            "k",
        ));
        assert_eq!(q.cause, Cause::Storage);
    }

    #[test]
    fn each_media_error_has_one_code_and_ours_go_back_to_the_queue() {
        let cases = [
            (MediaError::Unsupported { format: "TIFF".into() }, Some(ReasonCode::InputUnsupportedFormat)),
            (MediaError::Unrecognized { head: "00".into() }, Some(ReasonCode::InputUnsupportedFormat)),
            (MediaError::UnsupportedCodec { message: "m".into() }, Some(ReasonCode::InputUnsupportedFormat)),
            (MediaError::Corrupt { message: "m".into() }, Some(ReasonCode::InputCorrupt)),
            (
                MediaError::TooManyPixels { what: "image".into(), width: 9, height: 9, limit: 1 },
                Some(ReasonCode::InputTooManyPixels),
            ),
            (
                MediaError::TooLong { what: Cow::Borrowed("v"), duration_ms: 9, limit_ms: 1 },
                Some(ReasonCode::InputTooLong),
            ),
            (MediaError::TimedOut { stage: Cow::Borrowed("s"), budget_ms: 1 }, None),
            (MediaError::Internal { message: "m".into() }, None),
        ];
        for (err, code) in cases {
            let text = err.to_string();
            match (media_error(err, MediaClass::Video), code) {
                (Stop::Rejected(r), Some(code)) => {
                    assert_eq!(r.reason.code, code);
                    assert_eq!(r.reason.message, text);
                    assert_eq!(r.media_type, Some(MediaType::Video));
                }
                (Stop::Requeue(q), None) => assert_eq!(q.cause, Cause::Media),
                (other, code) => panic!("{text}: expected {code:?}, got {other:?}"),
            }
        }
    }

    #[test]
    fn refusals_from_the_sandbox() {
        let r = rejected(refusal(Refusal::Unrecognized { head: b"<!doctype".to_vec() }));
        assert_eq!((r.reason.code, r.media_type), (ReasonCode::InputUnsupportedFormat, None));
        assert!(r.reason.message.contains("3c21646f6374797065"), "{}", r.reason.message);
        let r = rejected(refusal(Refusal::Unrecognized { head: Vec::new() }));
        assert_eq!(r.reason.message, "the file is empty");
        let r = rejected(refusal(Refusal::NotAdmitted {
            format: Format::Jpeg,
            class: MediaClass::Image,
            admit: Admit::Audio,
        }));
        assert_eq!((r.reason.code, r.media_type), (ReasonCode::InputTypeMismatch, Some(MediaType::Image)));
        assert!(r.reason.message.contains("voice_note job takes one audio file"), "{}", r.reason.message);
        let r = rejected(refusal(Refusal::NotAdmitted {
            format: Format::Mp3,
            class: MediaClass::Audio,
            admit: Admit::Visual,
        }));
        assert!(r.reason.message.contains("send it as a voice_note job"), "{}", r.reason.message);
        let r = rejected(refusal(Refusal::Media {
            format: Format::Mp4,
            class: MediaClass::Audio,
            error: MediaError::Corrupt { message: "bad".into() },
        }));
        assert_eq!((r.reason.code, r.media_type), (ReasonCode::InputCorrupt, Some(MediaType::Audio)));
    }

    #[test]
    fn a_decoder_that_died_twice_is_corrupt_input_anything_else_of_the_sandbox_is_ours() {
        let r = rejected(sandbox_error(SandboxError::Crashed {
            how: "was killed by signal 11 (SIGSEGV)".into(),
            out_of_memory: false,
            memory_mb: 64,
        }));
        assert_eq!(r.reason.code, ReasonCode::InputCorrupt);
        assert!(r.reason.message.contains("SIGSEGV"), "{}", r.reason.message);
        let q = requeued(sandbox_error(SandboxError::TimedOut { stage: "s", budget: Duration::from_secs(1) }));
        assert_eq!(q.cause, Cause::Media);
        let q = requeued(sandbox_error(SandboxError::Spawn { message: "m".into() }));
        assert_eq!(q.cause, Cause::Internal);
    }

    #[test]
    fn a_flagged_item_says_its_score_and_threshold() {
        let n = NudityResult {
            model: "open_nsfw".into(),
            model_sha256: "x".into(),
            score: 0.91234,
            threshold: 0.5,
            flagged: true,
            frames: 3,
        };
        let r = flagged(MediaType::Video, &n);
        assert_eq!(r.code, ReasonCode::NudityFlagged);
        assert!(r.message.contains("this video (score 0.912") && r.message.contains("threshold 0.50"), "{}", r.message);
    }
}
