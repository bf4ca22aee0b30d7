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

mod error;
pub(crate) mod follow;
mod park;
mod pool;
mod report;

pub use error::ControlError;
pub(crate) use pool::Config;
pub use report::{ParkReport, PlugReport, ResizeReport, RuntimeStats, WorkerInfo};

use crate::scheduler::Scheduler;
use pool::{Pool, Target};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use unplug_worker::ParkTimings;

/// What the layers above want to hear from the controller.
pub(crate) trait ControlEvents: Send + Sync {
    /// Worker `index` was started.
    fn worker_started(&self, index: usize);
    /// Worker `index` parked, taking `timings`.
    fn parked(&self, index: usize, timings: &ParkTimings);
    /// Worker `index` was unparked.
    fn unparked(&self, index: usize);
    /// A controller change of `kind` (one of `HOTPLUG_KINDS`).
    fn hotplug(&self, kind: &'static str);
}

/// The pool of workers and every operation on it.
pub(crate) struct Controller {
    pub(crate) scheduler: Arc<Scheduler>,
    /// The workers; its lock serializes controller calls.
    pool: Mutex<Pool>,
    events: Option<Arc<dyn ControlEvents>>,
    /// Times the CPU follower changed the pool.
    pub(crate) follow_changes: std::sync::atomic::AtomicU64,
}

fn check_allowed(cpu: usize) -> Result<(), ControlError> {
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
            pool: Mutex::new(Pool {
                entries: Vec::new(),
                config,
                cpus,
            }),
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

    /// Starts a worker with home CPU `home` (pinned there if `pin`) and adds
    /// it to the pool.
    fn start(
        &self,
        pool: &mut Pool,
        home: Option<usize>,
        pin: bool,
    ) -> Result<usize, ControlError> {
        let config = pool.config.clone();
        let entry =
            pool::start_worker(&self.scheduler, &config, home, pin).map_err(ControlError::Spawn)?;
        let index = entry.index;
        pool.entries.push(entry);
        if let Some(events) = &self.events {
            events.worker_started(index);
        }
        Ok(index)
    }

    /// Starts the runtime's first `n` workers on `cpus` in turn.
    pub(crate) fn start_initial(&self, n: usize) -> Result<(), unplug_worker::SpawnError> {
        let mut pool = self.lock_pool();
        for i in 0..n {
            let home = pool.cpus[i % pool.cpus.len()];
            let pin = pool.config.pin;
            match self.start(&mut pool, Some(home), pin) {
                Ok(_) => {}
                Err(ControlError::Spawn(e)) => return Err(e),
                Err(_) => unreachable!("start only fails to spawn"),
            }
        }
        Ok(())
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
        check_allowed(cpu)?;
        self.park_where(
            "unplug_cpu",
            deadline,
            |e| e.cpu == Some(cpu),
            ControlError::NoWorkerOnCpu(cpu),
        )
    }

    /// See [`Handle::park_worker`](crate::Handle::park_worker).
    pub(crate) fn park_worker(&self, id: usize) -> Result<ParkReport, ControlError> {
        self.park_where(
            "park_worker",
            None,
            |e| e.index == id,
            ControlError::UnknownWorker(id),
        )
    }

    /// See [`Handle::plug_cpu`](crate::Handle::plug_cpu).
    pub(crate) fn plug_cpu(&self, cpu: usize) -> Result<PlugReport, ControlError> {
        check_allowed(cpu)?;
        let mut pool = self.lock_pool();
        self.check_open()?;
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
                if let Some(events) = &self.events {
                    events.unparked(e.index);
                }
                report.unparked.push(e.index);
            }
        }
        let running_here = pool
            .entries
            .iter()
            .any(|e| e.cpu == Some(cpu) && e.target == Target::Running);
        if !running_here {
            let index = self.start(&mut pool, Some(cpu), true)?;
            report.started.push(index);
        }
        if report != PlugReport::default() {
            self.hotplug_event("plug_cpu");
        }
        Ok(report)
    }

    /// See [`Handle::unpark_worker`](crate::Handle::unpark_worker).
    pub(crate) fn unpark_worker(
        &self,
        id: usize,
        cpu: Option<usize>,
    ) -> Result<PlugReport, ControlError> {
        if let Some(cpu) = cpu {
            check_allowed(cpu)?;
        }
        let mut pool = self.lock_pool();
        self.check_open()?;
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
            if let Some(events) = &self.events {
                events.unparked(id);
            }
            self.hotplug_event("unpark_worker");
            report.unparked.push(id);
        }
        Ok(report)
    }

    /// See [`Handle::set_workers`](crate::Handle::set_workers).
    pub(crate) fn set_workers(&self, n: usize) -> Result<ResizeReport, ControlError> {
        if n == 0 {
            return Err(ControlError::ZeroWorkers);
        }
        let me = std::thread::current().id();
        let (mut report, pending) = {
            let mut pool = self.lock_pool();
            self.check_open()?;
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
                    let index = self.start(&mut pool, Some(cpu), true)?;
                    report.started.push(index);
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
                pending = park::request_parks(&mut pool, &victims, Target::Stopped);
            }
            (report, pending)
        };
        let ids: Vec<usize> = pending.iter().map(|p| p.id).collect();
        let workers: Vec<_> = pending.iter().map(|p| p.worker.clone()).collect();
        let parks = self.wait_parks(pending, None)?;
        report.tasks_migrated = parks.tasks_migrated;
        for (id, worker) in ids.into_iter().zip(workers) {
            // Stop works from any state; a worker unparked meanwhile by
            // another call migrates its tasks on the way out.
            let _ = worker.stop();
            report.stopped.push(id);
        }
        let mut pool = self.lock_pool();
        pool.entries.retain(|e| !report.stopped.contains(&e.index));
        drop(pool);
        if report.before != report.after {
            self.hotplug_event("set_workers");
        }
        Ok(report)
    }

    /// A snapshot of every worker. Stopped (resized-away) workers are not
    /// listed.
    pub(crate) fn workers(&self) -> Vec<WorkerInfo> {
        self.lock_pool()
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
    pub(crate) fn stats(&self) -> RuntimeStats {
        let slots = self.scheduler.slots();
        RuntimeStats {
            tasks_polled: slots.iter().map(|s| s.polled.load(Relaxed)).sum(),
            tasks_migrated: slots.iter().map(|s| s.migrated.load(Relaxed)).sum(),
            live_tasks: self.scheduler.registry.live(),
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
