//! The upload job (`mediagate.job.v1`, §2) and its parsing (rule 1).
//!
//! Parsing never fails without telling the caller what to put in the verdict: even a body
//! that is not JSON yields a [`ParseOutcome::Invalid`] carrying the best `job_id` the contract
//! allows (a valid `job_id` from the body, else a valid AMQP `message_id`, else none).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::ids::{is_valid_id, ItemId, JobId};
use crate::reason::{Reason, ReasonCode};
use crate::settings::{DEFAULT_MAX_JOB_BYTES, DEFAULT_MAX_RECIPIENTS, MAX_CAPTION_CHARS};

/// The schema tag every job carries.
pub const JOB_SCHEMA: &str = "mediagate.job.v1";

/// Revisions are below 2^53 (§2), the largest integer every JSON implementation holds exactly.
pub const MAX_REVISION: u64 = 1 << 53;

/// §2's limits on a job as it arrives (`MEDIAGATE_MAX_JOB_BYTES`, `MEDIAGATE_MAX_RECIPIENTS`):
/// checked before the body is parsed in full, so a hostile body cannot make a worker allocate in
/// proportion to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobLimits {
    /// Largest body, in bytes.
    pub max_bytes: usize,
    /// Most entries in `recipients`.
    pub max_recipients: usize,
}

impl JobLimits {
    /// The contract's defaults: 1 MiB and 256 recipients; producers should assume these.
    pub const DEFAULT: JobLimits =
        JobLimits { max_bytes: DEFAULT_MAX_JOB_BYTES, max_recipients: DEFAULT_MAX_RECIPIENTS };

    /// `Err` with rule 1's reason when `body` is over either limit. The size is the body's
    /// length; recipients are counted by a pass that keeps nothing it reads (no tree is built)
    /// and stops at the first entry over the limit. A body that is not JSON passes here and is
    /// refused by the parse that follows.
    pub fn check(&self, body: &[u8]) -> Result<(), Reason> {
        if body.len() > self.max_bytes {
            return Err(Reason::new(
                ReasonCode::JobInvalid,
                format!(
                    "the job body is {} bytes; at most {} bytes are allowed (MEDIAGATE_MAX_JOB_BYTES): \
                     keep captions short and media in the source bucket, not in the job",
                    body.len(),
                    self.max_bytes
                ),
            ));
        }
        if recipients_over(body, self.max_recipients) {
            return Err(Reason::new(
                ReasonCode::JobInvalid,
                format!(
                    "field `recipients` has more than {max} entries; at most {max} are allowed \
                     (MEDIAGATE_MAX_RECIPIENTS): split the message into jobs of at most {max} recipients",
                    max = self.max_recipients
                ),
            ));
        }
        Ok(())
    }
}

impl Default for JobLimits {
    fn default() -> Self {
        JobLimits::DEFAULT
    }
}

/// True when a top-level `recipients` array of the JSON object `body` has more than `max`
/// entries. Entries are skipped with `IgnoredAny` (nothing is allocated for them) and the pass
/// stops at entry `max + 1`.
fn recipients_over(body: &[u8], max: usize) -> bool {
    use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::cell::Cell;
    use std::fmt;

    struct Top<'a> {
        max: usize,
        over: &'a Cell<bool>,
    }
    struct Count<'a> {
        max: usize,
        over: &'a Cell<bool>,
    }
    /// Whether a key is `recipients`, without keeping the key.
    struct IsRecipients;

    impl<'de> Visitor<'de> for IsRecipients {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a key")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
            Ok(v == "recipients")
        }
    }
    impl<'de> DeserializeSeed<'de> for IsRecipients {
        type Value = bool;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_str(self)
        }
    }
    impl<'de> Visitor<'de> for Top<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a job object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(is_recipients) = map.next_key_seed(IsRecipients)? {
                if is_recipients {
                    map.next_value_seed(Count { max: self.max, over: self.over })?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        }
    }
    impl<'de> DeserializeSeed<'de> for Count<'_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Count<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("anything")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut n = 0usize;
            while seq.next_element::<IgnoredAny>()?.is_some() {
                n += 1;
                if n > self.max {
                    self.over.set(true);
                    return Err(de::Error::custom("over the recipient limit"));
                }
            }
            Ok(())
        }
        // Any other type is rule 1's to refuse, with the full parse's message.
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(())
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            Ok(())
        }
    }

    let over = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(body);
    // A body that is not an object, or not JSON, is not over the limit: the parse says why.
    let _ = de::Deserializer::deserialize_map(&mut de, Top { max, over: &over });
    over.get()
}

/// What a job carries: photos/videos, or one voice note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Media,
    VoiceNote,
}

impl JobKind {
    /// The wire name, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Media => "media",
            JobKind::VoiceNote => "voice_note",
        }
    }
}

/// Age band of an account; drives rule 3 and the nudity filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgeBand {
    #[serde(rename = "under_16")]
    Under16,
    #[serde(rename = "16_17")]
    Age16To17,
    #[serde(rename = "adult")]
    Adult,
}

/// The message a job belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRef {
    pub message_id: String,
    pub conversation_id: String,
    /// Required: a producer that does not know must not get media through by omission.
    pub first_contact: bool,
}

/// The sender.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Party {
    pub account_id: String,
    pub age_band: AgeBand,
}

/// A recipient, with an adult's own nudity-filter opt-in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipient {
    pub account_id: String,
    pub age_band: AgeBand,
    #[serde(default)]
    pub nudity_filter: bool,
}

/// Where an item's raw upload lies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub bucket: String,
    pub key: String,
}

/// One uploaded file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub item_id: ItemId,
    pub source: Source,
    /// A hint only; the real type is sniffed from the bytes.
    #[serde(default)]
    pub declared_type: Option<String>,
}

/// A parsed, schema-valid upload job. Unknown fields are ignored (forward compatibility).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub schema: String,
    pub job_id: JobId,
    pub kind: JobKind,
    pub message: MessageRef,
    pub sender: Party,
    pub recipients: Vec<Recipient>,
    pub items: Vec<Item>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(default)]
    pub reprocess: bool,
    #[serde(default)]
    pub revision: u64,
}

/// The result of reading a job body: a job to run the remaining rules on, or rule 1's verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum ParseOutcome {
    Valid(Box<Job>),
    Invalid {
        /// The id the verdict (and manifest) may carry; `None` means `null` and no manifest.
        job_id: Option<JobId>,
        /// Best-effort ids for the verdict, only when they are valid identifiers.
        message_id: Option<String>,
        conversation_id: Option<String>,
        reprocess: bool,
        revision: u64,
        reason: Reason,
        /// `Some(body length)` when the body was over a [`JobLimits`] limit and not parsed: its
        /// manifest holds `"job": null` and this as `job_bytes` (§2).
        job_bytes: Option<u64>,
    },
}

impl Job {
    /// Parses and validates a job body (rule 1). `amqp_message_id` is the delivery's
    /// `message_id` property, used for the verdict only when the body gives no `job_id`, or when
    /// the body is over `limits` (it is then not parsed further, §2).
    pub fn parse(body: &[u8], amqp_message_id: Option<&str>, limits: JobLimits) -> ParseOutcome {
        if let Err(reason) = limits.check(body) {
            return ParseOutcome::Invalid {
                job_id: amqp_message_id.and_then(|id| JobId::parse(id).ok()),
                message_id: None,
                conversation_id: None,
                reprocess: false,
                revision: 0,
                reason,
                job_bytes: Some(body.len() as u64),
            };
        }
        let value: serde_json::Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                let fallback = amqp_message_id.and_then(|id| JobId::parse(id).ok());
                return ParseOutcome::Invalid {
                    job_id: fallback,
                    message_id: None,
                    conversation_id: None,
                    reprocess: false,
                    revision: 0,
                    reason: Reason::new(ReasonCode::JobInvalid, format!("the job body is not valid JSON: {e}")),
                    job_bytes: None,
                };
            }
        };
        let invalid = |reason: Reason| invalid_from_value(&value, amqp_message_id, reason);

        if !value.is_object() {
            return invalid(Reason::new(ReasonCode::JobInvalid, "the job body must be a JSON object"));
        }
        match value.get("schema").and_then(|s| s.as_str()) {
            Some(JOB_SCHEMA) => {}
            Some(other) => {
                return invalid(Reason::new(
                    ReasonCode::JobInvalid,
                    format!("unsupported schema `{other}`; this worker reads `{JOB_SCHEMA}`"),
                ))
            }
            None => {
                return invalid(Reason::new(
                    ReasonCode::JobInvalid,
                    format!("field `schema` is missing or not a string; expected `{JOB_SCHEMA}`"),
                ))
            }
        }
        let job: Job = match serde_path_to_error::deserialize(&value) {
            Ok(job) => job,
            Err(e) => {
                let path = e.path().to_string();
                return invalid(Reason::new(ReasonCode::JobInvalid, format!("field `{path}`: {}", e.into_inner())));
            }
        };
        if let Err(message) = job.validate_fields() {
            return invalid(Reason::new(ReasonCode::JobInvalid, message));
        }
        ParseOutcome::Valid(Box::new(job))
    }

    /// The identifier, uniqueness and length checks serde cannot express.
    fn validate_fields(&self) -> Result<(), String> {
        let check = |field: &str, id: &str| -> Result<(), String> {
            if is_valid_id(id) {
                Ok(())
            } else {
                Err(format!(
                    "field `{field}` = {id:?} is not a valid identifier \
                     ([A-Za-z0-9._-], 1 to 128 characters, not starting with '.')"
                ))
            }
        };
        check("job_id", &self.job_id)?;
        check("message.message_id", &self.message.message_id)?;
        check("message.conversation_id", &self.message.conversation_id)?;
        check("sender.account_id", &self.sender.account_id)?;
        if self.recipients.is_empty() {
            return Err("field `recipients` is empty; a message needs at least one recipient".into());
        }
        for (i, r) in self.recipients.iter().enumerate() {
            check(&format!("recipients[{i}].account_id"), &r.account_id)?;
        }
        let mut seen = HashSet::new();
        for (i, item) in self.items.iter().enumerate() {
            check(&format!("items[{i}].item_id"), &item.item_id)?;
            if !seen.insert(item.item_id.as_str()) {
                return Err(format!(
                    "two items share item_id {:?}; item ids must be unique within a job",
                    item.item_id
                ));
            }
            if item.source.bucket.is_empty() || item.source.bucket.len() > 255 {
                return Err(format!("field `items[{i}].source.bucket` must be 1 to 255 characters"));
            }
            if item.source.key.is_empty() || item.source.key.len() > 1024 {
                return Err(format!("field `items[{i}].source.key` must be 1 to 1024 bytes"));
            }
        }
        // §2: 0 ≤ revision < 2^53, so every JSON implementation reads it exactly.
        if self.revision >= MAX_REVISION {
            return Err(format!(
                "field `revision` = {} is too large; revisions are below 2^53 ({MAX_REVISION})",
                self.revision
            ));
        }
        if let Some(caption) = &self.caption {
            let n = caption.chars().count();
            if n > MAX_CAPTION_CHARS {
                return Err(format!("field `caption` has {n} characters; at most {MAX_CAPTION_CHARS} are allowed"));
            }
        }
        Ok(())
    }

    /// Everyone in the job: the sender's band first, then each recipient's.
    pub fn age_bands(&self) -> impl Iterator<Item = AgeBand> + '_ {
        std::iter::once(self.sender.age_band).chain(self.recipients.iter().map(|r| r.age_band))
    }
}

/// Builds rule 1's outcome for a body that is JSON but not a valid job, salvaging the ids.
fn invalid_from_value(value: &serde_json::Value, amqp_message_id: Option<&str>, reason: Reason) -> ParseOutcome {
    let valid_str =
        |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).filter(|s| is_valid_id(s)).map(str::to_owned);
    // The body "gives" a job_id when the field is present at all; an invalid one becomes null
    // rather than falling back, so a bad id can never be swapped for another key prefix.
    let job_id = match value.get("job_id") {
        Some(v) => valid_str(Some(v)).map(JobId::from),
        None => amqp_message_id.and_then(|id| JobId::parse(id).ok()),
    };
    let message = value.get("message");
    ParseOutcome::Invalid {
        job_id,
        message_id: valid_str(message.and_then(|m| m.get("message_id"))),
        conversation_id: valid_str(message.and_then(|m| m.get("conversation_id"))),
        reprocess: value.get("reprocess").and_then(|v| v.as_bool()).unwrap_or(false),
        revision: value.get("revision").and_then(|v| v.as_u64()).unwrap_or(0),
        reason,
        job_bytes: None,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// The contract's example job (§2), as a value tests can mutate.
    pub(crate) fn example() -> serde_json::Value {
        json!({
            "schema": "mediagate.job.v1",
            "job_id": "j-01HZX3",
            "kind": "media",
            "message": { "message_id": "m-123", "conversation_id": "c-9", "first_contact": false },
            "sender": { "account_id": "a-1", "age_band": "adult" },
            "recipients": [
                { "account_id": "a-2", "age_band": "16_17" },
                { "account_id": "a-3", "age_band": "adult", "nudity_filter": true }
            ],
            "items": [
                { "item_id": "0", "source": { "bucket": "incoming", "key": "u/a-1/8d2e.jpg" }, "declared_type": "image/jpeg" }
            ],
            "caption": "optional text, at most 1000 characters"
        })
    }

    pub(crate) fn parse_value(v: &serde_json::Value) -> ParseOutcome {
        Job::parse(v.to_string().as_bytes(), None, JobLimits::DEFAULT)
    }

    fn expect_invalid(v: serde_json::Value) -> (Option<String>, String) {
        match parse_value(&v) {
            ParseOutcome::Invalid { job_id, reason, .. } => {
                assert_eq!(reason.code, ReasonCode::JobInvalid);
                (job_id.map(String::from), reason.message)
            }
            ParseOutcome::Valid(job) => panic!("expected invalid, parsed {job:?}"),
        }
    }

    #[test]
    fn the_contract_example_parses() {
        let ParseOutcome::Valid(job) = parse_value(&example()) else { panic!("invalid") };
        assert_eq!(job.job_id, "j-01HZX3");
        assert_eq!(job.kind, JobKind::Media);
        assert_eq!(job.recipients[0].age_band, AgeBand::Age16To17);
        assert!(!job.recipients[0].nudity_filter);
        assert!(job.recipients[1].nudity_filter);
        assert_eq!(job.items[0].source.key, "u/a-1/8d2e.jpg");
        assert!(!job.reprocess);
        assert_eq!(job.revision, 0);
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let mut v = example();
        v["future_field"] = json!({"x": 1});
        v["items"][0]["future"] = json!(true);
        assert!(matches!(parse_value(&v), ParseOutcome::Valid(_)));
    }

    #[test]
    fn optional_fields_may_be_absent() {
        let mut v = example();
        v.as_object_mut().unwrap().remove("caption");
        v["items"][0].as_object_mut().unwrap().remove("declared_type");
        v["reprocess"] = json!(true);
        v["revision"] = json!(3);
        let ParseOutcome::Valid(job) = parse_value(&v) else { panic!() };
        assert!(job.caption.is_none() && job.reprocess && job.revision == 3);
    }

    fn with_recipients(n: usize) -> serde_json::Value {
        let mut v = example();
        v["recipients"] =
            json!((0..n).map(|i| json!({ "account_id": format!("a-{i}"), "age_band": "adult" })).collect::<Vec<_>>());
        v
    }

    #[test]
    fn a_job_at_the_recipient_limit_parses_and_one_over_is_refused_by_amqp_id() {
        assert!(matches!(parse_value(&with_recipients(256)), ParseOutcome::Valid(_)));
        let body = with_recipients(257).to_string();
        match Job::parse(body.as_bytes(), Some("j-amqp"), JobLimits::DEFAULT) {
            ParseOutcome::Invalid { job_id, message_id, reason, job_bytes, revision, .. } => {
                // Over a limit the body is not read further: the id is the AMQP one (§2).
                assert_eq!(job_id.as_deref(), Some("j-amqp"));
                assert_eq!(message_id, None);
                assert_eq!(revision, 0);
                assert_eq!(job_bytes, Some(body.len() as u64));
                assert_eq!(reason.code, ReasonCode::JobInvalid);
                assert!(reason.message.contains("MEDIAGATE_MAX_RECIPIENTS"), "{}", reason.message);
                assert!(reason.message.contains("at most 256"), "{}", reason.message);
            }
            other => panic!("{other:?}"),
        }
        // Another limit, set by the operator.
        let small = JobLimits { max_recipients: 1, ..JobLimits::DEFAULT };
        assert!(matches!(Job::parse(body.as_bytes(), None, small), ParseOutcome::Invalid { job_id: None, .. }));
        assert!(matches!(Job::parse(with_recipients(1).to_string().as_bytes(), None, small), ParseOutcome::Valid(_)));
    }

    #[test]
    fn recipients_are_counted_wherever_the_key_is_and_whatever_they_hold() {
        // `recipients` last, after other big fields, and entries of any JSON type.
        let body = format!(
            r#"{{"caption":"x","items":[{{"a":[1,2,{{"b":"c"}}]}}],"recipients":[{}]}}"#,
            [r#"{"k":[1,"two",null,true,{"z":1.5}]}"#; 3].join(",")
        );
        assert!(!recipients_over(body.as_bytes(), 3));
        assert!(recipients_over(body.as_bytes(), 2));
        // Not JSON, not an object, recipients not an array: not over; the parse says what is wrong.
        for body in [&b"{not json"[..], b"[1,2,3]", br#"{"recipients": 7}"#, br#"{"recipients": {"a": 1, "b": 2}}"#] {
            assert!(!recipients_over(body, 1), "{}", String::from_utf8_lossy(body));
        }
        // Truncated after the limit was passed: over all the same (counted while reading).
        assert!(recipients_over(br#"{"recipients":[1,2,3"#, 2));
    }

    #[test]
    fn a_body_over_the_byte_limit_is_refused_before_it_is_parsed() {
        let limits = JobLimits { max_bytes: 100, ..JobLimits::DEFAULT };
        let body = example().to_string();
        assert!(body.len() > 100);
        match Job::parse(body.as_bytes(), Some("../bad"), limits) {
            ParseOutcome::Invalid { job_id, reason, job_bytes, .. } => {
                assert_eq!(job_id, None, "an invalid AMQP id gives null, and nothing is written");
                assert_eq!(job_bytes, Some(body.len() as u64));
                assert!(
                    reason.message.contains(&format!("is {} bytes", body.len()))
                        && reason.message.contains("at most 100 bytes")
                        && reason.message.contains("MEDIAGATE_MAX_JOB_BYTES"),
                    "{}",
                    reason.message
                );
            }
            other => panic!("{other:?}"),
        }
        // Not JSON at all, but over the size: the size is what is reported.
        let junk = vec![b'x'; JobLimits::DEFAULT.max_bytes + 1];
        match Job::parse(&junk, Some("j-1"), JobLimits::DEFAULT) {
            ParseOutcome::Invalid { job_id, reason, .. } => {
                assert_eq!(job_id.as_deref(), Some("j-1"));
                assert!(reason.message.contains("MEDIAGATE_MAX_JOB_BYTES"), "{}", reason.message);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            JobLimits::DEFAULT.check(&vec![b' '; JobLimits::DEFAULT.max_bytes]).is_ok(),
            "the limit itself is allowed"
        );
    }

    #[test]
    fn not_json_takes_the_amqp_message_id() {
        match Job::parse(b"{not json", Some("j-amqp"), JobLimits::DEFAULT) {
            ParseOutcome::Invalid { job_id, reason, .. } => {
                assert_eq!(job_id.as_deref(), Some("j-amqp"));
                assert_eq!(reason.code, ReasonCode::JobInvalid);
                assert!(reason.message.contains("not valid JSON"), "{}", reason.message);
            }
            other => panic!("{other:?}"),
        }
        match Job::parse(b"\xff\xfe", Some("../evil"), JobLimits::DEFAULT) {
            ParseOutcome::Invalid { job_id, .. } => assert_eq!(job_id, None),
            other => panic!("{other:?}"),
        }
        match Job::parse(b"", None, JobLimits::DEFAULT) {
            ParseOutcome::Invalid { job_id, .. } => assert_eq!(job_id, None),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_body_job_id_wins_over_the_amqp_one_and_an_invalid_one_is_null() {
        let mut v = example();
        v["kind"] = json!("sticker");
        match Job::parse(v.to_string().as_bytes(), Some("j-other"), JobLimits::DEFAULT) {
            ParseOutcome::Invalid { job_id, message_id, .. } => {
                assert_eq!(job_id.as_deref(), Some("j-01HZX3"));
                assert_eq!(message_id.as_deref(), Some("m-123"));
            }
            other => panic!("{other:?}"),
        }
        v["job_id"] = json!("../../etc");
        match Job::parse(v.to_string().as_bytes(), Some("j-other"), JobLimits::DEFAULT) {
            ParseOutcome::Invalid { job_id, .. } => assert_eq!(job_id, None),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn schema_errors_name_the_field() {
        let mut v = example();
        v["sender"]["age_band"] = json!("teen");
        let (id, msg) = expect_invalid(v);
        assert_eq!(id.as_deref(), Some("j-01HZX3"));
        assert!(msg.contains("sender.age_band"), "{msg}");

        let mut v = example();
        v["message"].as_object_mut().unwrap().remove("first_contact");
        let (_, msg) = expect_invalid(v);
        assert!(msg.contains("first_contact"), "{msg}");

        let mut v = example();
        v["schema"] = json!("mediagate.job.v2");
        let (_, msg) = expect_invalid(v);
        assert!(msg.contains("mediagate.job.v2"), "{msg}");

        let mut v = example();
        v.as_object_mut().unwrap().remove("schema");
        expect_invalid(v);

        expect_invalid(json!([1, 2]));
        expect_invalid(json!("mediagate.job.v1"));
    }

    #[test]
    fn every_identifier_is_checked() {
        for path in
            [&["job_id"][..], &["message", "message_id"], &["message", "conversation_id"], &["sender", "account_id"]]
        {
            let mut v = example();
            let mut target = &mut v;
            for p in path {
                target = &mut target[*p];
            }
            *target = json!(".dot");
            let (_, msg) = expect_invalid(v);
            assert!(msg.contains(&path.join(".")), "{msg}");
        }
        let mut v = example();
        v["recipients"][1]["account_id"] = json!("a/3");
        assert!(expect_invalid(v).1.contains("recipients[1].account_id"));
        let mut v = example();
        v["items"][0]["item_id"] = json!("");
        assert!(expect_invalid(v).1.contains("items[0].item_id"));
        let mut v = example();
        v["job_id"] = json!(42);
        let (id, _) = expect_invalid(v);
        assert_eq!(id, None);
    }

    #[test]
    fn duplicate_item_ids_make_the_job_invalid() {
        let mut v = example();
        let item = v["items"][0].clone();
        v["items"].as_array_mut().unwrap().push(item);
        let (_, msg) = expect_invalid(v);
        assert!(msg.contains("share item_id"), "{msg}");
    }

    #[test]
    fn caption_is_limited_in_characters_not_bytes() {
        let mut v = example();
        v["caption"] = json!("é".repeat(1000));
        assert!(matches!(parse_value(&v), ParseOutcome::Valid(_)));
        v["caption"] = json!("x".repeat(1001));
        assert!(expect_invalid(v).1.contains("1001"));
    }

    #[test]
    fn empty_recipients_and_empty_keys_are_invalid() {
        let mut v = example();
        v["recipients"] = json!([]);
        expect_invalid(v);
        let mut v = example();
        v["items"][0]["source"]["key"] = json!("");
        expect_invalid(v);
        let mut v = example();
        v["items"][0]["source"]["bucket"] = json!("");
        expect_invalid(v);
    }

    #[test]
    fn item_count_is_not_a_schema_error() {
        let mut v = example();
        v["items"] = json!([]);
        assert!(matches!(parse_value(&v), ParseOutcome::Valid(_)));
    }

    #[test]
    fn a_revision_beyond_what_json_holds_exactly_is_invalid() {
        let mut v = example();
        v["revision"] = json!(MAX_REVISION - 1);
        assert!(matches!(parse_value(&v), ParseOutcome::Valid(_)));
        v["revision"] = json!(MAX_REVISION);
        let (job_id, message) = expect_invalid(v);
        assert_eq!(job_id.as_deref(), Some("j-01HZX3"));
        assert!(message.contains("revision"), "{message}");
    }
}
