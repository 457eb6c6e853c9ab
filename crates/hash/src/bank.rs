//! One bank's text (contract §8): UTF-8, one `KIND HEX [LABEL…]` entry a line.
//!
//! Banks come from other teams and other systems, so a bad line must never cost the good ones:
//! it is skipped, counted and described (the first [`MAX_BAD_LINES`] of them kept for the log),
//! and only a source that is unreadable as a whole — not UTF-8, over [`MAX_BANK_BYTES`], or with
//! no valid entry at all — fails to load.
//!
//! The format, as parsed here:
//! - a UTF-8 byte-order mark at the start is ignored; lines end in LF or CRLF;
//! - fields are separated by runs of spaces and/or tabs (leading ones are tolerated);
//! - blank lines, and lines whose first field starts with `#`, are ignored;
//! - `KIND` is `sha256`, `md5` or `pdq`, **lower-case only** (the contract spells them so, and a
//!   `SHA256` line is more likely a different format than a shouting one; it is reported as such);
//! - `HEX` is the digest in either case: 64 digits for `sha256` and `pdq`, 32 for `md5`;
//! - `LABEL` is the rest of the line after `HEX` and the separators after it, trailing
//!   whitespace trimmed (inner spaces kept); `None` when that is empty.

use std::fmt;

use crate::hex::{self, HexError};
use crate::pdq::Pdq;

/// A source larger than this is a failed load (contract §8).
pub const MAX_BANK_BYTES: u64 = 256 << 20;

/// How many [`BadLine`] descriptions a [`Parsed`] keeps (all are counted): enough to see what
/// is wrong with a file, bounded however broken the file is.
pub const MAX_BAD_LINES: usize = 100;

/// What an entry's digest is of.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// SHA-256 of the original's bytes.
    Sha256,
    /// MD5 of the original's bytes.
    Md5,
    /// PDQ of the decoded pixels.
    Pdq,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 3] = [Kind::Sha256, Kind::Md5, Kind::Pdq];

    /// The name banks and verdicts use: `sha256`, `md5` or `pdq`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Sha256 => "sha256",
            Kind::Md5 => "md5",
            Kind::Pdq => "pdq",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        match s {
            "sha256" => Some(Kind::Sha256),
            "md5" => Some(Kind::Md5),
            "pdq" => Some(Kind::Pdq),
            _ => None,
        }
    }

    fn hex_digits(self) -> usize {
        match self {
            Kind::Sha256 | Kind::Pdq => 64,
            Kind::Md5 => 32,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bank entry's digest.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Digest {
    Sha256([u8; 32]),
    Md5([u8; 16]),
    Pdq(Pdq),
}

impl Digest {
    pub fn kind(&self) -> Kind {
        match self {
            Digest::Sha256(_) => Kind::Sha256,
            Digest::Md5(_) => Kind::Md5,
            Digest::Pdq(_) => Kind::Pdq,
        }
    }

    /// Lower-case hex, as verdicts report a bank's entry (a PDQ as [`Pdq::to_hex`]).
    pub fn to_hex(&self) -> String {
        match self {
            Digest::Sha256(b) => hex::encode(b),
            Digest::Md5(b) => hex::encode(b),
            Digest::Pdq(p) => p.to_hex(),
        }
    }

    fn parse(kind: Kind, s: &str) -> Result<Digest, HexError> {
        Ok(match kind {
            Kind::Sha256 => Digest::Sha256(hex::decode(s)?),
            Kind::Md5 => Digest::Md5(hex::decode(s)?),
            Kind::Pdq => Digest::Pdq(Pdq::from_hex(s)?),
        })
    }
}

/// One valid line.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Entry {
    pub digest: Digest,
    pub label: Option<String>,
}

/// A malformed line: where, and what is wrong with it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BadLine {
    /// 1-based line number in its source.
    pub line: usize,
    /// What a person needs to fix it, e.g. "`pdq` needs 64 hex digits, found 63".
    pub reason: String,
}

impl fmt::Display for BadLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// What one source (or, after [`Parsed::extend`], several objects of one prefix) held.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Parsed {
    /// The valid entries, in file order (the order matters: the first matching entry of a bank
    /// is the one reported).
    pub entries: Vec<Entry>,
    /// The first [`MAX_BAD_LINES`] malformed lines.
    pub bad_lines: Vec<BadLine>,
    /// All malformed lines, kept or not.
    pub bad_count: usize,
}

impl Parsed {
    /// Appends another object's entries and bad lines (an `s3://bucket/prefix/` bank is every
    /// object under the prefix, in listing order). Line numbers stay those of their own object.
    pub fn extend(&mut self, other: Parsed) {
        self.entries.extend(other.entries);
        let room = MAX_BAD_LINES.saturating_sub(self.bad_lines.len());
        self.bad_lines.extend(other.bad_lines.into_iter().take(room));
        self.bad_count += other.bad_count;
    }

    /// The whole source's verdict: a source with no valid entry (an empty prefix included) is
    /// a failed load.
    pub fn into_loaded(self) -> Result<Parsed, BankError> {
        if self.entries.is_empty() {
            return Err(BankError::NoEntries { bad_count: self.bad_count });
        }
        Ok(self)
    }

    fn bad(&mut self, line: usize, reason: String) {
        self.bad_count += 1;
        if self.bad_lines.len() < MAX_BAD_LINES {
            self.bad_lines.push(BadLine { line, reason });
        }
    }
}

/// Why a source failed to load as a whole (malformed lines alone never fail it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BankError {
    #[error("the bank is {bytes} bytes, over the {} MiB limit; split it or remove stale entries", MAX_BANK_BYTES >> 20)]
    TooLarge { bytes: u64 },
    #[error("the bank is not UTF-8 text (first invalid byte at offset {offset}); save it as UTF-8")]
    NotUtf8 { offset: usize },
    #[error(
        "the bank has no valid entry ({bad_count} malformed lines); expected lines like `pdq <64 hex digits> [label]`"
    )]
    NoEntries { bad_count: usize },
}

/// Parses one whole bank source: its entries, or why it failed to load.
pub fn parse_bank(bytes: &[u8]) -> Result<Parsed, BankError> {
    parse_bank_object(bytes)?.into_loaded()
}

/// Parses one object of a prefix bank: like [`parse_bank`], but an object with no valid entry
/// is not an error by itself — the prefix as a whole is judged by [`Parsed::into_loaded`]
/// after [`Parsed::extend`]ing every object into one. (The 256 MiB limit is the source's, so
/// the caller also adds up the objects' sizes against [`MAX_BANK_BYTES`].)
pub fn parse_bank_object(bytes: &[u8]) -> Result<Parsed, BankError> {
    if bytes.len() as u64 > MAX_BANK_BYTES {
        return Err(BankError::TooLarge { bytes: bytes.len() as u64 });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| BankError::NotUtf8 { offset: e.valid_up_to() })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parsed = Parsed::default();
    for (i, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        match parse_line(line) {
            Ok(Some(entry)) => parsed.entries.push(entry),
            Ok(None) => {}
            Err(reason) => parsed.bad(i + 1, reason),
        }
    }
    Ok(parsed)
}

fn is_sep(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Splits off the first field: `(field, rest after the separator run)`.
fn field(s: &str) -> (&str, &str) {
    match s.find(is_sep) {
        Some(i) => (&s[..i], s[i..].trim_start_matches(is_sep)),
        None => (s, ""),
    }
}

/// A field as quoted in a message: bounded, so a garbage line gives a readable reason.
fn quoted(s: &str) -> String {
    const MAX: usize = 32;
    if s.chars().count() > MAX {
        format!("`{}…`", s.chars().take(MAX).collect::<String>())
    } else {
        format!("`{s}`")
    }
}

/// One line: `Ok(None)` for a blank or comment line, `Err(reason)` for a malformed one.
fn parse_line(line: &str) -> Result<Option<Entry>, String> {
    let line = line.trim_start_matches(is_sep);
    if line.trim_end().is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (kind, rest) = field(line);
    let Some(kind) = Kind::parse(kind) else {
        return Err(match Kind::parse(&kind.to_ascii_lowercase()) {
            Some(k) => format!("kind {} must be lower-case: `{k}`", quoted(kind)),
            None => format!("unknown kind {}: expected `sha256`, `md5` or `pdq`", quoted(kind)),
        });
    };
    let (digest, rest) = field(rest);
    if digest.trim_end().is_empty() {
        return Err(format!("`{kind}` needs {} hex digits after it, found none", kind.hex_digits()));
    }
    let digest = Digest::parse(kind, digest).map_err(|e| match e {
        HexError::Length { expected, found } => format!("`{kind}` needs {expected} hex digits, found {found}"),
        HexError::NotHex { at, ch } => format!("`{kind}` digest: character {at} ({ch:?}) is not a hex digit"),
    })?;
    let label = rest.trim_end();
    Ok(Some(Entry { digest, label: (!label.is_empty()).then(|| label.to_owned()) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const MD5: &str = "098f6bcd4621d373cade4e832627b4f6";
    const PDQ: &str = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22";

    #[test]
    fn parses_each_kind_with_and_without_labels() {
        let text = format!(
            "\u{feff}# a comment\r\nsha256 {SHA}\r\n\nmd5\t{}\tsome  label \t\r\n  pdq   {PDQ}   x\n   \n\t# indented comment\n",
            MD5.to_uppercase()
        );
        let p = parse_bank(text.as_bytes()).unwrap();
        assert_eq!(p.bad_count, 0, "{:?}", p.bad_lines);
        assert_eq!(p.entries.len(), 3);
        assert_eq!(p.entries[0].digest.kind(), Kind::Sha256);
        assert_eq!(p.entries[0].digest.to_hex(), SHA);
        assert_eq!(p.entries[0].label, None);
        assert_eq!(p.entries[1].digest.to_hex(), MD5, "hex is reported lower-case");
        assert_eq!(p.entries[1].label.as_deref(), Some("some  label"));
        assert_eq!(p.entries[2].digest, Digest::Pdq(Pdq::from_hex(PDQ).unwrap()));
        assert_eq!(p.entries[2].label.as_deref(), Some("x"));
    }

    #[test]
    fn malformed_lines_are_counted_and_described() {
        let text = format!(
            "pdq {}\nSHA256 {SHA}\nblake3 {SHA}\nmd5\nmd5 {MD5}zz\npdq {}g\nsha256 {SHA}\n",
            &PDQ[1..],
            &PDQ[1..]
        );
        let p = parse_bank(text.as_bytes()).unwrap();
        assert_eq!(p.entries.len(), 1);
        assert_eq!(p.bad_count, 6);
        let lines: Vec<String> = p.bad_lines.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "line 1: `pdq` needs 64 hex digits, found 63",
                "line 2: kind `SHA256` must be lower-case: `sha256`",
                "line 3: unknown kind `blake3`: expected `sha256`, `md5` or `pdq`",
                "line 4: `md5` needs 32 hex digits after it, found none",
                "line 5: `md5` needs 32 hex digits, found 34",
                "line 6: `pdq` digest: character 64 ('g') is not a hex digit",
            ]
        );
    }

    #[test]
    fn whole_source_failures() {
        assert_eq!(parse_bank(b"sha256 \xff\n"), Err(BankError::NotUtf8 { offset: 7 }));
        assert_eq!(parse_bank(b""), Err(BankError::NoEntries { bad_count: 0 }));
        assert_eq!(parse_bank(b"# only comments\n\n"), Err(BankError::NoEntries { bad_count: 0 }));
        assert_eq!(parse_bank(b"junk\nmore junk\n"), Err(BankError::NoEntries { bad_count: 2 }));
        let big = vec![b' '; (MAX_BANK_BYTES + 1) as usize];
        assert_eq!(parse_bank(&big), Err(BankError::TooLarge { bytes: MAX_BANK_BYTES + 1 }));
        assert!(BankError::NoEntries { bad_count: 2 }.to_string().contains("no valid entry (2 malformed lines)"));
    }

    #[test]
    fn only_the_first_bad_lines_are_kept_but_all_are_counted() {
        let mut text = String::new();
        for _ in 0..150 {
            text.push_str("nope\n");
        }
        text.push_str(&format!("md5 {MD5}\n"));
        let mut p = parse_bank(text.as_bytes()).unwrap();
        assert_eq!((p.bad_lines.len(), p.bad_count), (MAX_BAD_LINES, 150));
        assert_eq!(p.bad_lines[99].line, 100);
        // a prefix: objects appended; an empty object alone is no failure, an empty prefix is
        let other = parse_bank_object(text.as_bytes()).unwrap();
        p.extend(other);
        p.extend(parse_bank_object(b"").unwrap());
        assert_eq!((p.entries.len(), p.bad_lines.len(), p.bad_count), (2, MAX_BAD_LINES, 300));
        assert!(p.into_loaded().is_ok());
        assert_eq!(Parsed::default().into_loaded(), Err(BankError::NoEntries { bad_count: 0 }));
    }

    #[test]
    fn kinds_serialise_as_their_names() {
        assert_eq!(serde_json::to_string(&Kind::Sha256).unwrap(), "\"sha256\"");
        assert_eq!(serde_json::from_str::<Kind>("\"pdq\"").unwrap(), Kind::Pdq);
        assert_eq!(Kind::Md5.to_string(), "md5");
    }
}
