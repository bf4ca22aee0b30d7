//! `Handle`: a cheap, cloneable reference to a runtime.

use crate::block_on;
use crate::control::{
    ControlError, ParkReport, PlugReport, ResizeReport, RuntimeStats, WorkerInfo,
};
use crate::current::{self, EnterGuard};
use crate::inner::Inner;
use crate::scheduler::Scheduler;
use crate::task::JoinHandle;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A cloneable, `Send` reference to a runtime: spawn on it, and change its
/// workers, from any thread.
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
    pub(crate) inner: Arc<Inner>,
}

// A panic that unwinds through a call on the handle leaves the runtime
// usable: every lock inside recovers from poisoning and no call leaves its
// state half-changed where a later call would trust it (LIMITS-FIRST,
// OWNED-ROLLBACK in CONTROLLER.md). So a handle may be used across
// `catch_unwind`, as a tokio handle may.
impl std::panic::UnwindSafe for Handle {}
impl std::panic::RefUnwindSafe for Handle {}

impl Handle {
    /// The handle of the runtime this thread runs in (a worker, inside
    /// `block_on`, or while an [`EnterGuard`] lives).
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
        current::current().map(|inner| Handle { inner })
    }

    /// Spawns a task on this runtime. After shutdown began, the returned
    /// handle yields a cancelled [`JoinError`](crate::JoinError) and the
    /// future is dropped at once.
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        // BOX-LARGE: boxed before the frames below copy it (`task/large.rs`).
        if crate::task::is_large::<F>() {
            return Scheduler::spawn(&self.inner.scheduler, Box::pin(future));
        }
        Scheduler::spawn(&self.inner.scheduler, future)
    }

    /// Makes this runtime current on the calling thread until the guard
    /// drops: [`spawn`](crate::spawn), [`Handle::current`] and tokio's I/O
    /// and timer constructors work there as inside a task. Guards nest and
    /// must be dropped in reverse order; see [`EnterGuard`] (and its
    /// example).
    pub fn enter(&self) -> EnterGuard<'_> {
        EnterGuard::new(&self.inner)
    }

    /// Runs `future` to completion on this thread; see
    /// [`Runtime::block_on`](crate::Runtime::block_on).
    #[track_caller]
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        // BOX-LARGE (`task/large.rs`).
        if crate::task::is_large::<F>() {
            return block_on::block_on(&self.inner, Box::pin(future));
        }
        block_on::block_on(&self.inner, future)
    }

    /// Tasks spawned on this runtime and not yet completed or dropped.
    pub fn live_tasks(&self) -> usize {
        self.inner.scheduler.registry().live()
    }

    /// Unplugs `cpu`: parks the worker(s) on it by the fixed protocol (their
    /// queued tasks move to the other workers before each park completes)
    /// and returns once they are parked and inactive.
    ///
    /// Waits for a worker busy in a long poll to finish that poll; see
    /// [`unplug_cpu_timeout`](Handle::unplug_cpu_timeout) for a bound.
    /// Unplugging a CPU that is already unplugged changes nothing. A CPU the
    /// process may no longer use (its cgroup dropped it, it went offline)
    /// is unplugged like any other while a worker of this runtime is on it.
    /// Errors, with no change: the last running worker, a CPU with no
    /// worker of this runtime (`CpuNotAllowed` if the process may not use
    /// it either).
    ///
    /// ```
    /// let rt = unplug::Runtime::builder().workers(2).cpus([0, 0]).build().unwrap();
    /// // Both workers live on CPU 0 here: unplugging it would leave none.
    /// assert!(matches!(rt.handle().unplug_cpu(0), Err(unplug::ControlError::LastWorker)));
    /// ```
    pub fn unplug_cpu(&self, cpu: usize) -> Result<ParkReport, ControlError> {
        self.inner.control.unplug_cpu(cpu, None)
    }

    /// [`unplug_cpu`](Handle::unplug_cpu) with a time limit: if a worker is
    /// still inside a poll at the deadline, every park of this call is
    /// withdrawn and [`ControlError::Timeout`] returned.
    pub fn unplug_cpu_timeout(
        &self,
        cpu: usize,
        timeout: Duration,
    ) -> Result<ParkReport, ControlError> {
        // A timeout too large to add to now is no deadline at all.
        self.inner
            .control
            .unplug_cpu(cpu, Instant::now().checked_add(timeout))
    }

    /// Plugs `cpu` back: unparks the workers parked there, or, if the
    /// runtime has none there, starts a worker pinned to it (refused with
    /// [`ControlError::TooManyWorkers`] if the runtime already has
    /// [`MAX_WORKERS`](crate::MAX_WORKERS) workers).
    ///
    /// ```
    /// let rt = unplug::Runtime::builder().workers(2).build().unwrap();
    /// let h = rt.handle();
    /// let cpu = rt.workers()[1].cpu.unwrap();
    /// if h.unplug_cpu(cpu).is_ok() {
    ///     let plugged = h.plug_cpu(cpu).unwrap();
    ///     assert!(!plugged.unparked.is_empty() || !plugged.started.is_empty());
    /// }
    /// ```
    pub fn plug_cpu(&self, cpu: usize) -> Result<PlugReport, ControlError> {
        self.inner.control.plug_cpu(cpu)
    }

    /// Parks worker `id` (as `unplug_cpu` does for a CPU).
    pub fn park_worker(&self, id: usize) -> Result<ParkReport, ControlError> {
        self.inner.control.park_worker(id)
    }

    /// Unparks worker `id`, first re-pinning it to `cpu` if given. A running
    /// worker is left as it is.
    pub fn unpark_worker(&self, id: usize, cpu: Option<usize>) -> Result<PlugReport, ControlError> {
        self.inner.control.unpark_worker(id, cpu)
    }

    /// Resizes the pool to `n` running workers: grows by first unparking
    /// parked workers (on CPUs not unplugged that the process may still
    /// use), then starting workers on the runtime's least-used CPUs (pinned
    /// there only if the runtime pins its workers,
    /// [`Builder::pin_workers`](crate::Builder::pin_workers)); shrinks by
    /// parking the newest workers (their tasks migrate) and stopping them.
    /// A CPU counts as unplugged from the moment an `unplug_cpu` of it has
    /// asked its workers to park, so a resize running beside that unplug
    /// starts nothing there.
    pub fn set_workers(&self, n: usize) -> Result<ResizeReport, ControlError> {
        self.inner.control.set_workers(n)
    }

    /// A snapshot of every worker: id, CPU, state, OS thread id, tasks
    /// polled. Stopped (resized-away) workers are not listed.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.inner.control.workers()
    }

    /// Totals since the runtime started, over every worker it ever had.
    pub fn stats(&self) -> RuntimeStats {
        self.inner.control.stats()
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("workers", &self.inner.control.len())
            .finish()
    }
}
