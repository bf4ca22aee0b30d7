//! What every task carries besides its future: its id, where it was
//! spawned, its registry tag and its state word.

use super::registry::{GONE, UNREGISTERED};
use super::site::{self, Site};
use super::{Registry, TaskId};
use crate::loom::{Arc, AtomicU32, Ordering};
use std::panic::Location;
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

/// Metadata stored in the task's allocation (async-task's header), so the
/// future beside it stays small: a task of 112 bytes or less is freed into
/// glibc's lock-free fastbins by the worker that completes it, while a
/// larger one takes the allocating thread's arena lock (measured: +16 bytes
/// here doubled `spawn_many_local`; and again when REGISTER-ON-PENDING
/// first put the id and spawn site here beside a 64-bit tag and a separate
/// stamp: 40 bytes, and 0.46 `futex` calls per spawn on glibc's arena
/// lock). Now 28 bytes at 4-byte alignment (the spawn site as a 4-byte
/// index, the id and the registry pointer in [`Packed4`]): async-task's
/// header then places its `propagate_panic` flag in the last 4 bytes, so
/// the header is 64 bytes, as it was with 24 bytes of metadata.
#[repr(C)]
pub(crate) struct TaskMeta {
    /// `registry::UNREGISTERED` until the task enters the registry
    /// (REGISTER-ON-PENDING), then its key there, then `registry::GONE`
    /// once its future was dropped.
    tag: AtomicU32,
    /// Where it was spawned (`#[track_caller]` on the spawn functions).
    site: Site,
    /// Its id, for its join handle and for culprits.
    id: Packed4<TaskId>,
    /// The state word: [`ABORTED`] and [`WAKER_REGISTERED`], and above them
    /// ([`STAMP_SHIFT`]) when a sampled schedule made the task runnable
    /// (the low 30 bits of `clock::now_us32`), or 0. The stamp is a
    /// measurement only (Relaxed; never set under loom, which runs without
    /// metrics): the worker that polls the task next reads and clears it.
    state: AtomicU32,
    /// The registry it is in (it leaves when its future is dropped).
    /// Borrowed, not counted: a per-task `Arc` clone was one atomic
    /// increment on the spawning thread and one decrement on the worker
    /// that freed the task, on a cache line every spawn and every
    /// completion shared (measured: the hottest instruction of a remote
    /// spawn, `perf annotate` of `spawn_many_remote_idle`).
    registry: Packed4<RegistryRef>,
}

/// A value stored at 4-byte alignment (so `TaskMeta` has no padding), only
/// ever read by value: no reference to a misaligned field is taken.
#[derive(Clone, Copy)]
#[repr(C, packed(4))]
pub(crate) struct Packed4<T: Copy>(T);

impl<T: Copy> Packed4<T> {
    fn get(&self) -> T {
        self.0
    }
}

impl TaskMeta {
    pub(crate) fn new(
        id: TaskId,
        spawned_at: &'static Location<'static>,
        registry: RegistryRef,
    ) -> Self {
        TaskMeta {
            tag: AtomicU32::new(UNREGISTERED),
            site: site::intern(spawned_at),
            id: Packed4(id),
            state: AtomicU32::new(0),
            registry: Packed4(registry),
        }
    }

    pub(crate) fn id(&self) -> TaskId {
        self.id.get()
    }

    /// Where it was spawned (resolve with `site::resolve`).
    pub(crate) fn site(&self) -> Site {
        self.site
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

    /// The registry the task is in.
    pub(crate) fn registry(&self) -> &Registry {
        let registry = self.registry.get();
        // SAFETY: `RegistryRef::new`'s contract: the owning `Arc` outlives
        // the task allocation that holds this metadata; shared access only.
        unsafe { registry.0.as_ref() }
    }

    /// A counted reference to that registry, for a holder that may outlive
    /// the task ([`AbortHandle`](super::AbortHandle)).
    pub(crate) fn registry_arc(&self) -> Arc<Registry> {
        self.registry.get().to_arc()
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

/// The registry a task is in, borrowed from the `Arc` that owns it for as
/// long as the task's allocation lives.
#[derive(Clone, Copy)]
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

    fn to_arc(self) -> Arc<Registry> {
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
