//! Times single S3 operations against an endpoint (diagnostics): `cargo run --release -p mediagate-store --example s3time -- http://127.0.0.1:9411 ak sk`.
use std::time::Instant;

#[tokio::main]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    let store = mediagate_store::Store::connect(&mediagate_store::StoreConfig {
        endpoint: Some(a[1].clone()),
        region: Some("us-east-1".into()),
        access_key: Some(a[2].clone()),
        secret_key: Some(a[3].clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    store.ensure_bucket("bench").await.unwrap();
    let body = vec![7u8; 30_000];
    for i in 0..5 {
        let t = Instant::now();
        store.put("bench", "obj", body.clone(), "application/octet-stream").await.unwrap();
        let p = t.elapsed();
        let t = Instant::now();
        store.head("bench", "obj").await.unwrap();
        let h = t.elapsed();
        let t = Instant::now();
        store.get("bench", "obj").await.unwrap();
        let g = t.elapsed();
        let t = Instant::now();
        store.get_at_most("bench", "obj", 1 << 20).await.unwrap();
        let gl = t.elapsed();
        println!("{i}: put {p:?} head {h:?} get {g:?} get_at_most {gl:?}");
    }
}
