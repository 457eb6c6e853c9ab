//! The manifests index (§4): small, empty objects under `manifests-index/` in the manifest
//! bucket that let `mediagate reprocess` select jobs by time and status without reading every
//! manifest, and let `mediagate erase` find every index object of a job.
//!
//! Two objects per verdict (per delivery that wrote a manifest):
//! - the **entry**, `manifests-index/t/{hour}/{stamp}!{job_id}!{revision}!{status}`, listed by
//!   time: `{stamp}` is the verdict's `processed_at` in UTC to the second, `YYYYMMDDTHHMMSSZ`
//!   (fixed width, so the key order is the time order), and `{hour}` its first 11 characters
//!   (`YYYYMMDDTHH`). One folder an hour keeps every listing narrow, also on stores that keep keys
//!   as files (a listing of an hour never walks the rest of the history);
//! - the **pointer**, `manifests-index/j/{job_id}/{stamp}!{revision}`, which names the entry's
//!   hour and prefix, so `erase` finds every revision's entry from the job id alone.
//!
//! `!` separates the fields: it is one of S3's safe key characters and never occurs in an id
//! (§2), so a key parses back without ambiguity. The worker writes the pointer before the
//! entry: an entry without its pointer would be one `erase` could not find.
//!
//! `manifests-index/complete-since` holds an RFC 3339 time T: every manifest whose
//! `processed_at` is at or after T has its index objects (written by `reprocess
//! --backfill-index`).
//!
//! The index is a hint: what it says of a job may be stale (a newer revision moved the job), so
//! every reader checks the selected job against its manifest.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use crate::ids::{is_valid_id, JobId};
use crate::JobStatus;

/// Everything of the index lives under this prefix of the manifest bucket.
pub const INDEX_PREFIX: &str = "manifests-index/";
/// Entries, by time.
pub const ENTRIES_PREFIX: &str = "manifests-index/t/";
/// Pointers, by job.
pub const POINTERS_PREFIX: &str = "manifests-index/j/";
/// The time from which the index is complete.
pub const COMPLETE_SINCE_KEY: &str = "manifests-index/complete-since";
/// The field separator of entry and pointer names.
const SEP: char = '!';

/// `processed_at` to the second, in UTC: how the index orders and names verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp(OffsetDateTime);

/// The text of a [`Stamp`]: `YYYYMMDDTHHMMSSZ`.
const STAMP_FORMAT: &[time::format_description::FormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");
/// The length of a stamp's text, and of its hour.
const STAMP_LEN: usize = 16;
const HOUR_LEN: usize = 11;

impl Stamp {
    /// The second `t` falls in (sub-second digits dropped, so `Stamp::of(t) <= t`).
    pub fn of(t: OffsetDateTime) -> Stamp {
        let t = t.to_offset(UtcOffset::UTC);
        Stamp(t.replace_nanosecond(0).unwrap_or(t))
    }

    /// The stamp of an RFC 3339 time (a verdict's `processed_at`); `None` when it is not one or
    /// is outside years 0000–9999.
    pub fn parse_rfc3339(s: &str) -> Option<Stamp> {
        let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
        let stamp = Stamp::of(t);
        (0..=9999).contains(&stamp.0.year()).then_some(stamp)
    }

    /// The time this stamp names (its second's start).
    pub fn time(self) -> OffsetDateTime {
        self.0
    }

    /// `YYYYMMDDTHHMMSSZ`.
    pub fn text(self) -> String {
        // The format has only numeric fields of a date in years 0–9999 (checked where made).
        self.0.format(STAMP_FORMAT).unwrap_or_else(|_| "00000101T000000Z".to_string())
    }

    /// `YYYYMMDDTHH`: the entries folder this stamp's entries are in.
    pub fn hour(self) -> String {
        let mut text = self.text();
        text.truncate(HOUR_LEN);
        text
    }

    fn parse_text(s: &str) -> Option<Stamp> {
        if s.len() != STAMP_LEN {
            return None;
        }
        PrimitiveDateTime::parse(s, STAMP_FORMAT).ok().map(|t| Stamp(t.assume_utc()))
    }
}

/// One index entry: a verdict's time, job, revision and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its `processed_at`, to the second.
    pub stamp: Stamp,
    /// The job.
    pub job_id: JobId,
    /// The verdict's revision.
    pub revision: u64,
    /// The verdict's status.
    pub status: JobStatus,
}

impl Entry {
    /// `manifests-index/t/{hour}/{stamp}!{job_id}!{revision}!{status}`.
    pub fn key(&self) -> String {
        format!("{}{}", entry_prefix(&self.job_id, self.stamp, self.revision), self.status.as_str())
    }

    /// `manifests-index/j/{job_id}/{stamp}!{revision}`: what leads `erase` to [`Entry::key`].
    pub fn pointer_key(&self) -> String {
        pointer_key(&self.job_id, self.stamp, self.revision)
    }

    /// The entry an entry key names; `None` for any other key.
    pub fn parse(key: &str) -> Option<Entry> {
        let rest = key.strip_prefix(ENTRIES_PREFIX)?;
        let (hour, name) = rest.split_once('/')?;
        let mut fields = name.split(SEP);
        let (stamp, job_id, revision, status) = (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
        if fields.next().is_some() {
            return None;
        }
        let stamp = Stamp::parse_text(stamp)?;
        if stamp.hour() != hour || !is_valid_id(job_id) || !revision.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let status = JobStatus::ALL.into_iter().find(|s| s.as_str() == status)?;
        Some(Entry { stamp, job_id: JobId::from(job_id), revision: revision.parse().ok()?, status })
    }
}

/// `manifests-index/t/{hour}/`: the folder of one hour's entries.
pub fn hour_prefix(hour: &str) -> String {
    format!("{ENTRIES_PREFIX}{hour}/")
}

/// The hour of an hour folder as a listing returns it (`manifests-index/t/{hour}/`).
pub fn hour_of_prefix(prefix: &str) -> Option<&str> {
    let hour = prefix.strip_prefix(ENTRIES_PREFIX)?.strip_suffix('/')?;
    (hour.len() == HOUR_LEN).then_some(hour)
}

/// Where an hour's listing starts so that it holds the entries at or after `stamp` only: a key
/// to list after (`start-after`), within [`hour_prefix`] of `stamp`'s hour.
pub fn entries_after(stamp: Stamp) -> String {
    format!("{}{}", hour_prefix(&stamp.hour()), stamp.text())
}

/// Every entry of one job's revision written at `stamp` starts with this (any status).
pub fn entry_prefix(job_id: &JobId, stamp: Stamp, revision: u64) -> String {
    debug_assert!(is_valid_id(job_id));
    format!("{}{}{SEP}{job_id}{SEP}{revision}{SEP}", hour_prefix(&stamp.hour()), stamp.text())
}

/// `manifests-index/j/{job_id}/`: every pointer of a job, all revisions.
pub fn pointers_prefix(job_id: &JobId) -> String {
    debug_assert!(is_valid_id(job_id));
    format!("{POINTERS_PREFIX}{job_id}/")
}

/// `manifests-index/j/{job_id}/{stamp}!{revision}`.
pub fn pointer_key(job_id: &JobId, stamp: Stamp, revision: u64) -> String {
    format!("{}{}{SEP}{revision}", pointers_prefix(job_id), stamp.text())
}

/// The stamp and revision a pointer key of `job_id` names; `None` for any other key.
pub fn parse_pointer(job_id: &JobId, key: &str) -> Option<(Stamp, u64)> {
    let name = key.strip_prefix(&pointers_prefix(job_id))?;
    let (stamp, revision) = name.split_once(SEP)?;
    if !revision.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((Stamp::parse_text(stamp)?, revision.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(s: &str) -> Stamp {
        Stamp::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn entries_and_pointers_follow_the_layout_and_parse_back() {
        let e = Entry {
            stamp: stamp("2026-12-07T21:39:15Z"),
            job_id: "j-01HZX3".into(),
            revision: 2,
            status: JobStatus::Partial,
        };
        assert_eq!(e.key(), "manifests-index/t/20261207T21/20261207T213915Z!j-01HZX3!2!partial");
        assert_eq!(e.pointer_key(), "manifests-index/j/j-01HZX3/20261207T213915Z!2");
        assert_eq!(Entry::parse(&e.key()), Some(e.clone()));
        assert_eq!(parse_pointer(&e.job_id, &e.pointer_key()), Some((e.stamp, 2)));
        assert!(e.key().starts_with(&entry_prefix(&e.job_id, e.stamp, 2)));
        // Ids with every character an id may hold.
        let odd = Entry { job_id: "a.b_c-D9".into(), status: JobStatus::Failed, revision: 0, ..e.clone() };
        assert_eq!(Entry::parse(&odd.key()), Some(odd));
    }

    #[test]
    fn a_stamp_is_utc_to_the_second_whatever_the_offset_and_digits() {
        assert_eq!(stamp("2026-12-07T23:39:15.987+02:00"), stamp("2026-12-07T21:39:15Z"));
        assert_eq!(stamp("2026-12-07T21:39:15.5Z").text(), "20261207T213915Z");
        assert_eq!(stamp("2026-12-07T21:39:15Z").hour(), "20261207T21");
        assert!(Stamp::parse_rfc3339("yesterday").is_none());
    }

    #[test]
    fn key_order_is_time_order_and_a_listing_after_a_stamp_keeps_that_second() {
        let times = ["2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", "2026-01-01T09:59:59Z", "2026-01-01T10:00:00Z"];
        let keys: Vec<String> = times
            .iter()
            .map(|t| Entry { stamp: stamp(t), job_id: "z".into(), revision: 0, status: JobStatus::Cleared }.key())
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        let at = stamp("2026-01-01T00:00:01Z");
        let after = entries_after(at);
        assert!(keys[1].as_str() > after.as_str(), "the entry of that very second is listed");
        assert!(keys[0].as_str() < after.as_str());
        assert_eq!(hour_of_prefix(&hour_prefix(&at.hour())), Some("20260101T00"));
    }

    #[test]
    fn keys_that_are_not_the_index_do_not_parse() {
        for key in [
            "manifests-index/complete-since",
            "manifests-index/t/20261207T21/20261207T213915Z!j!2",
            "manifests-index/t/20261207T22/20261207T213915Z!j!2!cleared",
            "manifests-index/t/20261207T21/20261207T213915Z!j!x!cleared",
            "manifests-index/t/20261207T21/20261207T213915Z!.j!2!cleared",
            "manifests-index/t/20261207T21/20261207T213915Z!j!2!great",
            "manifests/j.json",
        ] {
            assert_eq!(Entry::parse(key), None, "{key}");
        }
        assert_eq!(parse_pointer(&"j".into(), "manifests-index/j/j/20261207T213915Z!x"), None);
        assert_eq!(parse_pointer(&"j".into(), "manifests-index/j/k/20261207T213915Z!1"), None);
    }
}
