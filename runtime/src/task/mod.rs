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
mod meta;
mod panics;
mod registry;
pub(crate) mod site;
mod tracked;
mod words;

pub use abort::AbortHandle;
pub use join::{JoinError, JoinHandle};
pub(crate) use meta::TaskMeta;
pub use panics::unobserved_panics;
pub(crate) use panics::{panic_message, unobserved_panic};
pub(crate) use registry::Registry;
pub use registry::TaskId;

use crate::loom::Arc;
use async_task::{Runnable, ScheduleInfo};
use std::future::Future;

/// A scheduled task: what the queues hold.
pub(crate) type Task = Runnable<TaskMeta>;

/// Builds a task for `future` whose wake-ups call `schedule`, counted in
/// `registry` (it enters the registry if it ever waits: REGISTER-ON-PENDING,
/// in `registry.rs`). Returns the runnable, not yet scheduled, and its join
/// handle.
///
/// # Safety
///
/// `schedule` must own the `Arc` behind `registry` (directly or through
/// its owner): the task's metadata borrows the registry for as long as
/// the task's allocation lives ([`meta::RegistryRef::new`]).
pub(crate) unsafe fn build<F, S>(
    registry: &Arc<Registry>,
    spawned_at: &'static std::panic::Location<'static>,
    future: F,
    schedule: S,
) -> (Task, JoinHandle<F::Output>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Fn(Task, ScheduleInfo) + Send + Sync + 'static,
{
    let id = registry.spawned();
    // SAFETY: this function's contract: `schedule`, stored in the same
    // allocation, owns the registry's `Arc`.
    let registry_ref = unsafe { meta::RegistryRef::new(registry) };
    let (runnable, task) = async_task::Builder::new()
        .metadata(TaskMeta::new(id, spawned_at, registry_ref))
        .spawn(
            |meta| tracked::Tracked::new(future, meta),
            async_task::WithInfo(schedule),
        );
    (runnable, JoinHandle::new(task))
}
