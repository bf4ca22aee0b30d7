//! SHUTDOWN-BLOCK-ON (found by the lifecycle red team, 2026-12-04):
//! `Handle::block_on` called on a thread that the runtime's shutdown waits
//! for — inside the `Drop` of a task's future that the shutdown cancels
//! (on the thread dropping the runtime), or inside an `on_thread_stop`
//! hook while the runtime shuts down — of a future that needs tokio's
//! timer. No worker turns tokio's drivers any more at that point, and
//! tokio's own shutdown comes only after those drops and hooks, so the
//! timer never fired and `drop(rt)` never returned (still blocked after
//! 5 s, for good). On a worker thread the same call panics at once with a
//! clear message; at shutdown it must do the same (and the panic is
//! contained: the drop returns), never hang.
#![cfg(not(loom))]

mod support;

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{wait_until, with_watchdog_for};
use unplug::{Handle, Runtime};

/// How long a drop may take here: an idle 2-worker runtime drops in
/// milliseconds.
const DROP_LIMIT: Duration = Duration::from_secs(5);

/// Runs `f` when dropped.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// `Handle::current().block_on` of a 1 ms tokio sleep, as a string: the
/// value, or the panic it raised.
fn block_on_a_timer() -> String {
    let outcome = std::panic::catch_unwind(|| {
        Handle::current().block_on(async {
            tokio::time::sleep(Duration::from_millis(1)).await;
            "slept"
        })
    });
    match outcome {
        Ok(v) => v.to_owned(),
        Err(p) => format!(
            "panicked: {}",
            p.downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default()
        ),
    }
}

#[test]
fn block_on_of_a_timer_in_a_drop_run_by_the_shutdown_does_not_hang_the_drop() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let outcome = Arc::new(Mutex::new(None::<String>));
    let polled = Arc::new(AtomicBool::new(false));
    let (o, p) = (outcome.clone(), polled.clone());
    rt.spawn(async move {
        let _cleanup = OnDrop(move || *o.lock().unwrap() = Some(block_on_a_timer()));
        p.store(true, SeqCst);
        std::future::pending::<()>().await
    });
    assert!(wait_until(Duration::from_secs(10), || polled.load(SeqCst)));
    // The task waits on nothing: the shutdown drops it on this thread.
    with_watchdog_for(
        "drop(rt) while a cancelled future's Drop block_on's a timer",
        DROP_LIMIT,
        move || drop(rt),
    );
    let outcome = outcome.lock().unwrap().clone();
    let outcome = outcome.expect("the future was dropped");
    // A timer nobody turns cannot fire: the only answer is a panic.
    assert!(
        outcome.starts_with("panicked"),
        "block_on inside the shutdown's drop returned {outcome:?}"
    );
}

/// Two workers whose `on_thread_stop` hooks each `block_on` a timer and
/// record how that ended.
fn stop_hooks_that_block_on_a_timer() -> (Runtime, Arc<Mutex<Vec<String>>>) {
    let outcomes = Arc::new(Mutex::new(Vec::<String>::new()));
    let o = outcomes.clone();
    let rt = Runtime::builder()
        .workers(2)
        .on_thread_stop(move || o.lock().unwrap().push(block_on_a_timer()))
        .build()
        .unwrap();
    (rt, outcomes)
}

#[test]
fn block_on_of_a_timer_in_a_stop_hook_at_shutdown_does_not_hang_the_drop() {
    let (rt, outcomes) = stop_hooks_that_block_on_a_timer();
    assert_eq!(
        rt.block_on(async { unplug::spawn(async { 1 }).await.unwrap() }),
        1
    );
    with_watchdog_for(
        "drop(rt) while the stop hooks block_on a timer",
        DROP_LIMIT,
        move || drop(rt),
    );
    let outcomes = outcomes.lock().unwrap().clone();
    assert_eq!(outcomes.len(), 2, "one stop hook per worker: {outcomes:?}");
    assert!(
        outcomes.iter().all(|o| o.starts_with("panicked")),
        "block_on in a stop hook at shutdown returned {outcomes:?}"
    );
}

#[test]
fn block_on_of_a_timer_in_a_stop_hook_of_a_resize_still_works() {
    // The rule is about shutdown only: a worker stopped by a resize runs
    // its hook while the others keep turning the reactor.
    let (rt, outcomes) = stop_hooks_that_block_on_a_timer();
    let h = rt.handle().clone();
    let report = with_watchdog_for("set_workers(1)", DROP_LIMIT, move || {
        h.set_workers(1).map(|r| r.stopped)
    });
    assert_eq!(report.unwrap().len(), 1);
    assert_eq!(*outcomes.lock().unwrap(), ["slept"]);
    // Leaked on purpose: its remaining stop hook would hang a drop before
    // the fix (the test above covers that).
    std::mem::forget(rt);
}
