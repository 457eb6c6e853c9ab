//! How many live jobs the worker keeps in hand (the uploads consumer's prefetch): as many as
//! keep its CPU slots busy, by Little's law, rather than a fixed multiple of the slots.
//!
//! A job spends part of its life holding a CPU slot (media work, the classifier) and the rest
//! waiting on S3 and the broker. With `c` slots, a job's wall time `W` and its slot time `S`, the
//! slots stay busy when about `c × W / S` jobs are in hand: on loopback S3 a 640×480 photo has
//! W/S ≈ 3, with 40 ms per S3 request ≈ 10, and a video ≈ 1. The window is that with a quarter
//! more for headroom, never below `2 × c` (the old fixed window) nor above [`MAX_WINDOW`]; memory
//! stays bounded by the input-bytes budget, which a job reserves before its body is read, so
//! extra jobs in hand wait holding nothing but their message.
//!
//! AMQP 0-9-1 fixes a consumer's prefetch when it starts (RabbitMQ applies a new `basic.qos` to
//! new consumers only), so a new window is a new consumer on a channel of its own; the old one
//! is cancelled and drained (its deliveries already sent are processed and acked as usual). To
//! keep that rare, the window moves only when the ideal differs by half or more from the current
//! one, measured over at least [`MIN_JOBS`] jobs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The most live jobs one worker holds.
pub(crate) const MAX_WINDOW: usize = 64;
/// Jobs a measurement must span before it moves the window.
pub(crate) const MIN_JOBS: u64 = 20;

/// Slot and wall time of finished live jobs, summed since the last window change.
#[derive(Debug, Default)]
pub(crate) struct WindowStats {
    slot_ns: AtomicU64,
    wall_ns: AtomicU64,
    jobs: AtomicU64,
}

impl WindowStats {
    /// Time a live item held a CPU slot.
    pub(crate) fn slot(&self, held: Duration) {
        self.slot_ns.fetch_add(held.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    /// A live job finished after `wall` in hand.
    pub(crate) fn job(&self, wall: Duration) {
        self.wall_ns.fetch_add(wall.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
        self.jobs.fetch_add(1, Ordering::Relaxed);
    }

    /// The window the measurements since the last reset call for, when they are enough to move
    /// from `current`; the measurements restart when it says so.
    pub(crate) fn proposal(&self, slots: usize, current: usize) -> Option<usize> {
        let jobs = self.jobs.load(Ordering::Relaxed);
        if jobs < MIN_JOBS {
            return None;
        }
        let (slot, wall) = (self.slot_ns.load(Ordering::Relaxed), self.wall_ns.load(Ordering::Relaxed));
        let ideal = ideal_window(slots, wall, slot);
        if ideal * 2 >= current * 3 || ideal * 3 <= current * 2 {
            self.slot_ns.store(0, Ordering::Relaxed);
            self.wall_ns.store(0, Ordering::Relaxed);
            self.jobs.store(0, Ordering::Relaxed);
            return Some(ideal);
        }
        None
    }
}

/// `1.25 × slots × wall / slot`, within `[2 × slots, MAX_WINDOW]`.
pub(crate) fn ideal_window(slots: usize, wall_ns: u64, slot_ns: u64) -> usize {
    let slots = slots.max(1);
    let lo = (2 * slots).min(MAX_WINDOW);
    if slot_ns == 0 {
        // Nothing needed a slot (every job rejected before media work): all waiting on I/O.
        return MAX_WINDOW.max(lo);
    }
    let ideal = (1.25 * slots as f64 * wall_ns as f64 / slot_ns as f64).ceil();
    (ideal.min(MAX_WINDOW as f64) as usize).clamp(lo, MAX_WINDOW.max(lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_follows_wall_over_slot_time() {
        // Video: the slot is most of the job's life; the window stays at twice the slots.
        assert_eq!(ideal_window(2, 1_100, 1_000), 4);
        // Small photo on loopback S3: W/S = 3 → 7.5 → 8.
        assert_eq!(ideal_window(2, 48, 16), 8);
        // Small photo with 40 ms per S3 request: W/S ≈ 10 → 25.
        assert_eq!(ideal_window(2, 155, 16), 25);
        // Bounded above, and when nothing took a slot.
        assert_eq!(ideal_window(2, 10_000, 1), MAX_WINDOW);
        assert_eq!(ideal_window(2, 10_000, 0), MAX_WINDOW);
        assert_eq!(ideal_window(40, 1, 1), MAX_WINDOW, "never below 2 × slots unless that is over the bound");
    }

    #[test]
    fn the_window_moves_only_on_enough_jobs_and_a_large_change() {
        let s = WindowStats::default();
        for _ in 0..MIN_JOBS - 1 {
            s.job(Duration::from_millis(155));
            s.slot(Duration::from_millis(16));
        }
        assert_eq!(s.proposal(2, 4), None, "too few jobs yet");
        s.job(Duration::from_millis(155));
        s.slot(Duration::from_millis(16));
        assert_eq!(s.proposal(2, 20), None, "25 is within half of 20");
        assert_eq!(s.proposal(2, 4), Some(25));
        assert_eq!(s.proposal(2, 25), None, "measurements restart after a change");
    }
}
