//! Red team, worker-side callbacks: a panic in `parkme_counted`'s `on_park`
//! that the body catches.
#![cfg(not(loom))]

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use support::{with_watchdog, DEADLINE};
use unplug_worker::{Wake, Worker, WorkerState};

/// `on_park` panics (the first time) and the body catches the panic and
/// carries on with its own code. The worker has left `parkme` by unwinding,
/// so it must not read `Parked` ("runs no user code until it is unparked")
/// while its body runs, and after an `unpark()` its idle wait and `stop()`
/// must work as for any worker. Before the fix the unwind left PARKED and
/// COMPLETE up: the body, running its catch handler, read `Parked`; after
/// the unpark its idle wait set IDLE beside the stale PARKED and the state
/// word's own check panicked the worker (`stop()` returned
/// `Panicked("IDLE and PARKED together")`).
#[test]
fn a_panic_in_on_park_caught_by_the_body_does_not_leave_the_worker_parked() {
    let fail_once = Arc::new(AtomicBool::new(true));
    let (seen_tx, seen_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let f = fail_once.clone();
    let worker = Worker::builder()
        .spawn(move |ctx| {
            let mut caught = 0;
            loop {
                match ctx.idle_wait(|| false) {
                    Wake::Stop => return caught,
                    Wake::Work => {}
                    Wake::Park => {
                        let parked = catch_unwind(AssertUnwindSafe(|| {
                            ctx.parkme_counted(|| {
                                if f.swap(false, SeqCst) {
                                    panic!("on_park failed on purpose");
                                }
                            })
                        }));
                        if parked.is_err() {
                            caught += 1;
                            // Running user code again: say what we look like,
                            // then wait for the controller's unpark.
                            seen_tx.send(ctx.protocol().state()).unwrap();
                            go_rx.recv().unwrap();
                            while ctx.should_park() {
                                std::thread::yield_now();
                            }
                        }
                    }
                }
            }
        })
        .unwrap();
    worker.request_park().unwrap();
    let state_in_handler = seen_rx.recv_timeout(DEADLINE).expect("on_park ran");
    assert_eq!(
        state_in_handler,
        WorkerState::Parking,
        "the body ran its catch handler while the worker read as parked"
    );
    assert!(worker.unpark().unwrap(), "the request was still pending");
    go_tx.send(()).unwrap();
    // Back in its idle wait with nothing left over from the park. (Before
    // the fix, this `state()` itself panicked on the stale PARKED beside
    // IDLE, and the handle's drop during that unwind aborted the process.)
    support::wait_for("idle again", || worker.state() == WorkerState::Idle);
    let worker = Arc::new(worker);
    let w = worker.clone();
    with_watchdog("park after the caught panic", move || w.park()).expect("parks again");
    assert!(worker.unpark().unwrap());
    let w = worker.clone();
    let stopped = with_watchdog("stop", move || w.stop().map_err(|e| e.to_string()));
    assert_eq!(stopped, Ok(1));
}
