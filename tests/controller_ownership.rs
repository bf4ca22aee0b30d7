//! Who owns a park request (issue 13, defect 1): a controller call may only
//! withdraw the parks it still owns. A timed-out `unplug_cpu_timeout` must
//! not withdraw a park that another call (here: `set_workers` stopping the
//! worker) has taken over since, and the "last running worker" rule must
//! hold against any interleaving of concurrent calls: at least one worker
//! runs tasks at every point.
#![cfg(not(loom))]

mod control_support;
mod support;

use control_support::{
    cpus, describe, hold_workers, live_count, state_of, task_runs_within, wait_until, watchdog,
    Findings,
};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Barrier};
use std::time::Duration;
use unplug::worker::WorkerState;
use unplug::{ControlError, Runtime};

const SCENARIO_LIMIT: Duration = Duration::from_secs(60);

#[test]
fn a_timed_out_unplug_does_not_withdraw_a_park_a_resize_took_over() {
    let cpus = cpus();
    if cpus.len() < 2 {
        eprintln!("skipped: needs two CPUs");
        return;
    }
    let (c0, c1) = (cpus[0], cpus[1]);
    // Worker i's home is [c0, c1][i % 2]: 0@c0 1@c1 2@c0 3@c1.
    let rt = Runtime::builder()
        .workers(4)
        .cpus([c0, c1])
        .pin_workers(true)
        .build()
        .unwrap();
    let h = rt.handle().clone();
    let findings = watchdog(
        "ownership scenario",
        SCENARIO_LIMIT,
        &h.clone(),
        move || {
            let mut f = Findings::default();
            let ws = h.workers();
            assert_eq!(
                ws.iter().map(|w| (w.id, w.cpu)).collect::<Vec<_>>(),
                vec![(0, Some(c0)), (1, Some(c1)), (2, Some(c0)), (3, Some(c1))],
                "unexpected initial layout"
            );
            // X = 3 (the newest worker: set_workers stops it first), Y = 1; both
            // on c1. Every worker is held inside a poll we release by hand.
            let (x, y) = (3usize, 1usize);
            let mut held = hold_workers(&h, 4, Duration::from_secs(20)).unwrap();
            assert_eq!(
                held.iter().map(|x| x.worker).collect::<Vec<_>>(),
                vec![0, 1, 2, 3]
            );

            // A: unplug c1 with a deadline -> requests parks of Y and X, waits.
            let (a_tx, a_rx) = mpsc::channel();
            {
                let h = h.clone();
                std::thread::spawn(move || {
                    let _ = a_tx.send(h.unplug_cpu_timeout(c1, Duration::from_secs(1)));
                });
            }
            assert!(
                wait_until(Duration::from_secs(5), || {
                    state_of(&h, x) == Some(WorkerState::Parking)
                        && state_of(&h, y) == Some(WorkerState::Parking)
                }),
                "A's parks were not requested: [{}]",
                describe(&h)
            );
            // Meanwhile X is unparked: A no longer owns X's park.
            let r = h.unpark_worker(x, None);
            assert!(
                matches!(&r, Ok(rep) if rep.unparked == vec![x]),
                "unpark_worker(X): {r:?}"
            );
            // B: shrink by one -> the newest running worker, X, is stopped (or
            // parked, then stopped). B owns X now.
            let running_targets = 3; // 0, 2 and X (Y is A's)
            let (b_tx, b_rx) = mpsc::channel();
            {
                let h = h.clone();
                std::thread::spawn(move || {
                    let _ = b_tx.send(h.set_workers(running_targets - 1));
                });
            }
            assert!(
                wait_until(Duration::from_secs(5), || matches!(
                    state_of(&h, x),
                    Some(WorkerState::Parking | WorkerState::Stopping)
                )),
                "B's park of X was not requested: [{}]",
                describe(&h)
            );
            // A times out on Y (held). Its rollback must touch Y only.
            let a = a_rx.recv_timeout(Duration::from_secs(10));
            f.check(matches!(a, Ok(Err(ControlError::Timeout { .. }))), || {
                format!("A: expected Err(Timeout) after 1 s, got {a:?}")
            });
            // Give B's side a chance to move (it must not: X stays Parking, held).
            let x_moved = wait_until(Duration::from_millis(500), || {
                !matches!(
                    state_of(&h, x),
                    Some(WorkerState::Parking | WorkerState::Stopping)
                )
            });
            let x_state = state_of(&h, x);
            f.check(!x_moved, || {
                format!(
                    "A's rollback withdrew B's park of X: X is now {x_state:?} (expected Parking or \
                 Stopping, owned by set_workers); workers: [{}]",
                    describe(&h)
                )
            });

            // Free workers 0, 1, 2 and park them all: with X on its way out, the
            // third park must be refused (it is the last running worker).
            for hd in held.iter_mut().filter(|hd| hd.worker != x) {
                hd.release();
            }
            let mut parked_ok = Vec::new();
            let mut refusals = Vec::new();
            for id in [0, 1, 2] {
                match h.park_worker(id) {
                    Ok(rep) => {
                        if !rep.parked.is_empty() {
                            parked_ok.push(id)
                        }
                    }
                    Err(e) => refusals.push(format!("{id}: {e:?}")),
                }
            }
            let after_parks = describe(&h);
            f.check(parked_ok.len() < 3, || {
                format!(
                    "park_worker(0), (1), (2) all parked while X was being stopped: the stopping \
                 worker counted as running; workers: [{after_parks}]"
                )
            });
            // Let X's poll return: B stops it.
            for hd in held.iter_mut() {
                hd.release();
            }
            let b = b_rx.recv_timeout(Duration::from_secs(10));
            eprintln!(
                "A={a:?} X after A={x_state:?} parked={parked_ok:?} refused={refusals:?} B={b:?}"
            );
            f.check(b.is_ok(), || {
                "B (set_workers) did not return within 10 s".into()
            });
            let ws = h.workers();
            f.check(live_count(&ws) >= 1, || {
                format!("no worker Running/Idle at the end: [{}]", describe(&h))
            });
            f.check(
                !ws.iter()
                    .any(|w| matches!(w.state, WorkerState::Stopping | WorkerState::Stopped)),
                || {
                    format!(
                        "a stopping/stopped worker is still listed: [{}]",
                        describe(&h)
                    )
                },
            );
            f.check(task_runs_within(&h, Duration::from_secs(5)), || {
                format!(
                    "a task spawned at the end did not run within 5 s (zero running workers); \
                 workers: [{}]",
                    describe(&h)
                )
            });
            f
        },
    );
    // Unpark whatever is parked so the runtime can drop cleanly.
    for w in rt.workers() {
        let _ = rt.unpark_worker(w.id, None);
    }
    findings.assert_none("a_timed_out_unplug_does_not_withdraw_a_park_a_resize_took_over");
}

#[test]
fn concurrent_parks_of_every_worker_never_park_the_last_one() {
    // Four workers; four threads each park every worker (in different
    // orders) at once. Whatever the interleaving, one worker keeps running
    // and a task runs afterwards. Repeated `rounds` times.
    let rounds = support::scaled(100);
    let rt = Runtime::builder()
        .workers(4)
        .pin_workers(true)
        .build()
        .unwrap();
    let h = rt.handle().clone();
    let findings = watchdog(
        "concurrent parks",
        SCENARIO_LIMIT + Duration::from_millis(200 * rounds as u64),
        &h.clone(),
        move || {
            let mut f = Findings::default();
            let refused = Arc::new(AtomicUsize::new(0));
            for round in 0..rounds {
                let barrier = Arc::new(Barrier::new(4));
                let threads: Vec<_> = (0..4usize)
                    .map(|t| {
                        let (h, barrier, refused) = (h.clone(), barrier.clone(), refused.clone());
                        std::thread::spawn(move || {
                            barrier.wait();
                            for k in 0..4 {
                                let id = (t + k * (1 + t % 2)) % 4;
                                if let Err(ControlError::LastWorker) = h.park_worker(id) {
                                    refused.fetch_add(1, SeqCst);
                                }
                            }
                        })
                    })
                    .collect();
                for t in threads {
                    t.join().unwrap();
                }
                let ws = h.workers();
                let parked = ws.iter().filter(|w| w.state == WorkerState::Parked).count();
                f.check(parked < 4 && live_count(&ws) + parked == 4, || {
                    format!(
                        "round {round}: every worker parked (or lost): [{}]",
                        describe(&h)
                    )
                });
                f.check(task_runs_within(&h, Duration::from_secs(5)), || {
                    format!("round {round}: no task ran within 5 s: [{}]", describe(&h))
                });
                if !f.0.is_empty() {
                    break;
                }
                for w in h.workers() {
                    let _ = h.unpark_worker(w.id, None);
                }
            }
            eprintln!(
                "concurrent parks: {rounds} rounds, {} LastWorker refusals",
                refused.load(SeqCst)
            );
            f
        },
    );
    for w in rt.workers() {
        let _ = rt.unpark_worker(w.id, None);
    }
    findings.assert_none("concurrent_parks_of_every_worker_never_park_the_last_one");
}
