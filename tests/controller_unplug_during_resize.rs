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

use control_support::{
    describe, hold_workers, live_count, live_on, on_thread, pair_runtime, state_of, two_cpus,
    wait_until, watchdog,
};
use std::time::Duration;
use unplug::worker::WorkerState;

/// What is left once `unplug_cpu(going)` (waiting on a held poll) and
/// `set_workers(3)` (run while it waits) both returned `Ok`.
struct Outcome {
    going: usize,
    live_on_going: Vec<usize>,
    live: usize,
    workers: String,
}

fn resize_while_an_unplug_waits() -> Option<Outcome> {
    let (keep, going) = two_cpus()?;
    let rt = pair_runtime(keep, going);
    let h = rt.handle().clone();
    let limit = Duration::from_secs(60);
    let outcome = watchdog("unplug racing a resize", limit, &h.clone(), move || {
        let mut held = hold_workers(&h, 2, Duration::from_secs(20)).unwrap();
        let victim = h
            .workers()
            .iter()
            .find(|w| w.cpu == Some(going))
            .unwrap()
            .id;
        // The unplug requests the park of the worker on `going`, held
        // inside a poll, and waits.
        let hu = h.clone();
        let unplug = on_thread(move || hu.unplug_cpu_timeout(going, Duration::from_secs(30)));
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
        let unplugged = unplug.recv_timeout(Duration::from_secs(30)).unwrap();
        assert!(unplugged.is_ok(), "unplug_cpu({going}): {unplugged:?}");
        assert!(resized.is_ok(), "set_workers(3): {resized:?}");
        Outcome {
            going,
            live_on_going: live_on(&h, going),
            live: live_count(&h.workers()),
            workers: describe(&h),
        }
    });
    Some(outcome)
}

#[test]
fn a_resize_while_an_unplug_waits_starts_no_worker_on_the_cpu_going() {
    let Some(o) = resize_while_an_unplug_waits() else {
        return;
    };
    assert!(
        o.live_on_going.is_empty(),
        "unplug_cpu({going}) and set_workers(3) both returned Ok, yet workers {ids:?} run on CPU {going}: [{w}]",
        going = o.going,
        ids = o.live_on_going,
        w = o.workers
    );
}

#[test]
fn a_resize_while_an_unplug_waits_brings_the_count_it_asked_for() {
    let Some(o) = resize_while_an_unplug_waits() else {
        return;
    };
    // The worker going no longer counts: three run once both returned.
    assert_eq!(
        o.live, 3,
        "set_workers(3) beside a pending unplug: [{}]",
        o.workers
    );
}
