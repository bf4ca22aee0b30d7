//! Starting workers: the thread is spawned under the pool lock (its slot
//! published first), its start hook is waited for outside it, and only a
//! worker whose hook returned counts as running.

use super::pool::{Plan, Pool, PoolEntry};
use super::{ControlError, Controller, MAX_WORKERS};
use crate::scheduler::worker_loop::{self, StartResult};
use crate::scheduler::{Queues, Slot};
use std::sync::{mpsc, Arc};
use unplug_worker::{Notifier, Protocol, Worker};

/// A worker spawned under the lock whose start hook may still be running.
pub(super) struct Spawned {
    pub(super) id: usize,
    started: mpsc::Receiver<StartResult>,
}

impl Controller {
    /// Spawns a worker with home CPU `home` (pinned there if `pin`) and
    /// adds it as [`Plan::Starting`]. Call [`confirm`](Self::confirm)
    /// outside the lock next.
    pub(super) fn spawn_worker(
        &self,
        pool: &mut Pool,
        home: Option<usize>,
        pin: bool,
    ) -> Result<Spawned, ControlError> {
        // MAX-AT-ONCE: no start takes the pool past `MAX_WORKERS`, parked,
        // starting and stopping workers included (each holds an id).
        if pool.entries.len() >= MAX_WORKERS {
            return Err(ControlError::TooManyWorkers {
                requested: pool.entries.len() + 1,
                max: MAX_WORKERS,
            });
        }
        // Called on a worker thread (a task resizing the pool), the caller
        // will block until the new worker's hook returns: marked before the
        // thread exists (DEADLOCK-FREE: a hook calling the controller must
        // not wait for the worker that waits for it). `confirm` clears it.
        if let Some(at) = pool.position_of_thread(std::thread::current().id()) {
            pool.entries[at].waiting = true;
        }
        let id = pool.take_id();
        let queues = Queues::new();
        let protocol = Arc::new(Protocol::new());
        let slot = Arc::new(Slot::new(&queues, Notifier::new(protocol.clone())));
        self.scheduler.install_slot(id, slot.clone());
        let (tx, started) = mpsc::sync_channel::<StartResult>(1);
        let scheduler = self.scheduler.clone();
        let body_slot = slot.clone();
        let mut builder = Worker::builder();
        if let Some(dir) = &pool.config.procfs_task_dir {
            builder = builder.procfs_task_dir(dir);
        }
        let spawned = builder
            .name(format!("{}-{id}", pool.config.thread_name))
            .cpu_opt(if pin { home } else { None })
            .protocol(protocol)
            .spawn(move |ctx| {
                worker_loop::run(ctx, scheduler, id, body_slot, queues, |r| {
                    let _ = tx.send(r);
                })
            });
        let worker = match spawned {
            Ok(worker) => worker,
            Err(e) => {
                // The slot stays (empty) for the next worker to take over.
                pool.free_ids.insert(id);
                return Err(ControlError::Spawn(e));
            }
        };
        pool.entries.push(PoolEntry {
            index: id,
            worker: Arc::new(worker),
            slot,
            cpu: home,
            pinned: pin && home.is_some(),
            plan: Plan::Starting,
            waiting: false,
            timed_generation: None,
            sharers: Vec::new(),
            confirmed: false,
        });
        Ok(Spawned { id, started })
    }

    /// Waits (outside the pool lock) for the start hooks of `spawned`, then
    /// marks each worker running, or joins and removes it if its hook
    /// panicked. Returns the ids now running, and the first failure.
    pub(super) fn confirm(&self, spawned: Vec<Spawned>) -> (Vec<usize>, Option<ControlError>) {
        let mut results = Vec::with_capacity(spawned.len());
        for s in spawned {
            let result = s
                .started
                .recv()
                .unwrap_or_else(|_| Err("the worker ended before its start hook ran".into()));
            results.push((s.id, result));
        }
        let mut running = Vec::new();
        let mut failure = None;
        let mut failed = Vec::new();
        {
            let mut pool = self.lock_pool();
            pool.clear_waiting_of_caller();
            for (id, result) in results {
                let Some(at) = pool.position(id) else {
                    continue; // shutdown took it meanwhile
                };
                match result {
                    Ok(()) => {
                        pool.entries[at].confirmed = true;
                        // A park requested while it started stands.
                        if matches!(pool.entries[at].plan, Plan::Starting) {
                            pool.entries[at].plan = Plan::Running;
                        }
                        running.push(id);
                    }
                    Err(message) => {
                        pool.entries[at].plan = Plan::Failed;
                        failed.push(pool.entries[at].worker.clone());
                        failure.get_or_insert(ControlError::StartHookPanicked {
                            worker: id,
                            message,
                        });
                    }
                }
            }
        }
        for id in &running {
            if let Some(events) = &self.events {
                events.worker_started(*id);
            }
        }
        // A worker whose hook panicked has ended (or is about to): join it
        // outside the lock, then free its id.
        for worker in failed {
            let _ = worker.stop();
            let mut pool = self.lock_pool();
            if let Some(at) = pool.position_of_thread(worker.thread_id()) {
                let id = pool.entries[at].index;
                pool.remove(id);
            }
        }
        (running, failure)
    }

    /// Stops and joins workers this call started, after a later start of
    /// the same call failed: the call changes nothing.
    pub(super) fn undo_starts(&self, ids: &[usize]) {
        let workers: Vec<Arc<Worker<()>>> = {
            let mut pool = self.lock_pool();
            ids.iter()
                .filter_map(|&id| {
                    let at = pool.position(id)?;
                    pool.entries[at].plan = Plan::Stopping;
                    Some(pool.entries[at].worker.clone())
                })
                .collect()
        };
        for worker in &workers {
            let _ = worker.stop();
        }
        let mut pool = self.lock_pool();
        for &id in ids {
            pool.remove(id);
        }
    }
}
