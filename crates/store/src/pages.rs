//! ListObjectsV2, page by page.

use super::*;

/// Pages of keys from ListObjectsV2; see [`Store::list_pages`].
#[derive(Debug)]
pub struct KeyPages {
    pub(crate) store: Store,
    pub(crate) bucket: String,
    pub(crate) prefix: String,
    pub(crate) page_size: Option<i32>,
    pub(crate) token: Option<String>,
    pub(crate) done: bool,
}

impl KeyPages {
    /// Asks for at most `n` keys per page (S3 caps it at 1000; default 1000). Mostly for tests
    /// and for callers that want small, frequent progress updates.
    pub fn page_size(mut self, n: i32) -> Self {
        self.page_size = Some(n.max(1));
        self
    }

    /// The next page of keys, or `None` once the listing is complete. A page may be empty only
    /// when the whole listing is empty. Each request is retried per the store's policy.
    pub async fn next_page(&mut self) -> Result<Option<Vec<String>>, StoreError> {
        Ok(self.next_objects().await?.map(|page| page.into_iter().map(|o| o.key).collect()))
    }

    /// [`KeyPages::next_page`] with each object's size and ETag.
    pub async fn next_objects(&mut self) -> Result<Option<Vec<Listed>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let (bucket, prefix) = (self.bucket.as_str(), self.prefix.as_str());
        let out = retry(&self.store.inner.retry, "ListObjectsV2", || async {
            let mut req = self.store.client.list_objects_v2().bucket(bucket);
            if !prefix.is_empty() {
                req = req.prefix(prefix);
            }
            if let Some(n) = self.page_size {
                req = req.max_keys(n);
            }
            if let Some(t) = &self.token {
                req = req.continuation_token(t.clone());
            }
            req.send().await.map_err(|e| sort_sdk_error(e, "ListObjectsV2", bucket, prefix))
        })
        .await?;
        let keys: Vec<Listed> = out
            .contents()
            .iter()
            .filter_map(|o| {
                Some(Listed {
                    key: o.key()?.to_owned(),
                    size: o.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                    etag: o.e_tag().map(str::to_owned),
                })
            })
            .collect();
        match out.next_continuation_token() {
            Some(t) if out.is_truncated().unwrap_or(false) => {
                if self.token.as_deref() == Some(t) {
                    return Err(StoreError::other(
                        "ListObjectsV2",
                        bucket,
                        prefix,
                        "the store returned the same continuation token twice",
                    ));
                }
                self.token = Some(t.to_owned());
            }
            _ => self.done = true,
        }
        debug!(bucket, prefix, keys = keys.len(), more = !self.done, "s3 list page");
        Ok(Some(keys))
    }
}
