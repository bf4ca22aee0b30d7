//! The two words every task carries in its metadata: its registry tag and
//! its state word (the abort bit, a hint, and a schedule stamp). Below
//! both the metadata and the registry, which change them.

use crate::loom::{AtomicU32, Ordering};
use std::ptr::NonNull;

/// The user asked to cancel the task ([`JoinHandle::abort`]). Set once,
/// never cleared. The task's own poll checks it first (ABORT-AT-POLL), so
/// the abort is observed at the next poll boundary whatever the task was
/// doing when it landed.
///
/// [`JoinHandle::abort`]: crate::JoinHandle::abort
pub(crate) const ABORTED: u32 = 1 << 0;

/// The task's registry entry holds its waker (set once, under the shard
/// lock, when its poll first returned `Pending`). Only a hint for the fast
/// path of later `Pending`s (Relaxed): a poll that misses it takes the
/// lock and finds the waker there.
pub(crate) const WAKER_REGISTERED: u32 = 1 << 1;

/// The flag bits of the state word; the schedule stamp is above them.
const FLAGS: u32 = ABORTED | WAKER_REGISTERED;
/// Where the schedule stamp starts in the state word.
pub(crate) const STAMP_SHIFT: u32 = 2;

/// `TaskWords::tag` before the task entered the registry.
pub(crate) const UNREGISTERED: u32 = u32::MAX;
/// `TaskWords::tag` once the task's future was dropped: it never enters
/// the registry again. Any other value is the task's registry key (keys
/// stay below these two while fewer than about 4 billion tasks wait at
/// once).
pub(crate) const GONE: u32 = u32::MAX - 1;

/// A task's tag and state words (8 bytes at 4-byte alignment).
pub(crate) struct TaskWords {
    /// [`UNREGISTERED`] until the task enters the registry
    /// (REGISTER-ON-PENDING), then its key there, then [`GONE`] once its
    /// future was dropped.
    tag: AtomicU32,
    /// [`ABORTED`] and [`WAKER_REGISTERED`], and above them
    /// ([`STAMP_SHIFT`]) when a sampled schedule made the task runnable
    /// (the low 30 bits of `clock::now_us32`), or 0. The stamp is a
    /// measurement only (Relaxed; never set under loom, which runs without
    /// metrics): the worker that polls the task next reads and clears it.
    state: AtomicU32,
}

impl TaskWords {
    pub(crate) fn new() -> Self {
        TaskWords {
            tag: AtomicU32::new(UNREGISTERED),
            state: AtomicU32::new(0),
        }
    }

    /// The registry tag word (the registry changes it under its locks).
    pub(crate) fn tag(&self) -> &AtomicU32 {
        &self.tag
    }

    /// The future is being dropped: the tag becomes GONE for good, and the
    /// key it had, if any, is returned (for the registry to remove). AcqRel:
    /// pairs with the registry's CAS, which it races.
    pub(crate) fn take_key_at_drop(&self) -> Option<u32> {
        if crate::loom::regress::on(crate::loom::regress::Regression::DropTagInTwoSteps) {
            let tag = self.tag.load(Ordering::Acquire);
            self.tag.store(GONE, Ordering::Release);
            return Some(tag).filter(|&t| t != UNREGISTERED && t != GONE);
        }
        match self.tag.swap(GONE, Ordering::AcqRel) {
            UNREGISTERED | GONE => None,
            key => Some(key),
        }
    }

    /// Does the registry hold this task's waker? (A hint, see
    /// [`WAKER_REGISTERED`].)
    pub(crate) fn waker_registered(&self) -> bool {
        self.state.load(Ordering::Relaxed) & WAKER_REGISTERED != 0
    }

    /// Called by the registry, under the shard lock, when it stored the
    /// task's waker.
    pub(crate) fn mark_waker_registered(&self) {
        self.state.fetch_or(WAKER_REGISTERED, Ordering::Relaxed);
    }

    /// Stamps the moment a sampled schedule made the task runnable (a
    /// `clock::now_us32`; its low 30 bits are kept). The flags are kept as
    /// they are: a Relaxed RMW continues the release sequence of an abort.
    pub(crate) fn stamp_scheduled(&self, stamp: u32) {
        let stamp = (stamp << STAMP_SHIFT).max(1 << STAMP_SHIFT);
        let _ = self
            .state
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                Some(s & FLAGS | stamp)
            });
    }

    /// Takes the stamp of a sampled schedule, if any (one load when none):
    /// 30 bits, for `clock::since_us30`.
    #[cfg(not(loom))]
    pub(crate) fn take_scheduled(&self) -> Option<u32> {
        if self.state.load(Ordering::Relaxed) >> STAMP_SHIFT == 0 {
            return None;
        }
        Some(self.state.fetch_and(FLAGS, Ordering::Relaxed) >> STAMP_SHIFT).filter(|&s| s != 0)
    }

    /// Under loom no schedule is stamped (no metrics): nothing to add to
    /// every poll's steps.
    #[cfg(loom)]
    pub(crate) fn take_scheduled(&self) -> Option<u32> {
        None
    }

    /// Marks the task aborted; the caller then wakes the task.
    /// AcqRel RMW: pairs with the RMW in
    /// [`is_aborted_at_poll`](Self::is_aborted_at_poll) (see there).
    pub(crate) fn abort(&self) {
        self.state.fetch_or(ABORTED, Ordering::AcqRel);
    }

    /// Has the task been aborted? (A plain read, for checks that race
    /// nothing.)
    pub(crate) fn is_aborted(&self) -> bool {
        self.state.load(Ordering::Acquire) & ABORTED != 0
    }

    /// The check at the start of every poll (ABORT-AT-POLL), after
    /// async-task marked the task RUNNING with an AcqRel CAS on its header
    /// state. An abort sets the bit and then wakes the task, and async-task's
    /// wake is an AcqRel RMW on that same state word *even when the task is
    /// already scheduled* ("to synchronize with the thread that will run
    /// the task", async-task `raw.rs`). So either the wake's RMW precedes
    /// our CAS in that word's order (we synchronize with it and this load
    /// sees the bit), or it follows and finds the task RUNNING (it
    /// reschedules the task, and the next poll sees the bit).
    #[cfg(not(loom))]
    pub(crate) fn is_aborted_at_poll(&self) -> bool {
        self.is_aborted()
    }

    /// Under loom, which cannot see async-task's atomics, the same check as
    /// an RMW on this word: the argument then needs nothing of async-task.
    /// Both RMWs are ordered in this word's modification order: if the
    /// poll's comes first, the abort's reads from it, so the abort's
    /// wake-up happens after the task was marked RUNNING and reschedules
    /// it; if the abort's comes first, this one sees the bit.
    #[cfg(loom)]
    pub(crate) fn is_aborted_at_poll(&self) -> bool {
        self.state.fetch_or(0, Ordering::AcqRel) & ABORTED != 0
    }
}

/// A pointer to a task's words, held by its registry entry.
pub(crate) struct WordsRef(NonNull<TaskWords>);

impl WordsRef {
    /// The holder must drop this before the task's allocation is freed
    /// (the registry entry is removed by the task's own future's `Drop`).
    pub(crate) fn new(words: &TaskWords) -> Self {
        WordsRef(NonNull::from(words))
    }

    pub(crate) fn get(&self) -> &TaskWords {
        // SAFETY: the entry holding this is removed by the task's future's
        // `Drop`, before async-task frees the header holding the words, and
        // it is read only under the registry's shard lock; shared access.
        unsafe { self.0.as_ref() }
    }
}

// SAFETY: `TaskWords` is two atomics (Sync), and the pointer is only used
// for shared access while the task allocation is alive.
unsafe impl Send for WordsRef {}
// SAFETY: as for `Send`.
unsafe impl Sync for WordsRef {}
