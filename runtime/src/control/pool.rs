//! The pool of worker threads and what the controller has planned for each.
//!
//! Every field here is behind the pool lock; see `runtime/CONTROLLER.md`
//! for who owns a pending park and how concurrent calls compose.

use super::unplugged::UnpluggedCpus;
use crate::scheduler::Slot;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::thread::ThreadId;
use unplug_worker::{ParkTicket, Worker};

/// What the runtime was built with and every later worker start reuses.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) pin: bool,
    pub(crate) thread_name: String,
    /// The test hook of `Builder::procfs_task_dir_for_tests`.
    pub(crate) procfs_task_dir: Option<std::path::PathBuf>,
    /// `Builder::cpus` was given: the CPU follower keeps to those CPUs
    /// (FOLLOW-SCOPE in CONTROLLER.md).
    pub(crate) cpus_given: bool,
    /// `Builder::workers(n)` was given: the CPU follower keeps n running
    /// (FOLLOW-KEEPS-COUNT in CONTROLLER.md).
    pub(crate) workers_given: Option<usize>,
}

/// One controller call: the owner of the parks it requests.
pub(super) type CallId = u64;

/// What the controller has decided for a worker. Decided under the pool
/// lock; the waits happen outside it.
///
/// Transitions (all under the lock):
/// - `Starting` → `Running` (its start hook returned) or removed (it
///   panicked: the start is reported failed);
/// - `Running` → `Parking` (a park call requested it) or `Stopping` (a
///   shrinking `set_workers` chose it);
/// - `Parking { owner: Some(c) }` → `Parking { owner: None }` (a call
///   waiting on it saw it park, or `c` deferred it), `Parking { owner:
///   Some(d) }` (`c` timed out while call `d` still shared it:
///   OWNED-HANDOVER) or `Running` (`c` timed out and nobody else waited
///   on it, or an unpark withdrew it);
/// - `Stopping` → removed (its stopper joined it; the id is free again);
/// - `Failed` when the start hook panicked or a park request finds the
///   thread stopping; a thread that ended on its own counts as gone
///   whatever its plan (`PoolEntry::gone`).
#[derive(Clone, Copy, Debug)]
pub(super) enum Plan {
    /// Started; its start hook has not returned yet. Not counted as running.
    Starting,
    /// Runs tasks; no park or stop requested.
    Running,
    /// A park was requested with `ticket`. `owner` is the call that will
    /// withdraw it if that call times out; `None` once nobody will (the
    /// park completed for a caller, or was deferred). Another park call
    /// for the same worker waits on the same ticket (a [`Sharer`]) and
    /// withdraws it only once its owner timed out and handed it over
    /// (OWNED-HANDOVER).
    Parking {
        ticket: ParkTicket,
        owner: Option<CallId>,
    },
    /// Chosen by a shrinking `set_workers`, which parks, stops and joins it.
    Stopping,
    /// The thread ended without being stopped (a panic outside any task).
    Failed,
}

/// One worker of the pool.
pub(super) struct PoolEntry {
    pub(super) index: usize,
    pub(super) worker: Arc<Worker<()>>,
    pub(super) slot: Arc<Slot>,
    /// The CPU it is pinned to, or its home CPU if not pinned.
    pub(super) cpu: Option<usize>,
    pub(super) pinned: bool,
    pub(super) plan: Plan,
    /// Its thread is blocked inside a controller call (a task on it called
    /// the controller). No call made from a worker thread waits for such a
    /// worker: that wait could close a cycle (DEADLOCK-FREE in
    /// CONTROLLER.md).
    pub(super) waiting: bool,
    /// The park generation whose timings were last recorded (PARK-COUNT:
    /// the calls that share a park record it once).
    pub(super) timed_generation: Option<usize>,
    /// The calls waiting on this worker's pending park that did not
    /// request it (SHARED-PARK), while they wait: the one its owner hands
    /// it over to if the owner times out (OWNED-HANDOVER).
    pub(super) sharers: Vec<Sharer>,
    /// Its start hook returned (the start was confirmed): a park withdrawn
    /// from it returns it to `Running`, not `Starting` (STARTING-ROLLBACK).
    pub(super) confirmed: bool,
}

/// A call waiting on a park another call requested.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sharer {
    pub(super) call: CallId,
    /// The park's generation (a sharer of an older, withdrawn park is
    /// never handed a newer one).
    pub(super) generation: usize,
    /// It waits with a deadline of its own (or none) and withdraws what it
    /// owns when that passes; `false`: an unowned wait (the CPU follower's),
    /// which never owns a park.
    pub(super) may_own: bool,
}

impl PoolEntry {
    /// The plan a withdrawn park returns it to (STARTING-ROLLBACK: a worker
    /// whose start hook has not returned goes back to `Starting`, which
    /// the last-running rule does not count).
    pub(super) fn unparked_plan(&self) -> Plan {
        if self.confirmed {
            Plan::Running
        } else {
            Plan::Starting
        }
    }

    /// REUSE-PARKED: a parked worker a growing `set_workers` brings back
    /// before starting threads: its park settled (no owner waits on it),
    /// its CPU not unplugged and, REUSE-ALLOWED, still one the process may
    /// use (`allowed`, read fresh; `None` if it could not be read), its
    /// thread not ended. REUSE-STARTED: and its start hook returned: a
    /// worker whose hook parked it (a deferred park, owned by nobody) is
    /// still another call's to confirm, and brought back as running it
    /// let the last started worker be parked (a red team: a task then
    /// found no worker, and none ran at all once the hook failed).
    pub(super) fn reusable(&self, unplugged: &UnpluggedCpus, allowed: Option<&[usize]>) -> bool {
        self.confirmed
            && matches!(self.plan, Plan::Parking { owner: None, .. })
            && !self.cpu.is_some_and(|c| unplugged.contains(c))
            && self
                .cpu
                .is_none_or(|c| allowed.is_none_or(|a| a.contains(&c)))
            && !self.ended()
    }

    /// Has its thread ended (stopped, or its body panicked)?
    pub(super) fn ended(&self) -> bool {
        self.worker.state().is_exited()
    }

    /// Will never run again: being stopped by a resize, failed to start,
    /// or its thread ended on its own (derived from the thread's state, so
    /// no pass keeps plans in step with it).
    pub(super) fn gone(&self) -> bool {
        matches!(self.plan, Plan::Stopping | Plan::Failed) || self.ended()
    }

    /// Counted by the last-running-worker rule: planned to run, and alive.
    pub(super) fn counts_as_running(&self) -> bool {
        matches!(self.plan, Plan::Running) && !self.ended()
    }
}

/// The workers and what the runtime was built with. Behind the pool lock,
/// which serializes every controller decision.
pub(super) struct Pool {
    pub(super) entries: Vec<PoolEntry>,
    pub(super) config: Config,
    /// The CPUs the runtime was built to use.
    pub(super) cpus: Vec<usize>,
    /// Ids of workers that were stopped and joined, reused lowest first so
    /// ids (and the metric series labelled with them) stay bounded.
    pub(super) free_ids: BTreeSet<usize>,
    /// CPUs unplugged (and not plugged since) or being unplugged: a growing `set_workers`
    /// starts no worker there.
    pub(super) unplugged: UnpluggedCpus,
    /// The next never-used id.
    pub(super) next_id: usize,
    /// The last [`CallId`] handed out.
    pub(super) last_call: CallId,
    /// FOLLOW-KEEPS-COUNT: the running workers asked for explicitly
    /// (`Builder::workers`, then each successful `set_workers`), which the
    /// CPU follower does not plug beyond; `None`: one per CPU.
    pub(super) asked_count: Option<usize>,
}

impl Pool {
    pub(super) fn new(config: Config, cpus: Vec<usize>) -> Self {
        Pool {
            entries: Vec::new(),
            asked_count: config.workers_given,
            config,
            cpus,
            free_ids: BTreeSet::new(),
            unplugged: UnpluggedCpus::default(),
            next_id: 0,
            last_call: 0,
        }
    }

    /// Workers the last-running-worker rule counts.
    pub(super) fn running(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.counts_as_running())
            .count()
    }

    /// A fresh id for one controller call.
    pub(super) fn new_call(&mut self) -> CallId {
        self.last_call += 1;
        self.last_call
    }

    /// The id a new worker gets: the lowest free one.
    pub(super) fn take_id(&mut self) -> usize {
        match self.free_ids.pop_first() {
            Some(id) => id,
            None => {
                self.next_id += 1;
                self.next_id - 1
            }
        }
    }

    /// Position of worker `id` in `entries`.
    pub(super) fn position(&self, id: usize) -> Option<usize> {
        self.entries.iter().position(|e| e.index == id)
    }

    /// Position of the entry whose thread is `thread`: the calling worker.
    pub(super) fn position_of_thread(&self, thread: ThreadId) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.worker.thread_id() == thread)
    }

    /// The calling worker (if the caller is one) no longer blocks in a
    /// controller call.
    pub(super) fn clear_waiting_of_caller(&mut self) {
        if let Some(at) = self.position_of_thread(std::thread::current().id()) {
            self.entries[at].waiting = false;
        }
    }

    /// Removes worker `id` (joined, or never started) and frees its id.
    pub(super) fn remove(&mut self, id: usize) -> Option<PoolEntry> {
        let at = self.position(id)?;
        let entry = self.entries.remove(at);
        self.free_ids.insert(id);
        Some(entry)
    }
}
