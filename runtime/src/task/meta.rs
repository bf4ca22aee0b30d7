//! What every task carries besides its future: its tag and state words,
//! its id, where it was spawned, and a counted reference to its owner (the
//! scheduler, and the registry it is counted in).

use super::owner::TaskOwner;
use super::registry::Registry;
use super::site::{self, Site};
use super::words::TaskWords;
use super::TaskId;
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
/// index, the id and the owner pointer in [`Packed4`]): async-task's
/// header then places its `propagate_panic` flag in the last 4 bytes, so
/// the header is 64 bytes, as it was with 24 bytes of metadata. The
/// schedule function beside it is zero-sized (TASK-OWNER, `owner.rs`).
#[repr(C)]
pub(crate) struct TaskMeta {
    /// Its registry tag and state word (`words.rs`).
    words: TaskWords,
    /// Where it was spawned (`#[track_caller]` on the spawn functions).
    site: Site,
    /// Its id, for its join handle and for culprits.
    id: Packed4<TaskId>,
    /// Its owner: one count ([`TaskOwner::retain`]), given back when async-task drops this metadata, after the future (every
    /// use of the metadata, the future's `Drop` included, sees the owner
    /// and its registry alive).
    owner: Packed4<NonNull<TaskOwner>>,
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
        owner: &TaskOwner,
    ) -> Self {
        TaskMeta {
            words: TaskWords::new(),
            site: site::intern(spawned_at),
            id: Packed4(id),
            owner: Packed4(owner.retain()),
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

    /// Its owner.
    pub(crate) fn owner(&self) -> &TaskOwner {
        // SAFETY: the metadata holds a count of the owner until it is
        // dropped, so the owner outlives this borrow; shared access only.
        unsafe { self.owner.get().as_ref() }
    }

    /// The registry the task is in.
    pub(crate) fn registry(&self) -> &Registry {
        self.owner().registry()
    }
}

impl Drop for TaskMeta {
    fn drop(&mut self) {
        // SAFETY: the count taken in `new`, given back once.
        unsafe { TaskOwner::release(self.owner.get()) }
    }
}

// SAFETY: the owner pointer is a counted reference to a `Sync` owner, used
// for shared access only; the other fields are atomics and integers.
unsafe impl Send for TaskMeta {}
// SAFETY: as for `Send`.
unsafe impl Sync for TaskMeta {}

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

// SAFETY: `TaskMeta` is Sync (see its own impls above) and the pointer is
// only used for shared access while the task allocation is alive.
unsafe impl Send for MetaRef {}
// SAFETY: as for `Send`.
unsafe impl Sync for MetaRef {}
