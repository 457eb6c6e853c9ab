//! `MEDIAGATE_AMQP_URL` as contract §6 defines it: one AMQP URL, or several complete URLs
//! separated by commas (the nodes of one cluster). Each process starts at a random entry and, when
//! a connection fails or is lost, tries the other entries in a random order before the same one
//! again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::*;

/// The broker's URLs (at least one once parsed; `Default` is the empty list a parsed value
/// replaces), each a complete AMQP URL (a comma inside one is written
/// `%2C`, so splitting on commas never cuts a URL).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AmqpUrls(Vec<String>);

impl fmt::Debug for AmqpUrls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter().map(|u| redact_url(u))).finish()
    }
}

impl fmt::Display for AmqpUrls {
    /// The URLs with their passwords removed, comma-separated: fit for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self.0.iter().map(|u| redact_url(u)).collect();
        f.write_str(&shown.join(","))
    }
}

impl AmqpUrls {
    /// Parses `MEDIAGATE_AMQP_URL`: entries separated by commas, spaces around them ignored. An
    /// empty entry (`a,,b`, a trailing comma, nothing at all) or an entry that is not an AMQP URL
    /// is an error naming it, so a typo fails at start-up rather than at the first failover.
    pub fn parse(value: &str) -> Result<AmqpUrls, QueueError> {
        let mut urls = Vec::new();
        for (i, entry) in value.split(',').map(str::trim).enumerate() {
            let bad = |why: &str| QueueError::BadUrl { entry: i + 1, url: redact_url(entry), why: why.to_owned() };
            if entry.is_empty() {
                return Err(bad("it is empty (two commas in a row, or a comma at an end)"));
            }
            entry.parse::<lapin::uri::AMQPUri>().map_err(|e| bad(&format!("not an AMQP URL ({e})")))?;
            urls.push(entry.to_owned());
        }
        Ok(AmqpUrls(urls))
    }

    /// Every entry, in the order given.
    pub fn all(&self) -> &[String] {
        &self.0
    }

    /// The entries in the order to try them: a random order, with `last` (the node whose
    /// connection just failed or was lost) moved to the end, so the others are tried first.
    pub fn order(&self, last: Option<&str>) -> Vec<String> {
        connection_order(&self.0, last)
    }
}

/// `urls` in a random order, with `last` (the node that just failed, as given or with its password
/// removed) moved to the end, so a reconnection tries the other nodes first (contract §6). A cheap xorshift seeded from the clock,
/// the process id and a counter: no cryptographic quality is needed, only that processes started
/// together do not all pick the same node.
pub fn connection_order(urls: &[String], last: Option<&str>) -> Vec<String> {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let mut x =
        nanos ^ (u64::from(std::process::id()) << 32) ^ CALLS.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    x |= 1;
    let mut order = urls.to_vec();
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    if let Some(pos) = last.and_then(|l| order.iter().position(|u| u == l || redact_url(u) == l)) {
        let failed = order.remove(pos);
        order.push(failed);
    }
    order
}

impl Broker {
    /// Connects to the first entry of `urls` that answers, in [`AmqpUrls::order`] (`last`: the URL
    /// whose connection just failed or was lost, tried last). One pass over the entries; the error
    /// names what each said.
    pub async fn connect_any(urls: &AmqpUrls, last: Option<&str>, name: &str) -> Result<Broker, QueueError> {
        let mut errors = Vec::new();
        for url in urls.order(last) {
            match Broker::connect_named(&url, name).await {
                Ok(b) => return Ok(b),
                Err(e) => {
                    if urls.all().len() > 1 {
                        warn!(url = %redact_url(&url), error = %e, "RabbitMQ node unreachable; trying the next");
                    }
                    errors.push(e)
                }
            }
        }
        match errors.len() {
            1 => Err(errors.remove(0)),
            _ => Err(QueueError::NoNode { tried: errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ") }),
        }
    }

    /// The URL this broker is connected through (password removed) — the one to pass as `last`
    /// after its connection is lost.
    pub fn url(&self) -> &str {
        &self.url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_url_or_a_comma_separated_list() {
        let one = AmqpUrls::parse("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap();
        assert_eq!(one.all(), ["amqp://guest:guest@127.0.0.1:5672/%2f"]);
        let three =
            AmqpUrls::parse(" amqp://u:p@mq-1:5672/%2f ,amqp://u:p@mq-2:5672/%2f,  amqp://u:p@mq-3/%2f").unwrap();
        assert_eq!(three.all(), ["amqp://u:p@mq-1:5672/%2f", "amqp://u:p@mq-2:5672/%2f", "amqp://u:p@mq-3/%2f"]);
        assert_eq!(three.to_string(), "amqp://u:***@mq-1:5672/%2f,amqp://u:***@mq-2:5672/%2f,amqp://u:***@mq-3/%2f");
        // A comma inside a URL is written %2C and stays part of that URL.
        let pw = AmqpUrls::parse("amqp://u:a%2Cb@mq-1/%2f,amqp://u:a%2Cb@mq-2/%2f").unwrap();
        assert_eq!(pw.all().len(), 2);
        let uri: lapin::uri::AMQPUri = pw.all()[0].parse().unwrap();
        assert_eq!(uri.authority.userinfo.password, "a,b");
    }

    #[test]
    fn an_empty_or_broken_entry_is_a_start_up_error() {
        for (value, entry) in [("", 1), ("amqp://a/%2f,,amqp://b/%2f", 2), ("amqp://a/%2f,", 2), (" , amqp://a/%2f", 1)]
        {
            let e = AmqpUrls::parse(value).unwrap_err();
            assert!(matches!(e, QueueError::BadUrl { entry: n, .. } if n == entry), "{value:?}: {e}");
            assert!(e.to_string().contains("empty"), "{e}");
        }
        let e = AmqpUrls::parse("amqp://u:secret@mq-1/%2f,http://mq-2").unwrap_err();
        assert!(matches!(e, QueueError::BadUrl { entry: 2, .. }), "{e}");
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[test]
    fn the_order_is_random_and_the_failed_node_comes_last() {
        let urls: Vec<String> = (1..=3).map(|i| format!("amqp://mq-{i}/%2f")).collect();
        let mut firsts = std::collections::HashSet::new();
        for _ in 0..200 {
            let order = connection_order(&urls, Some(&urls[1]));
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(sorted, urls, "every entry exactly once");
            assert_eq!(order[2], urls[1], "the node that failed is tried last");
            firsts.insert(connection_order(&urls, None)[0].clone());
        }
        assert_eq!(firsts.len(), 3, "over 200 starts, each node was first at least once");
    }
}
