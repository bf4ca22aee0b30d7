//! `Runtime`: owns the workers and the tokio reactor.

use crate::builder::Builder;
use crate::handle::Handle;
use crate::join::JoinHandle;
use crate::scheduler::Shared;
use crossbeam_deque::Steal;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An unplug runtime: worker threads that can be parked and re-pinned
/// under load, with tokio's I/O, timers and blocking pool usable in tasks.
///
/// ```
/// let rt = unplug::Runtime::new().unwrap();
/// let sum = rt.block_on(async {
///     let tasks: Vec<_> = (0..10u64).map(|i| unplug::spawn(async move { i * i })).collect();
///     let mut sum = 0;
///     for t in tasks {
///         sum += t.await.unwrap();
///     }
///     sum
/// });
/// assert_eq!(sum, 285);
/// ```
pub struct Runtime {
    handle: Handle,
    tokio: Option<tokio::runtime::Runtime>,
    follower: Option<crate::follow::Follower>,
}

impl Runtime {
    /// A runtime with the default configuration (see [`Builder::new`]).
    pub fn new() -> Result<Runtime, crate::BuildError> {
        Builder::new().build()
    }

    /// A builder.
    pub fn builder() -> Builder {
        Builder::new()
    }

    pub(crate) fn from_parts(shared: Arc<Shared>, tokio: tokio::runtime::Runtime) -> Self {
        Runtime {
            handle: Handle::from_shared(shared),
            tokio: Some(tokio),
            follower: None,
        }
    }

    pub(crate) fn start_follower(&mut self, interval: Duration) {
        self.follower = Some(crate::follow::Follower::start(
            self.handle.clone(),
            interval,
        ));
    }

    /// A snapshot of every worker; see [`Handle::workers`].
    ///
    /// ```
    /// let rt = unplug::Runtime::builder().workers(2).build().unwrap();
    /// let workers = rt.workers();
    /// assert_eq!(workers.len(), 2);
    /// assert!(workers.iter().all(|w| w.os_tid > 0));
    /// ```
    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.handle.workers()
    }

    /// See [`Handle::unplug_cpu`].
    pub fn unplug_cpu(&self, cpu: usize) -> Result<crate::ParkReport, crate::ControlError> {
        self.handle.unplug_cpu(cpu)
    }

    /// See [`Handle::unplug_cpu_timeout`].
    pub fn unplug_cpu_timeout(
        &self,
        cpu: usize,
        timeout: Duration,
    ) -> Result<crate::ParkReport, crate::ControlError> {
        self.handle.unplug_cpu_timeout(cpu, timeout)
    }

    /// See [`Handle::plug_cpu`].
    pub fn plug_cpu(&self, cpu: usize) -> Result<crate::PlugReport, crate::ControlError> {
        self.handle.plug_cpu(cpu)
    }

    /// See [`Handle::park_worker`].
    pub fn park_worker(&self, id: usize) -> Result<crate::ParkReport, crate::ControlError> {
        self.handle.park_worker(id)
    }

    /// See [`Handle::unpark_worker`].
    pub fn unpark_worker(
        &self,
        id: usize,
        cpu: Option<usize>,
    ) -> Result<crate::PlugReport, crate::ControlError> {
        self.handle.unpark_worker(id, cpu)
    }

    /// See [`Handle::set_workers`].
    pub fn set_workers(&self, n: usize) -> Result<crate::ResizeReport, crate::ControlError> {
        self.handle.set_workers(n)
    }

    /// See [`Handle::stats`].
    pub fn stats(&self) -> crate::RuntimeStats {
        self.handle.stats()
    }

    /// The handle: clone it to spawn from other threads.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Spawns a task.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// Runs `future` on the calling thread until it completes, with this
    /// runtime (and its tokio reactor) as the current one, so `unplug::spawn`,
    /// `tokio::net` and `tokio::time` work inside it.
    ///
    /// # Panics
    ///
    /// When called from a worker thread of any unplug runtime (it would block
    /// the thread that drives other tasks).
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }

    /// Shuts down: pending tasks are cancelled (each future dropped exactly
    /// once), worker threads are stopped and joined, waiting at most
    /// `timeout` for polls under way to return; a worker still busy then is
    /// left to finish on its own.
    pub fn shutdown_timeout(mut self, timeout: Duration) {
        self.shutdown(Some(Instant::now() + timeout));
    }

    fn shutdown(&mut self, deadline: Option<Instant>) {
        if let Some(follower) = self.follower.take() {
            follower.stop();
        }
        let shared = self.handle.shared.clone();
        shared.closing.store(true, Ordering::SeqCst);
        shared.publisher_wait.stop();
        let entries = std::mem::take(&mut shared.lock_pool().entries);
        for entry in &entries {
            entry.worker.protocol().request_stop();
        }
        let me = std::thread::current().id();
        for entry in entries {
            if entry.worker.thread_id() == me {
                continue; // dropped from inside a task: cannot join ourselves
            }
            let _ = match deadline {
                None => entry.worker.stop(),
                Some(d) => entry
                    .worker
                    .stop_timeout(d.saturating_duration_since(Instant::now())),
            };
        }
        loop {
            match shared.injector.steal() {
                Steal::Success(task) => drop(task),
                Steal::Retry => continue,
                Steal::Empty => break,
            }
        }
        // Tasks no queue holds (waiting on timers, sockets, channels).
        shared.registry.close_and_wake_all();
        if let Some(tokio) = self.tokio.take() {
            match deadline {
                _ if crate::context::in_worker() => tokio.shutdown_background(),
                None => tokio.shutdown_timeout(Duration::from_secs(10)),
                Some(d) => tokio.shutdown_timeout(d.saturating_duration_since(Instant::now())),
            }
        }
    }
}

/// One worker, as [`Runtime::workers`] saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerInfo {
    /// The worker's id (stable for its lifetime).
    pub id: usize,
    /// The CPU it is pinned to, or its home CPU if the runtime does not pin.
    pub cpu: Option<usize>,
    /// Whether it is actually pinned to `cpu`.
    pub pinned: bool,
    /// What it is doing.
    pub state: unplug_worker::WorkerState,
    /// Its OS thread id.
    pub os_tid: i32,
    /// Tasks it has polled.
    pub tasks_polled: u64,
    /// Times it came back from a park.
    pub resumes: u64,
    /// The last unpark latency: from the unpark request to it running.
    pub last_unpark_latency: std::time::Duration,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if self.tokio.is_some() {
            self.shutdown(None);
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.handle.shared.lock_pool().entries.len())
            .finish()
    }
}
