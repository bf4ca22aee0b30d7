//! `unplug`: an async runtime whose worker threads can be parked, re-pinned
//! to CPUs and brought back while it runs.
//!
//! Embed it like tokio: build a [`Runtime`], [`block_on`](Runtime::block_on)
//! a future, [`spawn`] tasks, await their [`JoinHandle`]s. Every worker is a
//! parkable [`unplug_worker::Worker`] following the fixed Linux kthread park
//! protocol (see `worker/PROTOCOL.md`). tokio's reactor runs on the workers
//! themselves (an idle worker waits inside it; `runtime/IO.md`), so
//! `tokio::net`, `tokio::time`, `tokio::spawn` and
//! `tokio::task::spawn_blocking` work inside tasks, on the workers' CPUs.
//!
//! ```
//! use std::time::Duration;
//!
//! let rt = unplug::Runtime::builder().workers(2).build().unwrap();
//! let out = rt.block_on(async {
//!     let task = unplug::spawn(async {
//!         tokio::time::sleep(Duration::from_millis(1)).await;
//!         "slept on tokio's timer"
//!     });
//!     task.await.unwrap()
//! });
//! assert_eq!(out, "slept on tokio's timer");
//! ```
#![warn(missing_docs)]
// Under loom only the task and scheduler layers are built (the models in
// `scheduler/tests/` run them); much of their API serves the layers above.
#![cfg_attr(loom, allow(dead_code, unused_imports))]

// Layers, arrows pointing down only (runtime/SCHEDULER.md):
//   API face: start, runtime, builder, handle, block_on, current, inner, join_set, yield_now, error
//   control/ (controller, pool, follow)      metrics/ (endpoint, recorder), http, accept
//   scheduler/ (queues, LIFO slot, idle, worker loop)
//   task/ (task, state word, join handle, registry, panics)
//   loom (std or loom)
mod loom;
mod scheduler;
mod task;

#[cfg(not(loom))]
mod accept;
#[cfg(not(loom))]
mod block_on;
#[cfg(not(loom))]
mod builder;
#[cfg(not(loom))]
mod control;
#[cfg(not(loom))]
mod current;
#[cfg(not(loom))]
mod error;
#[cfg(not(loom))]
mod handle;
#[cfg(all(not(loom), feature = "hyper"))]
pub mod http;
#[cfg(not(loom))]
mod inner;
#[cfg(not(loom))]
mod join_set;
#[cfg(not(loom))]
pub mod metrics;
#[cfg(not(loom))]
mod reactor;
#[cfg(not(loom))]
mod runtime;
#[cfg(not(loom))]
mod start;
mod yield_now;

#[cfg(not(loom))]
pub use builder::{Builder, DEFAULT_LONG_POLL_THRESHOLD};
#[cfg(not(loom))]
pub use control::{
    ControlError, ParkReport, PlugReport, ResizeReport, RuntimeStats, WorkerInfo, MAX_WORKERS,
};
#[cfg(not(loom))]
pub use current::EnterGuard;
#[cfg(not(loom))]
pub use error::BuildError;
#[cfg(not(loom))]
pub use handle::Handle;
#[cfg(not(loom))]
pub use join_set::JoinSet;
#[cfg(not(loom))]
pub use runtime::{Runtime, SELF_DROP_JOIN_LIMIT};
pub use scheduler::PollCulprit;
pub use task::{unobserved_panics, AbortHandle, JoinError, JoinHandle, TaskId};
pub use yield_now::yield_now;

/// The parkable worker crate this runtime is built on.
pub use unplug_worker as worker;

// `#[unplug::main]` and `#[unplug::test]`: their documentation, with a
// runnable example each (doctests of `unplug-macros`, which has `unplug` as
// a dev-dependency), lives in `runtime/macros/src/lib.rs` and is shown here.
#[cfg(not(loom))]
#[doc(inline)]
pub use unplug_macros::{main, test};

/// Spawns a task on the current runtime (from a task, inside `block_on`,
/// or while an [`EnterGuard`] lives).
///
/// # Panics
///
/// Outside any unplug runtime.
///
/// ```
/// let rt = unplug::Runtime::builder().workers(1).build().unwrap();
/// let v = rt.block_on(async { unplug::spawn(async { 5 }).await.unwrap() });
/// assert_eq!(v, 5);
/// ```
#[cfg(not(loom))]
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    // BOX-LARGE: boxed at the outermost entry (`task/large.rs`).
    if task::is_large::<F>() {
        return Handle::current().spawn(Box::pin(future));
    }
    Handle::current().spawn(future)
}
