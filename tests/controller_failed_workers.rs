//! Workers that die while starting (issue 13, defect 5): a panicking
//! `on_thread_start` hook. `build()` must fail rather than return a runtime
//! whose workers are dead; a resize whose new worker dies must fail, and the
//! dead worker must not count as running (so the last live worker cannot be
//! parked) — tasks keep running.
#![cfg(not(loom))]

mod control_support;
mod support;

use control_support::{describe, panic_message, task_runs_within, watchdog, Findings};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use unplug::worker::WorkerState;
use unplug::Runtime;

const SCENARIO_LIMIT: Duration = Duration::from_secs(60);

#[test]
fn build_fails_when_the_start_hook_panics() {
    // Expected after the fix: Err(BuildError::<a worker failed to start>);
    // asserted as is_err() only.
    let outcome = support::with_watchdog_for("build", SCENARIO_LIMIT, || {
        let built = catch_unwind(|| {
            Runtime::builder()
                .workers(2)
                .on_thread_start(|| panic!("start hook fails (on purpose)"))
                .build()
        });
        match built {
            Err(p) => Err(format!("build() panicked: {}", panic_message(&*p))),
            Ok(Err(e)) => Ok(format!("refused: {e:?}")),
            Ok(Ok(rt)) => {
                // What the runtime it returned is like.
                let h = rt.handle().clone();
                let runs = task_runs_within(&h, Duration::from_secs(2));
                let states = describe(&h);
                let park = h.park_worker(0).map(drop);
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    drop(rt);
                    let _ = tx.send(());
                });
                let dropped = rx.recv_timeout(Duration::from_secs(10)).is_ok();
                Err(format!(
                    "build() returned Ok although every worker's start hook panicked: workers \
                     [{states}], a task ran within 2 s: {runs}, park_worker(0): {park:?}, \
                     drop(rt) returned within 10 s: {dropped}"
                ))
            }
        }
    });
    match outcome {
        Ok(msg) => eprintln!("{msg}"),
        Err(msg) => panic!("{msg}"),
    }
}

#[test]
fn a_worker_whose_start_hook_panics_is_not_counted_as_running() {
    let starts = Arc::new(AtomicUsize::new(0));
    let s = starts.clone();
    let rt = Runtime::builder()
        .workers(1)
        .on_thread_start(move || {
            if s.fetch_add(1, SeqCst) == 1 {
                panic!("second start hook fails (on purpose)");
            }
        })
        .build()
        .expect("the first start succeeds");
    let h = rt.handle().clone();
    let findings = watchdog("failed resize", SCENARIO_LIMIT, &h.clone(), move || {
        let mut f = Findings::default();
        // Expected after the fix: Err(ControlError::<the new worker failed to
        // start>); asserted as is_err() only.
        let grown =
            catch_unwind(AssertUnwindSafe(|| h.set_workers(2))).map_err(|p| panic_message(&*p));
        let after_grow = describe(&h);
        f.check(matches!(grown, Ok(Err(_))), || {
            format!("set_workers(2) whose new worker's start hook panicked: {grown:?}; workers: [{after_grow}]")
        });
        // Only worker 0 lives: parking it must be refused (LastWorker).
        let park = h.park_worker(0);
        let after_park = describe(&h);
        f.check(park.is_err(), || {
            format!(
                "park_worker(0) of the only live worker was allowed: {park:?}; workers: \
                 [{after_park}]"
            )
        });
        f.check(task_runs_within(&h, Duration::from_secs(5)), || {
            format!("no task ran within 5 s: [{}]", describe(&h))
        });
        let ws = h.workers();
        f.check(
            !ws.iter()
                .any(|w| w.id != 0 && matches!(w.state, WorkerState::Running | WorkerState::Idle)),
            || format!("a dead worker is listed as running: [{}]", describe(&h)),
        );
        eprintln!(
            "set_workers(2) -> {grown:?}; workers after: [{after_grow}]; park_worker(0) -> \
             {park:?}; workers after: [{after_park}]; start hook ran {} times",
            starts.load(SeqCst)
        );
        // Leave worker 0 running for the drop.
        let _ = h.unpark_worker(0, None);
        f
    });
    findings.assert_none("a_worker_whose_start_hook_panics_is_not_counted_as_running");
}
