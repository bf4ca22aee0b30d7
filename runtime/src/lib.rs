//! `unplug`: an async runtime whose worker threads can be parked, re-pinned
//! to CPUs and brought back while it runs.
//!
//! Embed it like tokio: build a [`Runtime`], [`block_on`](Runtime::block_on)
//! a future, [`spawn`] tasks, await their [`JoinHandle`]s. Every worker is a
//! parkable [`unplug_worker::Worker`] following the fixed Linux kthread park
//! protocol (see `worker/PROTOCOL.md`). tokio's reactor runs beside the
//! workers, so `tokio::net`, `tokio::time` and `tokio::task::spawn_blocking`
//! work inside tasks.
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

mod block_on;
mod builder;
mod context;
mod controller;
mod error;
mod follow;
mod handle;
mod join;
pub mod metrics;
mod pool;
mod registry;
mod runtime;
mod scheduler;
mod task;
mod worker_loop;
mod yield_now;

pub use builder::Builder;
pub use controller::{ControlError, ParkReport, PlugReport, ResizeReport, RuntimeStats};
pub use error::BuildError;
pub use handle::Handle;
pub use join::{JoinError, JoinHandle};
pub use runtime::{Runtime, WorkerInfo};
pub use yield_now::yield_now;

/// The parkable worker crate this runtime is built on.
pub use unplug_worker as worker;

/// Spawns a task on the current runtime (from a task, or inside
/// `block_on`).
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
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    Handle::current().spawn(future)
}
