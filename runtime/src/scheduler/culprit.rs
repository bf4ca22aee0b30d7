//! Who holds a worker: the task inside the poll that a park, an unplug or
//! the long-poll monitor is waiting on.

use super::clock;
use super::slot::NOT_POLLING;
use super::Scheduler;
use crate::task::site::Site;
use crate::task::TaskId;
use std::panic::Location;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::time::{Duration, Instant};

/// A task found inside one long poll: what a slow park, a timed-out
/// unplug and the long-poll log name.
///
/// `task` is always set today (an `Option` so that a culprit whose task
/// cannot be named could still be reported); `spawned_at` is `None` when
/// the poll ended just as the worker was looked at (CULPRIT-SITE in
/// `scheduler/current_poll.rs`).
///
/// ```
/// # fn show(c: &unplug::PollCulprit) {
/// println!("{c}"); // "task 42 (spawned at src/main.rs:10:5) on worker 1, in one poll for 812ms"
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollCulprit {
    /// The worker it holds.
    pub worker: usize,
    /// The task (the one whose poll it is, even if it finished and its
    /// last run is still under way).
    pub task: Option<TaskId>,
    /// Where it was spawned (`unplug::spawn`, `Handle::spawn` and
    /// `Runtime::spawn` are `#[track_caller]`); `None` if the poll ended
    /// as it was looked at.
    pub spawned_at: Option<&'static Location<'static>>,
    /// How long that one poll had run when it was looked at (at least:
    /// measured from when the poll was first seen).
    pub running_for: Duration,
}

impl std::fmt::Display for PollCulprit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.task, self.spawned_at) {
            (Some(task), Some(at)) => write!(f, "task {task} (spawned at {at})")?,
            (Some(task), None) => write!(f, "task {task} (its poll ended as it was looked at)")?,
            _ => f.write_str("an unnamed task")?,
        }
        write!(
            f,
            " on worker {}, in one poll for {:?}",
            self.worker, self.running_for
        )
    }
}

/// The poll a worker was inside at some moment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PollSnapshot {
    worker: usize,
    /// The id of the task in the poll.
    key: u64,
    /// Where it was spawned (`Slot::current_at`).
    site: Site,
    polled: u64,
    at: Instant,
}

impl PollSnapshot {
    /// The poll of `worker` of task `key` (spawned at `site`, read with it
    /// by `CurrentPoll::read`) and poll count `polled`, seen now.
    pub(crate) fn new(worker: usize, key: u64, site: Site, polled: u64) -> Self {
        PollSnapshot {
            worker,
            key,
            site,
            polled,
            at: Instant::now(),
        }
    }

    /// The spawn site read with the id.
    fn spawned_at(&self) -> Option<&'static Location<'static>> {
        crate::task::site::resolve(self.site)
    }
}

impl Scheduler {
    /// How long `slot`'s current poll has run, if it is the poll the
    /// monitor last saw and that long is past the threshold (else zero):
    /// `long_poll_running_seconds`.
    pub(crate) fn long_poll_running(&self, slot: &super::Slot) -> Duration {
        let Some(threshold) = self.hooks.long_poll_threshold else {
            return Duration::ZERO;
        };
        // Acquire: pairs with the monitor's Release store, so the stamp
        // read next is the one of the poll matched here.
        let seen = slot.current.id() != NOT_POLLING
            && slot.seen_polled.load(Acquire) == slot.polled.load(Relaxed);
        let running = clock::since_ns(slot.seen_at_ns.load(Relaxed));
        if seen && running >= threshold {
            running
        } else {
            Duration::ZERO
        }
    }

    /// The poll worker `index` is inside now, if any.
    pub(crate) fn poll_snapshot(&self, index: usize) -> Option<PollSnapshot> {
        let slots = self.slots();
        let slot = slots.get(index)?;
        let (key, site) = slot.current.read()?;
        Some(PollSnapshot::new(
            index,
            key,
            site,
            slot.polled.load(Relaxed),
        ))
    }

    /// The culprit of `snap` if that same poll is still running, with how
    /// long it has run: at least since `snap` was taken, and since the
    /// long-poll monitor first saw it if that is earlier.
    pub(crate) fn culprit_if_still(&self, snap: &PollSnapshot) -> Option<PollCulprit> {
        let (still, seen) = {
            let slots = self.slots();
            let slot = slots.get(snap.worker)?;
            let still = slot.current.id() == snap.key && slot.polled.load(Relaxed) == snap.polled;
            // Acquire: as in `long_poll_running`.
            let seen = (slot.seen_polled.load(Acquire) == snap.polled)
                .then(|| clock::since_ns(slot.seen_at_ns.load(Relaxed)));
            (still, seen)
        };
        still.then_some(())?;
        let running_for = snap.at.elapsed().max(seen.unwrap_or_default());
        Some(self.describe(snap, running_for))
    }

    /// The culprit of `snap` with `running_for` as given (the poll may
    /// have ended since).
    pub(crate) fn describe(&self, snap: &PollSnapshot, running_for: Duration) -> PollCulprit {
        PollCulprit {
            worker: snap.worker,
            task: Some(TaskId::from_u64(snap.key)),
            spawned_at: snap.spawned_at(),
            running_for,
        }
    }
}
