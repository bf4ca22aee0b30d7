//! `Runtime`: owns the workers and the tokio reactor.

use crate::builder::Builder;
use crate::control::follow::Follower;
use crate::handle::Handle;
use crate::reactor::TokioReactor;
use crate::scheduler::long_poll::Monitor;
use crate::task::JoinHandle;
use std::future::Future;
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
///
/// # Dropping
///
/// `drop(rt)` (and [`shutdown_timeout`](Runtime::shutdown_timeout)) cancels
/// every pending task, stops the workers and joins them, waiting for polls
/// under way to return. Two bounds keep a drop from hanging on the
/// runtime's own threads:
/// - from a thread of a tokio runtime (a `spawn_blocking` closure of this
///   runtime, say, whose task may be blocking a worker until the closure
///   returns), the joins wait at most [`SELF_DROP_JOIN_LIMIT`]; a worker
///   still inside a poll then finishes it on its own;
/// - `spawn_blocking` closures still running are not waited for: they are
///   detached and run to their end on their own threads (tokio's
///   `shutdown_background`). Wait for them before dropping if their effects
///   must be complete.
pub struct Runtime {
    handle: Handle,
    /// The tokio reactor the workers run (`reactor.rs`), shut down after
    /// them.
    reactor: Option<std::sync::Arc<TokioReactor>>,
    follower: Option<Follower>,
    monitor: Option<Monitor>,
}

// As for `Handle`: a panic unwinding through a call leaves the runtime
// usable, so it may be used across `catch_unwind`.
impl std::panic::UnwindSafe for Runtime {}
impl std::panic::RefUnwindSafe for Runtime {}

impl Runtime {
    /// A runtime with the default configuration (see [`Builder::new`]).
    pub fn new() -> Result<Runtime, crate::error::BuildError> {
        Builder::new().build()
    }

    /// A builder.
    pub fn builder() -> Builder {
        Builder::new()
    }

    pub(crate) fn from_parts(handle: Handle, reactor: std::sync::Arc<TokioReactor>) -> Self {
        Runtime {
            handle,
            reactor: Some(reactor),
            follower: None,
            monitor: None,
        }
    }

    pub(crate) fn start_long_poll_monitor(&mut self) {
        self.monitor = Monitor::start(&self.handle.inner.scheduler);
    }

    pub(crate) fn start_follower(&mut self, interval: Duration) {
        self.follower = Some(Follower::start(self.handle.inner.control.clone(), interval));
    }

    /// A snapshot of every worker; see [`Handle::workers`].
    ///
    /// ```
    /// let rt = unplug::Runtime::builder().workers(2).build().unwrap();
    /// let workers = rt.workers();
    /// assert_eq!(workers.len(), 2);
    /// assert!(workers.iter().all(|w| w.os_tid > 0));
    /// ```
    pub fn workers(&self) -> Vec<crate::control::WorkerInfo> {
        self.handle.workers()
    }

    /// See [`Handle::unplug_cpu`].
    pub fn unplug_cpu(
        &self,
        cpu: usize,
    ) -> Result<crate::control::ParkReport, crate::control::ControlError> {
        self.handle.unplug_cpu(cpu)
    }

    /// See [`Handle::unplug_cpu_timeout`].
    pub fn unplug_cpu_timeout(
        &self,
        cpu: usize,
        timeout: Duration,
    ) -> Result<crate::control::ParkReport, crate::control::ControlError> {
        self.handle.unplug_cpu_timeout(cpu, timeout)
    }

    /// See [`Handle::plug_cpu`].
    pub fn plug_cpu(
        &self,
        cpu: usize,
    ) -> Result<crate::control::PlugReport, crate::control::ControlError> {
        self.handle.plug_cpu(cpu)
    }

    /// See [`Handle::park_worker`].
    pub fn park_worker(
        &self,
        id: usize,
    ) -> Result<crate::control::ParkReport, crate::control::ControlError> {
        self.handle.park_worker(id)
    }

    /// See [`Handle::unpark_worker`].
    pub fn unpark_worker(
        &self,
        id: usize,
        cpu: Option<usize>,
    ) -> Result<crate::control::PlugReport, crate::control::ControlError> {
        self.handle.unpark_worker(id, cpu)
    }

    /// See [`Handle::set_workers`].
    pub fn set_workers(
        &self,
        n: usize,
    ) -> Result<crate::control::ResizeReport, crate::control::ControlError> {
        self.handle.set_workers(n)
    }

    /// See [`Handle::stats`].
    pub fn stats(&self) -> crate::control::RuntimeStats {
        self.handle.stats()
    }

    /// The handle: clone it to spawn from other threads.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Spawns a task.
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        // BOX-LARGE: boxed at the outermost entry (`task/large.rs`).
        if crate::task::is_large::<F>() {
            return self.handle.spawn(Box::pin(future));
        }
        self.handle.spawn(future)
    }

    /// Makes this runtime current on the calling thread until the guard
    /// drops; see [`Handle::enter`] and [`EnterGuard`](crate::current::EnterGuard).
    pub fn enter(&self) -> crate::current::EnterGuard<'_> {
        self.handle.enter()
    }

    /// Runs `future` on the calling thread until it completes, with this
    /// runtime (and its tokio reactor) as the current one, so `unplug::spawn`,
    /// `tokio::net` and `tokio::time` work inside it.
    ///
    /// On a thread that is not a worker, a `block_on` may be called inside
    /// another's future (tokio refuses this): the inner call runs its future
    /// to completion while the outer future waits, so an inner future that
    /// waits for the outer one never returns.
    ///
    /// # Panics
    ///
    /// When called from a worker thread of any unplug runtime (it would block
    /// the thread that drives other tasks), and inside this runtime's own
    /// shutdown: in the `Drop` of a task's future that the shutdown cancels,
    /// or in an `on_thread_stop` hook at shutdown (no worker drives its
    /// timers and I/O any more, and the shutdown waits for that code:
    /// SHUTDOWN-BLOCK-ON in `runtime/SCHEDULER.md`). Such a panic in a
    /// `Drop` is caught and counted ([`unobserved_panics`](crate::unobserved_panics)).
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        // BOX-LARGE (`task/large.rs`).
        if crate::task::is_large::<F>() {
            return self.handle.block_on(Box::pin(future));
        }
        self.handle.block_on(future)
    }

    /// Shuts down: pending tasks are cancelled (each future dropped exactly
    /// once, on this thread or a worker's, never inside another thread's
    /// `Waker::wake`), worker threads are stopped and joined, waiting at most
    /// `timeout` for polls under way to return; a worker still busy then is
    /// left to finish on its own. (One exception to "on this thread": a
    /// wake-up another thread began before shutdown and is still inside when
    /// shutdown ends drops its task's future as that wake returns.)
    ///
    /// A `timeout` too long to add to the current time (`Duration::MAX`)
    /// means no deadline, as for `drop`.
    pub fn shutdown_timeout(mut self, timeout: Duration) {
        self.shutdown(Instant::now().checked_add(timeout));
    }

    fn shutdown(&mut self, mut deadline: Option<Instant>) {
        if let Some(follower) = self.follower.take() {
            follower.stop();
        }
        if let Some(monitor) = self.monitor.take() {
            monitor.stop();
            if let Some(metrics) = &self.handle.inner.metrics {
                metrics.clear_long_polls();
            }
        }
        // A thread of a tokio runtime (this one's blocking pool above all)
        // may be what a worker's poll waits for: bound the joins.
        let in_tokio = tokio::runtime::Handle::try_current().is_ok();
        if in_tokio {
            let bound = Instant::now() + SELF_DROP_JOIN_LIMIT;
            deadline = Some(deadline.map_or(bound, |d| d.min(bound)));
        }
        let inner = &self.handle.inner;
        // From here every task scheduled is dropped instead of queued.
        inner.scheduler.close();
        if let Some(metrics) = &inner.metrics {
            metrics.stop_publisher();
        }
        inner.control.stop_all(deadline);
        // Tasks in the injector and tasks no queue holds (waiting on
        // timers, sockets, channels), dropped here inside this runtime's
        // context (and its reactor's), as a worker would drop them: a
        // future's `Drop` may spawn (given a cancelled handle now), ask for
        // `Handle::current` or use tokio.
        {
            // TLS-EXIT: no context to enter while this thread's locals are
            // destroyed (the runtime lived in one of them).
            let _context = crate::current::EnterGuard::try_new(inner);
            // SHUTDOWN-BLOCK-ON: a `Drop` here that `block_on`s this
            // runtime panics instead of waiting for a reactor no worker
            // turns any more.
            let _shutdown = crate::scheduler::context::enter_shutdown(&inner.scheduler);
            inner.scheduler.cancel_all();
        }
        // FINAL-PUBLISH: the counts and states the runtime ends with.
        if let Some(metrics) = &inner.metrics {
            metrics.publish_final(&inner.control);
        }
        // The workers are gone, and with them every other owner of the
        // reactor (a worker that outlived its deadline keeps it alive and
        // drops it when it ends).
        let tokio = self
            .reactor
            .take()
            .and_then(|r| std::sync::Arc::try_unwrap(r).ok())
            .map(TokioReactor::into_runtime);
        if let Some(tokio) = tokio {
            // Inside a tokio context (our reactor's blocking pool, a worker
            // of ours, or another tokio runtime's thread) a blocking
            // shutdown would wait for this very thread, or panic. Without a
            // deadline, running `spawn_blocking` closures are detached.
            match deadline {
                _ if in_tokio || crate::scheduler::context::in_worker() => {
                    tokio.shutdown_background()
                }
                None => tokio.shutdown_background(),
                Some(d) => tokio.shutdown_timeout(d.saturating_duration_since(Instant::now())),
            }
        }
    }
}

/// How long `drop(rt)` called from a thread of a tokio runtime waits for
/// each worker's poll under way before leaving it to finish on its own.
pub const SELF_DROP_JOIN_LIMIT: Duration = Duration::from_secs(1);

impl Drop for Runtime {
    fn drop(&mut self) {
        if self.reactor.is_some() {
            self.shutdown(None);
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.handle.inner.control.len())
            .finish()
    }
}
