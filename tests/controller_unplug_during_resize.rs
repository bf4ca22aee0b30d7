//! UNPLUG-MARKS-AT-REQUEST: a `set_workers` that runs while an `unplug_cpu`
//! of the same CPU waits for its park must act as if it ran before the
//! unplug (the unplug then parks what it started there) or after it (it
//! starts nothing there): either way, once both returned `Ok`, no worker
//! runs on the unplugged CPU. The CPU used to be marked unplugged only
//! when the park had completed, so a resize in between homed a new worker
//! on it (the CPU looked least used, its worker no longer counting as
//! running), or brought the parked worker straight back, and the unplug
//! returned `Ok` beside a worker running there.
#![cfg(not(loom))]

mod control_support;
mod support;

use control_support::{cpus, describe, hold_workers, state_of, wait_until, watchdog};
use std::sync::mpsc;
use std::time::Duration;
use unplug::worker::WorkerState;
use unplug::Runtime;

const SCENARIO_LIMIT: Duration = Duration::from_secs(60);

#[test]
fn a_resize_while_an_unplug_waits_starts_no_worker_on_the_cpu_going() {
    let cpus = cpus();
    if cpus.len() < 2 {
        eprintln!("skipped: needs two CPUs");
        return;
    }
    let (keep, going) = (cpus[0], cpus[1]);
    let rt = Runtime::builder()
        .workers(2)
        .cpus([keep, going])
        .build()
        .unwrap();
    let h = rt.handle().clone();
    let (on_going, report) = watchdog(
        "unplug racing a resize",
        SCENARIO_LIMIT,
        &h.clone(),
        move || {
            let mut held = hold_workers(&h, 2, Duration::from_secs(20)).unwrap();
            let victim = h
                .workers()
                .iter()
                .find(|w| w.cpu == Some(going))
                .map(|w| w.id)
                .unwrap();
            // The unplug requests the park of the worker on `going`, held inside
            // a poll, and waits.
            let (tx, rx) = mpsc::channel();
            {
                let h = h.clone();
                std::thread::spawn(move || {
                    let _ = tx.send(h.unplug_cpu_timeout(going, Duration::from_secs(30)));
                });
            }
            assert!(
                wait_until(Duration::from_secs(10), || {
                    state_of(&h, victim) == Some(WorkerState::Parking)
                }),
                "the unplug's park was not requested: [{}]",
                describe(&h)
            );
            let resized = h.set_workers(3);
            for holder in &mut held {
                holder.release();
            }
            let unplugged = rx.recv_timeout(Duration::from_secs(30)).unwrap();
            assert!(unplugged.is_ok(), "unplug_cpu({going}): {unplugged:?}");
            assert!(resized.is_ok(), "set_workers(3): {resized:?}");
            let on_going: Vec<_> = h
                .workers()
                .into_iter()
                .filter(|w| {
                    w.cpu == Some(going)
                        && matches!(w.state, WorkerState::Running | WorkerState::Idle)
                })
                .map(|w| w.id)
                .collect();
            (on_going, describe(&h))
        },
    );
    assert!(
        on_going.is_empty(),
        "unplug_cpu({going}) and set_workers(3) both returned Ok, yet workers {on_going:?} run on CPU {going}: [{report}]"
    );
}

#[test]
fn a_resize_while_an_unplug_waits_brings_the_count_it_asked_for() {
    let cpus = cpus();
    if cpus.len() < 2 {
        eprintln!("skipped: needs two CPUs");
        return;
    }
    let (keep, going) = (cpus[0], cpus[1]);
    let rt = Runtime::builder()
        .workers(2)
        .cpus([keep, going])
        .build()
        .unwrap();
    let h = rt.handle().clone();
    let running = watchdog(
        "unplug racing a resize",
        SCENARIO_LIMIT,
        &h.clone(),
        move || {
            let mut held = hold_workers(&h, 2, Duration::from_secs(20)).unwrap();
            let (tx, rx) = mpsc::channel();
            {
                let h = h.clone();
                std::thread::spawn(move || {
                    let _ = tx.send(h.unplug_cpu_timeout(going, Duration::from_secs(30)));
                });
            }
            assert!(wait_until(Duration::from_secs(10), || {
                h.workers().iter().any(|w| w.state == WorkerState::Parking)
            }));
            // The worker going no longer counts: three run once both returned.
            h.set_workers(3).unwrap();
            for holder in &mut held {
                holder.release();
            }
            rx.recv_timeout(Duration::from_secs(30)).unwrap().unwrap();
            h.workers()
                .iter()
                .filter(|w| matches!(w.state, WorkerState::Running | WorkerState::Idle))
                .count()
        },
    );
    assert_eq!(running, 3, "set_workers(3) beside a pending unplug");
}
