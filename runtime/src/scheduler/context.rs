//! The thread-local that makes a thread a worker: on a worker thread, the
//! worker's [`Local`] state, so wake-ups and spawns there go to its LIFO
//! slot and queue.

use super::local::Local;
use super::Scheduler;
use crate::loom::Arc;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

// Read on every wake-up and spawn: the `const` form (no lazy-init check)
// where loom's macro, which lacks it, is not needed.
#[cfg(not(loom))]
std::thread_local! {
    static WORKER: RefCell<Option<Rc<Local>>> = const { RefCell::new(None) };
}
#[cfg(loom)]
loom::thread_local! {
    static WORKER: RefCell<Option<Rc<Local>>> = RefCell::new(None);
}

// SHUTDOWN-BLOCK-ON: the scheduler (by address) whose shutdown runs user
// code on this thread (the `Drop`s shutdown runs, a stop hook at shutdown),
// 0 for none.
#[cfg(not(loom))]
std::thread_local! {
    static SHUTDOWN_HERE: Cell<usize> = const { Cell::new(0) };
}
#[cfg(loom)]
loom::thread_local! {
    static SHUTDOWN_HERE: Cell<usize> = Cell::new(0);
}

/// Makes `local` this thread's worker state until the guard drops.
pub(crate) fn enter_worker(local: Rc<Local>) -> WorkerGuard {
    WORKER.with(|w| *w.borrow_mut() = Some(local));
    WorkerGuard(())
}

/// Clears the thread's worker state when dropped.
pub(crate) struct WorkerGuard(());

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        let _ = WORKER.try_with(|w| w.borrow_mut().take());
    }
}

/// Runs `f` with this thread's worker state if it belongs to `scheduler`.
pub(crate) fn with_local<R>(scheduler: &Arc<Scheduler>, f: impl FnOnce(Option<&Local>) -> R) -> R {
    with_local_ptr(Arc::as_ptr(scheduler), f)
}

/// [`with_local`] for the scheduler at `scheduler`, compared by address
/// only (it is never read, so it may be dangling for all this cares).
pub(crate) fn with_local_ptr<R>(
    scheduler: *const Scheduler,
    f: impl FnOnce(Option<&Local>) -> R,
) -> R {
    // While thread-locals are torn down, act as a foreign thread.
    let local = WORKER.try_with(|w| w.borrow().clone()).ok().flatten();
    match local.as_deref() {
        Some(local) if std::ptr::eq(Arc::as_ptr(&local.scheduler), scheduler) => f(Some(local)),
        _ => f(None),
    }
}

/// Is this thread a worker of any unplug runtime?
pub(crate) fn in_worker() -> bool {
    WORKER.try_with(|w| w.borrow().is_some()).unwrap_or(false)
}

/// SHUTDOWN-BLOCK-ON: marks this thread as running user code for
/// `scheduler`'s shutdown (which waits for it, with no worker turning the
/// reactor) until the guard drops; [`in_shutdown_of`] tells `block_on`.
pub(crate) fn enter_shutdown(scheduler: &Arc<Scheduler>) -> ShutdownGuard {
    let previous = SHUTDOWN_HERE
        .try_with(|s| s.replace(Arc::as_ptr(scheduler) as usize))
        .unwrap_or(0);
    ShutdownGuard { previous }
}

/// Restores what [`enter_shutdown`] replaced (a runtime dropped inside
/// another's shutdown nests).
pub(crate) struct ShutdownGuard {
    previous: usize,
}

impl Drop for ShutdownGuard {
    fn drop(&mut self) {
        let _ = SHUTDOWN_HERE.try_with(|s| s.set(self.previous));
    }
}

/// Is this thread running user code for the shutdown of the scheduler at
/// `scheduler`?
pub(crate) fn in_shutdown_of(scheduler: *const Scheduler) -> bool {
    SHUTDOWN_HERE
        .try_with(|s| s.get() == scheduler as usize)
        .unwrap_or(false)
}
