//! Blocking waits on an [`Event`] in the prepare-to-wait shape.
//!
//! Every sleep in this crate, the worker's and the controller's, is the same
//! three steps, the user-space form of `prepare_to_wait(); if (cond) break;
//! schedule();`:
//!
//! 1. check the condition; done if it holds;
//! 2. register a listener (`Event::listen`);
//! 3. check the condition again; done if it holds; otherwise block.
//!
//! A notifier changes the condition *then* calls `Event::notify`, which starts
//! with a `SeqCst` fence; `listen` publishes the listener before step 3 reads.
//! So either step 3 sees the change or the notification finds the listener:
//! no wake-up is lost (P2). This is also how the `parked` completion works:
//! its "done" bit is [`crate::state::COMPLETE`] in the state word, and
//! `complete_all` is setting that bit and notifying every listener.

use event_listener::{Event, Listener};
use std::time::Instant;

/// How long a controller re-checks before it registers and sleeps: about
/// one cross-CPU futex wake-up on a VM, so a worker that answers within
/// that time costs no second wake-up.
#[cfg(not(loom))]
const SPIN_BEFORE_SLEEP: std::time::Duration = std::time::Duration::from_micros(50);

/// How a waiter spends its spin window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Spin {
    /// Busy-spin: on a CPU shared with some other busy thread, a yield can
    /// hand that thread a whole time slice (milliseconds).
    Busy,
    /// Yield between checks: the thread being waited for runs on *this* CPU
    /// and needs it to get anywhere.
    Yield,
}

/// Blocks until `check` returns `Some`, or until `deadline` passes (then
/// returns `None`). Spurious wake-ups just run `check` again.
pub(crate) fn wait_until<R>(
    event: &Event,
    deadline: Option<Instant>,
    spin: Spin,
    mut check: impl FnMut() -> Option<R>,
) -> Option<R> {
    #[cfg(loom)]
    let _ = spin;
    // A controller usually waits for a worker on another CPU that is a few
    // microseconds from done: look a few times before paying for a sleep
    // and a wake-up. (Not under loom: a spin adds nothing to the model.)
    #[cfg(not(loom))]
    {
        // `checked_add`: no `Instant` arithmetic in this crate may panic
        // (an unrepresentable instant means "no limit").
        let now = Instant::now();
        let spin_until = now.checked_add(SPIN_BEFORE_SLEEP).unwrap_or(now);
        let spin_until = deadline.map_or(spin_until, |d| d.min(spin_until));
        loop {
            if let Some(done) = check() {
                return Some(done);
            }
            if Instant::now() >= spin_until {
                break;
            }
            match spin {
                Spin::Busy => {
                    for _ in 0..64 {
                        std::hint::spin_loop();
                    }
                }
                Spin::Yield => std::thread::yield_now(),
            }
        }
    }
    loop {
        if let Some(done) = check() {
            return Some(done);
        }
        let listener = event.listen();
        if let Some(done) = check() {
            return Some(done);
        }
        match deadline {
            None => listener.wait(),
            Some(deadline) => {
                if !wait_deadline(listener, deadline) {
                    return check();
                }
            }
        }
    }
}

/// Waits on `listener` until notified (true) or `deadline` (false).
#[cfg(not(loom))]
fn wait_deadline(listener: event_listener::EventListener, deadline: Instant) -> bool {
    listener.wait_deadline(deadline).is_some()
}

/// Loom cannot model time: a deadline wait is a plain wait there, and the
/// models never pass a deadline.
#[cfg(loom)]
fn wait_deadline(listener: event_listener::EventListener, _deadline: Instant) -> bool {
    listener.wait();
    true
}
