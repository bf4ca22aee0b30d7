//! The task layer: a spawned future, its state word, its join handle, the
//! registry of live tasks, and what happens to a panic anywhere in a
//! task's life. It knows nothing of schedulers: whoever builds a task
//! hands in the schedule function.
//!
//! A task is an `async-task` allocation holding [`TaskMeta`] and a
//! [`Tracked`](tracked) future; the scheduler moves its [`Task`] (the
//! `Runnable`) between queues, and the user holds its [`JoinHandle`].

mod abort;
mod join;
mod large;
mod meta;
mod owner;
mod panics;
mod registry;
pub(crate) mod site;
mod tracked;
mod words;

pub use abort::AbortHandle;
pub use join::{JoinError, JoinHandle};
pub(crate) use large::is_large;
pub(crate) use meta::TaskMeta;
pub(crate) use owner::TaskOwner;
pub use panics::unobserved_panics;
pub(crate) use panics::{panic_message, unobserved_panic};
pub(crate) use registry::Registry;
pub use registry::TaskId;
pub(crate) use tracked::SafeDrop;

use async_task::{Runnable, ScheduleInfo};
use std::future::Future;

/// A scheduled task: what the queues hold.
pub(crate) type Task = Runnable<TaskMeta>;

/// Builds a task for `future` owned by `owner` (counted in its registry:
/// it enters the registry if it ever waits, REGISTER-ON-PENDING in
/// `registry.rs`), whose wake-ups call `schedule`. Returns the runnable,
/// not yet scheduled, and its join handle.
///
/// `schedule` must be zero-sized (a closure that captures nothing): it
/// finds what it needs through the task's metadata (TASK-OWNER).
pub(crate) fn build<F, S>(
    owner: &TaskOwner,
    spawned_at: &'static std::panic::Location<'static>,
    future: F,
    schedule: S,
) -> (Task, JoinHandle<F::Output>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Fn(Task, ScheduleInfo) + Send + Sync + 'static,
{
    const {
        assert!(
            std::mem::size_of::<S>() == 0,
            "TASK-OWNER: a zero-sized schedule function"
        )
    };
    let id = owner.registry().spawned();
    let (runnable, task) = async_task::Builder::new()
        .metadata(TaskMeta::new(id, spawned_at, owner))
        .spawn(
            |meta| tracked::Tracked::new(future, meta),
            async_task::WithInfo(schedule),
        );
    (runnable, JoinHandle::new(task))
}
