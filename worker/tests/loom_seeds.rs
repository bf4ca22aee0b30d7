//! The two seed bugs, kept as loom models that must be caught, each beside
//! its fixed counterpart that must pass. They prove the harness can fail:
//! if loom stopped finding these, the models of the fixed protocol would
//! prove nothing.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p unplug-worker --release --test loom_seeds`
#![cfg(loom)]

mod loom_support;

use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::thread;
use loom_support::{model, model_must_fail, spawn_idle_worker, Trace};

use std::sync::Arc;
use unplug_worker::{Protocol, WorkerContext};

/// Seed 000, before the fix: `io_sq_thread`'s loop runs while
/// `!kthread_should_stop() && !ctx->sqo_stop`, checks only should_stop
/// after `prepare_to_wait`, and parks only `if (kthread_should_park())`
/// after the loop. Built from the crate's real primitives.
fn unfixed_sqpoll_body(ctx: &WorkerContext<'_>, sqo_stop: &AtomicBool) {
    while !ctx.should_stop() && !sqo_stop.load(SeqCst) {
        // No submissions in this model: go idle.
        let waiter = ctx.prepare_to_wait();
        if ctx.should_stop() {
            break; // BUG (race 1): the park flag is not checked here
        }
        waiter.sleep();
    }
    if ctx.should_park() {
        ctx.parkme(); // BUG (race 2): skipped if the park comes a moment later
    }
    // The thread returns without marking the protocol exited, as a kthread
    // returning from its function leaves `parked` uncompleted.
}

/// Seed 000, after the fix: the loop leaves on should_park alone and parks
/// unconditionally (P1).
fn fixed_sqpoll_body(ctx: &WorkerContext<'_>) {
    while !ctx.should_park() {
        let waiter = ctx.prepare_to_wait();
        if ctx.should_park() {
            break; // P2: the park flag is checked after registering
        }
        waiter.sleep();
    }
    ctx.parkme(); // P1: unconditionally after leaving for a park
}

/// `io_sq_thread_stop` before the fix: set the private stop flag, then
/// `kthread_park`. Loom finds the interleaving where park waits forever.
#[test]
fn unfixed_seed_000_stop_flag_hangs_park_and_loom_catches_it() {
    const CHILD_ID: &str = "unfixed_seed_000_stop_flag_hangs_park_and_loom_catches_it";
    let report = model_must_fail(CHILD_ID, || {
        let protocol = Arc::new(Protocol::new());
        let sqo_stop = Arc::new(AtomicBool::new(false));
        let worker = {
            let p = protocol.clone();
            let sqo_stop = sqo_stop.clone();
            thread::spawn(move || unfixed_sqpoll_body(&p.context(), &sqo_stop))
        };
        sqo_stop.store(true, SeqCst);
        let _ = protocol.park();
        protocol.request_stop();
        worker.join().unwrap();
    });
    assert!(
        report.contains("deadlock"),
        "loom should report the hang as a deadlock, reported: {report}"
    );
}

/// Control for the model above: the fixed loop, the fixed
/// `io_sq_thread_stop` (park then stop), every interleaving passes.
#[test]
fn fixed_seed_000_park_then_stop_always_completes() {
    model(|| {
        let protocol = Arc::new(Protocol::new());
        let worker = {
            let p = protocol.clone();
            thread::spawn(move || {
                fixed_sqpoll_body(&p.context());
                p.mark_exited();
            })
        };
        protocol.park().expect("park completes");
        assert!(protocol.is_inactive());
        protocol.request_stop();
        worker.join().unwrap();
    });
}

/// Seed 002, before the fix: `kthread_park` returned as soon as `parked`
/// completed, without `wait_task_inactive`, so the caller could re-bind a
/// thread that was still running (after `complete_all`, before `schedule`).
/// The assertion is the re-bind's precondition; loom finds it violated.
#[test]
fn unfixed_seed_002_park_without_inactive_wait_and_loom_catches_it() {
    const CHILD_ID: &str = "unfixed_seed_002_park_without_inactive_wait_and_loom_catches_it";
    let report = model_must_fail(CHILD_ID, || {
        let protocol = Arc::new(Protocol::new());
        let trace = Arc::new(Trace::default());
        let worker = spawn_idle_worker(&protocol, &trace);
        let ticket = protocol.request_park().unwrap();
        protocol.wait_parked(ticket, None).unwrap();
        // BUG: no wait for inactivity here.
        assert!(
            protocol.is_inactive(),
            "P4 violated: park returned while the worker still runs: {}",
            protocol.describe()
        );
        protocol.request_stop();
        worker.join().unwrap();
    });
    assert!(
        report.contains("P4 violated"),
        "loom should report the violated P4 assertion, reported: {report}"
    );
}

/// Control: the fixed `park()` (completion, then inactivity) satisfies the
/// same assertion in every interleaving.
#[test]
fn fixed_seed_002_park_returns_only_when_inactive() {
    model(|| {
        let protocol = Arc::new(Protocol::new());
        let trace = Arc::new(Trace::default());
        let worker = spawn_idle_worker(&protocol, &trace);
        protocol.park().unwrap();
        assert!(
            protocol.is_inactive(),
            "P4 violated: park returned while the worker still runs: {}",
            protocol.describe()
        );
        protocol.request_stop();
        worker.join().unwrap();
    });
}
