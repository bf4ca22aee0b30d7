//! The long-poll monitor: a thread that looks at every worker a few times
//! per threshold and reports, once per poll, a poll that has run past the
//! threshold — counted (`long_polls_total`), logged with the task's id and
//! spawn location, and shown while it lasts (`long_poll_running_seconds`).
//!
//! It also nudges the workers to turn the reactor when none has for a whole
//! period (TURN-NUDGE in `runtime/IO.md`), and wakes a sleeper when work has
//! waited at two looks in a row while one sleeps (RESCUE).
//!
//! It costs the workers nothing beyond the two Relaxed stores of
//! `Slot::current` around each poll (and one Relaxed load of the nudge): it reads each worker's poll count and
//! current task, and a poll is "the same" while both stay put.

use super::clock;
use super::{PollSnapshot, Scheduler};
use std::collections::HashMap;
use std::sync::atomic::Ordering::{Relaxed, Release};
use std::sync::{mpsc, Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the monitor looks, for a threshold: four looks per threshold,
/// between 1 ms and [`STARVED_LOOK`] (the reactor's starvation is judged
/// at each look, whatever the threshold).
pub(crate) fn period(threshold: Duration) -> Duration {
    (threshold / 4).clamp(Duration::from_millis(1), STARVED_LOOK)
}

/// The longest gap between two of the monitor's looks: TURN-NUDGE and
/// ONE-WAITER's hand-over act on a reactor nobody turned for this long, so
/// I/O beside a long poll waits about one to two of these, not a share of
/// the long-poll threshold (a threshold of 1 s looked every 100 ms, and an
/// echo beside a long poll on the role's holder took up to 190 ms).
const STARVED_LOOK: Duration = Duration::from_micros(2_500);

/// MONITOR-DORMANT: how long the runtime must have had nothing to do (no
/// worker running, nothing queued, at every look) before the monitor
/// sleeps until woken.
const QUIET_BEFORE_DORMANT: Duration = Duration::from_millis(100);

/// The running monitor; stopped (and joined) at shutdown.
pub(crate) struct Monitor {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// What the monitor remembers of one worker's current poll.
struct Seen {
    polled: u64,
    key: u64,
    since_ns: u64,
    reported: bool,
}

impl Monitor {
    /// Starts the monitor for `scheduler` (which must have a threshold).
    pub(crate) fn start(scheduler: &Arc<Scheduler>) -> Option<Monitor> {
        let threshold = scheduler.hooks.long_poll_threshold?;
        let weak = Arc::downgrade(scheduler);
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("unplug-long-poll".into())
            .spawn(move || watch(weak, threshold, stopped))
            .ok()?;
        Some(Monitor {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub(crate) fn stop(mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            // MONITOR-DORMANT: a sleeping monitor sees the stop at once.
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

fn watch(scheduler: Weak<Scheduler>, threshold: Duration, stopped: mpsc::Receiver<()>) {
    let mut seen: HashMap<usize, Seen> = HashMap::new();
    let mut work_waited = false;
    let threshold_ns = threshold.as_nanos().min(u64::MAX as u128) as u64;
    let Some(dormancy) = scheduler.upgrade().map(|s| s.dormancy.clone()) else {
        return;
    };
    dormancy.attach_monitor();
    let mut quiet_since: Option<std::time::Instant> = None;
    loop {
        match stopped.recv_timeout(period(threshold)) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let Some(scheduler) = scheduler.upgrade() else {
            return;
        };
        // TURN-NUDGE: nobody turned the reactor for a whole period and no
        // worker waits inside it: the next worker to finish a poll turns
        // it, so timers and I/O wait at most about a period plus one poll
        // while every worker is busy with long polls.
        if let Some(reactor) = scheduler.hooks.reactor.as_ref().and_then(Weak::upgrade) {
            if reactor.starved(period(threshold)) {
                scheduler.turn_wanted.store(true, Relaxed);
                // ONE-WAITER: the role's holder is held elsewhere (a long
                // poll); a sleeper takes the role and waits inside.
                scheduler.free_reactor_waiter(None);
            }
        }
        // RESCUE: work queued at two looks in a row while a worker sleeps
        // (the worker handed the wake-up for it may be held inside a long
        // `tokio::spawn` task in its idle wait): wake a sleeper anyway.
        let work_waits = !scheduler.idle.is_empty() && scheduler.has_work_now();
        if work_waits && work_waited {
            scheduler.rescue_wake();
        }
        work_waited = work_waits;
        let now = clock::now_ns();
        let mut long: Vec<PollSnapshot> = Vec::new();
        {
            let slots = scheduler.slots();
            for (index, slot) in slots.iter().enumerate() {
                // The id with its site, as one pair (CULPRIT-SITE).
                let Some((key, site)) = slot.current.read() else {
                    seen.remove(&index);
                    continue;
                };
                let polled = slot.polled.load(Relaxed);
                let s = seen.entry(index).or_insert(Seen {
                    polled: u64::MAX,
                    key,
                    since_ns: now,
                    reported: false,
                });
                if s.polled != polled || s.key != key {
                    // A new poll: remember when it was first seen.
                    *s = Seen {
                        polled,
                        key,
                        since_ns: now,
                        reported: false,
                    };
                    slot.seen_at_ns.store(now, Relaxed);
                    // Release: publishes the stamp with the poll it belongs
                    // to; pairs with the Acquire loads in `culprit.rs`.
                    slot.seen_polled.store(polled, Release);
                } else if !s.reported && now - s.since_ns >= threshold_ns {
                    s.reported = true;
                    // Exactly the poll decided on: named below even if it
                    // ends (or another starts) before it is looked up.
                    long.push(PollSnapshot::new(index, key, site, polled));
                }
            }
        }
        for snap in long {
            let culprit = scheduler
                .culprit_if_still(&snap)
                .unwrap_or_else(|| scheduler.describe(&snap, threshold));
            log::warn!(
                "unplug: long poll: {culprit} (threshold {threshold:?}); it blocks this worker and any park of it"
            );
            if let Some(events) = &scheduler.hooks.events {
                events.long_poll(&culprit);
            }
        }
        // MONITOR-DORMANT: no worker runs and nothing is queued: nothing
        // to watch until a worker runs or work is pushed (either wakes
        // this thread). It sleeps holding no count of the scheduler, and
        // only once the runtime has been quiet for `QUIET_BEFORE_DORMANT`:
        // waking it costs the waker a system call and puts a third thread
        // on the CPUs, which a runtime that is busy in short bursts (a
        // round of spawns every few milliseconds) would pay every burst.
        let idle = || !scheduler.has_work();
        quiet_since = match dormancy.is_quiet(idle) {
            true => quiet_since.or_else(|| Some(std::time::Instant::now())),
            false => None,
        };
        let quiet_long = quiet_since.is_some_and(|since| since.elapsed() >= QUIET_BEFORE_DORMANT);
        if quiet_long && dormancy.may_sleep(idle) {
            drop(scheduler);
            work_waited = false;
            quiet_since = None;
            dormancy.sleep(|| {
                matches!(
                    stopped.try_recv(),
                    Err(mpsc::TryRecvError::Disconnected) | Ok(())
                )
            });
        }
    }
}
