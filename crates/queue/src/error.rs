//! What can go wrong talking to RabbitMQ, and URLs fit for logs.

use super::*;

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The broker could not be reached or refused the login.
    #[error("cannot connect to RabbitMQ at {url}: {source}")]
    Connect {
        /// The URL, password removed.
        url: String,
        /// lapin's error (boxed: it is large).
        #[source]
        source: Box<lapin::Error>,
    },
    /// An entry of `MEDIAGATE_AMQP_URL` is empty or not an AMQP URL.
    #[error("MEDIAGATE_AMQP_URL entry {entry} ({url:?}): {why}")]
    BadUrl {
        /// Which entry, from 1.
        entry: usize,
        /// The entry, password removed.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// No entry of a list of several URLs could be connected to.
    #[error("cannot connect to any RabbitMQ node: {tried}")]
    NoNode {
        /// What each node said.
        tried: String,
    },
    /// Connecting took longer than the connect timeout.
    #[error("cannot connect to RabbitMQ at {url}: no answer within {timeout:?}")]
    ConnectTimeout {
        /// The URL, password removed.
        url: String,
        /// The limit that was applied.
        timeout: Duration,
    },
    /// The broker did not answer a declaration or a channel request in time (a check such as
    /// `doctor`'s must end with an answer, never wait for ever).
    #[error("RabbitMQ did not answer {what} within {timeout:?}")]
    NoAnswer {
        /// Which step was waiting.
        what: String,
        /// The limit that was applied.
        timeout: Duration,
    },
    /// Declaring or binding an exchange or queue failed (PRECONDITION_FAILED when it exists with
    /// other arguments; see [`QueueError::is_precondition_failed`]).
    #[error("RabbitMQ topology: {what}: {source}")]
    Topology {
        /// Which declaration failed.
        what: String,
        /// lapin's error (boxed: it is large).
        #[source]
        source: Box<lapin::Error>,
    },
    /// Opening a channel, setting QoS, consuming or cancelling failed.
    #[error("RabbitMQ channel: {what}: {source}")]
    Channel {
        /// Which step failed.
        what: String,
        /// lapin's error (boxed: it is large).
        #[source]
        source: Box<lapin::Error>,
    },
    /// Sending a message (or receiving its confirm) failed.
    #[error("publish to exchange {exchange:?} with key {routing_key:?} failed: {source}")]
    Publish {
        /// Target exchange.
        exchange: String,
        /// Routing key used.
        routing_key: String,
        /// lapin's error (boxed: it is large).
        #[source]
        source: Box<lapin::Error>,
    },
    /// The broker negatively confirmed a message: it did not take responsibility for it.
    #[error("broker refused (nack) the message to exchange {exchange:?} with key {routing_key:?}")]
    Nacked {
        /// Target exchange.
        exchange: String,
        /// Routing key used.
        routing_key: String,
    },
    /// A mandatory message matched no queue and came back (the topology is missing or wrong).
    #[error("message to exchange {exchange:?} with key {routing_key:?} is unroutable: {reply}")]
    Unroutable {
        /// Target exchange.
        exchange: String,
        /// Routing key used.
        routing_key: String,
        /// The broker's reply (`312 NO_ROUTE`).
        reply: String,
    },
    /// Acknowledging a delivery failed.
    #[error("acknowledging delivery {delivery_tag} failed: {source}")]
    Ack {
        /// The delivery's tag on its channel.
        delivery_tag: u64,
        /// lapin's error (boxed: it is large).
        #[source]
        source: Box<lapin::Error>,
    },
    /// The delivery was already acknowledged (ack/nack/reject is single-use).
    #[error("delivery {delivery_tag} was already acknowledged")]
    AlreadyAcked {
        /// The delivery's tag on its channel.
        delivery_tag: u64,
    },
    /// The channel or connection is closed; the broker redelivers unacknowledged messages, so
    /// the caller should reconnect rather than retry on this handle.
    #[error("RabbitMQ {what} is closed: {detail}")]
    Closed {
        /// `connection`, `channel`, `consumer`…
        what: &'static str,
        /// Why, as far as known.
        detail: String,
    },
}

impl QueueError {
    /// True when the broker answered PRECONDITION_FAILED (406): typically a queue that already
    /// exists with other arguments.
    pub fn is_precondition_failed(&self) -> bool {
        const PRECONDITION_FAILED: AMQPErrorKind = AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED);
        self.lapin_error()
            .is_some_and(|e| matches!(e.kind(), ErrorKind::ProtocolError(p) if *p.kind() == PRECONDITION_FAILED))
    }

    /// True when the broker answered NOT_FOUND (404): an exchange or queue does not exist (a
    /// passive declare on a missing queue, for example).
    pub fn is_not_found(&self) -> bool {
        self.lapin_error().is_some_and(|e| {
            matches!(e.kind(), ErrorKind::ProtocolError(p) if *p.kind() == AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND))
        })
    }

    /// The underlying lapin error, if any.
    pub fn lapin_error(&self) -> Option<&lapin::Error> {
        match self {
            QueueError::Connect { source, .. }
            | QueueError::Topology { source, .. }
            | QueueError::Channel { source, .. }
            | QueueError::Publish { source, .. }
            | QueueError::Ack { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

pub(crate) fn conn_state(s: &lapin::ConnectionStatus) -> String {
    let state = if s.errored() {
        "errored"
    } else if s.closed() {
        "closed"
    } else if s.closing() {
        "closing"
    } else if s.connected() {
        "connected"
    } else {
        "connecting"
    };
    format!("connection {state}")
}

/// Removes the password from an AMQP URL for logs and error messages.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme_end + 3], &userinfo[..colon], &rest[at..]),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("amqp://guest:secret@127.0.0.1:5672/%2f"), "amqp://guest:***@127.0.0.1:5672/%2f");
        assert_eq!(redact_url("amqp://127.0.0.1"), "amqp://127.0.0.1");
        assert_eq!(redact_url("amqps://u@h/v"), "amqps://u@h/v");
    }
}
