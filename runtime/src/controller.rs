//! The controller: unplug and plug CPUs, park and unpark workers, resize
//! the pool — every change through the worker crate's park / unpark / stop.
//!
//! Each call decides under the pool lock (so concurrent calls from many
//! threads are serialized and the "last running worker" check sees every
//! decision) and waits for parks *outside* it (so a task that calls the
//! controller while another controller call waits for its worker cannot
//! deadlock the two).
//!
//! Called from a worker thread (from inside a task), a park of that same
//! worker cannot be waited for — the worker is busy running the caller. It
//! is requested and reported as *deferred*: it completes as soon as the
//! current poll returns. Parks of other workers are waited for as from any
//! thread (blocking the calling worker meanwhile).

use crate::handle::Handle;
use crate::pool::{self, Pool, PoolEntry, Target};
use crate::runtime::WorkerInfo;
use crate::scheduler::{Shared, Slot};
use std::fmt;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use unplug_worker::{ParkError, ParkTicket, ParkTimings, Worker};

/// Why a controller call changed nothing.
#[derive(Debug)]
#[non_exhaustive]
pub enum ControlError {
    /// It would leave no running worker.
    LastWorker,
    /// No worker of this runtime is on that CPU.
    NoWorkerOnCpu(usize),
    /// The CPU is not one the process may use.
    CpuNotAllowed {
        /// The CPU asked for.
        cpu: usize,
        /// The CPUs the process may use.
        allowed: Vec<usize>,
    },
    /// No worker has that id.
    UnknownWorker(usize),
    /// `set_workers(0)`.
    ZeroWorkers,
    /// The deadline passed before the park completed; every park this call
    /// requested was withdrawn (no half-parked worker is left).
    Timeout,
    /// The runtime is shutting down.
    ShuttingDown,
    /// A new worker could not be started.
    Spawn(unplug_worker::SpawnError),
    /// Re-binding a worker failed.
    Unpark(unplug_worker::UnparkError),
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::LastWorker => f.write_str("that would leave no running worker"),
            ControlError::NoWorkerOnCpu(cpu) => {
                write!(f, "no worker of this runtime is on CPU {cpu}")
            }
            ControlError::CpuNotAllowed { cpu, allowed } => {
                write!(
                    f,
                    "CPU {cpu} is not allowed for this process (allowed: {allowed:?})"
                )
            }
            ControlError::UnknownWorker(id) => write!(f, "no worker with id {id}"),
            ControlError::ZeroWorkers => f.write_str("a runtime needs at least one worker"),
            ControlError::Timeout => {
                f.write_str("the park did not complete in time; it was withdrawn")
            }
            ControlError::ShuttingDown => f.write_str("the runtime is shutting down"),
            ControlError::Spawn(e) => write!(f, "cannot start a worker: {e}"),
            ControlError::Unpark(e) => write!(f, "cannot unpark: {e}"),
        }
    }
}

impl std::error::Error for ControlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ControlError::Spawn(e) => Some(e),
            ControlError::Unpark(e) => Some(e),
            _ => None,
        }
    }
}

/// What a park-type controller call did.
#[derive(Clone, Debug, Default)]
pub struct ParkReport {
    /// Workers parked (and inactive) when the call returned.
    pub parked: Vec<usize>,
    /// Workers whose park was requested from their own thread: each parks
    /// as soon as the poll that made the call returns.
    pub deferred: Vec<usize>,
    /// Tasks the parked workers handed to the others.
    pub tasks_migrated: u64,
    /// Each park's measured latencies.
    pub park_latencies: Vec<ParkTimings>,
}

/// What `plug_cpu` / `unpark_worker` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlugReport {
    /// Parked workers woken.
    pub unparked: Vec<usize>,
    /// Workers started.
    pub started: Vec<usize>,
}

/// What `set_workers` did.
#[derive(Clone, Debug, Default)]
pub struct ResizeReport {
    /// Running workers before.
    pub before: usize,
    /// Running workers after.
    pub after: usize,
    /// Workers started.
    pub started: Vec<usize>,
    /// Workers parked, then stopped.
    pub stopped: Vec<usize>,
    /// Tasks the stopped workers handed to the others.
    pub tasks_migrated: u64,
}

/// A park requested under the lock, to be waited for outside it.
struct PendingPark {
    id: usize,
    worker: Arc<Worker<()>>,
    slot: Arc<Slot>,
    ticket: ParkTicket,
    migrated_before: u64,
}

impl Shared {
    fn check_open(&self) -> Result<(), ControlError> {
        if self.is_closing() {
            Err(ControlError::ShuttingDown)
        } else {
            Ok(())
        }
    }

    /// Requests parks of the `victims` (indices into `pool.entries`) and
    /// marks them with `target`.
    fn request_parks(pool: &mut Pool, victims: &[usize], target: Target) -> Vec<PendingPark> {
        let mut pending = Vec::new();
        for &i in victims {
            let e = &mut pool.entries[i];
            let migrated_before = e.slot.migrated.load(Relaxed);
            match e.worker.request_park() {
                Ok(ticket) => {
                    e.target = target;
                    pending.push(PendingPark {
                        id: e.index,
                        worker: e.worker.clone(),
                        slot: e.slot.clone(),
                        ticket,
                        migrated_before,
                    });
                }
                // Stopping already: it will not run again either way.
                Err(_) => e.target = target,
            }
        }
        pending
    }

    /// Waits for `pending` parks (outside the pool lock). On a timeout,
    /// withdraws every park of this call and restores the targets.
    fn wait_parks(
        &self,
        pending: Vec<PendingPark>,
        deadline: Option<Instant>,
    ) -> Result<ParkReport, ControlError> {
        let me = std::thread::current().id();
        let mut report = ParkReport::default();
        let mut timed_out = false;
        for p in &pending {
            if p.worker.thread_id() == me {
                report.deferred.push(p.id);
                continue;
            }
            match p.worker.wait_park(p.ticket, deadline) {
                Ok(timings) => {
                    if let Some(m) = &p.slot.metrics {
                        m.park_latency.record(timings.to_parked);
                        m.park_to_inactive.record(timings.to_inactive);
                        m.parks.increment(1);
                    }
                    report.parked.push(p.id);
                    report.park_latencies.push(timings);
                    report.tasks_migrated += p.slot.migrated.load(Relaxed) - p.migrated_before;
                }
                Err(ParkError::Timeout) => {
                    timed_out = true;
                    break;
                }
                // Another controller unparked or stopped it meanwhile: its
                // call decides now.
                Err(_) => {}
            }
        }
        if timed_out {
            let mut pool = self.lock_pool();
            for p in &pending {
                let _ = p.worker.unpark();
                if let Some(e) = pool.entries.iter_mut().find(|e| e.index == p.id) {
                    e.target = Target::Running;
                }
            }
            return Err(ControlError::Timeout);
        }
        Ok(report)
    }

    /// Counts a hotplug event of `kind`, if metrics are on.
    pub(crate) fn hotplug_event(&self, kind: &'static str) {
        if let Some(m) = &self.metrics {
            m.hotplug_event(kind);
        }
    }

    fn park_where(
        &self,
        kind: &'static str,
        deadline: Option<Instant>,
        select: impl Fn(&PoolEntry) -> bool,
        none: ControlError,
    ) -> Result<ParkReport, ControlError> {
        let pending = {
            let mut pool = self.lock_pool();
            self.check_open()?;
            let victims: Vec<usize> = (0..pool.entries.len())
                .filter(|&i| pool.entries[i].target == Target::Running && select(&pool.entries[i]))
                .collect();
            if victims.is_empty() {
                // Already parked there: nothing to do. Never there: an error.
                return if pool.entries.iter().any(&select) {
                    Ok(ParkReport::default())
                } else {
                    Err(none)
                };
            }
            if pool.running() == victims.len() {
                return Err(ControlError::LastWorker);
            }
            Self::request_parks(&mut pool, &victims, Target::Parked)
        };
        let report = self.wait_parks(pending, deadline)?;
        self.hotplug_event(kind);
        Ok(report)
    }
}

fn check_allowed(cpu: usize) -> Result<(), ControlError> {
    unplug_worker::affinity::check_allowed(cpu)
        .map_err(|allowed| ControlError::CpuNotAllowed { cpu, allowed })
}

impl Handle {
    /// Unplugs `cpu`: parks the worker(s) on it by the fixed protocol (their
    /// queued tasks move to the other workers before each park completes)
    /// and returns once they are parked and inactive.
    ///
    /// Waits for a worker busy in a long poll to finish that poll; see
    /// [`unplug_cpu_timeout`](Handle::unplug_cpu_timeout) for a bound.
    /// Unplugging a CPU that is already unplugged changes nothing. Errors,
    /// with no change: the last running worker, a CPU the process may not
    /// use, a CPU with no worker of this runtime.
    ///
    /// ```
    /// let rt = unplug::Runtime::builder().workers(2).cpus([0, 0]).build().unwrap();
    /// // Both workers live on CPU 0 here: unplugging it would leave none.
    /// assert!(matches!(rt.handle().unplug_cpu(0), Err(unplug::ControlError::LastWorker)));
    /// ```
    pub fn unplug_cpu(&self, cpu: usize) -> Result<ParkReport, ControlError> {
        check_allowed(cpu)?;
        self.shared.park_where(
            "unplug_cpu",
            None,
            |e| e.cpu == Some(cpu),
            ControlError::NoWorkerOnCpu(cpu),
        )
    }

    /// [`unplug_cpu`](Handle::unplug_cpu) with a time limit: if a worker is
    /// still inside a poll at the deadline, every park of this call is
    /// withdrawn and [`ControlError::Timeout`] returned.
    pub fn unplug_cpu_timeout(
        &self,
        cpu: usize,
        timeout: Duration,
    ) -> Result<ParkReport, ControlError> {
        check_allowed(cpu)?;
        self.shared.park_where(
            "unplug_cpu",
            Some(Instant::now() + timeout),
            |e| e.cpu == Some(cpu),
            ControlError::NoWorkerOnCpu(cpu),
        )
    }

    /// Plugs `cpu` back: unparks the workers parked there, or, if the
    /// runtime has none there, starts a worker pinned to it.
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
        check_allowed(cpu)?;
        let mut pool = self.shared.lock_pool();
        self.shared.check_open()?;
        let mut report = PlugReport::default();
        for e in pool.entries.iter_mut() {
            if e.cpu == Some(cpu) && e.target == Target::Parked {
                let outcome = if e.pinned {
                    e.worker.unpark_on(cpu)
                } else {
                    e.worker.unpark()
                };
                outcome.map_err(ControlError::Unpark)?;
                e.target = Target::Running;
                if let Some(m) = &e.slot.metrics {
                    m.unparks.increment(1);
                }
                report.unparked.push(e.index);
            }
        }
        let running_here = pool
            .entries
            .iter()
            .any(|e| e.cpu == Some(cpu) && e.target == Target::Running);
        if !running_here {
            let config = pool.config.clone();
            let entry = pool::start_worker(&self.shared, &config, Some(cpu), true)
                .map_err(ControlError::Spawn)?;
            report.started.push(entry.index);
            pool.entries.push(entry);
        }
        if report != PlugReport::default() {
            self.shared.hotplug_event("plug_cpu");
        }
        Ok(report)
    }

    /// Parks worker `id` (as `unplug_cpu` does for a CPU).
    pub fn park_worker(&self, id: usize) -> Result<ParkReport, ControlError> {
        self.shared.park_where(
            "park_worker",
            None,
            |e| e.index == id,
            ControlError::UnknownWorker(id),
        )
    }

    /// Unparks worker `id`, first re-pinning it to `cpu` if given. A running
    /// worker is left as it is.
    pub fn unpark_worker(&self, id: usize, cpu: Option<usize>) -> Result<PlugReport, ControlError> {
        if let Some(cpu) = cpu {
            check_allowed(cpu)?;
        }
        let mut pool = self.shared.lock_pool();
        self.shared.check_open()?;
        let e = pool
            .entries
            .iter_mut()
            .find(|e| e.index == id)
            .ok_or(ControlError::UnknownWorker(id))?;
        let mut report = PlugReport::default();
        if e.target == Target::Parked {
            match cpu {
                Some(cpu) => {
                    e.worker.unpark_on(cpu).map_err(ControlError::Unpark)?;
                    e.cpu = Some(cpu);
                    e.pinned = true;
                }
                None => {
                    e.worker.unpark().map_err(ControlError::Unpark)?;
                }
            }
            e.target = Target::Running;
            if let Some(m) = &e.slot.metrics {
                m.unparks.increment(1);
            }
            self.shared.hotplug_event("unpark_worker");
            report.unparked.push(id);
        }
        Ok(report)
    }

    /// Resizes the pool to `n` running workers: grows by starting workers
    /// pinned to the runtime's least-used CPUs, shrinks by parking the
    /// newest workers (their tasks migrate) and stopping them.
    pub fn set_workers(&self, n: usize) -> Result<ResizeReport, ControlError> {
        if n == 0 {
            return Err(ControlError::ZeroWorkers);
        }
        let me = std::thread::current().id();
        let (mut report, pending) = {
            let mut pool = self.shared.lock_pool();
            self.shared.check_open()?;
            let before = pool.running();
            let mut report = ResizeReport {
                before,
                after: n,
                ..Default::default()
            };
            let mut pending = Vec::new();
            if n > before {
                let allowed = unplug_worker::affinity::allowed_cpus().unwrap_or_default();
                let mut cpus: Vec<usize> = pool
                    .cpus
                    .iter()
                    .copied()
                    .filter(|c| allowed.contains(c))
                    .collect();
                if cpus.is_empty() {
                    cpus = allowed;
                }
                for _ in before..n {
                    let cpu = *cpus
                        .iter()
                        .min_by_key(|&&c| {
                            pool.entries
                                .iter()
                                .filter(|e| e.cpu == Some(c) && e.target == Target::Running)
                                .count()
                        })
                        .ok_or(ControlError::ZeroWorkers)?;
                    let config = pool.config.clone();
                    let entry = pool::start_worker(&self.shared, &config, Some(cpu), true)
                        .map_err(ControlError::Spawn)?;
                    report.started.push(entry.index);
                    pool.entries.push(entry);
                }
            } else if n < before {
                // Newest first, never the caller's own worker (it could not
                // be joined from inside its own poll).
                let victims: Vec<usize> = (0..pool.entries.len())
                    .rev()
                    .filter(|&i| {
                        let e = &pool.entries[i];
                        e.target == Target::Running && e.worker.thread_id() != me
                    })
                    .take(before - n)
                    .collect();
                if victims.len() < before - n {
                    return Err(ControlError::LastWorker);
                }
                pending = Shared::request_parks(&mut pool, &victims, Target::Stopped);
            }
            (report, pending)
        };
        let ids: Vec<usize> = pending.iter().map(|p| p.id).collect();
        let workers: Vec<Arc<Worker<()>>> = pending.iter().map(|p| p.worker.clone()).collect();
        let parks = self.shared.wait_parks(pending, None)?;
        report.tasks_migrated = parks.tasks_migrated;
        for (id, worker) in ids.into_iter().zip(workers) {
            // Stop works from any state; a worker unparked meanwhile by
            // another call migrates its tasks on the way out.
            let _ = worker.stop();
            report.stopped.push(id);
        }
        let mut pool = self.shared.lock_pool();
        pool.entries.retain(|e| !report.stopped.contains(&e.index));
        drop(pool);
        if report.before != report.after {
            self.shared.hotplug_event("set_workers");
        }
        Ok(report)
    }

    /// A snapshot of every worker: id, CPU, state, OS thread id, tasks
    /// polled. Stopped (resized-away) workers are not listed.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.shared
            .lock_pool()
            .entries
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
    pub fn stats(&self) -> RuntimeStats {
        let slots = self.shared.slots();
        RuntimeStats {
            tasks_polled: slots.iter().map(|s| s.polled.load(Relaxed)).sum(),
            tasks_migrated: slots.iter().map(|s| s.migrated.load(Relaxed)).sum(),
            live_tasks: self.shared.registry.live(),
            follow_changes: self.shared.follow_stats.applied.load(Relaxed),
        }
    }
}

/// Counters over the runtime's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuntimeStats {
    /// Task polls, all workers.
    pub tasks_polled: u64,
    /// Tasks moved off workers that parked or stopped.
    pub tasks_migrated: u64,
    /// Tasks spawned and not yet completed or dropped.
    pub live_tasks: usize,
    /// Times the CPU follower changed the pool.
    pub follow_changes: u64,
}
