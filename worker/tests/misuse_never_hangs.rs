//! Misuse of the public API never hangs a caller past its deadline, and
//! is answered with a typed error. Found by a red team (2026-12-04), each
//! failing on every run before its fix:
//! - EXIT-BY-RUNNER: `Protocol::mark_exited` (public)
//!   called on a live worker's protocol hid the body from the stop request,
//!   and `stop_timeout(100 ms)` then joined for ever (in a debug build the
//!   word's check panicked: an exited worker still idling).
//! - TICKET-OWNER: a `ParkTicket` did not say which worker issued it:
//!   `wait_park` on worker B with worker A's ticket waited for ever for a
//!   request B never had (with a deadline it withdrew B's own).
#![cfg(not(loom))]

mod support;

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{idle_body, with_watchdog};
use unplug_worker::{ParkError, Worker};

/// Runs `f` on a thread; `None` if it has not returned within `secs`
/// (the thread is then leaked: the hang is the finding).
fn within<R: Send + 'static>(secs: u64, f: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs)).ok()
}

/// `Protocol::mark_exited` is public. Called by a controller on a live
/// `Worker`'s protocol, it set EXITED while the body ran: `stop()` could
/// not request the stop (a no-op on EXITED) and joined for ever, and even
/// `stop_timeout` did not keep its deadline. Only the worker's own thread
/// may mark it exited now (EXIT-BY-RUNNER); the stop then works as usual.
#[test]
fn a_misplaced_mark_exited_changes_nothing_and_the_stop_works() {
    let worker = Arc::new(Worker::builder().spawn(idle_body).unwrap());
    worker.protocol().mark_exited();
    worker.protocol().mark_failed();
    assert!(
        !worker.state().is_exited(),
        "{:?} while the body runs",
        worker.state()
    );
    let w = worker.clone();
    let r = within(5, move || {
        let t = Instant::now();
        let r = w.stop_timeout(Duration::from_millis(2_000));
        (format!("{r:?}"), t.elapsed())
    });
    let (r, took) = r.expect("stop_timeout returned within 5 s");
    assert_eq!(r, "Ok(())");
    assert!(took < Duration::from_secs(2), "took {took:?}");
}

/// A ParkTicket carries no worker identity: one from another worker with
/// the same generation (0) makes wait_park on a running worker wait for a
/// request that does not exist (forever without a deadline), and, with a
/// deadline, its "withdrawal" returns Timeout.
#[test]
fn waiting_on_another_workers_ticket_is_refused() {
    let a = Arc::new(Worker::builder().spawn(idle_body).unwrap());
    let b = Arc::new(Worker::builder().spawn(idle_body).unwrap());
    let ticket_a = a.request_park().unwrap();
    let bb = b.clone();
    let r = within(3, move || format!("{:?}", bb.wait_park(ticket_a, None)));
    let _ = a.unpark();
    let (a2, b2) = (a.clone(), b.clone());
    with_watchdog("stop", move || {
        let _ = a2.stop();
        let _ = b2.stop();
    });
    assert_eq!(
        r.as_deref(),
        Some(format!("{:?}", Err::<(), _>(ParkError::ForeignTicket)).as_str()),
        "wait_park(None) on worker B with worker A's ticket"
    );
}
