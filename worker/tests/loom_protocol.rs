//! Loom models of the fixed park protocol (P1-P6, P8), run over every
//! interleaving of worker and controller(s) within the preemption bound.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p unplug-worker --release --test loom_protocol`
#![cfg(loom)]

mod loom_support;

use loom::sync::atomic::Ordering::SeqCst;
use loom::thread;
use loom_support::{model, spawn_idle_worker, Flag, Trace};
use std::sync::Arc;
use unplug_worker::{ParkError, Protocol, Wake, WorkerState};

/// P2, P3, P4: a park that races the worker on its way into the idle sleep
/// is never lost, and returns with the worker parked and inactive.
#[test]
fn park_racing_worker_going_idle_is_never_lost() {
    model(|| {
        let protocol = Arc::new(Protocol::new());
        let trace = Arc::new(Trace::default());
        let worker = spawn_idle_worker(&protocol, &trace);

        let timings = protocol.park().expect("park of a live worker");
        assert_eq!(protocol.state(), WorkerState::Parked);
        assert!(
            protocol.is_inactive(),
            "P4: park returned before the marker: {}",
            protocol.describe()
        );
        assert!(timings.to_inactive >= timings.to_parked);

        assert!(protocol.request_stop());
        worker.join().unwrap();
        assert!(trace.exited.load(SeqCst));
    });
}

/// P1, P6: a stop racing a park while the worker leaves its loop (seed 000's
/// second race): park either completes or reports `Stopped`, never hangs,
/// and the worker exits.
#[test]
fn stop_racing_park_while_worker_leaves_its_loop_never_hangs() {
    model(|| {
        let protocol = Arc::new(Protocol::new());
        let trace = Arc::new(Trace::default());
        let worker = spawn_idle_worker(&protocol, &trace);

        let parker = {
            let p = protocol.clone();
            thread::spawn(move || p.park().map(|_| ()))
        };
        protocol.request_stop();
        let parked = parker.join().unwrap();
        assert!(
            matches!(parked, Ok(()) | Err(ParkError::Stopped)),
            "park returned {parked:?}"
        );
        worker.join().unwrap();
        assert!(trace.exited.load(SeqCst));
        assert_eq!(protocol.state(), WorkerState::Stopped);
    });
}

/// P5: an unpark that races the worker between completing `parked` and
/// going to sleep (it has completed, it may or may not have slept yet) is
/// never lost: the worker leaves parkme and runs again without any stop.
#[test]
fn unpark_racing_wakeup_inside_parkme_is_never_lost() {
    model(|| {
        let protocol = Arc::new(Protocol::new());
        let resumed = Arc::new(Flag::default());
        let worker = {
            let p = protocol.clone();
            let resumed = resumed.clone();
            thread::spawn(move || {
                let ctx = p.context();
                while ctx.keep_running() {
                    ctx.idle_wait(|| false);
                }
                ctx.parkme();
                // Back from parkme with no stop requested: the unpark woke us.
                assert!(!ctx.should_stop());
                resumed.set();
                p.mark_exited();
            })
        };
        // Wait for the completion only, so the unpark can land anywhere
        // between `complete_all` and the sleep.
        let ticket = protocol.request_park().unwrap();
        protocol.wait_parked(ticket, None).unwrap();
        assert!(protocol.unpark().unwrap());
        resumed.wait();
        worker.join().unwrap();
    });
}

/// P6: stop on a parked worker (park, then stop, as `io_sq_thread_stop`
/// does) wakes it and it exits.
#[test]
fn stop_on_parked_worker_wakes_and_exits() {
    model(|| {
        let protocol = Arc::new(Protocol::new());
        let trace = Arc::new(Trace::default());
        let worker = spawn_idle_worker(&protocol, &trace);
        protocol.park().unwrap();
        assert!(protocol.request_stop());
        worker.join().unwrap();
        assert!(trace.exited.load(SeqCst));
        assert_eq!(protocol.park().map(|_| ()), Err(ParkError::Stopped));
        assert!(matches!(
            protocol.unpark(),
            Err(unplug_worker::UnparkError::Stopped)
        ));
    });
}

/// P8: two concurrent `park()` callers are both released (`complete_all`),
/// both with the worker inactive.
#[test]
fn two_concurrent_park_callers_are_both_released() {
    model(|| {
        let protocol = Arc::new(Protocol::new());
        let trace = Arc::new(Trace::default());
        let worker = spawn_idle_worker(&protocol, &trace);
        let second = {
            let p = protocol.clone();
            thread::spawn(move || {
                let t = p.park().expect("second park");
                assert!(p.is_inactive());
                t.generation
            })
        };
        let first = protocol.park().expect("first park");
        assert!(protocol.is_inactive());
        // One request, one generation, shared by both callers.
        assert_eq!(second.join().unwrap(), first.generation);
        protocol.request_stop();
        worker.join().unwrap();
    });
}

/// P3, P5: park, unpark, park again — the second park waits for a fresh
/// completion (a new generation) and is never satisfied by the old one.
#[test]
fn park_unpark_park_again_completes_each_time() {
    model(|| {
        let protocol = Arc::new(Protocol::new());
        let trace = Arc::new(Trace::default());
        let worker = spawn_idle_worker(&protocol, &trace);
        let first = protocol.park().unwrap();
        assert!(protocol.unpark().unwrap());
        let second = protocol.park().unwrap();
        assert!(second.generation > first.generation);
        assert!(protocol.is_inactive());
        protocol.request_stop();
        worker.join().unwrap();
    });
}

/// P2: a work notification racing the worker's idle registration is never
/// lost, and a stray work wake-up never gets a parked worker out of parkme.
#[test]
fn work_notification_racing_idle_registration_is_never_lost() {
    model(|| {
        let protocol = Arc::new(Protocol::new());
        let work = Arc::new(loom::sync::atomic::AtomicBool::new(false));
        let worker = {
            let p = protocol.clone();
            let work = work.clone();
            thread::spawn(move || {
                let ctx = p.context();
                let wake = ctx.idle_wait(|| work.load(SeqCst));
                assert_eq!(wake, Wake::Work);
                p.mark_exited();
            })
        };
        work.store(true, SeqCst);
        protocol.notify_work();
        worker.join().unwrap();
    });
}

/// Control: an unpark of a running worker is a no-op, and nothing is
/// re-armed by it.
#[test]
fn unpark_of_running_worker_is_a_noop() {
    model(|| {
        let protocol = Arc::new(Protocol::new());
        let trace = Arc::new(Trace::default());
        let worker = spawn_idle_worker(&protocol, &trace);
        assert!(!protocol.unpark().unwrap());
        assert_eq!(protocol.generation(), 0);
        protocol.request_stop();
        worker.join().unwrap();
        assert_eq!(trace.parkme_calls.load(SeqCst), 0);
    });
}

/// P3, P5, P8 with two controllers: an unpark and a new park land between
/// the worker's completion of the old request and its sleep. The new park
/// must still complete (the worker may not sleep on an uncompleted request).
#[test]
fn unpark_and_repark_between_completion_and_sleep_still_completes() {
    model(|| {
        let protocol = Arc::new(Protocol::new());
        let trace = Arc::new(Trace::default());
        let worker = spawn_idle_worker(&protocol, &trace);
        let first = {
            let p = protocol.clone();
            thread::spawn(move || {
                let ticket = p.request_park().unwrap();
                // Completion or withdrawal, whichever comes first.
                let _ = p.wait_parked(ticket, None);
            })
        };
        // Spin until the first request is visible, then withdraw and re-park.
        while protocol.state() == WorkerState::Running || protocol.state() == WorkerState::Idle {
            thread::yield_now();
        }
        protocol.unpark().unwrap();
        protocol.park().expect("the second park completes");
        assert!(protocol.is_inactive());
        first.join().unwrap();
        protocol.request_stop();
        worker.join().unwrap();
    });
}

/// P3 for the count: `parkme_counted` runs `on_park` once for each request
/// its worker completed, never for one an unpark withdrew first. The
/// controller requests a park and withdraws it at once; the withdrawal can
/// land between the worker's `fetch_or(PARKED)` (which saw the request) and
/// its completion, which then finds nothing to complete.
#[test]
fn on_park_counts_only_the_requests_parkme_completed() {
    model(|| {
        let protocol = Arc::new(Protocol::new());
        let counted = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let worker = {
            let (p, counted) = (protocol.clone(), counted.clone());
            thread::spawn(move || {
                let ctx = p.context();
                loop {
                    while ctx.keep_running() {
                        ctx.idle_wait(|| false);
                    }
                    if ctx.should_stop() {
                        break;
                    }
                    ctx.parkme_counted(|| {
                        counted.fetch_add(1, SeqCst);
                    });
                }
                p.mark_exited();
            })
        };
        let _ticket = protocol.request_park().unwrap();
        protocol.unpark().unwrap();
        protocol.request_stop();
        worker.join().unwrap();
        assert_eq!(
            counted.load(SeqCst),
            protocol.completed_requests(),
            "on_park ran for a request its worker did not complete"
        );
    });
}
