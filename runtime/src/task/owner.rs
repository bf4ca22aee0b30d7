//! TASK-OWNER: what a task holds of the object that built it (the
//! scheduler), seen by the task layer only as a header: the registry the
//! task is counted in, and how to count references to the whole object.
//!
//! Every task holds one counted reference to its owner (taken at spawn,
//! given back when async-task frees the task with its metadata), so the
//! owner outlives every use of the task's metadata, and the task's
//! schedule function needs no captured state: it finds the scheduler
//! through the metadata. async-task brackets every call of a schedule
//! function that has captured state with a temporary waker (a reference
//! count up and down on the task, two atomic operations per wake-up);
//! with a zero-sized one it does not (measured: `yield_many` 0.85x →
//! 0.76x tokio).

use super::registry::Registry;
use crate::loom::Arc;
use std::ptr::NonNull;

/// The head of a task-building object that lives in an `Arc`.
pub(crate) struct TaskOwner {
    /// In an `Arc` of its own, so an [`AbortHandle`](super::AbortHandle)
    /// counts only the registry, never the scheduler: a handle kept in the
    /// state of a thread hook (which the scheduler owns) makes no cycle,
    /// and one that outlives the runtime keeps no more than the registry.
    registry: Arc<Registry>,
    /// Adds one to the strong count of the `Arc` this owner heads.
    retain: unsafe fn(NonNull<TaskOwner>),
    /// Takes one from it (which may free the whole object).
    release: unsafe fn(NonNull<TaskOwner>),
}

impl TaskOwner {
    /// # Safety
    ///
    /// The result must be placed at offset 0 of a `#[repr(C)]` value `T`
    /// that lives in an `Arc<T>`, before any [`OwnerRef`] to it is made;
    /// `retain` and `release` must increment and decrement that `Arc`'s
    /// strong count given a pointer to this owner (which is the `T`'s
    /// address).
    pub(crate) unsafe fn new(
        registry: Arc<Registry>,
        retain: unsafe fn(NonNull<TaskOwner>),
        release: unsafe fn(NonNull<TaskOwner>),
    ) -> Self {
        TaskOwner {
            registry,
            retain,
            release,
        }
    }

    /// The registry its tasks are counted in.
    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A counted reference to the registry alone (for an
    /// [`AbortHandle`](super::AbortHandle)).
    pub(crate) fn registry_arc(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    /// A new counted reference to this owner.
    pub(crate) fn counted(&self) -> OwnerRef {
        let ptr = NonNull::from(self);
        // SAFETY: `new`'s contract: this owner heads a value in an `Arc`
        // (it is borrowed, so that `Arc` has a count), and `retain` adds
        // one to that count.
        unsafe { (self.retain)(ptr) };
        OwnerRef(ptr)
    }
}

/// A counted reference to a [`TaskOwner`] (one strong count of the `Arc`
/// it heads).
pub(crate) struct OwnerRef(NonNull<TaskOwner>);

impl OwnerRef {
    /// The owner.
    pub(crate) fn get(&self) -> &TaskOwner {
        // SAFETY: this reference holds a count, so the owner is alive;
        // shared access only.
        unsafe { self.0.as_ref() }
    }

    /// Gives up the reference without releasing its count (kept in the
    /// task's metadata, which releases it with [`OwnerRef::from_raw`]).
    pub(crate) fn into_raw(self) -> NonNull<TaskOwner> {
        let ptr = self.0;
        std::mem::forget(self);
        ptr
    }

    /// # Safety
    ///
    /// `ptr` came from [`OwnerRef::into_raw`], and its count was not taken
    /// back yet.
    pub(crate) unsafe fn from_raw(ptr: NonNull<TaskOwner>) -> Self {
        OwnerRef(ptr)
    }
}

impl Clone for OwnerRef {
    fn clone(&self) -> Self {
        self.get().counted()
    }
}

impl Drop for OwnerRef {
    fn drop(&mut self) {
        let release = self.get().release;
        // SAFETY: this reference's count, given back once; the owner is
        // not touched after.
        unsafe { release(self.0) }
    }
}

// SAFETY: a `TaskOwner` is `Sync` (the registry's locks and atomics, and
// two function pointers), and an `OwnerRef` gives only shared access to it
// while its count keeps it alive.
unsafe impl Send for OwnerRef {}
// SAFETY: as for `Send`.
unsafe impl Sync for OwnerRef {}
