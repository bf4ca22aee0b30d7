//! The worker's state word: one `usize` holding every flag of the park
//! protocol plus the park generation.
//!
//! Each bit below says who sets it, who clears it, and which combinations
//! cannot happen. `debug_check` asserts the impossible combinations; the loom
//! models run with it on. See `PROTOCOL.md` for the transitions.

/// A park has been requested (Linux: `KTHREAD_SHOULD_PARK`).
///
/// Set by `park()`. Cleared, together with [`COMPLETE`] and with the
/// generation bumped, by `unpark()` and by `stop()`. The worker only reads it.
pub(crate) const SHOULD_PARK: usize = 1 << 0;

/// A stop has been requested (Linux: `KTHREAD_SHOULD_STOP`).
///
/// Set by `stop()`, never cleared. Once set, `park()` is refused.
pub(crate) const SHOULD_STOP: usize = 1 << 1;

/// The worker is inside `parkme()` (Linux: `TASK_PARKED`).
///
/// Set and cleared by the worker thread alone: this is the "special state" of
/// seed 002. A wake-up meant for another sleep (a work notification) never
/// touches it, so it cannot be overwritten by a stray waker.
pub(crate) const PARKED: usize = 1 << 2;

/// The `parked` completion for the current generation has fired.
///
/// Set by the worker inside `parkme()`, by compare-and-swap, only while
/// [`SHOULD_PARK`] and [`PARKED`] are set and the generation is the one it
/// read. Cleared (re-armed) by `unpark()`/`stop()`.
///
/// Impossible: `COMPLETE` without both `SHOULD_PARK` and `PARKED`.
pub(crate) const COMPLETE: usize = 1 << 3;

/// The inactivity marker: the worker is about to block, or is blocked, in
/// `parkme()`'s sleep.
///
/// Set by the worker immediately before its blocking call, cleared right after
/// it returns. Impossible: `SLEEPING` without `PARKED`.
pub(crate) const SLEEPING: usize = 1 << 4;

/// The worker is in its idle wait (registered as a waiter for work).
///
/// Set and cleared by the worker. Impossible: `IDLE` together with `PARKED`.
pub(crate) const IDLE: usize = 1 << 5;

/// The worker's body has returned or panicked; the thread is finishing.
///
/// Set once by the thread itself, never cleared. Once set, `PARKED`,
/// `SLEEPING`, `IDLE` and `COMPLETE` are clear for good.
pub(crate) const EXITED: usize = 1 << 6;

/// The worker's body panicked (it did not return a value).
///
/// Set once by the thread itself, together with [`EXITED`] in the same
/// compare-and-swap (`mark_exited` after a caught panic, or
/// `Protocol::mark_failed`), never cleared. Decoded as
/// `WorkerState::Failed`; every operation that refuses an exited worker
/// refuses a failed one the same way. Impossible: `FAILED` without
/// `EXITED`.
pub(crate) const FAILED: usize = 1 << 7;

/// The park generation lives above the flags. It is bumped by every
/// `unpark()` or `stop()` that withdraws a park request, so a `park()` caller
/// can tell "my request was completed" from "my request was withdrawn and a
/// newer one is pending" (two controllers, P5/P8).
pub(crate) const GEN_SHIFT: u32 = 8;

/// One step of the park generation.
pub(crate) const GEN_ONE: usize = 1 << GEN_SHIFT;

/// The generation part of a state word.
#[inline]
pub(crate) fn generation(state: usize) -> usize {
    state >> GEN_SHIFT
}

/// Asserts (in debug builds and under loom) the combinations that cannot
/// happen, naming the state that was seen.
#[inline]
pub(crate) fn debug_check(state: usize) {
    debug_assert!(
        state & COMPLETE == 0 || state & (SHOULD_PARK | PARKED) == SHOULD_PARK | PARKED,
        "COMPLETE without SHOULD_PARK|PARKED: {}",
        Decoded(state)
    );
    debug_assert!(
        state & SLEEPING == 0 || state & PARKED != 0,
        "SLEEPING without PARKED: {}",
        Decoded(state)
    );
    debug_assert!(
        state & (IDLE | PARKED) != IDLE | PARKED,
        "IDLE and PARKED together: {}",
        Decoded(state)
    );
    debug_assert!(
        state & EXITED == 0 || state & (PARKED | SLEEPING | IDLE | COMPLETE) == 0,
        "EXITED with a live flag: {}",
        Decoded(state)
    );
    debug_assert!(
        state & FAILED == 0 || state & EXITED != 0,
        "FAILED without EXITED: {}",
        Decoded(state)
    );
}

/// Formats a state word as its flag names and generation, for panics and
/// watchdog reports.
pub(crate) struct Decoded(pub(crate) usize);

impl std::fmt::Display for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const NAMES: [(usize, &str); 8] = [
            (SHOULD_PARK, "SHOULD_PARK"),
            (SHOULD_STOP, "SHOULD_STOP"),
            (PARKED, "PARKED"),
            (COMPLETE, "COMPLETE"),
            (SLEEPING, "SLEEPING"),
            (IDLE, "IDLE"),
            (EXITED, "EXITED"),
            (FAILED, "FAILED"),
        ];
        let mut first = true;
        for (bit, name) in NAMES {
            if self.0 & bit != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("RUNNING")?;
        }
        write!(f, " gen={}", generation(self.0))
    }
}

/// What a worker is doing, as seen from outside.
///
/// `#[non_exhaustive]`: match with a wildcard arm (or use
/// [`is_exited`](WorkerState::is_exited)); states may be added, as
/// [`Failed`](WorkerState::Failed) was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WorkerState {
    /// Running its body, no request pending.
    Running,
    /// Asleep (or going to sleep) in its idle wait, no request pending.
    Idle,
    /// A park was requested and the worker has not completed `parked` yet.
    Parking,
    /// `parked` has completed: the worker is in `parkme()` and runs none
    /// of its body until it is unparked or stopped, only the `on_park`
    /// callback the body passed to
    /// [`parkme_counted`](crate::WorkerContext::parkme_counted), which runs
    /// right after the completion. Inactive (off the CPU, or committed to
    /// its sleep) is what [`Worker::park`](crate::Worker::park) waits for
    /// on top of this.
    Parked,
    /// A stop was requested and the body has not returned yet.
    Stopping,
    /// The body has returned. (A [`Protocol`](crate::Protocol) whose
    /// owner calls only `mark_exited` also shows a panicked body here.)
    Stopped,
    /// The body panicked; the thread has finished. Exited like
    /// [`Stopped`](Self::Stopped): park, unpark and re-pin are refused as
    /// stopped, and `stop()` returns the panic.
    Failed,
}

impl WorkerState {
    /// The body has finished, by returning ([`Stopped`](Self::Stopped)) or
    /// by panicking ([`Failed`](Self::Failed)).
    pub fn is_exited(self) -> bool {
        matches!(self, WorkerState::Stopped | WorkerState::Failed)
    }

    /// Decodes a state word.
    pub(crate) fn from_word(state: usize) -> Self {
        if state & FAILED != 0 {
            WorkerState::Failed
        } else if state & EXITED != 0 {
            WorkerState::Stopped
        } else if state & SHOULD_STOP != 0 {
            WorkerState::Stopping
        } else if state & COMPLETE != 0 {
            WorkerState::Parked
        } else if state & SHOULD_PARK != 0 {
            WorkerState::Parking
        } else if state & IDLE != 0 {
            WorkerState::Idle
        } else {
            WorkerState::Running
        }
    }

    /// A short lower-case name, as used in metric labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Running => "running",
            WorkerState::Idle => "idle",
            WorkerState::Parking => "parking",
            WorkerState::Parked => "parked",
            WorkerState::Stopping => "stopping",
            WorkerState::Stopped => "stopped",
            WorkerState::Failed => "failed",
        }
    }
}

impl std::fmt::Display for WorkerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
