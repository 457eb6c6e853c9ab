//! The ledger's verdict on a run: counts, statuses and every inconsistency found.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// How many problems [`Report::table`] prints; the rest are counted.
const SHOWN_PROBLEMS: usize = 20;

/// What [`crate::Ledger::settle`] found. A run is good when [`Report::ok`] holds: no job lost
/// and no inconsistency of any kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Distinct `(job_id, revision)` this ledger published (confirmed or returned).
    pub published: u64,
    /// Of those, returned by the broker (no queue bound) or nacked: not published, nothing owed.
    pub returned: u64,
    /// Of those, confirmed: each owes a verdict (or a newer revision's).
    pub confirmed: u64,
    /// Verdict messages received, other producers' included.
    pub verdicts: u64,
    /// Verdict messages beyond the first for the same `(job_id, revision)` (at-least-once
    /// delivery: allowed, but they must agree).
    pub duplicates: u64,
    /// `(job, revision)` below the job's highest revision with no verdict of its own (a worker
    /// acks a superseded revision without processing it).
    pub superseded: u64,
    /// Jobs whose highest revision ended `failed` with `internal.delivery_limit`.
    pub failed: u64,
    /// Confirmed jobs whose highest revision has no verdict at all.
    pub lost: u64,
    /// The status of each job's highest revision.
    pub by_status: BTreeMap<String, u64>,
    /// Every inconsistency, each naming its job (or queue).
    pub problems: Vec<String>,
    /// Things worth knowing that are not failures (a check that could not be made in full, a
    /// publish the caller was told had failed).
    pub notes: Vec<String>,
}

impl Report {
    /// No job lost and no inconsistency.
    pub fn ok(&self) -> bool {
        self.lost == 0 && self.problems.is_empty()
    }

    /// A plain aligned table: the counts, then the statuses, then the problems (at most 20
    /// shown, the rest counted) and the notes.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, u64)> = vec![
            ("published".into(), self.published),
            ("returned".into(), self.returned),
            ("confirmed".into(), self.confirmed),
            ("verdicts".into(), self.verdicts),
            ("duplicates".into(), self.duplicates),
            ("superseded".into(), self.superseded),
            ("failed".into(), self.failed),
            ("lost".into(), self.lost),
        ];
        rows.extend(self.by_status.iter().map(|(status, n)| (format!("status {status}"), *n)));
        let label = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
        let value = rows.iter().map(|(_, n)| n.to_string().len()).max().unwrap_or(0);
        let mut out = String::new();
        for (l, n) in &rows {
            let _ = writeln!(out, "{l:<label$}  {n:>value$}");
        }
        let _ = writeln!(out, "{:<label$}  {:>value$}", "problems", self.problems.len());
        for p in self.problems.iter().take(SHOWN_PROBLEMS) {
            let _ = writeln!(out, "  - {p}");
        }
        if self.problems.len() > SHOWN_PROBLEMS {
            let _ = writeln!(out, "  … and {} more", self.problems.len() - SHOWN_PROBLEMS);
        }
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        let _ = writeln!(out, "{}", if self.ok() { "OK: every job is accounted for" } else { "NOT OK" });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_aligned_and_caps_the_problems() {
        let mut r = Report { published: 12, confirmed: 12, verdicts: 1000, ..Default::default() };
        r.by_status.insert("cleared".into(), 11);
        assert!(r.ok());
        let t = r.table();
        assert!(t.contains("published         12\n"), "{t}");
        assert!(t.contains("status cleared    11\n"), "{t}");
        assert!(t.ends_with("OK: every job is accounted for\n"), "{t}");
        r.problems = (0..25).map(|i| format!("job j-{i}: bad")).collect();
        let t = r.table();
        assert!(!r.ok());
        assert!(t.contains("  - job j-19: bad\n") && !t.contains("j-20:"), "{t}");
        assert!(t.contains("… and 5 more"), "{t}");
    }
}
