//! The loaded banks, and the lookup of an item's hashes in them (contract §3, §5, §8).
//!
//! Exact kinds are hash-map lookups. PDQ needs "any entry within `d` bits", which a linear scan
//! answers in ~10 ms per million entries; banks of that size are real, and every image, its 8
//! dihedral variants and every sampled video frame are looked up, so PDQ entries sit behind
//! multi-index hashing (Norouzi et al.; ThreatExchange's `mih.h` does the same): the 256 bits are
//! cut into the hash's 16 words, and by the pigeonhole principle an entry within `d` bits of a
//! query has at least one word within `⌊d/16⌋` bits of the query's word at that position. For
//! each position a CSR table lists the entries by their word there, so a query probes, per
//! position, the buckets of the words within `⌊d/16⌋` bits of its own (17 buckets at the
//! contract's default `d = 31`) and verifies each candidate's full distance. At a million
//! random entries that is ~4,000 candidates per hash instead of 1,000,000.
//!
//! Which match is reported when several do (contract §5): an exact kind before `pdq` (`sha256`
//! before `md5`: [`Banks::exact`] is asked first), then the lowest distance, then the first bank
//! in `MEDIAGATE_HASH_BANKS` order; then (our choice, so the answer never depends on hashing or
//! probe order) the first such entry in that bank's file, then the first query in the caller's
//! order (the image before its variants, frames in time order).

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::bank::{Digest, Entry, Kind};
use crate::hex;
use crate::pdq::Pdq;

/// One hash to look up, with the video frame it came from (reported back in the [`Match`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Query {
    pub hash: Pdq,
    pub frame_ms: Option<u64>,
}

/// The bank entry that matched: the verdict's and the escalation's `match` object.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize)]
pub struct Match {
    /// The bank's name in `MEDIAGATE_HASH_BANKS`.
    pub bank: String,
    pub kind: Kind,
    /// The bank entry's digest, lower-case hex.
    pub hash: String,
    /// Hamming distance for `pdq`, 0 for an exact kind.
    pub distance: u32,
    pub label: Option<String>,
    /// The matching frame of a video (from its [`Query`]), else `None`.
    pub frame_ms: Option<u64>,
}

/// How many entries of each kind a bank holds (duplicates included), for the load log and
/// metrics.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BankStats {
    pub name: String,
    pub sha256: usize,
    pub md5: usize,
    pub pdq: usize,
}

/// An exact digest's first entry: which bank, and its label.
struct Exact {
    bank: u32,
    label: Option<Box<str>>,
}

/// A PDQ as four 64-bit words, aligned so one entry is one cache line's quarter and never
/// straddles two lines (verification is one memory access per candidate).
#[derive(Clone, Copy)]
#[repr(C, align(32))]
struct Bits([u64; 4]);

/// One word position's table: entry ids grouped by their 16-bit word at that position, in CSR
/// form (`ids[offsets[v]..offsets[v + 1]]` have word `v`, in ascending id order).
struct Table {
    offsets: Vec<u32>,
    ids: Vec<u32>,
}

/// Every bank's entries, immutable once built (a reload builds a new one and swaps it in), so
/// any number of items can look up at once without locks.
pub struct Banks {
    stats: Vec<BankStats>,
    sha256: HashMap<[u8; 32], Exact>,
    md5: HashMap<[u8; 16], Exact>,
    /// PDQ entries by id; ids run in bank order, then file order, so "first bank, then first
    /// entry" is "lowest id".
    bits: Vec<Bits>,
    /// The first id of each bank (banks with no PDQ entry start where the next one does).
    bank_start: Vec<u32>,
    /// Labels by id: `label_text[label_end[id - 1]..label_end[id]]`, empty for none.
    label_text: String,
    label_end: Vec<usize>,
    /// The 16 word positions' tables (none when there is no PDQ entry).
    tables: Vec<Table>,
}

/// Every 16-bit mask ordered by popcount, and how many have popcount ≤ r: the words within
/// radius r of `w` are `w ^ masks[..within[r]]`.
struct Masks {
    masks: Vec<u16>,
    within: [usize; 17],
}

fn masks() -> &'static Masks {
    static M: OnceLock<Masks> = OnceLock::new();
    M.get_or_init(|| {
        let mut masks: Vec<u16> = (0..=u16::MAX).collect();
        masks.sort_by_key(|m| m.count_ones());
        let mut within = [0usize; 17];
        for (r, slot) in within.iter_mut().enumerate() {
            *slot = masks.iter().filter(|m| m.count_ones() as usize <= r).count();
        }
        Masks { masks, within }
    })
}

/// The radius from which probing buckets costs more than reading every entry once: then
/// [`Banks::pdq`] scans. (Radius 5, `d ≥ 80`, probes 16 × 6,885 buckets of 65,536.)
fn scan_is_cheaper(radius: usize) -> bool {
    masks().within[radius.min(16)] * 16 >= 1 << 16
}

/// The best match so far: lowest distance, then lowest entry id, then first query.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Best {
    distance: u32,
    id: u32,
    query: usize,
}

impl Banks {
    /// No banks at all (matching is off).
    pub fn empty() -> Banks {
        Banks::build(Vec::new())
    }

    /// Builds the lookup from each bank's entries, in `MEDIAGATE_HASH_BANKS` order (the order
    /// decides which bank a match is reported from). Duplicates, within or across banks, are
    /// kept and harmless. Takes about a second per million PDQ entries.
    ///
    /// Ids are 32-bit: PDQ entries past the 4,294,967,295th (over 130 GB of index) are dropped.
    pub fn build(banks: Vec<(String, Vec<Entry>)>) -> Banks {
        let mut stats = Vec::with_capacity(banks.len());
        let mut sha256 = HashMap::new();
        let mut md5 = HashMap::new();
        let n_pdq: usize =
            banks.iter().map(|(_, es)| es.iter().filter(|e| matches!(e.digest, Digest::Pdq(_))).count()).sum();
        let mut bits: Vec<Bits> = Vec::with_capacity(n_pdq);
        let mut bank_start = Vec::with_capacity(banks.len());
        let mut label_text = String::new();
        let mut label_end = Vec::new();
        for (b, (name, entries)) in banks.into_iter().enumerate() {
            let bank = u32::try_from(b).unwrap_or(u32::MAX);
            let mut s = BankStats { name, sha256: 0, md5: 0, pdq: 0 };
            bank_start.push(u32::try_from(bits.len()).unwrap_or(u32::MAX));
            for Entry { digest, label } in entries {
                let exact = || Exact { bank, label: label.clone().map(String::into_boxed_str) };
                match digest {
                    Digest::Sha256(d) => {
                        s.sha256 += 1;
                        sha256.entry(d).or_insert_with(exact);
                    }
                    Digest::Md5(d) => {
                        s.md5 += 1;
                        md5.entry(d).or_insert_with(exact);
                    }
                    Digest::Pdq(p) => {
                        s.pdq += 1;
                        if bits.len() < u32::MAX as usize {
                            bits.push(Bits(p.to_u64s()));
                            label_text.push_str(label.as_deref().unwrap_or(""));
                            label_end.push(label_text.len());
                        }
                    }
                }
            }
            stats.push(s);
        }
        let tables = if bits.is_empty() { Vec::new() } else { (0..16).map(|p| table(&bits, p)).collect() };
        bits.shrink_to_fit();
        label_end.shrink_to_fit();
        label_text.shrink_to_fit();
        Banks { stats, sha256, md5, bits, bank_start, label_text, label_end, tables }
    }

    /// Each bank's entry counts, in order.
    pub fn stats(&self) -> Vec<BankStats> {
        self.stats.clone()
    }

    /// True when no bank holds any entry.
    pub fn is_empty(&self) -> bool {
        self.sha256.is_empty() && self.md5.is_empty() && self.bits.is_empty()
    }

    /// How many bytes the lookup structures hold on the heap (tables, hashes, labels; hash maps
    /// estimated from their capacity): what a reload costs in memory, twice while both exist.
    pub fn heap_bytes(&self) -> usize {
        let exact = |cap: usize, key: usize| cap * (key + std::mem::size_of::<Exact>() + 1);
        let labels: usize =
            self.sha256.values().chain(self.md5.values()).filter_map(|e| e.label.as_ref()).map(|l| l.len()).sum();
        let tables: usize = self.tables.iter().map(|t| (t.offsets.capacity() + t.ids.capacity()) * 4).sum();
        tables
            + self.bits.capacity() * std::mem::size_of::<Bits>()
            + self.label_end.capacity() * std::mem::size_of::<usize>()
            + self.label_text.capacity()
            + self.bank_start.capacity() * 4
            + exact(self.sha256.capacity(), 32)
            + exact(self.md5.capacity(), 16)
            + labels
    }

    /// The exact match of an original's bytes: its `sha256` first, then its `md5`; for each,
    /// the first bank (then the first entry) that lists it. Distance 0, no frame.
    ///
    /// `md5` may be `None` when [`Banks::has_md5`] is false: no MD5 entry could match it, and
    /// a caller can skip the MD5 of a large file (it cost as much CPU as the rest of the worker's
    /// own work on a 12 MP photo).
    pub fn exact(&self, sha256: &[u8; 32], md5: Option<&[u8; 16]>) -> Option<Match> {
        let hit = |kind: Kind, digest: &[u8], e: &Exact| Match {
            bank: self.stats.get(e.bank as usize).map(|s| s.name.clone()).unwrap_or_default(),
            kind,
            hash: hex::encode(digest),
            distance: 0,
            label: e.label.as_deref().map(str::to_owned),
            frame_ms: None,
        };
        if let Some(e) = self.sha256.get(sha256) {
            return Some(hit(Kind::Sha256, sha256, e));
        }
        let md5 = md5?;
        self.md5.get(md5).map(|e| hit(Kind::Md5, md5, e))
    }

    /// True when some bank holds an MD5 entry: only then is an original's MD5 worth computing.
    pub fn has_md5(&self) -> bool {
        !self.md5.is_empty()
    }

    /// The PDQ entry nearest to any of `queries` within `max_distance` bits, by multi-index
    /// hashing (see the module comment for which one is reported when several are).
    pub fn pdq(&self, queries: &[Query], max_distance: u32) -> Option<Match> {
        if self.bits.is_empty() || queries.is_empty() {
            return None;
        }
        if scan_is_cheaper((max_distance / 16) as usize) {
            return self.pdq_linear(queries, max_distance);
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("popcnt") {
            // SAFETY: the CPU has POPCNT (checked just above).
            return unsafe { self.probe_popcnt(queries, max_distance) }.map(|b| self.report(queries, b));
        }
        self.probe(queries, max_distance).map(|b| self.report(queries, b))
    }

    /// The same answer as [`Banks::pdq`] by comparing every entry with every query: the
    /// baseline the index is tested and benchmarked against.
    pub fn pdq_linear(&self, queries: &[Query], max_distance: u32) -> Option<Match> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("popcnt") {
            // SAFETY: the CPU has POPCNT (checked just above).
            return unsafe { self.scan_popcnt(queries, max_distance) }.map(|b| self.report(queries, b));
        }
        self.scan(queries, max_distance).map(|b| self.report(queries, b))
    }

    /// # Safety
    /// The CPU must support POPCNT.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "popcnt")]
    unsafe fn probe_popcnt(&self, queries: &[Query], max_distance: u32) -> Option<Best> {
        self.probe(queries, max_distance)
    }

    /// # Safety
    /// The CPU must support POPCNT.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "popcnt")]
    unsafe fn scan_popcnt(&self, queries: &[Query], max_distance: u32) -> Option<Best> {
        self.scan(queries, max_distance)
    }

    /// Multi-index probing. Once a match at distance `b` is known only entries within `b` can
    /// still win (a lower id at the same distance), so the radius shrinks to `⌊b/16⌋`.
    ///
    /// Per query it runs in three phases — bucket bounds, candidate ids, verification — rather
    /// than bucket by bucket: a table is 4 MB and the hashes 32 MB per million entries, so each
    /// step is a cache (and TLB) miss, and within a phase the addresses are known ahead, so each
    /// access is prefetched a few dozen steps before it is needed. (Measured on the 2-core VM:
    /// ~50 ns per random 32-byte read without, ~15 ns with; ~33,000 candidates per query of 8
    /// hashes at d = 31 and a million entries.)
    #[inline(always)]
    fn probe(&self, queries: &[Query], max_distance: u32) -> Option<Best> {
        let masks = masks();
        let mut best: Option<Best> = None;
        let mut limit = max_distance;
        let mut buckets: Vec<(u32, u32, usize)> = Vec::new();
        let mut candidates: Vec<u32> = Vec::new();
        for (qi, q) in queries.iter().enumerate() {
            let probes = &masks.masks[..masks.within[((limit / 16) as usize).min(16)]];
            buckets.clear();
            for (p, table) in self.tables.iter().enumerate() {
                let word = q.hash.0[p];
                for &m in probes {
                    let v = usize::from(word ^ m);
                    buckets.push((table.offsets[v], table.offsets[v + 1], p));
                }
            }
            candidates.clear();
            for (i, &(lo, hi, p)) in buckets.iter().enumerate() {
                if let Some(&(lo, _, p)) = buckets.get(i + PREFETCH_BUCKETS) {
                    if let Some(id) = self.tables[p].ids.get(lo as usize) {
                        prefetch(id);
                    }
                }
                candidates.extend_from_slice(&self.tables[p].ids[lo as usize..hi as usize]);
            }
            let qb = q.hash.to_u64s();
            for (i, &id) in candidates.iter().enumerate() {
                if let Some(&ahead) = candidates.get(i + PREFETCH_HASHES) {
                    prefetch(&self.bits[ahead as usize]);
                }
                let d = distance(&self.bits[id as usize].0, &qb);
                if d <= limit {
                    let cand = Best { distance: d, id, query: qi };
                    if best.is_none_or(|b| cand < b) {
                        best = Some(cand);
                        limit = d;
                    }
                }
            }
        }
        best
    }

    #[inline(always)]
    fn scan(&self, queries: &[Query], max_distance: u32) -> Option<Best> {
        let qbs: Vec<[u64; 4]> = queries.iter().map(|q| q.hash.to_u64s()).collect();
        let mut best: Option<Best> = None;
        let mut limit = max_distance;
        for (id, e) in self.bits.iter().enumerate() {
            for (qi, qb) in qbs.iter().enumerate() {
                let d = distance(&e.0, qb);
                // ids only grow, so a later entry wins only when strictly nearer
                if d <= limit && best.is_none_or(|b| d < b.distance) {
                    best = Some(Best { distance: d, id: id as u32, query: qi });
                    limit = d;
                }
            }
        }
        best
    }

    fn report(&self, queries: &[Query], b: Best) -> Match {
        let id = b.id as usize;
        let bank = self.bank_start.partition_point(|&s| s <= b.id).saturating_sub(1);
        let start = if id == 0 { 0 } else { self.label_end[id - 1] };
        let label = &self.label_text[start..self.label_end[id]];
        Match {
            bank: self.stats.get(bank).map(|s| s.name.clone()).unwrap_or_default(),
            kind: Kind::Pdq,
            hash: Pdq::from_u64s(self.bits[id].0).to_hex(),
            distance: b.distance,
            label: (!label.is_empty()).then(|| label.to_owned()),
            frame_ms: queries.get(b.query).and_then(|q| q.frame_ms),
        }
    }
}

/// How far ahead (in buckets, in candidates) [`Banks::probe`] prefetches: enough to cover a
/// memory latency of a few hundred nanoseconds at the loop's pace.
const PREFETCH_BUCKETS: usize = 8;
const PREFETCH_HASHES: usize = 32;

/// Asks the CPU to bring `r`'s cache line in (a hint; no effect on other targets).
#[inline(always)]
fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults or writes, whatever the address (here a valid reference);
    // SSE, which the instruction needs, is part of the x86-64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((r as *const T).cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

#[inline(always)]
fn distance(a: &[u64; 4], b: &[u64; 4]) -> u32 {
    (a[0] ^ b[0]).count_ones() + (a[1] ^ b[1]).count_ones() + (a[2] ^ b[2]).count_ones() + (a[3] ^ b[3]).count_ones()
}

/// Position `p`'s table, by counting sort (stable, so each bucket lists ids in ascending order).
fn table(bits: &[Bits], p: usize) -> Table {
    let word = |b: &Bits| ((b.0[p / 4] >> (16 * (p % 4))) & 0xffff) as usize;
    let mut offsets = vec![0u32; (1 << 16) + 1];
    for b in bits {
        offsets[word(b) + 1] += 1;
    }
    for v in 0..1 << 16 {
        offsets[v + 1] += offsets[v];
    }
    let mut next: Vec<u32> = offsets[..1 << 16].to_vec();
    let mut ids = vec![0u32; bits.len()];
    for (id, b) in bits.iter().enumerate() {
        let slot = &mut next[word(b)];
        ids[*slot as usize] = id as u32;
        *slot += 1;
    }
    Table { offsets, ids }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn pdq(&mut self) -> Pdq {
            Pdq::from_u64s([self.next(), self.next(), self.next(), self.next()])
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        /// `p` with exactly `k` distinct bits flipped.
        fn flip(&mut self, p: Pdq, k: u32) -> Pdq {
            let mut q = p;
            while q.distance(&p) < k {
                let bit = self.below(256);
                let (w, b) = (bit >> 4, bit & 15);
                if (q.0[w] ^ p.0[w]) & (1 << b) == 0 {
                    q.0[w] ^= 1 << b;
                }
            }
            q
        }
        /// `p` with `k` bits flipped, all in as few words as possible (the hardest case for
        /// multi-index hashing: the other words carry the whole distance ... or none of it).
        fn flip_packed(&mut self, p: Pdq, k: u32) -> Pdq {
            let mut q = p;
            let start = self.below(16);
            for i in 0..k as usize {
                let w = (start + i / 16) % 16;
                q.0[w] ^= 1 << (i % 16);
            }
            q
        }
        /// `p` with `k` bits flipped spread as evenly as possible over the 16 words (every word
        /// then differs by ⌊k/16⌋ or ⌈k/16⌉ bits: the pigeonhole bound is tight).
        fn flip_even(&mut self, p: Pdq, k: u32) -> Pdq {
            let mut q = p;
            let start = self.below(16);
            for i in 0..k as usize {
                let w = (start + i) % 16;
                q.0[w] ^= 1 << (i / 16);
            }
            q
        }
    }

    fn pdq_entry(p: Pdq, label: Option<&str>) -> Entry {
        Entry { digest: Digest::Pdq(p), label: label.map(str::to_owned) }
    }

    fn queries(hs: &[Pdq]) -> Vec<Query> {
        hs.iter().enumerate().map(|(i, &h)| Query { hash: h, frame_ms: Some(i as u64 * 1000) }).collect()
    }

    #[test]
    fn index_equals_linear_scan_with_planted_matches_at_every_distance() {
        let mut rng = Rng(42);
        let n = 20_000;
        for d in [0u32, 15, 16, 31, 32, 47] {
            let mut entries: Vec<Entry> = (0..n).map(|_| pdq_entry(rng.pdq(), None)).collect();
            // for each distance 0..=d+1 and each way of spreading the bits, a query with exactly
            // one planted entry at that distance
            let mut cases = Vec::new();
            for k in 0..=d + 1 {
                for spread in 0..3 {
                    let q = rng.pdq();
                    let planted = match spread {
                        0 => rng.flip(q, k),
                        1 => rng.flip_packed(q, k),
                        _ => rng.flip_even(q, k),
                    };
                    assert_eq!(planted.distance(&q), k);
                    let at = rng.below(entries.len() + 1);
                    entries.insert(at, pdq_entry(planted, Some("planted")));
                    cases.push((q, planted, k));
                }
            }
            let half = entries.split_off(entries.len() / 2);
            let banks = Banks::build(vec![("a".into(), entries), ("b".into(), half)]);
            for (q, planted, k) in &cases {
                // the query among unrelated ones, not first
                let qs = queries(&[rng.pdq(), *q, rng.pdq()]);
                let mih = banks.pdq(&qs, d);
                let lin = banks.pdq_linear(&qs, d);
                assert_eq!(mih, lin, "d={d} k={k}");
                if *k <= d {
                    let m = mih.unwrap_or_else(|| panic!("d={d}: planted match at {k} not found"));
                    assert_eq!((m.hash.as_str(), m.distance, m.frame_ms), (planted.to_hex().as_str(), *k, Some(1000)));
                    assert_eq!(m.label.as_deref(), Some("planted"));
                } else {
                    assert_eq!(mih, None, "d={d}: planted entry at {k} reported");
                }
            }
            // random queries: nothing near, and both agree
            for _ in 0..50 {
                let qs = queries(&[rng.pdq(), rng.pdq()]);
                assert_eq!(banks.pdq(&qs, d), banks.pdq_linear(&qs, d));
            }
        }
    }

    #[test]
    fn large_radii_agree_too() {
        let mut rng = Rng(7);
        let entries: Vec<Entry> = (0..3000).map(|_| pdq_entry(rng.pdq(), None)).collect();
        let banks = Banks::build(vec![("a".into(), entries)]);
        for d in [63, 64, 79, 80, 100, 128, 300] {
            for _ in 0..5 {
                let qs = queries(&[rng.pdq()]);
                assert_eq!(banks.pdq(&qs, d), banks.pdq_linear(&qs, d), "d={d}");
            }
        }
    }

    #[test]
    fn ties_go_to_lowest_distance_then_first_bank_then_first_entry_then_first_query() {
        let mut rng = Rng(1);
        let q0 = rng.pdq();
        let q1 = rng.pdq();
        let near5 = rng.flip(q0, 5);
        let near5b = rng.flip(q0, 5);
        let near3 = rng.flip(q1, 3);
        let near3b = rng.flip(q1, 3);
        let noise: Vec<Entry> = (0..100).map(|_| pdq_entry(rng.pdq(), None)).collect();
        let bank = |es: Vec<Entry>| {
            let mut v = noise.clone();
            v.extend(es);
            v
        };
        let banks = Banks::build(vec![
            ("first".into(), bank(vec![pdq_entry(near5, Some("f5"))])),
            ("second".into(), bank(vec![pdq_entry(near3b, Some("s3b")), pdq_entry(near3, Some("s3"))])),
            ("third".into(), bank(vec![pdq_entry(near3, Some("t3")), pdq_entry(near5b, Some("t5"))])),
        ]);
        for f in [Banks::pdq, Banks::pdq_linear] {
            // lowest distance wins over bank order: the 3-bit match in `second`, its first entry
            let m = f(&banks, &queries(&[q0, q1]), 31).unwrap();
            assert_eq!(
                (m.bank.as_str(), m.distance, m.label.as_deref(), m.frame_ms),
                ("second", 3, Some("s3b"), Some(1000))
            );
            // only q0: both 5-bit entries; the first bank's
            let m = f(&banks, &queries(&[q0]), 31).unwrap();
            assert_eq!((m.bank.as_str(), m.label.as_deref()), ("first", Some("f5")));
            // the same hash twice: the first query
            let m = f(&banks, &queries(&[q1, q1]), 31).unwrap();
            assert_eq!(m.frame_ms, Some(0));
            // out of reach
            assert_eq!(f(&banks, &queries(&[q0]), 4), None);
            assert_eq!(f(&banks, &[], 31), None);
        }
    }

    #[test]
    fn exact_lookups_prefer_sha256_then_first_bank() {
        let sha = [7u8; 32];
        let md5 = [9u8; 16];
        let e = |d: Digest, l: &str| Entry { digest: d, label: Some(l.into()) };
        let banks = Banks::build(vec![
            ("one".into(), vec![e(Digest::Md5(md5), "md5-one")]),
            ("two".into(), vec![e(Digest::Sha256(sha), "sha-two"), e(Digest::Sha256(sha), "sha-two-again")]),
            ("three".into(), vec![e(Digest::Sha256(sha), "sha-three")]),
        ]);
        let m = banks.exact(&sha, Some(&md5)).unwrap();
        assert_eq!(
            m,
            Match {
                bank: "two".into(),
                kind: Kind::Sha256,
                hash: hex::encode(&sha),
                distance: 0,
                label: Some("sha-two".into()),
                frame_ms: None
            }
        );
        let m = banks.exact(&[0; 32], Some(&md5)).unwrap();
        assert!(banks.has_md5());
        assert_eq!(banks.exact(&[0; 32], None), None, "no MD5 given, no MD5 match");
        assert_eq!((m.bank.as_str(), m.kind, m.label.as_deref()), ("one", Kind::Md5, Some("md5-one")));
        assert_eq!(banks.exact(&[0; 32], Some(&[0; 16])), None);
        assert_eq!(banks.pdq(&queries(&[Pdq::default()]), 255), None, "no pdq entries");
        let stats = banks.stats();
        assert_eq!((stats[1].name.as_str(), stats[1].sha256, stats[1].md5, stats[1].pdq), ("two", 2, 0, 0));
        assert!(!banks.is_empty());
        assert!(Banks::empty().is_empty());
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["kind"], "md5");
        assert_eq!(json["frame_ms"], serde_json::Value::Null);
    }

    #[test]
    fn banks_are_shareable() {
        fn check<T: Send + Sync>() {}
        check::<Banks>();
    }
}
