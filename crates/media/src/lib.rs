//! mediagate-media: sniffing and media processing. Bytes in, outputs and measurements out.
//!
//! Invariants: synchronous (no tokio), no I/O besides the bytes given, no knowledge of queues,
//! buckets or jobs. Every refusal is a [`MediaError`] whose variant maps to one contract reason
//! code, checked in the cheapest order (magic bytes, then header, then pixel limit, then decode).

mod error;
mod jpeg_meta;
mod photo;
mod raster;
mod sniff;

pub use error::MediaError;
pub use photo::{probe_dimensions, process_photo, Encoded, OutputKind, PhotoOutput, PhotoSettings};
pub use sniff::{ogg_codec, sniff, Format, MediaClass, OggCodec};
