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
    /// that lives in an `Arc<T>`, before [`TaskOwner::retain`] is called;
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

    /// Takes one more count of the `Arc` this owner heads, for a task's
    /// metadata to hold; it gives it back with [`TaskOwner::release`].
    pub(crate) fn retain(&self) -> NonNull<TaskOwner> {
        let ptr = NonNull::from(self);
        // SAFETY: `new`'s contract: this owner heads a value in an `Arc`
        // (it is borrowed, so that `Arc` has a count), and `retain` adds
        // one to that count.
        unsafe { (self.retain)(ptr) };
        ptr
    }

    /// Gives back a count taken by [`TaskOwner::retain`] (the last one
    /// frees the whole object).
    ///
    /// # Safety
    ///
    /// `owner` came from `retain`, and this count is given back once; the
    /// owner is not touched after.
    pub(crate) unsafe fn release(owner: NonNull<TaskOwner>) {
        // SAFETY: the count keeps the owner alive for this read; the
        // caller's contract for the rest.
        unsafe {
            let release = owner.as_ref().release;
            release(owner)
        }
    }
}
