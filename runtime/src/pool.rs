//! The pool of worker threads: each a parkable `unplug_worker::Worker`
//! running the scheduler loop, with its slot in the scheduler.

use crate::scheduler::{Shared, Slot, Task};
use crate::worker_loop;
use crossbeam_deque::Worker as LocalQueue;
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
pub(crate) enum Target {
    Running,
    Parked,
    Stopped,
}

/// One worker of the pool.
pub(crate) struct PoolEntry {
    pub(crate) index: usize,
    pub(crate) worker: Arc<Worker<()>>,
    pub(crate) slot: Arc<Slot>,
    /// The CPU it is pinned to, or its home CPU if not pinned.
    pub(crate) cpu: Option<usize>,
    pub(crate) pinned: bool,
    pub(crate) target: Target,
}

/// The workers and what the runtime was built with. Behind the pool lock,
/// which serializes every controller call.
pub(crate) struct Pool {
    pub(crate) entries: Vec<PoolEntry>,
    pub(crate) config: Config,
    /// The CPUs the runtime was built to use.
    pub(crate) cpus: Vec<usize>,
}

impl Pool {
    pub(crate) fn running(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.target == Target::Running)
            .count()
    }

    pub(crate) fn next_index(shared: &Shared) -> usize {
        shared.slots().len()
    }
}

/// Starts worker `index` with home CPU `home_cpu` (pinned there if the
/// runtime pins). Its slot is published before the thread starts, so a
/// producer can wake it from its first idle wait.
pub(crate) fn start_worker(
    shared: &Arc<Shared>,
    config: &Config,
    home_cpu: Option<usize>,
    pin: bool,
) -> Result<PoolEntry, SpawnError> {
    let index = Pool::next_index(shared);
    let queue: LocalQueue<Task> = LocalQueue::new_fifo();
    let protocol = Arc::new(Protocol::new());
    let metrics = shared.metrics.as_ref().map(|m| m.worker(index));
    let slot = Arc::new(Slot::new(
        queue.stealer(),
        Notifier::new(protocol.clone()),
        metrics,
    ));
    {
        let mut slots = shared.slots.write().unwrap_or_else(|p| p.into_inner());
        debug_assert_eq!(slots.len(), index, "worker slots are appended in order");
        slots.push(slot.clone());
    }
    let body_shared = shared.clone();
    let body_slot = slot.clone();
    let spawned = Worker::builder()
        .name(format!("{}-{index}", config.thread_name))
        .cpu_opt(if pin { home_cpu } else { None })
        .protocol(protocol)
        .spawn(move |ctx| worker_loop::run(ctx, body_shared, index, body_slot, queue));
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
            let mut slots = shared.slots.write().unwrap_or_else(|p| p.into_inner());
            slots.pop();
            Err(e)
        }
    }
}
