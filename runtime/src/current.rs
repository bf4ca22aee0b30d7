//! The runtime a thread is inside: on worker threads and inside
//! `block_on`, the handle `unplug::spawn` and `Handle::current` use.

use crate::handle::Handle;
use std::cell::RefCell;

thread_local! {
    static HANDLE: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// The handle of the runtime this thread is inside, if any.
pub(crate) fn current() -> Option<Handle> {
    HANDLE.try_with(|h| h.borrow().clone()).ok().flatten()
}

/// Makes `handle` current on this thread until the guard drops.
pub(crate) fn enter(handle: Handle) -> EnterGuard {
    let previous = HANDLE.with(|h| h.borrow_mut().replace(handle));
    EnterGuard { previous }
}

/// Restores the previous current handle when dropped.
pub(crate) struct EnterGuard {
    previous: Option<Handle>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = HANDLE.try_with(|h| *h.borrow_mut() = previous);
    }
}
