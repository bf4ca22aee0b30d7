//! ONE-WAITER (`runtime/IO.md`): which worker's idle waits are inside the
//! reactor. Only the role's holder waits there; the other idle workers wait
//! on their own notifiers, so a socket write by a busy worker never wakes
//! them with the sync wake-up that moves a woken thread onto the writer's
//! CPU. Freeing the role is the caller's publish-then-wake: the scheduler
//! wakes a sleeper after [`ReactorWaiter::free`] returns true, and a sleeper
//! outside the reactor re-checks [`ReactorWaiter::is_free`] after it
//! registers (SeqCst on both sides, the pairing a pushed task relies on).

use crate::loom::{AtomicUsize, Ordering};

/// No worker holds the role; the next worker to go idle takes it.
const NO_WAITER: usize = usize::MAX;

/// The role: the index of the worker that holds it, or [`NO_WAITER`].
pub(crate) struct ReactorWaiter {
    holder: AtomicUsize,
    /// In force only with a reactor and the long-poll monitor, which frees
    /// the role when the reactor starves; otherwise every idle worker may
    /// wait inside.
    enabled: bool,
}

impl ReactorWaiter {
    pub(crate) fn new(enabled: bool) -> Self {
        ReactorWaiter {
            holder: AtomicUsize::new(NO_WAITER),
            enabled,
        }
    }

    /// May worker `me`'s idle wait be inside the reactor? Yes if it holds
    /// the role, or takes it now that nobody does (a load first: the
    /// compare-exchange, a write of a line every worker reads, only when
    /// the role is free).
    pub(crate) fn take(&self, me: usize) -> bool {
        if !self.enabled {
            return true;
        }
        // SeqCst: pairs with `free`'s swap and the wake after it.
        match self.holder.load(Ordering::SeqCst) {
            NO_WAITER => self
                .holder
                .compare_exchange(NO_WAITER, me, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok(),
            holder => holder == me,
        }
    }

    /// Is the role free? Re-checked by a sleeper outside the reactor after
    /// it registers; it then ends its wait to take the role.
    pub(crate) fn is_free(&self) -> bool {
        // SeqCst: pairs with `free`'s swap, after which its caller wakes.
        self.enabled && self.holder.load(Ordering::SeqCst) == NO_WAITER
    }

    /// Frees the role if `holder` holds it (`None`: whoever does); whether
    /// it was freed (the caller then wakes a sleeper to take it).
    pub(crate) fn free(&self, holder: Option<usize>) -> bool {
        if !self.enabled {
            return false;
        }
        // SeqCst: pairs with the sleeper's re-check in `is_free`.
        match holder {
            Some(me) => self
                .holder
                .compare_exchange(me, NO_WAITER, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok(),
            None => self.holder.swap(NO_WAITER, Ordering::SeqCst) != NO_WAITER,
        }
    }
}
