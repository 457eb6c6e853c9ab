//! What the ledger saw: every publish it made, every revision someone else published, every
//! verdict that arrived. Plain data, filled by the publisher and the collector and read by the
//! accounting (`account.rs`), so the accounting can be tested without a broker.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::Lane;

/// How the publishes of one `(job, revision)` ended. One revision may be published several
/// times (a caller republishing it, or a retry after a lost confirm); the counts keep them all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Publishes {
    /// The lane of the latest publish.
    pub lane: Option<Lane>,
    /// Publishes still waiting for their confirm.
    pub in_flight: u32,
    /// Confirmed and routed to a queue.
    pub confirmed: u32,
    /// Returned (`basic.return`, no queue bound) or nacked: not published, per the contract.
    pub returned: u32,
    /// Given up on after the retry budget: the caller got an error.
    pub failed: u32,
}

/// Where one `(job, revision)` stands, from its [`Publishes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PubState {
    /// At least one publish was confirmed: a verdict is owed.
    Confirmed,
    /// Still being published (settle should not run while publishing; treated as owed).
    InFlight,
    /// Every publish was returned: no queue took it, nothing is owed.
    Returned,
    /// Every publish failed: the caller was told, nothing is known to be owed.
    Failed,
}

impl Publishes {
    pub(crate) fn state(&self) -> PubState {
        if self.confirmed > 0 {
            PubState::Confirmed
        } else if self.in_flight > 0 {
            PubState::InFlight
        } else if self.returned > 0 {
            PubState::Returned
        } else {
            PubState::Failed
        }
    }
}

/// How a publish ended, as recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    Confirmed,
    Returned,
    Failed,
}

/// One output a verdict names: what two verdicts of one revision must agree on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct OutputRef {
    pub item_id: String,
    pub variant: String,
    pub key: String,
    pub sha256: String,
    /// The bucket the verdict names (not compared: the key and hash identify the bytes).
    pub bucket: Option<String>,
}

impl OutputRef {
    /// The fields repeated verdicts are compared on.
    pub(crate) fn identity(&self) -> (&str, &str, &str, &str) {
        (&self.item_id, &self.variant, &self.key, &self.sha256)
    }
}

/// One verdict message as received, with the fields the accounting needs pulled out. Every
/// field is optional: a verdict body may be anything, and a malformed one is a finding, not a
/// crash.
#[derive(Clone, Debug)]
pub(crate) struct SeenVerdict {
    /// `job_id` of the body, else the message's `correlation_id` / `message_id`.
    pub job_id: Option<String>,
    pub revision: Option<u64>,
    pub status: Option<String>,
    pub reason_code: Option<String>,
    /// Sorted by [`OutputRef::identity`].
    pub outputs: Vec<OutputRef>,
    /// The body as JSON, or a JSON string holding the raw text when it did not parse.
    pub body: Value,
    /// Why the body is not a verdict object, when it is not.
    pub malformed: Option<String>,
}

impl SeenVerdict {
    /// Pulls the accounted fields out of a verdict body. `fallback_id` is the AMQP
    /// `correlation_id` (or `message_id`), used when the body names no job.
    pub(crate) fn parse(body: &[u8], fallback_id: Option<&str>) -> SeenVerdict {
        let (body, malformed) = match serde_json::from_slice::<Value>(body) {
            Ok(v) if v.is_object() => (v, None),
            Ok(v) => (v, Some("the body is not a JSON object".to_owned())),
            Err(e) => (Value::String(String::from_utf8_lossy(body).into_owned()), Some(format!("not JSON: {e}"))),
        };
        let text = |v: &Value| v.as_str().map(str::to_owned);
        let job_id = text(&body["job_id"]).or_else(|| fallback_id.map(str::to_owned));
        let mut outputs = Vec::new();
        for item in body["items"].as_array().into_iter().flatten() {
            let item_id = text(&item["item_id"]).unwrap_or_default();
            for out in item["outputs"].as_array().into_iter().flatten() {
                outputs.push(OutputRef {
                    item_id: item_id.clone(),
                    variant: text(&out["variant"]).unwrap_or_default(),
                    key: text(&out["key"]).unwrap_or_default(),
                    sha256: text(&out["sha256"]).unwrap_or_default(),
                    bucket: text(&out["bucket"]),
                });
            }
        }
        outputs.sort_by(|a, b| a.identity().cmp(&b.identity()));
        SeenVerdict {
            job_id,
            revision: body["revision"].as_u64(),
            status: text(&body["status"]),
            reason_code: text(&body["reason"]["code"]),
            outputs,
            body,
            malformed,
        }
    }
}

/// Everything recorded so far.
#[derive(Debug, Default)]
pub(crate) struct Records {
    /// Publishes made by this ledger, per job and revision.
    pub published: BTreeMap<String, BTreeMap<u64, Publishes>>,
    /// Revisions someone else published (`Ledger::expect_revision`).
    pub expected: BTreeMap<String, BTreeSet<u64>>,
    /// Every verdict, in arrival order.
    pub verdicts: Vec<SeenVerdict>,
    /// Indices into `verdicts` per job id, in arrival order.
    pub by_job: HashMap<String, Vec<usize>>,
    /// sha256 of every verdict body recorded, to recognise the ledger's own queue redelivering a
    /// message whose ack was lost with the connection (that is not a duplicate verdict).
    bodies: HashSet<[u8; 32]>,
}

impl Records {
    /// A publish of `(job, revision)` starts.
    pub(crate) fn publish_started(&mut self, job_id: &str, revision: u64, lane: Lane) {
        let p = self.published.entry(job_id.to_owned()).or_default().entry(revision).or_default();
        p.lane = Some(lane);
        p.in_flight += 1;
    }

    /// A publish started with [`Records::publish_started`] ended.
    pub(crate) fn publish_ended(&mut self, job_id: &str, revision: u64, ended: Ended) {
        let p = self.published.entry(job_id.to_owned()).or_default().entry(revision).or_default();
        p.in_flight = p.in_flight.saturating_sub(1);
        match ended {
            Ended::Confirmed => p.confirmed += 1,
            Ended::Returned => p.returned += 1,
            Ended::Failed => p.failed += 1,
        }
    }

    /// Someone else published `revision` of `job_id`: a verdict for it is owed.
    pub(crate) fn expect(&mut self, job_id: &str, revision: u64) {
        self.expected.entry(job_id.to_owned()).or_default().insert(revision);
    }

    /// Records a verdict message; `false` when it is the ledger's own queue redelivering a body
    /// already recorded (`redelivered` set by the broker), which is skipped.
    pub(crate) fn add_verdict(&mut self, body: &[u8], fallback_id: Option<&str>, redelivered: bool) -> bool {
        let digest: [u8; 32] = Sha256::digest(body).into();
        let fresh = self.bodies.insert(digest);
        if redelivered && !fresh {
            return false;
        }
        let seen = SeenVerdict::parse(body, fallback_id);
        if let Some(id) = &seen.job_id {
            self.by_job.entry(id.clone()).or_default().push(self.verdicts.len());
        }
        self.verdicts.push(seen);
        true
    }

    /// Every job the ledger owes an account of: published here or expected.
    pub(crate) fn known_jobs(&self) -> BTreeSet<&str> {
        self.published.keys().chain(self.expected.keys()).map(String::as_str).collect()
    }

    /// The verdicts of `job_id`, in arrival order.
    pub(crate) fn verdicts_of<'a>(&'a self, job_id: &str) -> impl Iterator<Item = &'a SeenVerdict> + 'a {
        self.by_job.get(job_id).into_iter().flatten().filter_map(|&i| self.verdicts.get(i))
    }

    /// The highest revision of `job_id` a verdict is owed for: the highest of the revisions
    /// confirmed (or still being published) here, the expected ones and the ones verdicts name.
    /// `None` when nothing is owed (every publish returned or failed, and no verdict came).
    pub(crate) fn highest_owed(&self, job_id: &str) -> Option<u64> {
        let published = self
            .published
            .get(job_id)
            .into_iter()
            .flatten()
            .filter(|(_, p)| matches!(p.state(), PubState::Confirmed | PubState::InFlight))
            .map(|(rev, _)| *rev);
        let expected = self.expected.get(job_id).into_iter().flatten().copied();
        let seen = self.verdicts_of(job_id).filter_map(|v| v.revision);
        published.chain(expected).chain(seen).max()
    }

    /// Jobs whose highest owed revision has no verdict yet.
    pub(crate) fn pending(&self) -> usize {
        self.known_jobs()
            .into_iter()
            .filter(|job| {
                self.highest_owed(job).is_some_and(|top| !self.verdicts_of(job).any(|v| v.revision == Some(top)))
            })
            .count()
    }
}
