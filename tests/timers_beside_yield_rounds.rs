//! TURN-WOKEN-NEXT (runtime/IO.md): a timer a busy turn woke is not held
//! behind a due round of yielded tasks. A third red team: with a spawn
//! storm keeping the run queue busy, the 61-tick check starts a round of
//! up to 256 yielded tasks ahead of everything (YIELD-LAST, bounded), and
//! it ran ahead of the woken queue too: beside 300 yielders of 100 us,
//! `sleep(1 ms)` came back 29 ms late on one worker and 21-23 ms on two
//! (257052e, before the woken queue: 309-311 ms and 110-119 ms). The due
//! round now alternates with the woken queue.

#![cfg(not(loom))]

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHILD_POLL: Duration = Duration::from_micros(50);
const BATCH: usize = 1024;
const SAMPLES: usize = 20;
const SLEEPERS: usize = 4;

async fn yielder(stop: Arc<AtomicBool>, poll: Duration, polls: Arc<AtomicUsize>) {
    while !stop.load(SeqCst) {
        support::spin(poll);
        polls.fetch_add(1, SeqCst);
        unplug::yield_now().await;
    }
}

fn run(
    workers: usize,
    with_storm: bool,
    yielders: usize,
    yield_poll: Duration,
) -> (Duration, Duration) {
    let rt = unplug::Runtime::builder().workers(workers).build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let polls = Arc::new(AtomicUsize::new(0));
    if with_storm {
        support::start_fan_out_storm(&rt, &stop, BATCH, CHILD_POLL);
    }
    for _ in 0..yielders {
        drop(rt.spawn(yielder(stop.clone(), yield_poll, polls.clone())));
    }
    if yielders > 0 {
        support::wait_for("the yielders to run", || polls.load(SeqCst) > 2 * yielders);
    }
    let t0 = Instant::now();
    let mut timers = support::sleepers_lateness(&rt, SLEEPERS, SAMPLES);
    let el = t0.elapsed();
    stop.store(true, SeqCst);
    rt.shutdown_timeout(Duration::from_secs(5));
    timers.sort();
    let (med, worst) = (timers[timers.len() / 2], timers[timers.len() - 1]);
    eprintln!(
        "workers={workers} storm={with_storm} yielders={yielders}x{yield_poll:?}: sleep(1ms) late median {med:?} worst {worst:?} (took {el:?})"
    );
    (med, worst)
}

#[test]
fn a_timer_is_not_held_behind_a_due_round_of_yielded_tasks() {
    support::with_watchdog("timers beside yield rounds", || {
        let mut worst_all = Duration::ZERO;
        for workers in [1, 2] {
            run(workers, true, 0, Duration::from_micros(100));
            run(workers, false, 300, Duration::from_micros(100));
            let (_, w) = run(workers, true, 300, Duration::from_micros(100));
            worst_all = worst_all.max(w);
        }
        assert!(
            worst_all < Duration::from_millis(15),
            "a timer waited behind a round of yielded tasks: worst {worst_all:?} late"
        );
    });
}
