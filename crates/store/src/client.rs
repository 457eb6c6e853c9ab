//! The client calls: HEAD, GET (capped), PUT, DELETE, CopyObject, buckets.

use super::*;

/// What HEAD says about an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Size in bytes (`Content-Length`).
    pub size: u64,
    /// `Content-Type` as stored, if any (a hint only: the worker sniffs the bytes).
    pub content_type: Option<String>,
    /// The `ETag`, if the store gave one: tells a changed object from an unchanged one.
    pub etag: Option<String>,
}

/// One object of a listing, with what tells a changed object from an unchanged one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// The object's key.
    pub key: String,
    /// Its size in bytes, as listed.
    pub size: u64,
    /// Its ETag, if the store listed one.
    pub etag: Option<String>,
}

/// What a PUT wrote, for the verdict's `outputs[]` (`bytes`, `sha256`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutReceipt {
    /// Number of bytes written.
    pub bytes: u64,
    /// Lower-case hex SHA-256 of the bytes written.
    pub sha256: String,
}

/// A handle on the object store. Cheap to clone (the SDK client and settings are shared), so each
/// job task can hold its own.
#[derive(Clone)]
pub struct Store {
    pub(crate) client: Client,
    pub(crate) inner: Arc<Settings>,
}

pub(crate) struct Settings {
    pub(crate) retry: RetryPolicy,
    pub(crate) operation_timeout: Duration,
    /// Region used for `CreateBucket`'s location constraint (AWS only).
    pub(crate) region: String,
    pub(crate) custom_endpoint: bool,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("region", &self.inner.region)
            .field("custom_endpoint", &self.inner.custom_endpoint)
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Builds the client. Makes no request (use [`Store::check`] for readiness); only the
    /// region/credential chains may be consulted.
    pub async fn connect(cfg: &StoreConfig) -> Result<Store, StoreError> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &cfg.region {
            loader = loader.region(Region::new(region.clone()));
        }
        match (&cfg.access_key, &cfg.secret_key) {
            (Some(ak), Some(sk)) => {
                loader = loader.credentials_provider(Credentials::new(ak, sk, None, None, "mediagate-static"));
            }
            (None, None) => {}
            _ => {
                return Err(StoreError::other(
                    "Connect",
                    "",
                    "",
                    "an access key and a secret key must be given together (or neither, for the AWS default chain)",
                ))
            }
        }
        let sdk = loader.load().await;

        let region = match sdk.region() {
            Some(r) => r.to_string(),
            None => {
                warn!("no AWS region configured (AWS_REGION, profile, IMDS); using us-east-1");
                "us-east-1".to_owned()
            }
        };
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(cfg.connect_timeout)
            .operation_timeout(cfg.operation_timeout)
            .build();
        let mut b = aws_sdk_s3::config::Builder::from(&sdk)
            .region(Region::new(region.clone()))
            .timeout_config(timeouts)
            .retry_config(RetryConfig::disabled())
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(ep) = &cfg.endpoint {
            b = b.endpoint_url(ep.clone()).force_path_style(true);
        }
        let client = Client::from_conf(b.build());
        info!(endpoint = cfg.endpoint.as_deref().unwrap_or("aws"), region = %region, "S3 client ready");
        Ok(Store {
            client,
            inner: Arc::new(Settings {
                retry: cfg.retry.clone(),
                operation_timeout: cfg.operation_timeout,
                region,
                custom_endpoint: cfg.endpoint.is_some(),
            }),
        })
    }

    /// The retry policy in force, for callers that wrap several calls in [`retry`].
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.retry
    }

    /// HEAD an object: its size and stored content type, without downloading it.
    pub async fn head(&self, bucket: &str, key: &str) -> Result<ObjectInfo, StoreError> {
        retry(&self.inner.retry, "HeadObject", || async {
            let out = self
                .client
                .head_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| sort_sdk_error(e, "HeadObject", bucket, key))?;
            let size = out
                .content_length()
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| StoreError::other("HeadObject", bucket, key, "answer has no valid Content-Length"))?;
            debug!(bucket, key, size, content_type = out.content_type(), "s3 head");
            Ok(ObjectInfo {
                size,
                content_type: out.content_type().map(str::to_owned),
                etag: out.e_tag().map(str::to_owned),
            })
        })
        .await
    }

    /// Downloads an object of at most `max_bytes` with one GET: refused with
    /// [`StoreError::TooLarge`] before the body is read when the answer's `Content-Length` is
    /// over the limit, and cut off (again `TooLarge`) as soon as the body turns out longer anyway
    /// (a chunked answer, or a lying length), so memory stays bounded by `max_bytes` whatever the
    /// store does. No HEAD first: at real S3 latency a HEAD is a round trip of 20–100 ms.
    pub async fn get_at_most(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<Vec<u8>, StoreError> {
        self.get_inner(bucket, key, Some(max_bytes)).await
    }

    /// Starts a GET of an object of at most `max_bytes` and returns once its answer's headers are
    /// in, the body not yet read: the caller learns the size (to reserve memory for it) without
    /// a HEAD. The limit is enforced as in [`Store::get_at_most`].
    pub async fn open_at_most(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<Download<'_>, StoreError> {
        let (size, body) = retry(&self.inner.retry, "GetObject", || async {
            let send = self.client.get_object().bucket(bucket).key(key).send();
            let out = tokio::time::timeout(self.inner.operation_timeout, send)
                .await
                .map_err(|_| {
                    StoreError::transient(
                        "GetObject",
                        bucket,
                        key,
                        format!("no answer within {:?}", self.inner.operation_timeout),
                    )
                })?
                .map_err(|e| sort_sdk_error(e, "GetObject", bucket, key))?;
            let declared = out.content_length().and_then(|n| u64::try_from(n).ok());
            if let Some(size) = declared.filter(|&n| n > max_bytes) {
                debug!(bucket, key, size, limit = max_bytes, "s3 object over limit; not downloading");
                return Err(StoreError::TooLarge { size, limit: max_bytes });
            }
            Ok((declared, out.body))
        })
        .await?;
        Ok(Download { store: self, bucket: bucket.to_string(), key: key.to_string(), limit: max_bytes, size, body })
    }

    /// Downloads a whole object, whatever its size (manifests and other trusted, small objects;
    /// use [`Store::get_at_most`] for anything a user uploaded).
    pub async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, StoreError> {
        self.get_inner(bucket, key, None).await
    }

    async fn get_inner(&self, bucket: &str, key: &str, limit: Option<u64>) -> Result<Vec<u8>, StoreError> {
        let mut body = Vec::new();
        self.get_into(bucket, key, limit, &mut body).await?;
        Ok(body)
    }

    /// GETs an object into `sink` (started over on each attempt), within `limit`.
    async fn get_into<S: BodySink>(
        &self,
        bucket: &str,
        key: &str,
        limit: Option<u64>,
        sink: &mut S,
    ) -> Result<(), StoreError> {
        // Each attempt starts the sink over; the lock only lends it to one attempt at a time.
        let sink = tokio::sync::Mutex::new(sink);
        retry(&self.inner.retry, "GetObject", || async {
            let attempt = async {
                let out = self
                    .client
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| sort_sdk_error(e, "GetObject", bucket, key))?;
                let declared = out.content_length().and_then(|n| u64::try_from(n).ok());
                if let (Some(limit), Some(size)) = (limit, declared) {
                    if size > limit {
                        return Err(StoreError::TooLarge { size, limit });
                    }
                }
                let mut sink = sink.lock().await;
                read_capped(out.body, declared, limit, &mut **sink)
                    .await
                    .map_err(|e| e.into_store_error("GetObject", bucket, key))?;
                Ok(sink.len())
            };
            let got = tokio::time::timeout(self.inner.operation_timeout, attempt).await.map_err(|_| {
                StoreError::transient(
                    "GetObject",
                    bucket,
                    key,
                    format!("download did not finish within {:?}", self.inner.operation_timeout),
                )
            })??;
            debug!(bucket, key, bytes = got, "s3 get");
            Ok(())
        })
        .await
    }

    /// Uploads `body` with a `Content-Type` (a single plain PUT; outputs stay far below the 5 GiB
    /// single-PUT limit). Returns what the verdict records: byte count and hex SHA-256. `body`
    /// is anything that turns into `Bytes` without a copy: a `Vec<u8>`, or
    /// `Bytes::from_owner` of bytes held elsewhere (a quarantined original's memfd).
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: impl Into<bytes::Bytes>,
        content_type: &str,
    ) -> Result<PutReceipt, StoreError> {
        let body: bytes::Bytes = body.into();
        let receipt = PutReceipt { bytes: body.len() as u64, sha256: hex::encode(Sha256::digest(&body)) };
        retry(&self.inner.retry, "PutObject", || async {
            self.client
                .put_object()
                .bucket(bucket)
                .key(key)
                .content_type(content_type)
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .map_err(|e| sort_sdk_error(e, "PutObject", bucket, key))?;
            Ok(())
        })
        .await?;
        debug!(bucket, key, bytes = receipt.bytes, sha256 = %receipt.sha256, content_type, "s3 put");
        Ok(receipt)
    }

    /// Deletes an object; a missing key (or missing bucket) is success, as S3 itself answers.
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        let r = retry(&self.inner.retry, "DeleteObject", || async {
            self.client
                .delete_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| sort_sdk_error(e, "DeleteObject", bucket, key))?;
            Ok(())
        })
        .await;
        match r {
            Ok(()) | Err(StoreError::NotFound { .. }) => {
                debug!(bucket, key, "s3 delete");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// All keys under `prefix`, following continuation tokens. Holds every key in memory: for
    /// buckets with millions of keys, page through [`Store::list_pages`] instead.
    pub async fn list_keys(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, StoreError> {
        let keys = self.list_pages(bucket, prefix).all_keys().await?;
        debug!(bucket, prefix, keys = keys.len(), "s3 list");
        Ok(keys)
    }

    /// Every object under `prefix` with its size and ETag (hash banks under an S3 prefix: what
    /// changed since the last load).
    pub async fn list_objects(&self, bucket: &str, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        let mut pages = self.list_pages(bucket, prefix);
        let mut all = Vec::new();
        while let Some(page) = pages.next_objects().await? {
            all.extend(page);
        }
        Ok(all)
    }

    /// A pager over the keys under `prefix` (ListObjectsV2), one page per request, so that callers
    /// such as `mediagate reprocess` can stream through millions of keys.
    pub fn list_pages(&self, bucket: &str, prefix: &str) -> KeyPages {
        KeyPages {
            store: self.clone(),
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            page_size: None,
            delimiter: None,
            start_after: None,
            token: None,
            done: false,
        }
    }

    /// Server-side copy (CopyObject), keeping the source's content type and metadata: used to put
    /// a blocked original into quarantine byte for byte without downloading it.
    pub async fn copy(
        &self,
        src_bucket: &str,
        src_key: &str,
        dst_bucket: &str,
        dst_key: &str,
    ) -> Result<(), StoreError> {
        let source = format!("{}/{}", src_bucket, encode_copy_source_key(src_key));
        retry(&self.inner.retry, "CopyObject", || async {
            self.client.copy_object().copy_source(&source).bucket(dst_bucket).key(dst_key).send().await.map_err(
                |e| {
                    let code = e.code().map(str::to_owned);
                    match (sort_sdk_error(e, "CopyObject", dst_bucket, dst_key), code.as_deref()) {
                        // Either bucket may be the missing one: say so rather than guess.
                        (StoreError::NotFound { .. }, Some("NoSuchBucket")) => StoreError::Other {
                            op: "CopyObject",
                            bucket: dst_bucket.to_owned(),
                            key: dst_key.to_owned(),
                            detail: format!(
                                "NoSuchBucket: {src_bucket} (source) or {dst_bucket} (destination) does not exist"
                            ),
                        },
                        // Otherwise a 404 is the source object.
                        (StoreError::NotFound { .. }, _) => {
                            StoreError::NotFound { bucket: src_bucket.to_owned(), key: src_key.to_owned() }
                        }
                        (other, _) => other,
                    }
                },
            )?;
            Ok(())
        })
        .await?;
        debug!(src_bucket, src_key, dst_bucket, dst_key, "s3 copy");
        Ok(())
    }

    /// Creates `bucket` when it does not exist (local set-up and tests; production buckets are
    /// provisioned by operators). Idempotent: an existing bucket we can reach is success.
    pub async fn ensure_bucket(&self, bucket: &str) -> Result<(), StoreError> {
        match self.check(bucket).await {
            Ok(()) => return Ok(()),
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let r = retry(&self.inner.retry, "CreateBucket", || async {
            let mut req = self.client.create_bucket().bucket(bucket);
            // AWS wants a location constraint outside us-east-1; other stores ignore it.
            if !self.inner.custom_endpoint && self.inner.region != "us-east-1" {
                req = req.create_bucket_configuration(
                    CreateBucketConfiguration::builder()
                        .location_constraint(BucketLocationConstraint::from(self.inner.region.as_str()))
                        .build(),
                );
            }
            req.send()
                .await
                .map_err(|e| {
                    let code = e.code().map(str::to_owned);
                    match code.as_deref() {
                        // Lost a race with another creator (or s3s-fs's answer for "exists"):
                        // confirm below that we can reach it.
                        Some("BucketAlreadyOwnedByYou") | Some("BucketAlreadyExists") => None,
                        _ => Some(sort_sdk_error(e, "CreateBucket", bucket, "")),
                    }
                })
                .map(|_| ())
                .or_else(|e| match e {
                    None => Ok(()),
                    Some(e) => Err(e),
                })
        })
        .await;
        r?;
        self.check(bucket).await?;
        info!(bucket, "bucket ready");
        Ok(())
    }

    /// HeadBucket: the bucket exists and our credentials reach it. For readiness probes and
    /// start-up checks. A missing bucket is [`StoreError::NotFound`] with an empty key.
    pub async fn check(&self, bucket: &str) -> Result<(), StoreError> {
        retry(&self.inner.retry, "HeadBucket", || async {
            self.client
                .head_bucket()
                .bucket(bucket)
                .send()
                .await
                .map_err(|e| sort_sdk_error(e, "HeadBucket", bucket, ""))?;
            Ok(())
        })
        .await
    }
}

/// Where a download's body goes, chunk by chunk: memory (`Vec<u8>`) or, for the worker's
/// inputs, a sealed memfd the sandbox maps.
pub trait BodySink: Send {
    /// Appends a chunk.
    fn append(&mut self, chunk: &[u8]) -> std::io::Result<()>;
    /// Bytes appended so far.
    fn len(&self) -> u64;
    /// Whether nothing has been appended.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Throws away what was appended (the download starts over).
    fn reset(&mut self) -> std::io::Result<()>;
    /// Room for `bytes` more, when the answer says how many are coming (a hint).
    fn reserve(&mut self, _bytes: u64) {}
}

impl BodySink for Vec<u8> {
    fn append(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.extend_from_slice(chunk);
        Ok(())
    }
    fn len(&self) -> u64 {
        Vec::len(self) as u64
    }
    fn reset(&mut self) -> std::io::Result<()> {
        self.clear();
        Ok(())
    }
    fn reserve(&mut self, bytes: u64) {
        Vec::reserve(self, usize::try_from(bytes.min(256 << 20)).unwrap_or(0));
    }
}

/// Errors while reading a body, before bucket/key are attached.
#[derive(Debug)]
pub(crate) enum BodyError {
    TooLarge {
        size: u64,
        limit: u64,
    },
    Stream(String),
    Truncated {
        got: u64,
        declared: u64,
    },
    /// The sink would not take the bytes (no memory for a memfd, say): ours, not the store's.
    Sink(String),
}

impl BodyError {
    fn into_store_error(self, op: &'static str, bucket: &str, key: &str) -> StoreError {
        match self {
            BodyError::TooLarge { size, limit } => StoreError::TooLarge { size, limit },
            BodyError::Stream(detail) => StoreError::transient(op, bucket, key, format!("body read failed: {detail}")),
            BodyError::Truncated { got, declared } => {
                StoreError::transient(op, bucket, key, format!("body ended after {got} of {declared} bytes"))
            }
            BodyError::Sink(detail) => StoreError::other(op, bucket, key, format!("holding the body failed: {detail}")),
        }
    }
}

/// Reads `body` into `sink` (emptied first), stopping as soon as it grows past `limit`.
pub(crate) async fn read_capped<S: BodySink + ?Sized>(
    mut body: ByteStream,
    declared: Option<u64>,
    limit: Option<u64>,
    sink: &mut S,
) -> Result<(), BodyError> {
    sink.reset().map_err(|e| BodyError::Sink(e.to_string()))?;
    sink.reserve(declared.unwrap_or(0).min(limit.unwrap_or(u64::MAX)));
    loop {
        match body.try_next().await {
            Ok(Some(chunk)) => {
                let len = sink.len() + chunk.len() as u64;
                if let Some(limit) = limit {
                    if len > limit {
                        return Err(BodyError::TooLarge { size: len, limit });
                    }
                }
                sink.append(&chunk).map_err(|e| BodyError::Sink(e.to_string()))?;
            }
            Ok(None) => break,
            Err(e) => return Err(BodyError::Stream(chain(&e))),
        }
    }
    if let Some(declared) = declared {
        if sink.len() < declared {
            return Err(BodyError::Truncated { got: sink.len(), declared });
        }
    }
    Ok(())
}

/// A GET whose answer's headers are in and whose body is not yet read ([`Store::open_at_most`]).
pub struct Download<'a> {
    store: &'a Store,
    bucket: String,
    key: String,
    limit: u64,
    size: Option<u64>,
    body: ByteStream,
}

impl Download<'_> {
    /// The answer's `Content-Length`, when it had one.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// Reads the body within the limit. A read that fails part-way (a dropped connection, a body
    /// shorter than its length) is retried with a fresh GET, under the store's retry policy.
    pub async fn read(self) -> Result<Vec<u8>, StoreError> {
        let mut body = Vec::new();
        self.read_into(&mut body).await?;
        Ok(body)
    }

    /// [`Download::read`] into `sink` (emptied before each attempt) instead of a new `Vec`.
    pub async fn read_into<S: BodySink>(self, sink: &mut S) -> Result<(), StoreError> {
        let Download { store, bucket, key, limit, size, body } = self;
        let timeout = store.inner.operation_timeout;
        let first = match tokio::time::timeout(timeout, read_capped(body, size, Some(limit), sink)).await {
            Ok(r) => r.map_err(|e| e.into_store_error("GetObject", &bucket, &key)),
            Err(_) => Err(StoreError::transient(
                "GetObject",
                &bucket,
                &key,
                format!("download did not finish within {timeout:?}"),
            )),
        };
        match first {
            Ok(()) => {
                debug!(bucket, key, bytes = sink.len(), "s3 get");
                Ok(())
            }
            Err(e) if e.is_transient() && store.inner.retry.attempts > 1 => {
                warn!(bucket, key, error = %e, "body read failed; downloading again");
                store.get_into(&bucket, &key, Some(limit), sink).await
            }
            Err(e) => Err(e),
        }
    }
}

/// `x-amz-copy-source` is `bucket/key` with the key URL-encoded (slashes kept).
pub(crate) fn encode_copy_source_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::primitives::SdkBody;

    #[tokio::test]
    async fn read_capped_stops_past_the_limit() {
        // No declared length (as with a chunked answer): only the running count can stop it.
        let body = ByteStream::new(SdkBody::from(b"0123456789abcdef".as_slice()));
        match read_capped(body, None, Some(10), &mut Vec::new()).await {
            Err(BodyError::TooLarge { size, limit }) => {
                assert_eq!(limit, 10);
                assert!(size > 10);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn read_capped_reads_within_limit_and_detects_truncation() {
        let body = ByteStream::new(SdkBody::from(b"hello".as_slice()));
        let mut got = b"stale bytes of an earlier attempt".to_vec();
        read_capped(body, Some(5), Some(5), &mut got).await.unwrap();
        assert_eq!(got, b"hello");
        let body = ByteStream::new(SdkBody::from(b"hel".as_slice()));
        assert!(matches!(
            read_capped(body, Some(5), None, &mut Vec::new()).await,
            Err(BodyError::Truncated { got: 3, declared: 5 })
        ));
    }

    #[test]
    fn copy_source_keys_are_encoded() {
        assert_eq!(encode_copy_source_key("a/b c+ü.jpg"), "a/b%20c%2B%C3%BC.jpg");
    }
}
