//! `AbortHandle`: the power to cancel a task, without its output.

use super::{Registry, TaskId};
use crate::loom::Arc;
use std::fmt;

/// A cloneable permission to cancel a task, from any thread, without the
/// right to its output ([`JoinHandle::abort_handle`]).
///
/// [`abort`](AbortHandle::abort) behaves exactly like
/// [`JoinHandle::abort`]: the task's future is dropped at its next poll
/// boundary and its join handle then gives a cancelled
/// [`JoinError`](crate::JoinError), unless the task had already completed.
///
/// It holds no reference to the task itself, only the runtime's registry of
/// live tasks and the task's tag in it: it neither keeps the task's output
/// alive nor delays freeing the task. Once the task is gone, aborting does
/// nothing.
///
/// ```
/// let rt = unplug::Runtime::builder().workers(1).build().unwrap();
/// let task = rt.spawn(std::future::pending::<()>());
/// let abort = task.abort_handle();
/// assert_eq!(abort.id(), task.id());
/// std::thread::spawn(move || abort.abort()).join().unwrap();
/// assert!(rt.block_on(task).unwrap_err().is_cancelled());
/// ```
///
/// [`JoinHandle::abort`]: crate::JoinHandle::abort
/// [`JoinHandle::abort_handle`]: crate::JoinHandle::abort_handle
#[derive(Clone)]
pub struct AbortHandle {
    /// The registry the task is in, and its key there (checked with the
    /// id, which is never reused, so a stale handle never reaches a newer
    /// task); `None` for a task refused at spawn, already finished, or
    /// being cancelled by shutdown when the handle was made.
    target: Option<(Arc<Registry>, u64)>,
    id: TaskId,
}

impl AbortHandle {
    pub(crate) fn new(target: Option<(Arc<Registry>, u64)>, id: TaskId) -> Self {
        AbortHandle { target, id }
    }

    /// Cancels the task, as [`JoinHandle::abort`](crate::JoinHandle::abort)
    /// does. Aborting a finished task, or aborting twice, does nothing.
    pub fn abort(&self) {
        if let Some((registry, tag)) = &self.target {
            registry.abort(*tag, self.id);
        }
    }

    /// Is the task finished: its future dropped because it completed,
    /// panicked or was cancelled (or shutdown is cancelling it)? After an
    /// [`abort`](AbortHandle::abort) this stays `false` until the task's
    /// next poll boundary has dropped its future.
    ///
    /// This turns `true` as the future is dropped, a moment before the
    /// task's [`JoinHandle`](crate::JoinHandle) can give its output; once
    /// the join handle is ready, this is `true`.
    pub fn is_finished(&self) -> bool {
        self.target
            .as_ref()
            .is_none_or(|(registry, tag)| !registry.contains(*tag, self.id))
    }

    /// The task's id, the same as its join handle's
    /// [`id`](crate::JoinHandle::id).
    pub fn id(&self) -> TaskId {
        self.id
    }
}

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle").field("id", &self.id).finish()
    }
}
