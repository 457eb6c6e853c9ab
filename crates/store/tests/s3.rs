//! mediagate-store against a real S3-compatible server (s3s-fs, spawned per test).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt, TryStreamExt};
use mediagate_store::{RetryPolicy, Store, StoreConfig, StoreError};
use mediagate_testkit::s3::{S3Server, ACCESS_KEY, SECRET_KEY};
use sha2::{Digest, Sha256};

fn config(endpoint: &str) -> StoreConfig {
    StoreConfig {
        endpoint: Some(endpoint.to_owned()),
        region: Some("us-east-1".into()),
        access_key: Some(ACCESS_KEY.into()),
        secret_key: Some(SECRET_KEY.into()),
        retry: RetryPolicy {
            attempts: 2,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        },
        ..StoreConfig::default()
    }
}

async fn store_for(s3: &S3Server) -> Store {
    Store::connect(&config(&s3.endpoint())).await.expect("store")
}

#[tokio::test]
async fn put_get_head_keep_bytes_and_content_type() {
    let s3 = S3Server::start();
    let store = store_for(&s3).await;
    store.ensure_bucket("media").await.unwrap();

    let body: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let key = "media/j-1/0/full.jpg";
    let receipt = store.put("media", key, body.clone(), "image/jpeg").await.unwrap();
    assert_eq!(receipt.bytes, 10_000);
    assert_eq!(receipt.sha256, hex::encode(Sha256::digest(&body)));

    let info = store.head("media", key).await.unwrap();
    assert_eq!(info.size, 10_000);
    assert_eq!(info.content_type.as_deref(), Some("image/jpeg"));

    assert_eq!(store.get("media", key).await.unwrap(), body);
    // exactly at the limit is allowed
    assert_eq!(store.get_at_most("media", key, 10_000).await.unwrap(), body);

    // overwrite (redelivery) replaces bytes and type
    store.put("media", key, b"png!".to_vec(), "image/png").await.unwrap();
    let info = store.head("media", key).await.unwrap();
    assert_eq!((info.size, info.content_type.as_deref()), (4, Some("image/png")));

    // odd characters in keys survive the round trip
    let odd = "u/a-1/pic one+ü (2).jpg";
    store.put("media", odd, b"x".to_vec(), "image/jpeg").await.unwrap();
    assert_eq!(store.get("media", odd).await.unwrap(), b"x");

    // an empty object
    store.put("media", "empty", Vec::new(), "application/octet-stream").await.unwrap();
    assert_eq!(store.head("media", "empty").await.unwrap().size, 0);
    assert!(store.get_at_most("media", "empty", 0).await.unwrap().is_empty());
}

/// A TCP proxy that counts HTTP request lines by method, to see which requests a call made.
struct CountingProxy {
    endpoint: String,
    heads: Arc<AtomicUsize>,
    gets: Arc<AtomicUsize>,
}

async fn counting_proxy(upstream_port: u16) -> CountingProxy {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let heads = Arc::new(AtomicUsize::new(0));
    let gets = Arc::new(AtomicUsize::new(0));
    let (h, g) = (heads.clone(), gets.clone());
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (h, g) = (h.clone(), g.clone());
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream_port)).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut tail: Vec<u8> = Vec::new();
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let mut scan = std::mem::take(&mut tail);
                        scan.extend_from_slice(&buf[..n]);
                        // Request lines start a request: at offset 0 or right after "\r\n".
                        for (i, _) in scan.iter().enumerate() {
                            let at_start = i == 0 || (i >= 2 && &scan[i - 2..i] == b"\r\n");
                            if at_start && scan[i..].starts_with(b"HEAD /") {
                                h.fetch_add(1, Ordering::SeqCst);
                            }
                            if at_start && scan[i..].starts_with(b"GET /") {
                                g.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        let keep = scan.len().min(8);
                        tail = scan[scan.len() - keep..].to_vec();
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = sw.shutdown().await;
                };
                let down = async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                };
                tokio::join!(up, down);
            });
        }
    });
    CountingProxy { endpoint, heads, gets }
}

#[tokio::test]
async fn get_at_most_refuses_a_large_object_by_its_length_with_one_get_and_no_head() {
    let s3 = S3Server::start();
    let store = store_for(&s3).await;
    store.ensure_bucket("incoming").await.unwrap();
    store.put("incoming", "big.bin", vec![7u8; 100_000], "application/octet-stream").await.unwrap();

    let proxy = counting_proxy(s3.port).await;
    let via_proxy = Store::connect(&config(&proxy.endpoint)).await.unwrap();
    match via_proxy.get_at_most("incoming", "big.bin", 1000).await {
        Err(StoreError::TooLarge { size, limit }) => assert_eq!((size, limit), (100_000, 1000)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    match via_proxy.open_at_most("incoming", "big.bin", 1000).await {
        Err(StoreError::TooLarge { size, limit }) => assert_eq!((size, limit), (100_000, 1000)),
        Err(other) => panic!("expected TooLarge, got {other:?}"),
        Ok(_) => panic!("expected TooLarge, got a download"),
    }
    assert_eq!(proxy.heads.load(Ordering::SeqCst), 0, "no HEAD");
    assert_eq!(proxy.gets.load(Ordering::SeqCst), 2, "one GET each, its body never read");

    // Within the limit: one GET each; the size is known before the body is read.
    let got = via_proxy.get_at_most("incoming", "big.bin", 100_000).await.unwrap();
    assert_eq!(got.len(), 100_000);
    let download = via_proxy.open_at_most("incoming", "big.bin", 100_000).await.unwrap();
    assert_eq!(download.size(), Some(100_000));
    assert_eq!(download.read().await.unwrap(), vec![7u8; 100_000]);
    assert_eq!(proxy.heads.load(Ordering::SeqCst), 0);
    assert_eq!(proxy.gets.load(Ordering::SeqCst), 4);
    let e = StoreError::TooLarge { size: 100_000, limit: 1000 };
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn missing_objects_and_buckets_are_not_found() {
    let s3 = S3Server::start();
    let store = store_for(&s3).await;
    store.ensure_bucket("incoming").await.unwrap();

    for r in [
        store.head("incoming", "nope.jpg").await.map(|_| ()),
        store.get("incoming", "nope.jpg").await.map(|_| ()),
        store.get_at_most("incoming", "nope.jpg", 10).await.map(|_| ()),
        store.get("no-such-bucket", "nope.jpg").await.map(|_| ()),
        store.head("no-such-bucket", "nope.jpg").await.map(|_| ()),
    ] {
        match r {
            Err(StoreError::NotFound { bucket, key }) => {
                assert!(bucket == "incoming" || bucket == "no-such-bucket");
                assert_eq!(key, "nope.jpg");
            }
            other => panic!("expected NotFound, got {other:?}"),
        }
    }
    assert_eq!(store.check("no-such-bucket").await.unwrap_err().to_string(), "s3://no-such-bucket does not exist");
    let e = store.head("incoming", "nope.jpg").await.unwrap_err();
    assert_eq!(e.to_string(), "s3://incoming/nope.jpg does not exist");
    assert!(!e.is_retryable());

    // deleting a missing key is fine; deleting an existing one removes it
    store.delete("incoming", "nope.jpg").await.unwrap();
    store.put("incoming", "x", b"1".to_vec(), "text/plain").await.unwrap();
    store.delete("incoming", "x").await.unwrap();
    assert!(matches!(store.head("incoming", "x").await, Err(StoreError::NotFound { .. })));

    assert!(matches!(store.check("no-such-bucket").await, Err(StoreError::NotFound { .. })));
    assert!(matches!(store.list_keys("no-such-bucket", "").await, Err(StoreError::NotFound { .. })));
}

#[tokio::test]
async fn listing_follows_continuation_tokens() {
    let s3 = S3Server::start();
    let store = store_for(&s3).await;
    store.ensure_bucket("media").await.unwrap();

    let t = Instant::now();
    let keys: Vec<String> = (0..1100).map(|i| format!("manifests/j-{i:05}.json")).collect();
    stream::iter(keys.iter().cloned())
        .map(|k| {
            let store = store.clone();
            async move { store.put("media", &k, b"{}".to_vec(), "application/json").await }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    store.put("media", "other/a", b"1".to_vec(), "text/plain").await.unwrap();
    eprintln!("1100 PUTs in {:?}", t.elapsed());

    // default page size (1000): two requests
    let listed = store.list_keys("media", "manifests/").await.unwrap();
    assert_eq!(listed, keys, "all keys, in order, none outside the prefix");

    // the paged variant with a small page size
    let mut pages = store.list_pages("media", "manifests/").page_size(300);
    let mut sizes = Vec::new();
    let mut all = Vec::new();
    while let Some(p) = pages.next_page().await.unwrap() {
        sizes.push(p.len());
        all.extend(p);
    }
    assert_eq!(sizes, vec![300, 300, 300, 200]);
    assert_eq!(all, keys);
    assert!(pages.next_page().await.unwrap().is_none(), "a finished pager stays finished");

    assert!(store.list_keys("media", "nothing-here/").await.unwrap().is_empty());
    assert_eq!(store.list_keys("media", "").await.unwrap().len(), 1101);
}

#[tokio::test]
async fn copy_is_server_side_and_keeps_content_type() {
    let s3 = S3Server::start();
    let store = store_for(&s3).await;
    store.ensure_bucket("incoming").await.unwrap();
    store.ensure_bucket("quarantine").await.unwrap();
    let body = b"\xff\xd8\xff original bytes".to_vec();
    store.put("incoming", "u/a-1/8d2e 1.jpg", body.clone(), "image/jpeg").await.unwrap();

    store.copy("incoming", "u/a-1/8d2e 1.jpg", "quarantine", "j-1/0/original.jpg").await.unwrap();
    assert_eq!(store.get("quarantine", "j-1/0/original.jpg").await.unwrap(), body);
    let info = store.head("quarantine", "j-1/0/original.jpg").await.unwrap();
    assert_eq!(info.content_type.as_deref(), Some("image/jpeg"));

    match store.copy("incoming", "missing.jpg", "quarantine", "j-1/1/original.jpg").await {
        Err(StoreError::NotFound { bucket, key }) => {
            assert_eq!((bucket.as_str(), key.as_str()), ("incoming", "missing.jpg"));
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn ensure_bucket_is_idempotent() {
    let s3 = S3Server::start();
    let store = store_for(&s3).await;
    assert!(matches!(store.check("media").await, Err(StoreError::NotFound { .. })));
    store.ensure_bucket("media").await.unwrap();
    store.ensure_bucket("media").await.unwrap();
    store.check("media").await.unwrap();
    assert!(s3.root().join("media").is_dir());
}

#[tokio::test]
async fn a_stopped_server_is_transient() {
    let mut s3 = S3Server::start();
    let store = store_for(&s3).await;
    store.ensure_bucket("incoming").await.unwrap();
    s3.stop();

    let t = Instant::now();
    let err = store.head("incoming", "a.jpg").await.unwrap_err();
    assert!(matches!(err, StoreError::Transient { .. }), "{err:?}");
    assert!(err.is_retryable() && err.is_transient());
    let msg = err.to_string();
    assert!(msg.contains("s3://incoming/a.jpg") && msg.contains("HeadObject"), "{msg}");
    assert!(t.elapsed() < Duration::from_secs(5), "bounded retries, took {:?}", t.elapsed());

    for r in [
        store.put("incoming", "a.jpg", b"x".to_vec(), "image/jpeg").await.map(|_| ()),
        store.get("incoming", "a.jpg").await.map(|_| ()),
        store.check("incoming").await,
    ] {
        assert!(matches!(r, Err(StoreError::Transient { .. })), "{r:?}");
    }
}

#[tokio::test]
async fn wrong_credentials_are_denied_not_missing() {
    let s3 = S3Server::start();
    let good = store_for(&s3).await;
    good.ensure_bucket("incoming").await.unwrap();
    let mut cfg = config(&s3.endpoint());
    cfg.secret_key = Some("wrong".into());
    let bad = Store::connect(&cfg).await.unwrap();
    let err = bad.get("incoming", "a.jpg").await.unwrap_err();
    assert!(matches!(err, StoreError::Denied { .. }), "{err:?}");
    assert!(err.is_retryable() && !err.is_transient());
    assert!(err.to_string().contains("HTTP 403"), "{err}");
}

#[tokio::test]
async fn half_configured_credentials_are_refused() {
    let cfg = StoreConfig { access_key: Some("ak".into()), ..StoreConfig::default() };
    let err = Store::connect(&cfg).await.unwrap_err();
    assert!(matches!(err, StoreError::Other { .. }), "{err:?}");
}
