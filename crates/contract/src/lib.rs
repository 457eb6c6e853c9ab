//! The mediagate wire contract (`docs/contract.md`) as Rust types and pure functions.
//!
//! Everything a producer or verdict consumer in another language relies on lives here, so
//! that the contract has exactly one implementation inside mediagate: the job and verdict
//! JSON, identifier validation, the job-level rules in their order, the reason codes, the
//! limits and their defaults, the S3 key layout, and the "does the nudity filter apply, at
//! which threshold" decision.
//!
//! Invariant: this crate does no I/O and knows nothing about tokio, RabbitMQ, S3 or media
//! decoding. Every other mediagate crate may depend on it; it depends on none of them.

pub mod ids;
pub mod index;
pub mod job;
pub mod keys;
pub mod policy;
pub mod reason;
pub mod review;
pub mod settings;
pub mod verdict;

pub use ids::{is_valid_id, InvalidId, ItemId, JobId};
pub use job::{AgeBand, Item, Job, JobKind, JobLimits, MessageRef, ParseOutcome, Party, Recipient, Source, JOB_SCHEMA};
pub use policy::{check_job_rules, nudity_policy, NudityPolicy};
pub use reason::{Reason, ReasonCode};
pub use settings::Thresholds;
pub use verdict::{
    job_status, FramePdq, HashMatch, Hashes, ItemStatus, ItemVerdict, JobStatus, Manifest, MediaType, NudityResult,
    Output, ReviewNote, Verdict, WorkerInfo,
};
