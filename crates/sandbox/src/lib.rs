//! mediagate-sandbox: runs each item's media work (raw bytes → what the file is, outputs,
//! measurements and classifier tensors) in a fresh child process, so a file that crashes, hangs
//! or exploits a native decoder (FFmpeg, libjpeg-turbo, libpng, libwebp…) cannot take the worker
//! down, block its other jobs, or reach anything the worker can.
//!
//! One request per item ([`Task`]): the child sniffs the bytes, probes the tracks of a container
//! that may hold sound or pictures, checks the class against what the job admits ([`Admit`]),
//! says what it found (from then on [`budget_of`] its class is the item's clock and CPU limit), and
//! processes it with that class's pipeline. It answers a [`Done`] or a typed [`Refusal`].
//!
//! The fork server is the `mediagate` binary itself, started with a hidden first argument
//! ([`SERVER_ARG`]); its `main` calls [`server::serve`]. Each child it forks:
//! - locks itself down before it reads a byte of input ([`lockdown`]): dies with the worker
//!   (`PR_SET_PDEATHSIG`), `no_new_privs`, no core dumps, and a seccomp filter that refuses
//!   sockets, `exec`, new processes, `ptrace` and the other calls exploits reach for, so a
//!   compromised decoder has no network and cannot start anything;
//! - gets the environment the worker chooses (no credentials: the AMQP URL and the S3 keys are
//!   never in its environment) and no file descriptors but its pipes and its input's sealed
//!   memfd, which it maps read-only ([`Input`]: the bytes cross without a copy);
//! - takes memory (`RLIMIT_DATA`), CPU-time (`RLIMIT_CPU`), file-size and open-file limits;
//! - serves exactly one item and exits, so nothing one user's file did survives into the next
//!   item.
//!
//! The worker's side ([`Sandbox`]) keeps one server per slot started ahead of time, so the
//! start-up cost (exec, dynamic linking) is off the item's critical path; it enforces the item's
//! wall-clock budget by killing the server, and reports a crash with what killed it. The
//! classifier model itself runs in the worker: only tensors (plain floats) cross back, never
//! decoder state.
//!
//! [`Mode::InProcess`] runs the same [`execute`] on a blocking thread instead, for platforms
//! without these facilities and for debugging; panics are still caught there.
//!
//! Architecture invariant: the worker never parses untrusted media bytes; everything that looks
//! inside them is in [`execute`]. The wire types are this crate's ([`Request`], [`Report`]);
//! both ends are the same binary, so there is no versioning. Every failure is a
//! [`SandboxError`] or a [`Refusal`], never a panic in the worker.

#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod exec;
mod frame;
mod input;
pub mod lockdown;
pub mod server;
mod supervisor;

use std::time::Duration;

use mediagate_media::{Format, MediaClass, MediaError, MediaSettings, PhotoOutput, VideoOutput, VoiceOutput};
use serde::{Deserialize, Serialize};

pub use exec::execute;
pub use input::{Input, InputWriter};
pub use supervisor::{Mode, Sandbox, SandboxConfig};

/// First argument that turns the `mediagate` binary into a media sandbox fork server.
pub const SERVER_ARG: &str = "__media-sandbox";

/// One item's media work, all of it in one request: identify the file from its bytes, look at
/// its tracks when its container may hold sound or pictures, check it is what the job admits,
/// then process it with the pipeline of its class. The worker never looks inside the bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Task {
    /// What the job takes.
    pub admit: Admit,
    /// Limits and knobs of the pipelines.
    pub settings: MediaSettings,
    /// Whether the nudity filter applies: the classifier's tensors come back with the outputs.
    pub classify: bool,
}

/// What a job takes (the sandbox knows media classes, not jobs: the worker maps its kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Admit {
    /// Photos and videos.
    Visual,
    /// Sound only.
    Audio,
}

impl Admit {
    /// Whether a file of this class fits.
    pub fn admits(self, class: MediaClass) -> bool {
        match self {
            Admit::Visual => matches!(class, MediaClass::Image | MediaClass::Video),
            Admit::Audio => class == MediaClass::Audio,
        }
    }

    /// The longest the work of an admitted file may take: the worker's wall clock before the
    /// child says what the file is.
    pub fn budget(self, s: &MediaSettings) -> Duration {
        match self {
            Admit::Visual => s.photo.budget.max(s.video.budget),
            Admit::Audio => s.voice.budget,
        }
    }
}

/// The budget of one class's work.
pub fn budget_of(class: MediaClass, s: &MediaSettings) -> Duration {
    match class {
        MediaClass::Image => s.photo.budget,
        MediaClass::Audio => s.voice.budget,
        MediaClass::Video => s.video.budget,
    }
}

/// What the parent sends with the input's descriptor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    /// For the child's log lines.
    pub job_id: String,
    /// For the child's log lines.
    pub item_id: String,
    /// The work.
    pub task: Task,
    /// Applied by the child before it reads the input.
    pub limits: ChildLimits,
}

/// Resource limits of one child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildLimits {
    /// `RLIMIT_DATA`: heap, anonymous mappings and thread stacks (the input is mapped read-only
    /// from the worker's memfd and counted in the worker's input budget instead).
    pub memory_bytes: u64,
    /// `RLIMIT_CPU` (soft; the hard limit, which kills, is 5 s above it).
    pub cpu_seconds: u64,
    /// `RLIMIT_FSIZE`: the largest file the child may write (the video muxer's temporary file).
    pub file_bytes: u64,
}

/// The classifier's input for one image: 224×224×3 NHWC float32, as
/// [`mediagate_classify::preprocess`] returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tensor(pub Vec<f32>);

/// The outputs of a file that was processed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Done {
    /// What the bytes were (the quarantine key's extension comes from it).
    pub format: Format,
    /// What the pipeline of its class produced.
    pub outcome: Outcome,
}

/// What the media work produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Outcome {
    /// A processed photo and, when asked, its classifier tensors.
    Photo {
        /// Variants, measurements and hashes.
        out: PhotoOutput,
        /// The classifier's inputs when the filter applies (else empty): the image as shown,
        /// or, with transparency, composited on black and on white (the higher score counts).
        tensors: Vec<Tensor>,
    },
    /// A transcoded voice note.
    Voice(VoiceOutput),
    /// A transcoded video (`out.frames` empty) and one tensor per sampled frame.
    Video {
        /// Variants and measurements.
        out: VideoOutput,
        /// Tensors of the sampled frames, the poster among them (empty without the filter).
        tensors: Vec<Tensor>,
    },
}

impl Outcome {
    /// The class of file this came from.
    pub fn class(&self) -> MediaClass {
        match self {
            Outcome::Photo { .. } => MediaClass::Image,
            Outcome::Voice(_) => MediaClass::Audio,
            Outcome::Video { .. } => MediaClass::Video,
        }
    }
}

/// Why a file was not processed: each is the input's doing, except a [`MediaError`] that is not
/// (a budget overrun, an internal error), which the worker treats as its own fault (its
/// `codes.rs` decides which).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// No format the sniffer knows matches the bytes.
    Unrecognized {
        /// The first bytes (at most 8), so a person can tell HTML, text or an empty file apart.
        head: Vec<u8>,
    },
    /// A file of a class the job does not take.
    NotAdmitted {
        /// What the bytes are.
        format: Format,
        /// What its tracks make it.
        class: MediaClass,
        /// What the job takes.
        admit: Admit,
    },
    /// The pipeline (or the track probe) refused it.
    Media {
        /// What the bytes are.
        format: Format,
        /// Its class, as far as known when it was refused.
        class: MediaClass,
        /// Why.
        error: MediaError,
    },
}

impl Refusal {
    /// The format the child recognised, if it got that far.
    pub fn format(&self) -> Option<Format> {
        match self {
            Refusal::Unrecognized { .. } => None,
            Refusal::NotAdmitted { format, .. } | Refusal::Media { format, .. } => Some(*format),
        }
    }
}

/// How the child's work went.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Wall-clock time of the media work itself, classifier preparation included.
    pub work: Duration,
    /// Of which: decoding and preprocessing for the classifier.
    pub classify_prep: Duration,
    /// The child's peak resident memory (`VmHWM`), 0 in-process.
    pub peak_rss_bytes: u64,
    /// CPU time (user + system) the child used, 0 in-process.
    pub cpu: Duration,
    /// The process that did the work (the worker's own pid in-process).
    pub pid: u32,
    /// Children that died without an answer before this one (set by the worker's side).
    #[serde(default)]
    pub crashes: u32,
}

/// The child's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The outputs, or why the input was refused.
    pub result: Result<Done, Refusal>,
    /// Measurements of the work.
    pub stats: Stats,
}

/// Why the sandbox gave no [`Report`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    /// A child could not be started (the binary is missing, the process table is full…). Never
    /// the input's fault.
    #[error("could not start a media sandbox process: {message}")]
    Spawn {
        /// What failed.
        message: String,
    },
    /// The child died without an answer, twice, each time in a fresh process: the file makes the
    /// decoder crash (or exhaust its memory limit).
    #[error("{}", crash_message(how, *out_of_memory, *memory_mb))]
    Crashed {
        /// How it ended, e.g. "killed by signal 11 (SIGSEGV)".
        how: String,
        /// Whether its last words say an allocation failed.
        out_of_memory: bool,
        /// The memory limit it ran under, in MiB.
        memory_mb: u64,
    },
    /// The child did not answer within the item's wall-clock budget and was killed.
    #[error("{stage} did not finish within its {} s budget; the decoder process was stopped", budget.as_secs())]
    TimedOut {
        /// What was running.
        stage: &'static str,
        /// The budget that ran out.
        budget: Duration,
    },
}

fn crash_message(how: &str, out_of_memory: bool, memory_mb: u64) -> String {
    if out_of_memory {
        format!(
            "decoding this file needed more than the {memory_mb} MiB a decoder may use (the isolated decoder \
             process {how}, twice); send a smaller or simpler file"
        )
    } else {
        format!(
            "the decoder crashed on this file (the isolated decoder process {how}, twice); the file is damaged \
             or crafted: re-export it and send it again"
        )
    }
}
