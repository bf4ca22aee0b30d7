//! `Handle`: a cheap, cloneable reference to a runtime.

use crate::block_on;
use crate::context;
use crate::join::JoinHandle;
use crate::scheduler::Shared;
use crate::task;
use std::future::Future;
use std::sync::Arc;

/// A cloneable, `Send` reference to a runtime: spawn on it from any thread.
///
/// ```
/// let rt = unplug::Runtime::builder().workers(2).build().unwrap();
/// let handle = rt.handle().clone();
/// let from_thread = std::thread::spawn(move || handle.spawn(async { 1 + 1 }))
///     .join()
///     .unwrap();
/// assert_eq!(rt.block_on(from_thread).unwrap(), 2);
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl Handle {
    pub(crate) fn from_shared(shared: Arc<Shared>) -> Self {
        Handle { shared }
    }

    /// The handle of the runtime this thread runs in (a worker, or inside
    /// `block_on`).
    ///
    /// # Panics
    ///
    /// Outside any unplug runtime; use [`Handle::try_current`] to check.
    #[track_caller]
    pub fn current() -> Handle {
        Self::try_current().expect(
            "there is no unplug runtime here: call this from a task or inside `Runtime::block_on`",
        )
    }

    /// The current runtime's handle, or `None` outside any.
    pub fn try_current() -> Option<Handle> {
        context::current_handle()
    }

    /// Spawns a task on this runtime. After shutdown the returned handle
    /// yields a cancelled [`JoinError`](crate::JoinError) and the future is
    /// dropped at once.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        task::spawn(&self.shared, future)
    }

    /// Runs `future` to completion on this thread; see
    /// [`Runtime::block_on`](crate::Runtime::block_on).
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        block_on::block_on(self, future)
    }

    /// Tasks spawned on this runtime and not yet completed or dropped.
    pub fn live_tasks(&self) -> usize {
        self.shared.registry.live()
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("workers", &self.shared.slots().len())
            .finish()
    }
}
