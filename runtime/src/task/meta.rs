//! What every task carries besides its future: its tag and state words,
//! its id, where it was spawned, and the registry it is counted in.

use super::registry::Registry;
use super::site::{self, Site};
use super::words::TaskWords;
use super::TaskId;
use crate::loom::Arc;
use std::panic::Location;
use std::ptr::NonNull;

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
    /// Its registry tag and state word (`words.rs`).
    words: TaskWords,
    /// Where it was spawned (`#[track_caller]` on the spawn functions).
    site: Site,
    /// Its id, for its join handle and for culprits.
    id: Packed4<TaskId>,
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
            words: TaskWords::new(),
            site: site::intern(spawned_at),
            id: Packed4(id),
            registry: Packed4(registry),
        }
    }

    /// Its tag and state words.
    pub(crate) fn words(&self) -> &TaskWords {
        &self.words
    }

    pub(crate) fn id(&self) -> TaskId {
        self.id.get()
    }

    /// Where it was spawned (resolve with `site::resolve`).
    pub(crate) fn site(&self) -> Site {
        self.site
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
