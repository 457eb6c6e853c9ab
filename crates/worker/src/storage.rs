//! Where a job's files come from and where everything it writes goes: S3 for the worker, a
//! local directory for `mediagate inspect` (contract §7: the whole job with no broker and no
//! S3) and for the worker's own tests.
//!
//! Architecture invariant: the backends differ only in this module. The job path asks for
//! objects by bucket and key — a source to fetch, outputs, manifests, quarantine copies, review
//! decisions — and never learns which backend answers. `inspect`'s named files keep only
//! outputs (its documented behaviour: no manifest, no quarantine, no decisions), which this
//! module says by answering "not kept" for records ([`Storage::put_record`] returns `false`,
//! reads find nothing). Everything between the fetch and the write — rules, the sandbox call,
//! the banks, the classifier, the verdict — is the same code, so what `inspect` prints is what
//! a worker would publish for the same input and settings, and its files are the same bytes.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use mediagate_contract::keys::{output_item_prefix, output_key};
use mediagate_contract::{ItemId, JobId};
use mediagate_store::{BodySink, Download, PutReceipt, Store, StoreError};
use sha2::Digest as _;

use crate::codes::Requeue;

/// The bucket name a local run reports for its sources and outputs (§7).
pub const LOCAL_BUCKET: &str = "local";

/// Where a job's bytes live.
pub(crate) struct Storage(Backend);

enum Backend {
    /// The worker's: sources, outputs, quarantine and manifests in S3.
    S3(Store),
    /// Files on this machine ([`LocalFiles`]).
    Local(LocalFiles),
}

/// A source whose size is known and whose body is not yet read ([`Storage::open_source`]).
pub(crate) enum Source<'a> {
    S3(Download<'a>),
    File { path: PathBuf, size: u64, limit: u64, bucket: String, key: String },
}

impl Source<'_> {
    /// The size, when the store said it.
    pub(crate) fn size(&self) -> Option<u64> {
        match self {
            Source::S3(d) => d.size(),
            Source::File { size, .. } => Some(*size),
        }
    }

    /// Reads the body into `sink`, within the limit it was opened with.
    pub(crate) async fn read_into<S: BodySink>(self, sink: &mut S) -> Result<(), StoreError> {
        match self {
            Source::S3(d) => d.read_into(sink).await,
            Source::File { path, limit, bucket, key, .. } => {
                // Off the async threads; a local source is `inspect`'s or a test's.
                let bytes = tokio::task::spawn_blocking(move || read_file_at_most(&path, limit, &bucket, &key))
                    .await
                    .map_err(|e| StoreError::Other {
                        op: "read",
                        bucket: LOCAL_BUCKET.into(),
                        key: String::new(),
                        detail: format!("the reading thread failed: {e}"),
                    })??;
                sink.reset().and_then(|()| sink.append(&bytes)).map_err(|e| StoreError::Other {
                    op: "read",
                    bucket: LOCAL_BUCKET.into(),
                    key: String::new(),
                    detail: e.to_string(),
                })
            }
        }
    }
}

impl Storage {
    /// S3 (the worker).
    pub(crate) fn s3(store: Store) -> Storage {
        Storage(Backend::S3(store))
    }

    /// Files on this machine (`inspect`, tests).
    pub(crate) fn local(files: LocalFiles) -> Storage {
        Storage(Backend::Local(files))
    }

    /// Opens a source of at most `limit` bytes: its size is known before its body is read (a
    /// GET's `Content-Length`; a file's length), so the caller can reserve memory first. An
    /// object over the limit is [`StoreError::TooLarge`] before anything is read.
    pub(crate) async fn open_source(&self, bucket: &str, key: &str, limit: u64) -> Result<Source<'_>, StoreError> {
        match &self.0 {
            Backend::S3(store) => store.open_at_most(bucket, key, limit).await.map(Source::S3),
            Backend::Local(local) => {
                let path = local.source(bucket, key)?;
                let size = std::fs::metadata(&path).map_err(|e| file_error("read", bucket, key, e))?.len();
                if size > limit {
                    return Err(StoreError::TooLarge { size, limit });
                }
                Ok(Source::File { path, size, limit, bucket: bucket.into(), key: key.into() })
            }
        }
    }

    /// The key of an output variant: the contract's layout (§4), or `{item_id}/{variant}.{ext}`
    /// under `inspect`'s directory (§7).
    pub(crate) fn output_key(&self, job_id: &JobId, item_id: &ItemId, variant: &str, ext: &str) -> String {
        match &self.0 {
            Backend::Local(LocalFiles { layout: Layout::Named { .. } }) => format!("{item_id}/{variant}.{ext}"),
            _ => output_key(job_id, item_id, variant, ext),
        }
    }

    /// The prefix every output of an item is under.
    pub(crate) fn output_item_prefix(&self, job_id: &JobId, item_id: &ItemId) -> String {
        match &self.0 {
            Backend::Local(LocalFiles { layout: Layout::Named { .. } }) => format!("{item_id}/"),
            _ => output_item_prefix(job_id, item_id),
        }
    }

    /// Writes an output variant under `key` in `bucket`; returns the bucket the verdict names
    /// (`local` for `inspect`) and what was written.
    pub(crate) async fn put_output(
        &self,
        bucket: &str,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(String, PutReceipt), Requeue> {
        let receipt =
            self.put(bucket, key, bytes.into(), content_type).await.map_err(|e| storage(bucket, key, "writing", e))?;
        let named = match &self.0 {
            Backend::Local(LocalFiles { layout: Layout::Named { .. } }) => LOCAL_BUCKET,
            _ => bucket,
        };
        Ok((named.to_string(), receipt))
    }

    /// The outputs stored under `prefix`.
    ///
    /// Outputs are `{variant}.{ext}` directly under the item's prefix, so only the keys directly
    /// under it are listed (ListObjectsV2 with the delimiter `/`): on a store that keeps keys as
    /// files, that reads this one folder instead of walking the whole bucket (s3s-fs took over
    /// a minute a listing in a bucket of 3 million objects, and the job timed out).
    pub(crate) async fn list_outputs(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, Requeue> {
        let listed = match &self.0 {
            Backend::S3(store) => store.list_pages(bucket, prefix).delimiter("/").all_keys().await,
            Backend::Local(local) => local.list_keys(bucket, prefix).map(|keys| {
                keys.into_iter().filter(|k| k.strip_prefix(prefix).is_some_and(|rest| !rest.contains('/'))).collect()
            }),
        };
        listed.map_err(|e| storage(bucket, prefix, "listing", e))
    }

    /// Removes an output; a missing one is success.
    pub(crate) async fn delete_output(&self, bucket: &str, key: &str) -> Result<(), Requeue> {
        let result = match &self.0 {
            Backend::S3(store) => store.delete(bucket, key).await,
            Backend::Local(local) => local.delete(&local.object_path(bucket, key)),
        };
        result.map_err(|e| storage(bucket, key, "deleting", e))
    }

    /// Writes a record (a manifest, a quarantined original or its entry): `Ok(false)` when this
    /// storage keeps no records (`inspect`), and nothing is written.
    pub(crate) async fn put_record(
        &self,
        bucket: &str,
        key: &str,
        body: bytes::Bytes,
        content_type: &str,
    ) -> Result<bool, StoreError> {
        if !self.keeps_records() {
            return Ok(false);
        }
        self.put(bucket, key, body, content_type).await.map(|_| true)
    }

    /// Reads a record of at most `max_bytes`: `None` when there is none (or this storage keeps
    /// no records); [`StoreError::TooLarge`] when it is over the limit.
    pub(crate) async fn get_record(
        &self,
        bucket: &str,
        key: &str,
        max_bytes: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        if !self.keeps_records() {
            return Ok(None);
        }
        let got = match &self.0 {
            Backend::S3(store) => store.get_at_most(bucket, key, max_bytes).await,
            Backend::Local(local) => read_file_at_most(&local.object_path(bucket, key), max_bytes, bucket, key),
        };
        match got {
            Ok(bytes) => Ok(Some(bytes)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The keys of the records under `prefix` (none where no records are kept).
    pub(crate) async fn list_records(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, StoreError> {
        if !self.keeps_records() {
            return Ok(Vec::new());
        }
        self.list(bucket, prefix).await
    }

    /// Whether manifests, quarantine copies and decisions are kept: everywhere but `inspect`.
    fn keeps_records(&self) -> bool {
        !matches!(&self.0, Backend::Local(LocalFiles { layout: Layout::Named { .. } }))
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: bytes::Bytes,
        content_type: &str,
    ) -> Result<PutReceipt, StoreError> {
        match &self.0 {
            Backend::S3(store) => store.put(bucket, key, body, content_type).await,
            Backend::Local(local) => local.put(&local.object_path(bucket, key), &body),
        }
    }

    async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, StoreError> {
        match &self.0 {
            Backend::S3(store) => store.list_keys(bucket, prefix).await,
            Backend::Local(local) => local.list_keys(bucket, prefix),
        }
    }
}

/// A storage error on the job path as a requeue (the store, not the job).
fn storage(bucket: &str, key: &str, what: &str, e: StoreError) -> Requeue {
    Requeue::storage(format!("{what} s3://{bucket}/{key}: {e}"))
}

fn file_error(op: &'static str, bucket: &str, key: &str, e: std::io::Error) -> StoreError {
    match e.kind() {
        std::io::ErrorKind::NotFound => StoreError::NotFound { bucket: bucket.into(), key: key.into() },
        _ => StoreError::Other { op, bucket: bucket.into(), key: key.into(), detail: e.to_string() },
    }
}

/// A file's bytes, refusing one over `limit` before reading it and cutting off one that grows
/// while it is read, as the S3 GET does.
fn read_file_at_most(path: &Path, limit: u64, bucket: &str, key: &str) -> Result<Vec<u8>, StoreError> {
    let io = |e| file_error("read", bucket, key, e);
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size > limit {
        return Err(StoreError::TooLarge { size, limit });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(StoreError::TooLarge { size: bytes.len() as u64, limit });
    }
    Ok(bytes)
}

/// Files on this machine as a store. Two layouts:
///
/// - [`LocalFiles::new`], `inspect`'s: item `i`'s source is the `i`th named file, outputs go
///   under a directory as `{item_id}/{variant}.{ext}`, and no record is kept (no manifest, no
///   quarantine, no decisions);
/// - [`LocalFiles::buckets`]: a directory holding each bucket as a folder, every object at
///   `DIR/{bucket}/{key}` as S3 would hold it (sources, outputs, manifests, quarantine copies,
///   decisions): the worker's own tests drive the whole job path on it without S3.
#[derive(Debug, Clone)]
pub struct LocalFiles {
    layout: Layout,
}

#[derive(Debug, Clone)]
enum Layout {
    Named { sources: Vec<PathBuf>, out: PathBuf },
    Buckets { root: PathBuf },
}

impl LocalFiles {
    /// `sources[i]` is read for the item whose source key is `i`; outputs go under `out`.
    pub fn new(sources: Vec<PathBuf>, out: PathBuf) -> LocalFiles {
        LocalFiles { layout: Layout::Named { sources, out } }
    }

    /// Every bucket a folder of `root`, every object a file at `root/{bucket}/{key}`.
    pub fn buckets(root: impl Into<PathBuf>) -> LocalFiles {
        LocalFiles { layout: Layout::Buckets { root: root.into() } }
    }

    /// The file of a source.
    fn source(&self, bucket: &str, key: &str) -> Result<PathBuf, StoreError> {
        let not_found = || StoreError::NotFound { bucket: bucket.into(), key: key.into() };
        match &self.layout {
            Layout::Named { sources, .. } => {
                key.parse::<usize>().ok().and_then(|i| sources.get(i)).cloned().ok_or_else(not_found)
            }
            Layout::Buckets { .. } => {
                Some(self.object_path(bucket, key)).filter(|_| safe_key(key)).ok_or_else(not_found)
            }
        }
    }

    /// Where an object is kept (for `Named`, only outputs are, under the output directory).
    fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        match &self.layout {
            Layout::Named { out, .. } => out.join(key),
            Layout::Buckets { root } => root.join(bucket).join(key),
        }
    }

    /// Writes a file (through a temporary file renamed into place, so a reader never sees half
    /// of one); the receipt is the S3 PUT's.
    fn put(&self, path: &Path, bytes: &[u8]) -> Result<PutReceipt, StoreError> {
        let io = |e: std::io::Error| StoreError::Other {
            op: "write",
            bucket: LOCAL_BUCKET.into(),
            key: path.display().to_string(),
            detail: e.to_string(),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".part");
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(PutReceipt { bytes: bytes.len() as u64, sha256: hex::encode(sha2::Sha256::digest(bytes)) })
    }

    /// The keys under `prefix` in `bucket`, every level below it, sorted (as an S3 listing).
    fn list_keys(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, StoreError> {
        // The deepest folder the prefix names; keys under it are filtered by the whole prefix.
        let folder = prefix.rsplit_once('/').map_or("", |(dir, _)| dir);
        let top = self.object_path(bucket, folder);
        let base = self.object_path(bucket, "");
        let mut keys = Vec::new();
        let mut stack = vec![top];
        while let Some(dir) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(file_error("list", bucket, prefix, e)),
            };
            for entry in entries.filter_map(Result::ok) {
                let path = entry.path();
                match entry.file_type() {
                    Ok(t) if t.is_dir() => stack.push(path),
                    Ok(t) if t.is_file() => {
                        let key = path.strip_prefix(&base).ok().and_then(Path::to_str).map(str::to_owned);
                        if let Some(key) = key.filter(|k| k.starts_with(prefix) && !k.ends_with(".part")) {
                            keys.push(key);
                        }
                    }
                    _ => {}
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Removes a file; a missing one is success.
    fn delete(&self, path: &Path) -> Result<(), StoreError> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::Other {
                op: "delete",
                bucket: LOCAL_BUCKET.into(),
                key: path.display().to_string(),
                detail: e.to_string(),
            }),
        }
    }
}

/// A key that stays inside its bucket's folder: relative, no `..` or empty segment.
fn safe_key(key: &str) -> bool {
    !key.is_empty() && !key.starts_with('/') && key.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mediagate-local-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    struct Sink(Vec<u8>);

    impl BodySink for Sink {
        fn append(&mut self, chunk: &[u8]) -> std::io::Result<()> {
            self.0.extend_from_slice(chunk);
            Ok(())
        }
        fn len(&self) -> u64 {
            self.0.len() as u64
        }
        fn reset(&mut self) -> std::io::Result<()> {
            self.0.clear();
            Ok(())
        }
    }

    async fn read(storage: &Storage, bucket: &str, key: &str, limit: u64) -> Result<Vec<u8>, StoreError> {
        let source = storage.open_source(bucket, key, limit).await?;
        let mut sink = Sink(Vec::new());
        source.read_into(&mut sink).await?;
        Ok(sink.0)
    }

    #[tokio::test]
    async fn named_sources_are_read_within_the_limit_by_index() {
        let dir = scratch("read");
        let src = dir.join("a.bin");
        std::fs::write(&src, b"0123456789").unwrap();
        let local = Storage::local(LocalFiles::new(vec![src], dir.join("out")));
        assert_eq!(read(&local, LOCAL_BUCKET, "0", 10).await.unwrap(), b"0123456789");
        assert_eq!(local.open_source(LOCAL_BUCKET, "0", 10).await.unwrap().size(), Some(10));
        assert!(matches!(read(&local, LOCAL_BUCKET, "0", 9).await, Err(StoreError::TooLarge { size: 10, limit: 9 })));
        assert!(matches!(read(&local, LOCAL_BUCKET, "1", 10).await, Err(StoreError::NotFound { .. })));
        assert!(matches!(read(&local, LOCAL_BUCKET, "../x", 10).await, Err(StoreError::NotFound { .. })));
    }

    #[tokio::test]
    async fn named_outputs_are_written_listed_and_deleted_and_no_record_is_kept() {
        let dir = scratch("write");
        let local = Storage::local(LocalFiles::new(Vec::new(), dir.clone()));
        let (bucket, receipt) = local.put_output("media", "0/full.jpg", b"abc".to_vec(), "image/jpeg").await.unwrap();
        assert_eq!((bucket.as_str(), receipt.bytes), (LOCAL_BUCKET, 3));
        assert_eq!(receipt.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        local.put_output("media", "0/thumb.jpg", b"d".to_vec(), "image/jpeg").await.unwrap();
        assert_eq!(std::fs::read(dir.join("0/full.jpg")).unwrap(), b"abc");
        assert_eq!(local.list_outputs("media", "0/").await.unwrap(), vec!["0/full.jpg", "0/thumb.jpg"]);
        assert!(local.list_outputs("media", "1/").await.unwrap().is_empty());
        local.delete_output("media", "0/full.jpg").await.unwrap();
        local.delete_output("media", "0/full.jpg").await.unwrap();
        assert_eq!(local.list_outputs("media", "0/").await.unwrap(), vec!["0/thumb.jpg"]);
        // `inspect` writes outputs only.
        assert!(!local
            .put_record("media", "manifests/j.json", b"{}".to_vec().into(), "application/json")
            .await
            .unwrap());
        assert_eq!(local.get_record("media", "manifests/j.json", 100).await.unwrap(), None);
        assert!(local.list_records("quarantine", "j/").await.unwrap().is_empty());
        assert!(!dir.join("manifests").exists());
    }

    #[tokio::test]
    async fn bucket_folders_keep_every_object_where_s3_would() {
        let dir = scratch("buckets");
        let local = Storage::local(LocalFiles::buckets(&dir));
        std::fs::create_dir_all(dir.join("incoming/j")).unwrap();
        std::fs::write(dir.join("incoming/j/0.jpg"), b"src").unwrap();
        assert_eq!(read(&local, "incoming", "j/0.jpg", 10).await.unwrap(), b"src");
        assert!(matches!(read(&local, "incoming", "j/1.jpg", 10).await, Err(StoreError::NotFound { .. })));
        assert!(matches!(read(&local, "incoming", "../incoming/j/0.jpg", 10).await, Err(StoreError::NotFound { .. })));
        let (bucket, _) = local.put_output("media", "media/j/0/full.jpg", b"o".to_vec(), "image/jpeg").await.unwrap();
        assert_eq!(bucket, "media");
        assert_eq!(local.output_key(&"j".into(), &"0".into(), "full", "jpg"), "media/j/0/full.jpg");
        assert!(local.put_record("q", "j/0/original.jpg", b"orig".to_vec().into(), "x").await.unwrap());
        assert!(local.put_record("q", "j/0/review/2026.json", b"{}".to_vec().into(), "x").await.unwrap());
        assert_eq!(std::fs::read(dir.join("q/j/0/original.jpg")).unwrap(), b"orig");
        assert_eq!(local.list_records("q", "j/0/").await.unwrap(), vec!["j/0/original.jpg", "j/0/review/2026.json"]);
        assert_eq!(local.list_records("q", "j/0/review/").await.unwrap(), vec!["j/0/review/2026.json"]);
        assert!(local.list_records("q", "j/1/").await.unwrap().is_empty());
        assert_eq!(local.get_record("q", "j/0/original.jpg", 10).await.unwrap().as_deref(), Some(&b"orig"[..]));
        assert!(matches!(local.get_record("q", "j/0/original.jpg", 3).await, Err(StoreError::TooLarge { .. })));
        assert_eq!(local.get_record("q", "j/9/original.jpg", 10).await.unwrap(), None);
    }

    #[test]
    fn named_keys_are_item_relative_and_bucket_keys_the_contracts() {
        let named = Storage::local(LocalFiles::new(Vec::new(), PathBuf::from("/tmp")));
        assert_eq!(named.output_key(&"j".into(), &"0".into(), "full", "jpg"), "0/full.jpg");
        assert_eq!(named.output_item_prefix(&"j".into(), &"0".into()), "0/");
        let buckets = Storage::local(LocalFiles::buckets("/tmp"));
        assert_eq!(
            buckets.output_key(&"j".into(), &"0".into(), "full", "jpg"),
            output_key(&"j".into(), &"0".into(), "full", "jpg")
        );
        assert_eq!(buckets.output_item_prefix(&"j".into(), &"0".into()), output_item_prefix(&"j".into(), &"0".into()));
    }

    #[test]
    fn keys_stay_inside_their_bucket() {
        assert!(safe_key("j/0.jpg"));
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a//b", "./a"] {
            assert!(!safe_key(bad), "{bad}");
        }
    }
}
