//! ListObjectsV2, page by page.

use super::*;

/// Pages of keys from ListObjectsV2; see [`Store::list_pages`].
#[derive(Debug)]
pub struct KeyPages {
    pub(crate) store: Store,
    pub(crate) bucket: String,
    pub(crate) prefix: String,
    pub(crate) page_size: Option<i32>,
    pub(crate) delimiter: Option<String>,
    pub(crate) start_after: Option<String>,
    pub(crate) token: Option<String>,
    pub(crate) done: bool,
}

/// One page of a listing with a delimiter: the objects directly under the prefix, and the
/// common prefixes ("folders") below it.
#[derive(Debug, Default)]
pub struct Listing {
    /// The objects, in key order.
    pub objects: Vec<Listed>,
    /// The common prefixes, each ending with the delimiter, in key order.
    pub prefixes: Vec<String>,
}

impl KeyPages {
    /// Asks for at most `n` keys per page (S3 caps it at 1000; default 1000). Mostly for tests
    /// and for callers that want small, frequent progress updates.
    pub fn page_size(mut self, n: i32) -> Self {
        self.page_size = Some(n.max(1));
        self
    }

    /// Groups the keys below the prefix at `delimiter` (ListObjectsV2's `delimiter`): a key with
    /// the delimiter after the prefix is not listed itself but as its common prefix, once (see
    /// [`KeyPages::next_listing`]). On stores that keep keys as files, it also keeps a listing
    /// of one folder from walking the others.
    pub fn delimiter(mut self, delimiter: &str) -> Self {
        self.delimiter = Some(delimiter.to_owned());
        self
    }

    /// Lists only the keys (and common prefixes) after `key` (ListObjectsV2's `start-after`).
    pub fn start_after(mut self, key: &str) -> Self {
        self.start_after = Some(key.to_owned()).filter(|k| !k.is_empty());
        self
    }

    /// The next page of keys, or `None` once the listing is complete. A page may be empty only
    /// when the whole listing is empty. Each request is retried per the store's policy.
    pub async fn next_page(&mut self) -> Result<Option<Vec<String>>, StoreError> {
        Ok(self.next_objects().await?.map(|page| page.into_iter().map(|o| o.key).collect()))
    }

    /// Every key of the pages left, in order, held in memory (a million keys is ~60 MB).
    pub async fn all_keys(mut self) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        while let Some(page) = self.next_page().await? {
            keys.extend(page);
        }
        Ok(keys)
    }

    /// [`KeyPages::next_page`] with each object's size and ETag.
    pub async fn next_objects(&mut self) -> Result<Option<Vec<Listed>>, StoreError> {
        Ok(self.next_listing().await?.map(|page| page.objects))
    }

    /// The next page with its common prefixes (empty without [`KeyPages::delimiter`]).
    pub async fn next_listing(&mut self) -> Result<Option<Listing>, StoreError> {
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
            if let Some(d) = &self.delimiter {
                req = req.delimiter(d.clone());
            }
            if let Some(k) = &self.start_after {
                req = req.start_after(k.clone());
            }
            if let Some(t) = &self.token {
                req = req.continuation_token(t.clone());
            }
            req.send().await.map_err(|e| sort_sdk_error(e, "ListObjectsV2", bucket, prefix))
        })
        .await?;
        let objects: Vec<Listed> = out
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
        let prefixes: Vec<String> =
            out.common_prefixes().iter().filter_map(|p| p.prefix().map(str::to_owned)).collect();
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
        debug!(bucket, prefix, keys = objects.len(), prefixes = prefixes.len(), more = !self.done, "s3 list page");
        Ok(Some(Listing { objects, prefixes }))
    }
}
