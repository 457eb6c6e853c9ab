//! Where a job's files come from and where its outputs go: S3 for the worker, a local
//! directory for `mediagate inspect` (contract §7: the whole job with no broker and no S3).
//!
//! Architecture invariant: the two differ only here and in how `item.rs` fetches (an S3 GET is
//! reserved from the input budget before its body is read; a local file is read off the async
//! threads, then reserved). Everything between the fetch and the write — rules, the sandbox call,
//! the banks, the classifier, the verdict — is the same code, so what `inspect` prints is what a
//! worker would publish for the same input and settings, and its files are the same bytes.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use mediagate_contract::keys::{output_item_prefix, output_key};
use mediagate_store::{PutReceipt, Store, StoreError};
use sha2::Digest as _;

use crate::codes::Requeue;

/// The bucket name a local run reports for its sources and outputs (§7).
pub const LOCAL_BUCKET: &str = "local";

/// Where a job's bytes live.
pub(crate) enum Storage {
    /// The worker's: sources, outputs, quarantine and manifests in S3.
    S3(Store),
    /// `inspect`'s: the files a person named, outputs under a directory; no quarantine, no
    /// manifest, no stored revisions or review decisions.
    Local(LocalFiles),
}

impl Storage {
    /// The S3 client, where there is one (quarantine, manifests, review decisions).
    pub(crate) fn s3(&self) -> Option<&Store> {
        match self {
            Storage::S3(store) => Some(store),
            Storage::Local(_) => None,
        }
    }

    /// The key of an output variant: the contract's layout in S3 (§4), `{item_id}/{variant}.{ext}`
    /// under the local directory (§7).
    pub(crate) fn output_key(&self, job_id: &str, item_id: &str, variant: &str, ext: &str) -> String {
        match self {
            Storage::S3(_) => output_key(job_id, item_id, variant, ext),
            Storage::Local(_) => format!("{item_id}/{variant}.{ext}"),
        }
    }

    /// The prefix every output of an item is under.
    pub(crate) fn output_item_prefix(&self, job_id: &str, item_id: &str) -> String {
        match self {
            Storage::S3(_) => output_item_prefix(job_id, item_id),
            Storage::Local(_) => format!("{item_id}/"),
        }
    }

    /// Writes an output variant under `key` (in `bucket` when in S3); returns the bucket the
    /// verdict names (`local` for a local run) and what was written.
    pub(crate) async fn put_output(
        &self,
        bucket: &str,
        key: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<(String, PutReceipt), Requeue> {
        match self {
            Storage::S3(store) => {
                let receipt = store
                    .put(bucket, key, bytes, content_type)
                    .await
                    .map_err(|e| Requeue::storage(format!("writing s3://{bucket}/{key}: {e}")))?;
                Ok((bucket.to_string(), receipt))
            }
            Storage::Local(local) => {
                let receipt = local.put(key, &bytes).map_err(|e| Requeue::storage(e.to_string()))?;
                Ok((LOCAL_BUCKET.to_string(), receipt))
            }
        }
    }

    /// The outputs stored under `prefix`.
    pub(crate) async fn list_outputs(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, Requeue> {
        match self {
            Storage::S3(store) => store
                .list_keys(bucket, prefix)
                .await
                .map_err(|e| Requeue::storage(format!("listing s3://{bucket}/{prefix}: {e}"))),
            Storage::Local(local) => local.list_keys(prefix).map_err(|e| Requeue::storage(e.to_string())),
        }
    }

    /// Removes an output; a missing one is success.
    pub(crate) async fn delete_output(&self, bucket: &str, key: &str) -> Result<(), Requeue> {
        match self {
            Storage::S3(store) => store
                .delete(bucket, key)
                .await
                .map_err(|e| Requeue::storage(format!("deleting s3://{bucket}/{key}: {e}"))),
            Storage::Local(local) => local.delete(key).map_err(|e| Requeue::storage(e.to_string())),
        }
    }
}

/// The files of a local run: the sources, named by their index as the item's source key, and the
/// directory the outputs are written under.
#[derive(Debug, Clone)]
pub struct LocalFiles {
    sources: Vec<PathBuf>,
    out: PathBuf,
}

impl LocalFiles {
    /// `sources[i]` is read for the item whose source key is `i`; outputs go under `out`.
    pub fn new(sources: Vec<PathBuf>, out: PathBuf) -> LocalFiles {
        LocalFiles { sources, out }
    }

    fn source(&self, key: &str) -> Result<&Path, StoreError> {
        key.parse::<usize>()
            .ok()
            .and_then(|i| self.sources.get(i))
            .map(PathBuf::as_path)
            .ok_or_else(|| StoreError::NotFound { bucket: LOCAL_BUCKET.into(), key: key.into() })
    }

    /// Reads a source into `sink`, refusing one over `limit` bytes before reading it (and cutting
    /// off one that grows while it is read), as the S3 GET does.
    pub(crate) fn read_source(&self, key: &str, limit: u64, sink: &mut impl std::io::Write) -> Result<(), StoreError> {
        let path = self.source(key)?;
        let io = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::NotFound { bucket: LOCAL_BUCKET.into(), key: key.into() },
            _ => StoreError::Other {
                op: "read",
                bucket: LOCAL_BUCKET.into(),
                key: path.display().to_string(),
                detail: e.to_string(),
            },
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        if size > limit {
            return Err(StoreError::TooLarge { size, limit });
        }
        let copied = std::io::copy(&mut file.take(limit + 1), sink).map_err(io)?;
        if copied > limit {
            return Err(StoreError::TooLarge { size: copied, limit });
        }
        Ok(())
    }

    fn path_of(&self, key: &str) -> PathBuf {
        self.out.join(key)
    }

    /// Writes an output (through a temporary file renamed into place, so a reader never sees half
    /// of one); the receipt is the S3 PUT's.
    pub(crate) fn put(&self, key: &str, bytes: &[u8]) -> Result<PutReceipt, StoreError> {
        let path = self.path_of(key);
        let io = |e: std::io::Error| StoreError::Other {
            op: "write",
            bucket: LOCAL_BUCKET.into(),
            key: path.display().to_string(),
            detail: e.to_string(),
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("part");
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok(PutReceipt { bytes: bytes.len() as u64, sha256: hex::encode(sha2::Sha256::digest(bytes)) })
    }

    /// The keys of the files under `prefix` (one directory level: an item's outputs).
    pub(crate) fn list_keys(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let dir = self.path_of(prefix);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(StoreError::Other {
                    op: "list",
                    bucket: LOCAL_BUCKET.into(),
                    key: dir.display().to_string(),
                    detail: e.to_string(),
                })
            }
        };
        let mut keys: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().to_str().map(|name| format!("{prefix}{name}")))
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// Removes an output; a missing one is success.
    pub(crate) fn delete(&self, key: &str) -> Result<(), StoreError> {
        match std::fs::remove_file(self.path_of(key)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::Other {
                op: "delete",
                bucket: LOCAL_BUCKET.into(),
                key: key.into(),
                detail: e.to_string(),
            }),
        }
    }
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

    #[test]
    fn sources_are_read_within_the_limit_by_index() {
        let dir = scratch("read");
        let src = dir.join("a.bin");
        std::fs::write(&src, b"0123456789").unwrap();
        let local = LocalFiles::new(vec![src], dir.join("out"));
        let mut got = Vec::new();
        local.read_source("0", 10, &mut got).unwrap();
        assert_eq!(got, b"0123456789");
        let mut sink = Vec::new();
        assert!(matches!(local.read_source("0", 9, &mut sink), Err(StoreError::TooLarge { size: 10, limit: 9 })));
        assert!(sink.is_empty(), "nothing is read from a file over the limit");
        assert!(matches!(local.read_source("1", 10, &mut sink), Err(StoreError::NotFound { .. })));
        assert!(matches!(local.read_source("../x", 10, &mut sink), Err(StoreError::NotFound { .. })));
    }

    #[test]
    fn outputs_are_written_listed_and_deleted_under_the_directory() {
        let dir = scratch("write");
        let local = LocalFiles::new(Vec::new(), dir.clone());
        let receipt = local.put("0/full.jpg", b"abc").unwrap();
        assert_eq!(receipt.bytes, 3);
        assert_eq!(receipt.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        local.put("0/thumb.jpg", b"d").unwrap();
        assert_eq!(std::fs::read(dir.join("0/full.jpg")).unwrap(), b"abc");
        assert_eq!(local.list_keys("0/").unwrap(), vec!["0/full.jpg", "0/thumb.jpg"]);
        assert!(local.list_keys("1/").unwrap().is_empty());
        local.delete("0/full.jpg").unwrap();
        local.delete("0/full.jpg").unwrap();
        assert_eq!(local.list_keys("0/").unwrap(), vec!["0/thumb.jpg"]);
    }

    #[test]
    fn local_keys_are_item_relative_and_s3_keys_the_contracts() {
        let local = Storage::Local(LocalFiles::new(Vec::new(), PathBuf::from("/tmp")));
        assert_eq!(local.output_key("j", "0", "full", "jpg"), "0/full.jpg");
        assert_eq!(local.output_item_prefix("j", "0"), "0/");
        assert_eq!(output_key("j", "0", "full", "jpg"), "media/j/0/full.jpg");
    }
}
