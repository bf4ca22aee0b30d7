//! MONITOR-DORMANT (`runtime/SCHEDULER.md`): the long-poll monitor sleeps
//! while no worker runs and nothing is queued, instead of looking every
//! period (at the default threshold, 400 wake-ups a second of a process
//! whose runtime has nothing to do). It is woken by the first worker that
//! starts running again (from an idle wait, a park or its start) and by
//! every push from outside the workers, which is how work reaches a pool
//! whose workers all wait.
//!
//! Not part of the loom models (the monitor is a measurement thread): plain
//! std atomics, the same publish-then-look pairing as the idle set's. A
//! worker counts itself running, then looks at `dormant`; the monitor sets
//! `dormant`, then looks at the count and the queues again (SeqCst on both
//! sides): either the monitor sees the worker, or the worker sees the
//! monitor asleep and wakes it.

use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::OnceLock;
use std::thread::Thread;
use std::time::Duration;

/// The longest a dormant monitor sleeps without being woken: a safety net
/// (a missed wake-up would otherwise leave long polls unreported for good);
/// one look a second is what an idle runtime costs.
pub(crate) const DORMANT_AT_MOST: Duration = Duration::from_secs(1);

/// A value on a cache line (two, for the adjacent-line prefetcher) of its
/// own.
#[repr(align(128))]
struct Line<T>(T);

/// Which workers run, and whether the monitor sleeps.
pub(crate) struct Dormancy {
    /// Workers started or resumed and not in an idle wait, a park or
    /// stopped. Written at every idle wait's start and end.
    running: Line<AtomicUsize>,
    /// The monitor sleeps, or is about to, until a worker runs or work is
    /// pushed from outside. Read by every push from outside the workers:
    /// on a line of its own, so those reads do not miss on the count's
    /// writes.
    dormant: Line<AtomicBool>,
    /// The monitor's thread (set by the monitor itself, before it can sleep).
    monitor: OnceLock<Thread>,
}

impl Dormancy {
    pub(crate) fn new() -> Self {
        Dormancy {
            running: Line(AtomicUsize::new(0)),
            dormant: Line(AtomicBool::new(false)),
            monitor: OnceLock::new(),
        }
    }

    /// A worker starts running: at its start, back from a park, at the end
    /// of an idle wait.
    pub(crate) fn started_running(&self) {
        // SeqCst: pairs with the monitor's store of `dormant` and its
        // re-check of the count in `may_sleep`.
        self.running.0.fetch_add(1, SeqCst);
        self.wake_monitor();
    }

    /// A worker stops running: into an idle wait, leaving for a park or a
    /// stop.
    pub(crate) fn stopped_running(&self) {
        self.running.0.fetch_sub(1, SeqCst);
    }

    /// Wakes the monitor if it sleeps. Called after the caller published
    /// what the monitor must see (a running worker, a pushed task) and a
    /// SeqCst operation or fence.
    pub(crate) fn wake_monitor(&self) {
        // SeqCst: pairs with the store in `may_sleep` (a load first: the
        // swap, a write every pusher would make, only when it sleeps).
        if self.dormant.0.load(SeqCst) && self.dormant.0.swap(false, SeqCst) {
            if let Some(monitor) = self.monitor.get() {
                monitor.unpark();
            }
        }
    }

    /// The monitor's thread: called by the monitor itself at its start.
    pub(crate) fn attach_monitor(&self) {
        let _ = self.monitor.set(std::thread::current());
    }

    /// Does nothing run, and does `idle` (nothing queued) hold? (A look
    /// only; [`may_sleep`](Self::may_sleep) decides.)
    pub(crate) fn is_quiet(&self, idle: impl Fn() -> bool) -> bool {
        self.running.0.load(SeqCst) == 0 && idle()
    }

    /// The monitor's side, once [`is_quiet`](Self::is_quiet) has held long
    /// enough: marks it dormant, and says whether it is still quiet (then
    /// it should call [`sleep`](Self::sleep); false leaves it awake).
    pub(crate) fn may_sleep(&self, idle: impl Fn() -> bool) -> bool {
        // Publish, then look again: pairs with `started_running` (its RMW
        // of the count, then its load of `dormant`) and with a pusher's
        // fence before `wake_monitor`.
        self.dormant.0.store(true, SeqCst);
        fence(SeqCst);
        if self.is_quiet(idle) {
            return true;
        }
        self.dormant.0.store(false, SeqCst);
        false
    }

    /// Sleeps until woken, `stopped()` or [`DORMANT_AT_MOST`] passes.
    pub(crate) fn sleep(&self, stopped: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + DORMANT_AT_MOST;
        // SeqCst: pairs with the swap in `wake_monitor`.
        while self.dormant.0.load(SeqCst) && !stopped() {
            let now = std::time::Instant::now();
            if now >= deadline {
                break;
            }
            std::thread::park_timeout(deadline - now);
        }
        self.dormant.0.store(false, SeqCst);
    }
}
