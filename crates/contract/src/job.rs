//! The upload job (`mediagate.job.v1`, §2) and its parsing (rule 1).
//!
//! Parsing never fails without telling the caller what to put in the verdict: even a body
//! that is not JSON yields a [`ParseOutcome::Invalid`] carrying the best `job_id` the contract
//! allows (a valid `job_id` from the body, else a valid AMQP `message_id`, else none).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::ids::is_valid_id;
use crate::reason::{Reason, ReasonCode};
use crate::settings::MAX_CAPTION_CHARS;

/// The schema tag every job carries.
pub const JOB_SCHEMA: &str = "mediagate.job.v1";

/// Revisions are below 2^53 (§2), the largest integer every JSON implementation holds exactly.
pub const MAX_REVISION: u64 = 1 << 53;

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
    pub item_id: String,
    pub source: Source,
    /// A hint only; the real type is sniffed from the bytes.
    #[serde(default)]
    pub declared_type: Option<String>,
}

/// A parsed, schema-valid upload job. Unknown fields are ignored (forward compatibility).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub schema: String,
    pub job_id: String,
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
        job_id: Option<String>,
        /// Best-effort ids for the verdict, only when they are valid identifiers.
        message_id: Option<String>,
        conversation_id: Option<String>,
        reprocess: bool,
        revision: u64,
        reason: Reason,
    },
}

impl Job {
    /// Parses and validates a job body (rule 1). `amqp_message_id` is the delivery's
    /// `message_id` property, used for the verdict only when the body gives no `job_id`.
    pub fn parse(body: &[u8], amqp_message_id: Option<&str>) -> ParseOutcome {
        let value: serde_json::Value = match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                let fallback = amqp_message_id.filter(|id| is_valid_id(id)).map(str::to_owned);
                return ParseOutcome::Invalid {
                    job_id: fallback,
                    message_id: None,
                    conversation_id: None,
                    reprocess: false,
                    revision: 0,
                    reason: Reason::new(ReasonCode::JobInvalid, format!("the job body is not valid JSON: {e}")),
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
        Some(v) => valid_str(Some(v)),
        None => amqp_message_id.filter(|id| is_valid_id(id)).map(str::to_owned),
    };
    let message = value.get("message");
    ParseOutcome::Invalid {
        job_id,
        message_id: valid_str(message.and_then(|m| m.get("message_id"))),
        conversation_id: valid_str(message.and_then(|m| m.get("conversation_id"))),
        reprocess: value.get("reprocess").and_then(|v| v.as_bool()).unwrap_or(false),
        revision: value.get("revision").and_then(|v| v.as_u64()).unwrap_or(0),
        reason,
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
        Job::parse(v.to_string().as_bytes(), None)
    }

    fn expect_invalid(v: serde_json::Value) -> (Option<String>, String) {
        match parse_value(&v) {
            ParseOutcome::Invalid { job_id, reason, .. } => {
                assert_eq!(reason.code, ReasonCode::JobInvalid);
                (job_id, reason.message)
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

    #[test]
    fn not_json_takes_the_amqp_message_id() {
        match Job::parse(b"{not json", Some("j-amqp")) {
            ParseOutcome::Invalid { job_id, reason, .. } => {
                assert_eq!(job_id.as_deref(), Some("j-amqp"));
                assert_eq!(reason.code, ReasonCode::JobInvalid);
                assert!(reason.message.contains("not valid JSON"), "{}", reason.message);
            }
            other => panic!("{other:?}"),
        }
        match Job::parse(b"\xff\xfe", Some("../evil")) {
            ParseOutcome::Invalid { job_id, .. } => assert_eq!(job_id, None),
            other => panic!("{other:?}"),
        }
        match Job::parse(b"", None) {
            ParseOutcome::Invalid { job_id, .. } => assert_eq!(job_id, None),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_body_job_id_wins_over_the_amqp_one_and_an_invalid_one_is_null() {
        let mut v = example();
        v["kind"] = json!("sticker");
        match Job::parse(v.to_string().as_bytes(), Some("j-other")) {
            ParseOutcome::Invalid { job_id, message_id, .. } => {
                assert_eq!(job_id.as_deref(), Some("j-01HZX3"));
                assert_eq!(message_id.as_deref(), Some("m-123"));
            }
            other => panic!("{other:?}"),
        }
        v["job_id"] = json!("../../etc");
        match Job::parse(v.to_string().as_bytes(), Some("j-other")) {
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
