//! Which task a worker is polling: its id and its spawn site, written by
//! the worker around every poll and read by the long-poll monitor and the
//! controller to name culprits.

use crate::task::site::Site;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{fence, AtomicU32, AtomicU64};

/// [`CurrentPoll::id`] when the worker is not inside a poll.
pub(crate) const NOT_POLLING: u64 = u64::MAX;

/// The id and spawn site of the task a worker is polling.
///
/// CULPRIT-SITE: they are two words, and a reader must never pair the id
/// of one poll with the site of another (a red-team program got a culprit
/// named with the next poll's spawn site in 7 of 14 runs). A sequence lock:
/// the worker makes the sequence odd, writes both, and makes it even again
/// (one poll = one write; the cache line is the worker's own, so this is
/// four plain stores on x86); a reader keeps a pair only if it read the
/// same even sequence before and after it. Re-reading the id instead is not
/// enough: two tasks taking turns on a worker give the same id back with
/// the other's site in between (ABA; the first fix did that, and the test
/// below caught it).
pub(crate) struct CurrentPoll {
    seq: AtomicU64,
    id: AtomicU64,
    site: AtomicU32,
}

impl CurrentPoll {
    pub(crate) fn new() -> Self {
        CurrentPoll {
            seq: AtomicU64::new(0),
            id: AtomicU64::new(NOT_POLLING),
            site: AtomicU32::new(Site::NONE.to_bits()),
        }
    }

    /// The worker starts polling task `id`, spawned at `site`.
    pub(crate) fn enter(&self, id: u64, site: Site) {
        let seq = self.seq.load(Relaxed);
        self.seq.store(seq.wrapping_add(1), Relaxed);
        // Release fence: orders the odd sequence before the data stores;
        // pairs with the reader's Acquire fence.
        fence(Release);
        self.site.store(site.to_bits(), Relaxed);
        self.id.store(id, Relaxed);
        // Release: publishes the data with the even sequence; pairs with
        // the reader's first (Acquire) load.
        self.seq.store(seq.wrapping_add(2), Release);
    }

    /// The worker's poll ended. (Outside the sequence: a reader then sees
    /// `NOT_POLLING`, or the id of the poll that just ended with its site.)
    pub(crate) fn leave(&self) {
        self.id.store(NOT_POLLING, Relaxed);
    }

    /// The id of the task being polled, or [`NOT_POLLING`] (for comparing
    /// with an id read before).
    pub(crate) fn id(&self) -> u64 {
        self.id.load(Relaxed)
    }

    /// The task being polled and its spawn site, read as one pair; `None`
    /// when the worker is not inside a poll. If the worker keeps starting
    /// polls while this reads, the site is [`Site::NONE`].
    pub(crate) fn read(&self) -> Option<(u64, Site)> {
        let mut id = self.id.load(Relaxed);
        for _ in 0..8 {
            let before = self.seq.load(Acquire);
            if before % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            id = self.id.load(Relaxed);
            let site = Site::from_bits(self.site.load(Relaxed));
            // Acquire fence: orders the data loads before the re-read;
            // pairs with `enter`'s Release fence.
            fence(Acquire);
            if self.seq.load(Relaxed) == before {
                return (id != NOT_POLLING).then_some((id, site));
            }
        }
        (id != NOT_POLLING).then_some((id, Site::NONE))
    }

    /// The two words read without the sequence check: the defect, kept for
    /// the test's control.
    #[cfg(all(test, not(loom)))]
    fn read_unchecked(&self) -> Option<(u64, Site)> {
        let id = self.id.load(Acquire);
        let site = Site::from_bits(self.site.load(Acquire));
        (id != NOT_POLLING).then_some((id, site))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};

    /// One thread polls tasks 1 and 2 in turn (task `n` at site `n`, the
    /// ABA case of two tasks taking turns); another reads what it is
    /// polling until `deadline`. Returns (pairs read, pairs naming an id
    /// with the other task's site).
    fn mismatches(
        read: fn(&CurrentPoll) -> Option<(u64, Site)>,
        deadline: Duration,
        stop_at_first: bool,
    ) -> (u64, u64) {
        let current = CurrentPoll::new();
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut n = 1u64;
                while !stop.load(Relaxed) {
                    current.enter(n, Site::from_bits(n as u32));
                    current.leave();
                    n = 3 - n;
                }
            });
            let (mut reads, mut wrong) = (0u64, 0u64);
            let end = Instant::now() + deadline;
            while Instant::now() < end && !(stop_at_first && wrong > 0) {
                for _ in 0..1000 {
                    if let Some((id, site)) = read(&current) {
                        reads += 1;
                        if site != Site::NONE && u64::from(site.to_bits()) != id {
                            wrong += 1;
                        }
                    }
                }
            }
            stop.store(true, Relaxed);
            (reads, wrong)
        })
    }

    #[test]
    fn a_culprit_id_is_never_paired_with_another_polls_site() {
        let (reads, wrong) = mismatches(CurrentPoll::read, Duration::from_millis(1500), false);
        assert!(reads > 0, "the reader saw polls");
        assert_eq!(
            wrong, 0,
            "{wrong} of {reads} reads paired an id with another poll's site"
        );
    }

    /// Control: read without the sequence, the same race pairs them (the
    /// red-team's failure), so the test above can fail.
    #[test]
    fn control_read_without_the_sequence_is_caught() {
        let (reads, wrong) = mismatches(CurrentPoll::read_unchecked, Duration::from_secs(10), true);
        assert!(wrong > 0, "no torn read in {reads} reads within 10 s");
    }
}
