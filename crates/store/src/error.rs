//! Store errors, sorted by what the caller should do about them.

use super::*;

/// Why a store operation failed, sorted by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object (or its bucket) does not exist: S3 answered 404 / `NoSuchKey` / `NoSuchBucket`
    /// on an object operation. For a source object the worker reports `input.missing`.
    #[error("{} does not exist", location(bucket, key))]
    NotFound {
        /// Bucket asked for.
        bucket: String,
        /// Key asked for.
        key: String,
    },
    /// The object is bigger than the caller's limit; nothing (or only the first `limit` + 1
    /// bytes) was downloaded. The worker reports `input.too_large`.
    #[error("object is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// The object's size, or the bytes received before the download was cut off.
        size: u64,
        /// The limit that was applied.
        limit: u64,
    },
    /// S3 answered 403: credentials or policy are wrong. Not the input's fault (on AWS a missing
    /// key also reads 403 without `s3:ListBucket`); the contract retries then fails the job.
    #[error("S3 {op} {}: access denied ({detail})", location(bucket, key))]
    Denied {
        /// Operation (`GetObject`, …).
        op: &'static str,
        /// Bucket of the request.
        bucket: String,
        /// Key of the request (empty for bucket operations).
        key: String,
        /// HTTP status, S3 error code and message.
        detail: String,
    },
    /// Worth retrying: 5xx, throttling, timeouts, refused or broken connections.
    #[error("S3 {op} {}: transient failure: {detail}", location(bucket, key))]
    Transient {
        /// Operation (`GetObject`, …).
        op: &'static str,
        /// Bucket of the request.
        bucket: String,
        /// Key of the request (empty for bucket operations).
        key: String,
        /// What happened (HTTP status and code, or the I/O error chain).
        detail: String,
    },
    /// Anything else (a 4xx other than 403/404, a bad configuration, a malformed answer).
    #[error("S3 {op} {}: {detail}", location(bucket, key))]
    Other {
        /// Operation (`GetObject`, …).
        op: &'static str,
        /// Bucket of the request.
        bucket: String,
        /// Key of the request (empty for bucket operations or configuration errors).
        key: String,
        /// What happened.
        detail: String,
    },
}

pub(crate) fn location(bucket: &str, key: &str) -> String {
    if key.is_empty() {
        format!("s3://{bucket}")
    } else {
        format!("s3://{bucket}/{key}")
    }
}

impl StoreError {
    /// True when the failure is not the input's fault and the job should be tried again later
    /// (transient failures and access denied, per contract §3: "retried, and ends `failed` if it
    /// persists"). `NotFound` and `TooLarge` are verdicts about the input; `Other` will not heal
    /// by itself.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Transient { .. } | StoreError::Denied { .. })
    }

    /// True only for failures that an immediate retry with backoff may fix (the class that
    /// [`retry`] retries).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Transient { .. })
    }

    pub(crate) fn other(op: &'static str, bucket: &str, key: &str, detail: impl Into<String>) -> Self {
        StoreError::Other { op, bucket: bucket.to_owned(), key: key.to_owned(), detail: detail.into() }
    }

    pub(crate) fn transient(op: &'static str, bucket: &str, key: &str, detail: impl Into<String>) -> Self {
        StoreError::Transient { op, bucket: bucket.to_owned(), key: key.to_owned(), detail: detail.into() }
    }
}

/// The error and its sources, `: `-separated, without the SDK's trailing debug dump.
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let msg = e.to_string();
        if !out.ends_with(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = e.source();
    }
    out
}

/// S3 error codes that mean "try again".
pub(crate) const TRANSIENT_CODES: &[&str] = &[
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "OperationAborted",
    "RequestLimitExceeded",
];

/// Sorts an SDK error into a [`StoreError`]. `object_op` says whether a 404 means the object
/// (rather than only the bucket) is missing.
pub(crate) fn sort_sdk_error<E>(err: SdkError<E>, op: &'static str, bucket: &str, key: &str) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::TimeoutError(_) => StoreError::transient(op, bucket, key, chain(&err)),
        SdkError::DispatchFailure(d) if d.is_user() => StoreError::other(op, bucket, key, chain(&err)),
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::transient(op, bucket, key, chain(&err))
        }
        SdkError::ConstructionFailure(_) => StoreError::other(op, bucket, key, chain(&err)),
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se.err().code().map(str::to_owned);
            let message = se.err().message().map(str::to_owned);
            let mut detail = format!("HTTP {status}");
            if let Some(c) = &code {
                detail.push(' ');
                detail.push_str(c);
            }
            if let Some(m) = &message {
                detail.push_str(": ");
                detail.push_str(m);
            }
            let code = code.as_deref().unwrap_or("");
            if status == 404 || matches!(code, "NoSuchKey" | "NoSuchBucket" | "NotFound") {
                StoreError::NotFound { bucket: bucket.to_owned(), key: key.to_owned() }
            } else if status == 403 {
                StoreError::Denied { op, bucket: bucket.to_owned(), key: key.to_owned(), detail }
            } else if status >= 500 || status == 429 || status == 408 || TRANSIENT_CODES.contains(&code) {
                StoreError::transient(op, bucket, key, detail)
            } else {
                StoreError::other(op, bucket, key, detail)
            }
        }
        _ => StoreError::other(op, bucket, key, chain(&err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_bucket_key_and_status() {
        let e = StoreError::Denied {
            op: "GetObject",
            bucket: "incoming".into(),
            key: "u/a.jpg".into(),
            detail: "HTTP 403 AccessDenied: Access Denied".into(),
        };
        assert_eq!(
            e.to_string(),
            "S3 GetObject s3://incoming/u/a.jpg: access denied (HTTP 403 AccessDenied: Access Denied)"
        );
        assert!(e.is_retryable() && !e.is_transient());
        let e = StoreError::NotFound { bucket: "incoming".into(), key: "x".into() };
        assert_eq!(e.to_string(), "s3://incoming/x does not exist");
        assert!(!e.is_retryable());
    }
}
