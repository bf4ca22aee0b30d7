//! The runtime a thread is inside: on worker threads, inside `block_on`
//! and while an [`EnterGuard`] lives, the runtime `unplug::spawn` and
//! `Handle::current` use; on a thread of the runtime's blocking pool
//! (`spawn_blocking`), that runtime while it lives (BLOCKING-CONTEXT).

use crate::inner::Inner;
use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::sync::{Arc, Weak};

thread_local! {
    static HANDLE: RefCell<Option<Arc<Inner>>> = const { RefCell::new(None) };
    /// How many [`SetCurrent`] guards this thread holds: each guard knows
    /// its own depth, so one dropped out of order is caught.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    /// BLOCKING-CONTEXT: on a thread of a runtime's blocking pool, that
    /// runtime, current when nothing else is. Weak: the pool's threads
    /// outlive the runtime for tokio's keep-alive, and a closure still
    /// running at the drop runs on detached.
    static BLOCKING_POOL: RefCell<Option<Weak<Inner>>> = const { RefCell::new(None) };
}

/// The handle of the runtime this thread is inside, if any.
pub(crate) fn current() -> Option<Arc<Inner>> {
    HANDLE
        .try_with(|h| h.borrow().clone())
        .ok()
        .flatten()
        .or_else(blocking_pool_runtime)
}

/// The runtime whose blocking pool this thread belongs to, if it lives.
fn blocking_pool_runtime() -> Option<Arc<Inner>> {
    BLOCKING_POOL
        .try_with(|pool| pool.borrow().as_ref().and_then(Weak::upgrade))
        .ok()
        .flatten()
}

/// BLOCKING-CONTEXT: this thread is one of `runtime`'s blocking pool (the
/// pool's start hook), until [`leave_blocking_pool`].
pub(crate) fn enter_blocking_pool(runtime: Option<Weak<Inner>>) {
    let _ = BLOCKING_POOL.try_with(|pool| *pool.borrow_mut() = runtime);
}

/// The pool's stop hook: the thread ends.
pub(crate) fn leave_blocking_pool() {
    let _ = BLOCKING_POOL.try_with(|pool| pool.borrow_mut().take());
}

/// Makes `handle` current on this thread until the guard drops. At thread
/// exit, once this thread's locals are being destroyed, it makes nothing
/// current (TLS-EXIT: a runtime kept in a `thread_local!` is dropped then).
pub(crate) fn enter(runtime: Arc<Inner>) -> SetCurrent {
    let previous = HANDLE
        .try_with(|h| h.borrow_mut().replace(runtime))
        .ok()
        .flatten();
    let depth = DEPTH
        .try_with(|d| {
            d.set(d.get() + 1);
            d.get()
        })
        .unwrap_or(0);
    SetCurrent {
        previous,
        depth,
        _not_send: PhantomData,
    }
}

/// Restores the previous current handle when dropped.
pub(crate) struct SetCurrent {
    previous: Option<Arc<Inner>>,
    depth: usize,
    /// It restores this thread's state: it must drop on this thread.
    _not_send: PhantomData<*const ()>,
}

impl Drop for SetCurrent {
    fn drop(&mut self) {
        let depth = DEPTH
            .try_with(|d| d.replace(self.depth.saturating_sub(1)))
            .ok();
        let previous = self.previous.take();
        let _ = HANDLE.try_with(|h| *h.borrow_mut() = previous);
        // Out of order: what was restored is not what the later guard saw
        // when it was made. Reported after restoring, and not while already
        // unwinding (a panic there would abort the process).
        if depth.is_some_and(|d| d != self.depth) && !std::thread::panicking() {
            panic!(
                "unplug: `EnterGuard`s dropped out of order: guards returned by \
                 `Runtime::enter` / `Handle::enter` must be dropped in the reverse \
                 order of their creation"
            );
        }
    }
}

/// Makes a runtime current on this thread until dropped
/// ([`Runtime::enter`](crate::Runtime::enter),
/// [`Handle::enter`](crate::Handle::enter)): [`spawn`](crate::spawn) and
/// [`Handle::current`](crate::Handle::current) use that runtime, and
/// tokio's I/O and timer constructors (`tokio::net`, `tokio::time::sleep`)
/// its tokio reactor.
///
/// Guards nest, of one runtime or several: dropping one restores what was
/// current before it was made. They must be dropped in the reverse order of
/// their creation; dropping one out of order **panics** (as tokio's own
/// `EnterGuard` does), unless the thread is already panicking; what is
/// current on that thread afterwards is then unspecified (a runtime may
/// stay current with no guard left, as with tokio's). The guard is not
/// `Send`: it belongs to the thread that made it.
///
/// ```
/// let rt = unplug::Runtime::builder().workers(1).build().unwrap();
/// let task = {
///     let _guard = rt.enter();
///     // A plain thread, yet inside the runtime while the guard lives.
///     let sleep = tokio::time::sleep(std::time::Duration::from_millis(1));
///     unplug::spawn(async move {
///         sleep.await;
///         "slept"
///     })
/// };
/// assert!(unplug::Handle::try_current().is_none());
/// assert_eq!(rt.block_on(task).unwrap(), "slept");
/// ```
#[must_use = "the runtime is current only while the guard lives"]
pub struct EnterGuard<'a> {
    // Dropped in declaration order: ours first, then tokio's, the reverse
    // of how `Handle::enter` makes them (as `block_on` does).
    _current: SetCurrent,
    _tokio: tokio::runtime::EnterGuard<'a>,
}

impl<'a> EnterGuard<'a> {
    pub(crate) fn new(inner: &'a Arc<Inner>) -> Self {
        let _tokio = inner.tokio.enter();
        let _current = enter(inner.clone());
        EnterGuard { _current, _tokio }
    }

    /// [`new`](Self::new), or `None` once tokio's thread-local context is
    /// destroyed (TLS-EXIT: a thread's locals are being torn down, and a
    /// runtime kept in one of them is shutting down; tokio's `enter` would
    /// panic there, and a panic in a thread-local's destructor aborts the
    /// process).
    pub(crate) fn try_new(inner: &'a Arc<Inner>) -> Option<Self> {
        match tokio::runtime::Handle::try_current() {
            Err(e) if e.is_thread_local_destroyed() => None,
            _ => Some(Self::new(inner)),
        }
    }
}

impl std::fmt::Debug for EnterGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnterGuard").finish_non_exhaustive()
    }
}
