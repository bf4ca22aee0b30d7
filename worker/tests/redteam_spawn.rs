//! Red team, spawning: `Builder::protocol` given a protocol that is not
//! fresh. (Alone in its test binary: it counts this process's threads.)
#![cfg(not(loom))]

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use support::idle_body;
use unplug_worker::{Protocol, Worker, WorkerState};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Spawns on `protocol`; returns whether it panicked, whether it was
/// refused, and whether the new body ran. A spawn that was accepted is
/// stopped again under a deadline (`stop_timeout`), so a hang fails.
fn spawn_on(protocol: &Arc<Protocol>) -> (bool, bool, bool) {
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let spawned = catch_unwind(AssertUnwindSafe(|| {
        Worker::builder()
            .protocol(protocol.clone())
            .spawn(move |ctx| {
                r.store(true, SeqCst);
                idle_body(ctx)
            })
    }));
    match spawned {
        Err(_) => (true, false, ran.load(SeqCst)),
        Ok(Err(_)) => (false, true, ran.load(SeqCst)),
        Ok(Ok(worker)) => {
            let stopped = worker.stop_timeout(support::DEADLINE / 3);
            assert!(
                stopped.is_ok(),
                "the second worker did not stop: {stopped:?}"
            );
            (false, false, ran.load(SeqCst))
        }
    }
}

/// "The protocol must be fresh": one that another worker has used (its
/// body returned: `Stopped`) or is using (alive) is refused with a typed
/// error before any thread starts. Before the fix, the first case tripped
/// a `debug_assert!` inside `spawn` (a panic on bad input, where this crate
/// promises a typed error); in a release build it started a worker whose
/// `stop()` never returned (`stop_timeout` of 2 s: `Timeout`), since a stop
/// request on an `EXITED` word is a no-op and the old word had no
/// `SHOULD_STOP`. The second case went unnoticed: two threads ran one
/// protocol.
#[test]
fn spawning_on_a_protocol_another_worker_used_is_refused_with_a_typed_error() {
    // A body that returns by itself: its word is EXITED without
    // SHOULD_STOP.
    let first = Worker::builder().spawn(|_ctx| ()).unwrap();
    let live = Worker::builder().spawn(idle_body).unwrap();
    let used = first.protocol().clone();
    support::wait_for("the first body to return", || first.state().is_exited());
    first.stop().unwrap();
    assert_eq!(used.state(), WorkerState::Stopped);
    let before = threads();

    let (panicked, refused, ran) = spawn_on(&used);
    assert!(!panicked, "spawn on a stopped worker's protocol panicked");
    assert!(
        refused && !ran,
        "spawn on a stopped worker's protocol was accepted"
    );

    // Idle before the attempt (a loaded machine may not have run it that
    // far yet), so that the attempt is what would move it.
    support::wait_for("the live worker to go idle", || {
        live.state() == WorkerState::Idle
    });
    let (panicked, refused, ran) = spawn_on(live.protocol());
    assert!(!panicked, "spawn on a live worker's protocol panicked");
    assert!(
        refused && !ran,
        "spawn on a live worker's protocol was accepted"
    );

    assert_eq!(threads(), before, "a refused spawn left a thread behind");
    assert_eq!(live.state(), WorkerState::Idle);
    live.stop().unwrap();
    // A fresh protocol is still accepted, once.
    let fresh = Arc::new(Protocol::new());
    let w = Worker::builder()
        .protocol(fresh.clone())
        .spawn(idle_body)
        .unwrap();
    let (panicked, refused, _) = spawn_on(&fresh);
    assert!(!panicked && refused, "a protocol was run by two workers");
    w.stop().unwrap();
}
