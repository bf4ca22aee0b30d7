//! One worker's public face: what other threads may touch.

pub(crate) use super::current_poll::{CurrentPoll, NOT_POLLING};
use crate::loom::deque::{LocalQueue, Stealer};
use crate::loom::regress::{self, Regression};
use crate::loom::{AtomicPtr, AtomicU64, Ordering};
use crate::task::Task;
use std::ptr::{null_mut, NonNull};
use unplug_worker::Notifier;

/// A worker's three queues, owned by its thread (`Local`).
pub(crate) struct Queues {
    /// The run queue: tasks displaced from the LIFO slot, injector batches,
    /// steals.
    pub(crate) run: LocalQueue<Task>,
    /// YIELD-LAST: tasks that woke themselves while running (a yield). The
    /// owner runs them once its run queue, the injector and the other
    /// workers' backlogs are served, a round at a time (`Local::next_round`),
    /// and every 61 ticks at the latest. Stealable like the run queue, so a
    /// yielded task is never stranded behind a long poll (REACHABLE).
    pub(crate) yielded: LocalQueue<Task>,
    /// TURN-WOKEN-NEXT: tasks a busy reactor turn of this worker woke (a
    /// timer, a socket's reader). The owner runs them ahead of its run
    /// queue, alternating with it while both hold tasks. Stealable like the
    /// others (REACHABLE), first of the three.
    pub(crate) woken: LocalQueue<Task>,
}

impl Queues {
    pub(crate) fn new() -> Self {
        Queues {
            run: LocalQueue::new_fifo(),
            yielded: LocalQueue::new_fifo(),
            woken: LocalQueue::new_fifo(),
        }
    }
}

/// A worker's stealers, LIFO slot, notifier and counters.
pub(crate) struct Slot {
    /// Steals from the worker's run queue.
    pub(crate) stealer: Stealer<Task>,
    /// Steals from the worker's queue of yielded tasks.
    pub(crate) yielded: Stealer<Task>,
    /// Steals from the worker's queue of tasks its busy turns woke.
    pub(crate) woken: Stealer<Task>,
    /// The LIFO slot: the task the worker runs next. Any thread may take it;
    /// an idle worker takes it only once the owner has stayed inside one
    /// poll for the grace period (LIFO-GRACE in `local.rs`), so a task put
    /// here is never stranded behind a long poll and a short chain is not
    /// pulled away from its warm cache.
    lifo: AtomicPtr<()>,
    /// Wakes the worker's idle wait.
    pub(crate) notifier: Notifier,
    /// Polls this worker has started (also the owner's progress mark for
    /// LIFO-GRACE). Written by the owner only (OWNER-COUNTS: a load and a
    /// store, no RMW); read by anyone.
    pub(crate) polled: AtomicU64,
    /// Tasks this worker handed to the others when it parked or stopped.
    pub(crate) migrated: AtomicU64,
    /// Successful steals by this worker.
    pub(crate) steals: AtomicU64,
    /// Idle sleeps entered, and those ended by work.
    pub(crate) idle_sleeps: AtomicU64,
    pub(crate) wakeups: AtomicU64,
    /// The last unpark latency (request → running), in nanoseconds.
    pub(crate) last_unpark_ns: AtomicU64,
    /// Times this worker came back from a park.
    pub(crate) resumes: AtomicU64,
    /// The task being polled (its id and spawn site), for culprits.
    pub(crate) current: CurrentPoll,
    /// Written by the long-poll monitor: the `polled` count of the poll it
    /// last saw running, and when it first saw it (`clock::now_ns`).
    pub(crate) seen_polled: std::sync::atomic::AtomicU64,
    pub(crate) seen_at_ns: std::sync::atomic::AtomicU64,
}

impl Slot {
    pub(crate) fn new(queues: &Queues, notifier: Notifier) -> Self {
        Slot {
            stealer: queues.run.stealer(),
            yielded: queues.yielded.stealer(),
            woken: queues.woken.stealer(),
            lifo: AtomicPtr::new(null_mut()),
            notifier,
            polled: AtomicU64::new(0),
            migrated: AtomicU64::new(0),
            steals: AtomicU64::new(0),
            idle_sleeps: AtomicU64::new(0),
            wakeups: AtomicU64::new(0),
            last_unpark_ns: AtomicU64::new(0),
            resumes: AtomicU64::new(0),
            current: CurrentPoll::new(),
            seen_polled: std::sync::atomic::AtomicU64::new(0),
            seen_at_ns: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Starts this (new) slot's counters where `old`'s, the slot of the
    /// stopped worker whose index it reuses, ended.
    pub(crate) fn carry_counters_from(&self, old: &Slot) {
        for (new, old) in [
            (&self.polled, &old.polled),
            (&self.migrated, &old.migrated),
            (&self.steals, &old.steals),
            (&self.idle_sleeps, &old.idle_sleeps),
            (&self.wakeups, &old.wakeups),
            (&self.resumes, &old.resumes),
        ] {
            new.store(old.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    /// Puts `task` in the LIFO slot; returns the task it displaced.
    pub(crate) fn put_lifo(&self, task: Task) -> Option<Task> {
        let new = task.into_raw().as_ptr();
        // AcqRel: Release publishes the task to whoever takes it; Acquire
        // takes ownership of the displaced one. Pairs with `take_lifo`.
        let old = self.lifo.swap(new, Ordering::AcqRel);
        // SAFETY: every non-null pointer in `lifo` came from
        // `Runnable::<TaskMeta>::into_raw`, and the swap made us its only
        // owner.
        NonNull::new(old).map(|p| unsafe { Task::from_raw(p) })
    }

    /// Takes the task in the LIFO slot, if any.
    pub(crate) fn take_lifo(&self) -> Option<Task> {
        if !self.has_lifo() {
            return None;
        }
        // Acquire: pairs with the Release half of `put_lifo`'s swap.
        let old = self.lifo.swap(null_mut(), Ordering::AcqRel);
        // SAFETY: as in `put_lifo`: the pointer came from `into_raw` and the
        // swap transferred ownership to us alone.
        NonNull::new(old).map(|p| unsafe { Task::from_raw(p) })
    }

    /// Is a task in the LIFO slot? (A hint: it may be taken at any time.)
    pub(crate) fn has_lifo(&self) -> bool {
        !self.lifo.load(Ordering::Relaxed).is_null()
    }

    /// Tasks in the worker's three queues (a hint).
    pub(crate) fn queued(&self) -> usize {
        self.woken.len() + self.stealer.len() + self.yielded_visible()
    }

    /// Yielded tasks the other workers may see (all of them, unless the
    /// loom control makes the list private).
    pub(crate) fn yielded_visible(&self) -> usize {
        if regress::on(Regression::YieldedKeptPrivate) {
            return 0;
        }
        self.yielded.len()
    }

    /// Anything queued here that another worker could take?
    pub(crate) fn has_work(&self) -> bool {
        !self.woken.is_empty()
            || !self.stealer.is_empty()
            || self.yielded_visible() > 0
            || self.has_lifo()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        drop(self.take_lifo());
    }
}

// `Slot` is Send + Sync without help: the LIFO pointer lives in an
// `AtomicPtr`, and it only ever holds a `Runnable<TaskMeta>`, which is
// Send + Sync itself (checked below).
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Slot>();
    send_sync::<Task>();
};
