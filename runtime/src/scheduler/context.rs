//! The thread-local that makes a thread a worker: on a worker thread, the
//! worker's [`Local`] state, so wake-ups and spawns there go to its LIFO
//! slot and queue.

use super::local::Local;
use super::Scheduler;
use crate::loom::Arc;
use std::cell::RefCell;
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
