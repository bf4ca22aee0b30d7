//! `JoinHandle` and `JoinError`.

use crate::scheduler::{Shared, TaskMeta};
use crate::task::Payload;
use async_task::{FallibleTask, Task};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

/// An owned permission to await a spawned task's output.
///
/// Awaiting it gives `Ok(output)`, or a [`JoinError`] if the task panicked
/// or was cancelled (aborted, or dropped at shutdown). Dropping the handle
/// detaches the task: it keeps running.
///
/// ```
/// let rt = unplug::Runtime::builder().workers(2).build().unwrap();
/// let answer = rt.block_on(async {
///     let task = unplug::spawn(async { 6 * 7 });
///     task.await
/// });
/// assert_eq!(answer.unwrap(), 42);
/// ```
pub struct JoinHandle<T> {
    task: Option<FallibleTask<Result<T, Payload>, TaskMeta>>,
    meta: Option<MetaRef>,
    shared: Option<Arc<Shared>>,
}

/// The task's metadata, reached from the handle. (`FallibleTask` does not
/// expose it, and we need it to abort.)
struct MetaRef(NonNull<TaskMeta>);

impl MetaRef {
    fn get(&self) -> &TaskMeta {
        // The pointer was taken from `Task::metadata` of the task whose
        // `FallibleTask` this handle holds; the metadata lives in the task's
        // allocation, which that `FallibleTask` keeps alive; the handle drops
        // `meta` no later than `task` (see `Drop`).
        // SAFETY: valid and alive (above), and only read shared (atomics).
        unsafe { self.0.as_ref() }
    }
}

// SAFETY: `TaskMeta` is Sync (an atomic and an integer); the pointer is
// only used for shared access while the task allocation is alive.
unsafe impl Send for MetaRef {}
// SAFETY: as for `Send`.
unsafe impl Sync for MetaRef {}

impl<T> JoinHandle<T> {
    pub(crate) fn new(task: Task<Result<T, Payload>, TaskMeta>, shared: Arc<Shared>) -> Self {
        let meta = MetaRef(NonNull::from(task.metadata()));
        JoinHandle {
            task: Some(task.fallible()),
            meta: Some(meta),
            shared: Some(shared),
        }
    }

    /// A handle for a task that was never started (spawn after shutdown).
    pub(crate) fn cancelled() -> Self {
        JoinHandle {
            task: None,
            meta: None,
            shared: None,
        }
    }

    /// Cancels the task: it is dropped before its next poll (a poll under
    /// way finishes first), and awaiting this handle gives a cancelled
    /// [`JoinError`] unless the task had already completed.
    ///
    /// ```
    /// let rt = unplug::Runtime::builder().workers(1).build().unwrap();
    /// let result = rt.block_on(async {
    ///     let task = unplug::spawn(std::future::pending::<()>());
    ///     task.abort();
    ///     task.await
    /// });
    /// assert!(result.unwrap_err().is_cancelled());
    /// ```
    pub fn abort(&self) {
        if let (Some(meta), Some(shared)) = (&self.meta, &self.shared) {
            let meta = meta.get();
            meta.aborted.store(true, Ordering::Relaxed);
            // Get it scheduled, so a worker sees the flag and drops it.
            shared.registry.wake(meta.key);
        }
    }

    /// Has the task completed (or been cancelled)?
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(task) = self.task.as_mut() else {
            return Poll::Ready(Err(JoinError::cancelled()));
        };
        match Pin::new(task).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(value))) => Poll::Ready(Ok(value)),
            Poll::Ready(Some(Err(payload))) => Poll::Ready(Err(JoinError::panicked(payload))),
            Poll::Ready(None) => Poll::Ready(Err(JoinError::cancelled())),
        }
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        self.meta = None; // before the task it points into
        if let Some(task) = self.task.take() {
            task.detach();
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Why a task gave no output: it panicked, or it was cancelled.
pub struct JoinError {
    repr: Repr,
}

enum Repr {
    Cancelled,
    Panicked(Mutex<Payload>),
}

impl JoinError {
    fn cancelled() -> Self {
        JoinError {
            repr: Repr::Cancelled,
        }
    }

    fn panicked(payload: Payload) -> Self {
        JoinError {
            repr: Repr::Panicked(Mutex::new(payload)),
        }
    }

    /// The task was aborted or dropped at shutdown.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// The task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panicked(_))
    }

    /// The panic payload (resume it with `std::panic::resume_unwind`).
    /// Returns the error back if it is not a panic.
    pub fn try_into_panic(self) -> Result<Payload, JoinError> {
        match self.repr {
            Repr::Panicked(payload) => Ok(payload.into_inner().unwrap_or_else(|p| p.into_inner())),
            Repr::Cancelled => Err(self),
        }
    }

    /// The panic message, if the task panicked with a string.
    pub fn panic_message(&self) -> Option<String> {
        match &self.repr {
            Repr::Panicked(payload) => {
                let payload = payload.lock().unwrap_or_else(|p| p.into_inner());
                payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
            }
            Repr::Cancelled => None,
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => f.write_str("JoinError::Cancelled"),
            Repr::Panicked(_) => write!(f, "JoinError::Panicked({:?})", self.panic_message()),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => f.write_str("task was cancelled"),
            Repr::Panicked(_) => match self.panic_message() {
                Some(msg) => write!(f, "task panicked: {msg}"),
                None => f.write_str("task panicked"),
            },
        }
    }
}

impl std::error::Error for JoinError {}
