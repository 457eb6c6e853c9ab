//! Hash banks (contract §8): the PDQ perceptual hash, the banks' text format, and the lookup of
//! an item's hashes in the loaded banks.
//!
//! - [`pdq`]: a bit-exact port of Meta's ThreatExchange PDQ as the PyPI package `pdqhash` 0.2.8
//!   wraps it (its Cython bindings decide the luma; `tests/pdq_reference.rs` is the oracle test),
//!   computed in one streaming pass with no full-size buffer.
//! - [`bank`]: one bank's text (`KIND HEX [LABEL…]` lines), malformed lines counted, not fatal.
//! - [`index`]: the immutable [`Banks`] the worker shares: exact digests in hash maps, PDQ
//!   entries behind a multi-index-hashing table so a 1,000,000-entry bank answers in well under a
//!   millisecond, with the contract's rule for which match is reported.
//!
//! Pure: no I/O, no logging, no tokio. Fetching the sources, logging the bad lines and counting
//! them in metrics is the worker's job; checking PDQ quality against the configured minimum is
//! the caller's.

pub mod bank;
mod hex;
pub mod index;
pub mod pdq;

pub use bank::{
    parse_bank, parse_bank_object, BadLine, BankError, Digest, Entry, Kind, Parsed, MAX_BAD_LINES, MAX_BANK_BYTES,
};
pub use hex::HexError;
pub use index::{BankStats, Banks, Match, Query};
pub use pdq::{add_luma_blocks, luma, pdq_luma, pdq_rgb, pdq_rows, Hashed, Pdq, PdqError};
