//! How the store connects and how hard it tries.

use super::*;

/// How the store connects and how hard it tries.
///
/// Every field has a default suited to production ([`StoreConfig::default`]); the worker fills the
/// first four from `MEDIAGATE_S3_ENDPOINT` and the standard `AWS_*` variables (contract §6).
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Custom endpoint (`http://127.0.0.1:9000`) for MinIO, s3s-fs and other S3-compatible
    /// stores; `None` means AWS S3. When set, path-style addressing is used.
    pub endpoint: Option<String>,
    /// Region; `None` falls back to the AWS default chain (`AWS_REGION`, profile, IMDS), then to
    /// `us-east-1` (which S3-compatible stores accept whatever their own setting).
    pub region: Option<String>,
    /// Static access key; with `secret_key`, replaces the AWS default credential chain
    /// (environment, profile, web identity, IMDS). Both or neither.
    pub access_key: Option<String>,
    /// Static secret key; see `access_key`.
    pub secret_key: Option<String>,
    /// Limit for opening a TCP/TLS connection, so that an unreachable store fails fast.
    pub connect_timeout: Duration,
    /// Limit for one attempt of one operation, the body of a GET included, so that a stalled
    /// store cannot hold a job forever.
    pub operation_timeout: Duration,
    /// How transient failures are retried inside the store.
    pub retry: RetryPolicy,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            endpoint: None,
            region: None,
            access_key: None,
            secret_key: None,
            connect_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
        }
    }
}
