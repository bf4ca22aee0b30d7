//! The controller: unplug and plug CPUs, park and unpark workers, resize
//! the pool — every change through the worker crate's park / unpark / stop.
//!
//! Each call decides under the pool lock (so concurrent calls from many
//! threads are serialized and the last-running-worker rule sees every
//! decision) and waits for parks, stops and start hooks *outside* it. The
//! rules that make concurrent calls compose — who owns a pending park, what
//! a timed-out call may withdraw, when a call made from a worker thread
//! defers instead of waiting — are in `runtime/CONTROLLER.md`.

mod error;
pub(crate) mod follow;
mod park;
mod plug;
mod pool;
mod report;
mod resize;
mod spawn;
mod unplugged;

pub use error::ControlError;
pub(crate) use pool::Config;
pub use report::{ParkReport, PlugReport, ResizeReport, RuntimeStats, WorkerInfo};

use crate::scheduler::Scheduler;
pub(crate) use park::WaitFor;
use pool::Pool;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use unplug_worker::ParkTimings;

/// The most workers a runtime may have at once (`Builder::workers`,
/// `Handle::set_workers`, `Handle::plug_cpu`), parked ones included.
/// Larger requests, and a `set_workers` or `plug_cpu` that would start a
/// worker beyond it, are refused with
/// [`ControlError::TooManyWorkers`] before anything starts.
pub const MAX_WORKERS: usize = 1024;

/// What the layers above want to hear from the controller.
pub(crate) trait ControlEvents: Send + Sync {
    /// Worker `index` was started.
    fn worker_started(&self, index: usize);
    /// A call waited for worker `index`'s park, which took `timings`:
    /// once per park, by the first call to settle it (PARK-COUNT; the park
    /// itself is counted by the worker).
    fn parked(&self, index: usize, timings: &ParkTimings);
    /// A controller change of `kind` (one of `HOTPLUG_KINDS`).
    fn hotplug(&self, kind: &'static str);
}

/// The pool of workers and every operation on it.
pub(crate) struct Controller {
    pub(crate) scheduler: Arc<Scheduler>,
    /// The workers; its lock serializes controller decisions.
    pool: Mutex<Pool>,
    events: Option<Arc<dyn ControlEvents>>,
    /// Times the CPU follower changed the pool.
    pub(crate) follow_changes: std::sync::atomic::AtomicU64,
}

/// `Ok` if the process may pin to `cpu`; `Unsupported` where this platform
/// cannot pin at all.
fn check_allowed(cpu: usize) -> Result<(), ControlError> {
    if !unplug_worker::affinity::AFFINITY_SUPPORTED {
        return Err(ControlError::Unsupported);
    }
    unplug_worker::affinity::check_allowed(cpu)
        .map_err(|allowed| ControlError::CpuNotAllowed { cpu, allowed })
}

impl Controller {
    pub(crate) fn new(
        scheduler: Arc<Scheduler>,
        config: Config,
        cpus: Vec<usize>,
        events: Option<Arc<dyn ControlEvents>>,
    ) -> Self {
        Controller {
            scheduler,
            pool: Mutex::new(Pool::new(config, cpus)),
            events,
            follow_changes: Default::default(),
        }
    }

    fn lock_pool(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn check_open(&self) -> Result<(), ControlError> {
        if self.scheduler.is_closing() {
            Err(ControlError::ShuttingDown)
        } else {
            Ok(())
        }
    }

    /// Counts a hotplug event of `kind`.
    pub(crate) fn hotplug_event(&self, kind: &'static str) {
        if let Some(events) = &self.events {
            events.hotplug(kind);
        }
    }

    /// Starts the runtime's first `n` workers on `cpus` in turn and waits
    /// for their start hooks.
    pub(crate) fn start_initial(&self, n: usize) -> Result<(), ControlError> {
        let mut spawned = Vec::new();
        let mut failure = None;
        {
            let mut pool = self.lock_pool();
            for i in 0..n {
                let home = pool.cpus[i % pool.cpus.len()];
                let pin = pool.config.pin;
                match self.spawn_worker(&mut pool, Some(home), pin) {
                    Ok(s) => spawned.push(s),
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
        }
        let (_, confirm_failure) = self.confirm(spawned);
        match failure.or(confirm_failure) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Shutdown: requests every worker's stop, then joins each (waiting at
    /// most until `deadline`; a worker still busy then finishes on its own).
    pub(crate) fn stop_all(&self, deadline: Option<Instant>) {
        let entries = std::mem::take(&mut self.lock_pool().entries);
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
    }

    /// How many workers the pool has (any state).
    pub(crate) fn len(&self) -> usize {
        self.lock_pool().entries.len()
    }

    /// See [`Handle::unplug_cpu`](crate::Handle::unplug_cpu).
    pub(crate) fn unplug_cpu(
        &self,
        cpu: usize,
        deadline: Option<Instant>,
    ) -> Result<ParkReport, ControlError> {
        self.unplug_cpu_waiting(cpu, WaitFor::Deadline(deadline))
    }

    /// [`unplug_cpu`](Self::unplug_cpu) that waits as `wait_for` says.
    pub(crate) fn unplug_cpu_waiting(
        &self,
        cpu: usize,
        wait_for: WaitFor<'_>,
    ) -> Result<ParkReport, ControlError> {
        // CPU-GONE: a CPU the process may no longer use (its cgroup dropped
        // it, it went offline) is just the one whose workers must go; only
        // a CPU no worker of ours is on is refused for not being allowed.
        let ours = self.lock_pool().entries.iter().any(|e| e.cpu == Some(cpu));
        if !ours || !unplug_worker::affinity::AFFINITY_SUPPORTED {
            check_allowed(cpu)?;
        }
        let report = self.park_where(
            "unplug_cpu",
            wait_for,
            |e| e.cpu == Some(cpu),
            ControlError::NoWorkerOnCpu(cpu),
            // A resize starts no worker here until the CPU is plugged again
            // (a plug, or an unpark onto it, lifts the mark).
            Some(cpu),
        )?;
        Ok(report)
    }

    /// See [`Handle::park_worker`](crate::Handle::park_worker).
    pub(crate) fn park_worker(&self, id: usize) -> Result<ParkReport, ControlError> {
        self.park_worker_waiting(id, WaitFor::Deadline(None))
    }

    /// [`park_worker`](Self::park_worker), waiting as `wait_for` says (the
    /// CPU follower's waits give up at shutdown: FOLLOW-GIVES-UP).
    pub(crate) fn park_worker_waiting(
        &self,
        id: usize,
        wait_for: WaitFor<'_>,
    ) -> Result<ParkReport, ControlError> {
        self.park_where(
            "park_worker",
            wait_for,
            |e| e.index == id,
            ControlError::UnknownWorker(id),
            None,
        )
    }

    /// A snapshot of every worker. Stopped (resized-away) workers are not
    /// listed; a worker whose thread ended on its own is listed as ended
    /// (`Stopped`, or `Failed` where the worker crate tells a panic apart).
    pub(crate) fn workers(&self) -> Vec<WorkerInfo> {
        let pool = self.lock_pool();
        pool.entries
            .iter()
            .map(|e| WorkerInfo {
                id: e.index,
                cpu: e.cpu,
                pinned: e.pinned,
                state: e.worker.state(),
                os_tid: e.worker.os_tid(),
                tasks_polled: e.slot.polled.load(Relaxed),
                resumes: e.slot.resumes.load(Relaxed),
                last_unpark_latency: Duration::from_nanos(e.slot.last_unpark_ns.load(Relaxed)),
            })
            .collect()
    }

    /// Totals since the runtime started, over every worker it ever had.
    pub(crate) fn stats(&self) -> RuntimeStats {
        let slots = self.scheduler.slots();
        RuntimeStats {
            tasks_polled: slots.iter().map(|s| s.polled.load(Relaxed)).sum(),
            tasks_migrated: slots.iter().map(|s| s.migrated.load(Relaxed)).sum(),
            live_tasks: self.scheduler.registry().live(),
            follow_changes: self.follow_changes.load(Relaxed),
        }
    }
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("workers", &self.len())
            .finish_non_exhaustive()
    }
}
