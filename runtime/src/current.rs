//! The runtime a thread is inside: on worker threads and inside
//! `block_on`, the runtime `unplug::spawn` and `Handle::current` use.

use crate::inner::Inner;
use std::cell::RefCell;
use std::sync::Arc;

thread_local! {
    static HANDLE: RefCell<Option<Arc<Inner>>> = const { RefCell::new(None) };
}

/// The handle of the runtime this thread is inside, if any.
pub(crate) fn current() -> Option<Arc<Inner>> {
    HANDLE.try_with(|h| h.borrow().clone()).ok().flatten()
}

/// Makes `handle` current on this thread until the guard drops.
pub(crate) fn enter(runtime: Arc<Inner>) -> EnterGuard {
    let previous = HANDLE.with(|h| h.borrow_mut().replace(runtime));
    EnterGuard { previous }
}

/// Restores the previous current handle when dropped.
pub(crate) struct EnterGuard {
    previous: Option<Arc<Inner>>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = HANDLE.try_with(|h| *h.borrow_mut() = previous);
    }
}
