//! What every task carries besides its future: its registry entry and its
//! state word.

use super::Registry;
use crate::loom::{Arc, AtomicU32, Ordering};
use std::ptr::NonNull;

/// The user asked to cancel the task ([`JoinHandle::abort`]). Set once,
/// never cleared. The task's own poll checks it first (ABORT-AT-POLL), so
/// the abort is observed at the next poll boundary whatever the task was
/// doing when it landed.
///
/// [`JoinHandle::abort`]: crate::JoinHandle::abort
pub(crate) const ABORTED: u32 = 1 << 0;

/// Metadata stored in the task's allocation (async-task's header), so the
/// future beside it stays small: a task of 112 bytes or less is freed into
/// glibc's lock-free fastbins by the worker that completes it, while a
/// larger one takes the allocating thread's arena lock (measured: +16 bytes
/// here doubled `spawn_many_local`).
pub(crate) struct TaskMeta {
    /// Its tag in the registry (key and id, see `Registry::insert_with`).
    pub(crate) key: u64,
    /// The state word: [`ABORTED`] (the only bit today). 32 bits, so the
    /// stamp below fits beside it and the header does not grow.
    state: AtomicU32,
    /// When a sampled schedule made the task runnable (`clock::now_us32`),
    /// or 0. A measurement only (Relaxed, not modelled under loom): the
    /// worker that polls the task next reads and clears it.
    scheduled_at: std::sync::atomic::AtomicU32,
    /// The registry it is in (it leaves when its future is dropped).
    /// Borrowed, not counted: a per-task `Arc` clone was one atomic
    /// increment on the spawning thread and one decrement on the worker
    /// that freed the task, on a cache line every spawn and every
    /// completion shared (measured: the hottest instruction of a remote
    /// spawn, `perf annotate` of `spawn_many_remote_idle`).
    registry: RegistryRef,
}

impl TaskMeta {
    pub(crate) fn new(key: u64, registry: RegistryRef) -> Self {
        TaskMeta {
            key,
            state: AtomicU32::new(0),
            scheduled_at: std::sync::atomic::AtomicU32::new(0),
            registry,
        }
    }

    /// The registry the task is in.
    pub(crate) fn registry(&self) -> &Registry {
        self.registry.get()
    }

    /// A counted reference to that registry, for a holder that may outlive
    /// the task ([`AbortHandle`](super::AbortHandle)).
    pub(crate) fn registry_arc(&self) -> Arc<Registry> {
        self.registry.to_arc()
    }

    /// Stamps the moment a sampled schedule made the task runnable.
    pub(crate) fn stamp_scheduled(&self, stamp: u32) {
        self.scheduled_at
            .store(stamp, std::sync::atomic::Ordering::Relaxed);
    }

    /// Takes the stamp of a sampled schedule, if any (one load when none).
    pub(crate) fn take_scheduled(&self) -> Option<u32> {
        use std::sync::atomic::Ordering::Relaxed;
        match self.scheduled_at.load(Relaxed) {
            0 => None,
            _ => Some(self.scheduled_at.swap(0, Relaxed)).filter(|&s| s != 0),
        }
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

/// The registry a task is in, borrowed from the `Arc` that owns it for as
/// long as the task's allocation lives.
pub(crate) struct RegistryRef(NonNull<Registry>);

impl RegistryRef {
    /// # Safety
    ///
    /// The `Arc` behind `registry` must outlive the allocation of every
    /// task whose metadata holds the result: the task's schedule function
    /// must own it, directly or through its owner. async-task drops the
    /// header (this metadata) before the schedule function, and the future
    /// before both (`RawTask::destroy`), so every use of the metadata,
    /// including the future's `Drop`, sees the registry alive.
    pub(crate) unsafe fn new(registry: &Arc<Registry>) -> Self {
        RegistryRef(NonNull::from(&**registry))
    }

    fn get(&self) -> &Registry {
        // SAFETY: `new`'s contract: the owning `Arc` outlives the task
        // allocation that holds `self`; shared access only.
        unsafe { self.0.as_ref() }
    }

    fn to_arc(&self) -> Arc<Registry> {
        let ptr = self.0.as_ptr() as *const Registry;
        // SAFETY: `ptr` is what `Arc::as_ptr` of the owning `Arc` gives
        // (the `&**registry` in `new`), and that `Arc` is alive (`new`'s
        // contract), so its strong count is at least 1: incrementing it and
        // taking the new count as an `Arc` of our own is sound.
        unsafe {
            Arc::increment_strong_count(ptr);
            Arc::from_raw(ptr)
        }
    }
}

// SAFETY: `Registry` is `Send + Sync` (shard mutexes and an atomic), and
// the pointer is only used for shared access while the registry is alive.
unsafe impl Send for RegistryRef {}
// SAFETY: as for `Send`.
unsafe impl Sync for RegistryRef {}

/// A pointer to a task's [`TaskMeta`], held by the task's own future and
/// by its join handle. (async-task lends the metadata only by reference
/// for the length of one call.)
pub(crate) struct MetaRef(NonNull<TaskMeta>);

impl MetaRef {
    /// The holder must keep the task allocation alive for as long as it
    /// keeps this pointer (see the SAFETY notes at each holder).
    pub(crate) fn new(meta: &TaskMeta) -> Self {
        MetaRef(NonNull::from(meta))
    }

    pub(crate) fn get(&self) -> &TaskMeta {
        // SAFETY: the pointer came from the metadata of a task whose
        // allocation the holder keeps alive (the join handle drops this
        // before its `FallibleTask`; the future is dropped before async-task
        // frees the header holding the metadata); shared access only.
        unsafe { self.0.as_ref() }
    }
}

// SAFETY: `TaskMeta` is Sync (an atomic and an integer) and the pointer is
// only used for shared access while the task allocation is alive.
unsafe impl Send for MetaRef {}
// SAFETY: as for `Send`.
unsafe impl Sync for MetaRef {}
