//! The pool of worker threads: each a parkable `unplug_worker::Worker`
//! running the scheduler's loop, with its slot in the scheduler.

use crate::scheduler::{worker_loop, Scheduler, Slot};
use std::sync::Arc;
use unplug_worker::{Notifier, Protocol, SpawnError, Worker};

/// What the runtime was built with and every later worker start reuses.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) pin: bool,
    pub(crate) thread_name: String,
}

/// What the controller has decided for a worker. Decided under the pool
/// lock; carried out (park, unpark, stop) outside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Target {
    Running,
    Parked,
    Stopped,
}

/// One worker of the pool.
pub(super) struct PoolEntry {
    pub(super) index: usize,
    pub(super) worker: Arc<Worker<()>>,
    pub(super) slot: Arc<Slot>,
    /// The CPU it is pinned to, or its home CPU if not pinned.
    pub(super) cpu: Option<usize>,
    pub(super) pinned: bool,
    pub(super) target: Target,
}

/// The workers and what the runtime was built with. Behind the pool lock,
/// which serializes every controller call.
pub(super) struct Pool {
    pub(super) entries: Vec<PoolEntry>,
    pub(super) config: Config,
    /// The CPUs the runtime was built to use.
    pub(super) cpus: Vec<usize>,
}

impl Pool {
    pub(super) fn running(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.target == Target::Running)
            .count()
    }
}

/// Starts a worker with home CPU `home_cpu` (pinned there if `pin`). Its
/// slot is published before the thread starts, so a producer can wake it
/// from its first idle wait.
pub(super) fn start_worker(
    scheduler: &Arc<Scheduler>,
    config: &Config,
    home_cpu: Option<usize>,
    pin: bool,
) -> Result<PoolEntry, SpawnError> {
    let queue = Scheduler::new_queue();
    let protocol = Arc::new(Protocol::new());
    let slot = Arc::new(Slot::new(queue.stealer(), Notifier::new(protocol.clone())));
    let index = scheduler.add_slot(slot.clone());
    let body_scheduler = scheduler.clone();
    let body_slot = slot.clone();
    let spawned = Worker::builder()
        .name(format!("{}-{index}", config.thread_name))
        .cpu_opt(if pin { home_cpu } else { None })
        .protocol(protocol)
        .spawn(move |ctx| worker_loop::run(ctx, body_scheduler, index, body_slot, queue));
    match spawned {
        Ok(worker) => Ok(PoolEntry {
            index,
            worker: Arc::new(worker),
            slot,
            cpu: home_cpu,
            pinned: pin && home_cpu.is_some(),
            target: Target::Running,
        }),
        Err(e) => {
            scheduler.remove_last_slot();
            Err(e)
        }
    }
}
