//! What controller calls report, and snapshots of the pool.

use crate::scheduler::PollCulprit;
use std::time::Duration;
use unplug_worker::{ParkTimings, WorkerState};

/// What a park-type controller call did.
#[derive(Clone, Debug, Default)]
pub struct ParkReport {
    /// Workers parked (and inactive) when the call returned.
    pub parked: Vec<usize>,
    /// Workers whose park was requested from their own thread: each parks
    /// as soon as the poll that made the call returns.
    pub deferred: Vec<usize>,
    /// Workers whose park a concurrent call withdrew before it completed
    /// (an `unpark_worker`, a `plug_cpu`, a resize): that later call's
    /// decision stands, and these workers run.
    pub superseded: Vec<usize>,
    /// Tasks the parked workers handed to the others.
    pub tasks_migrated: u64,
    /// The polls that held a park of this call past the long-poll
    /// threshold ([`Builder::long_poll_threshold`](crate::Builder::long_poll_threshold)):
    /// the task each worker was inside when its park was requested, with
    /// `running_for` the time the park then took.
    pub slow_polls: Vec<PollCulprit>,
    /// Each park's measured latencies (and which evidence of inactivity
    /// each used: [`ParkTimings::inactive_by`]).
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
    /// Parked workers (on CPUs not unplugged) brought back before any was
    /// started.
    pub unparked: Vec<usize>,
    /// Workers parked, then stopped.
    pub stopped: Vec<usize>,
    /// Tasks the stopped workers handed to the others.
    pub tasks_migrated: u64,
}

/// One worker, as [`Handle::workers`](crate::Handle::workers) saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerInfo {
    /// The worker's id (stable for its lifetime).
    pub id: usize,
    /// The CPU it is pinned to, or its home CPU if the runtime does not pin.
    pub cpu: Option<usize>,
    /// Whether it is actually pinned to `cpu`.
    pub pinned: bool,
    /// What it is doing.
    pub state: WorkerState,
    /// Its OS thread id.
    pub os_tid: i32,
    /// Tasks polled under this id. Counts are kept per worker id: a
    /// worker started under the id of a stopped one (ids are reused,
    /// lowest first) continues its counts, so they never go down (as the
    /// per-worker metric series).
    pub tasks_polled: u64,
    /// Times a worker under this id came back from a park (carried over
    /// to a reused id, as `tasks_polled`).
    pub resumes: u64,
    /// This thread's last unpark latency: from the unpark request to it
    /// running (zero until it is first unparked).
    pub last_unpark_latency: Duration,
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
    /// Times the CPU follower changed the pool (counted as it begins a
    /// change, so a change seen is a change counted).
    pub follow_changes: u64,
}
