//! RabbitMQ's management HTTP API, read-only: what AMQP 0-9-1 cannot tell — the bindings
//! (`mediagate doctor`) and a queue's unacknowledged count (the ledger). Only GETs; nothing here
//! is needed to run a worker.

use std::time::Duration;

use base64::Engine as _;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::*;

/// RabbitMQ's management HTTP API as seen from an AMQP URL: AMQP 0-9-1 cannot list bindings, so
/// `mediagate doctor` asks the management plugin (`rabbitmq_management`) whether §1's bindings
/// exist. Reached by default on the AMQP host at port 15672 with the AMQP URL's user.
#[derive(Clone, PartialEq, Eq)]
pub struct ManagementApi {
    /// `http://host:15672` (no trailing slash).
    pub base_url: String,
    /// The AMQP URL's user.
    pub username: String,
    /// The AMQP URL's password.
    pub password: String,
    /// The AMQP URL's virtual host, decoded (`/` for `%2f`).
    pub vhost: String,
}

impl fmt::Debug for ManagementApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagementApi")
            .field("base_url", &self.base_url)
            .field("username", &self.username)
            .field("vhost", &self.vhost)
            .finish()
    }
}

/// The management plugin's default port.
pub const MANAGEMENT_PORT: u16 = 15672;

impl ManagementApi {
    /// The API for `amqp_url`'s host, user and vhost; `base_url` replaces `http://host:15672`
    /// when given. `None` when the AMQP URL does not parse.
    pub fn for_amqp_url(amqp_url: &str, base_url: Option<&str>) -> Option<ManagementApi> {
        let uri: lapin::uri::AMQPUri = amqp_url.parse().ok()?;
        let base = match base_url {
            Some(b) => b.trim_end_matches('/').to_owned(),
            None => format!("http://{}:{MANAGEMENT_PORT}", uri.authority.host),
        };
        Some(ManagementApi {
            base_url: base,
            username: uri.authority.userinfo.username,
            password: uri.authority.userinfo.password,
            vhost: uri.vhost,
        })
    }

    /// The path that lists the bindings from `exchange` to `queue` in this vhost.
    pub fn bindings_path(&self, exchange: &str, queue: &str) -> String {
        format!("/api/bindings/{}/e/{}/q/{}", path_segment(&self.vhost), path_segment(exchange), path_segment(queue))
    }

    /// The path of one queue's object (its `messages_ready`, `messages_unacknowledged`…).
    pub fn queue_path(&self, queue: &str) -> String {
        format!("/api/queues/{}/{}", path_segment(&self.vhost), path_segment(queue))
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (a vhost `/` is `%2F`).
pub fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An HTTP client for [`ManagementApi`]s (plain `http://`; the management API is an operator's
/// port inside the broker's network). Cheap to clone.
#[derive(Clone)]
pub struct ManagementClient {
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl fmt::Debug for ManagementClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ManagementClient")
    }
}

impl Default for ManagementClient {
    fn default() -> Self {
        ManagementClient { client: Client::builder(TokioExecutor::new()).build_http() }
    }
}

impl ManagementClient {
    /// `GET {api.base_url}{path}` with the API's credentials: the status and the body, or why
    /// there was no answer within `timeout`.
    pub async fn get(&self, api: &ManagementApi, path: &str, timeout: Duration) -> Result<(u16, Vec<u8>), String> {
        let url = format!("{}{path}", api.base_url);
        let credentials = format!("{}:{}", api.username, api.password);
        let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials));
        let req = hyper::Request::get(&url)
            .header(hyper::header::AUTHORIZATION, auth)
            .body(Empty::new())
            .map_err(|e| format!("{url}: {e}"))?;
        tokio::time::timeout(timeout, async {
            let resp = self.client.request(req).await.map_err(|e| format!("{}: {e}", api.base_url))?;
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.map_err(|e| format!("{url}: {e}"))?.to_bytes();
            Ok::<_, String>((status, body.to_vec()))
        })
        .await
        .map_err(|_| format!("{} did not answer within {timeout:?}", api.base_url))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_management_api_follows_the_amqp_url() {
        let m = ManagementApi::for_amqp_url("amqp://ops:s3cret@rabbit.internal:5672/%2f", None).unwrap();
        assert_eq!(m.base_url, "http://rabbit.internal:15672");
        assert_eq!((m.username.as_str(), m.password.as_str(), m.vhost.as_str()), ("ops", "s3cret", "/"));
        assert_eq!(
            m.bindings_path("mediagate.jobs", "mediagate.uploads"),
            "/api/bindings/%2F/e/mediagate.jobs/q/mediagate.uploads"
        );
        assert!(!format!("{m:?}").contains("s3cret"), "the password stays out of logs");
        let m = ManagementApi::for_amqp_url("amqp://guest:guest@127.0.0.1:5672/t-x", Some("https://mq:443/")).unwrap();
        assert_eq!((m.base_url.as_str(), m.vhost.as_str()), ("https://mq:443", "t-x"));
        assert!(ManagementApi::for_amqp_url("not a url", None).is_none());
        assert_eq!(m.queue_path("ledger.soak 1"), "/api/queues/t-x/ledger.soak%201");
        assert_eq!(path_segment("/"), "%2F");
    }
}
