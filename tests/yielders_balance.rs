//! YIELD-BALANCE (runtime/SCHEDULER.md): yielding tasks spread over busy
//! workers. A red team found that 512 yielders spawned from outside on 2
//! workers kept the split of their first moments for good (about 480 on
//! one worker and 32 on the other), so a task got up to 240 times the
//! polls of another. Counts polls, not time.

#![cfg(not(loom))]

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Arc;
use support::{wait_for, with_watchdog};

const TASKS: usize = 512;
const WINDOW: u64 = 2_000_000;

/// Each of `TASKS` tasks' polls over a window of `WINDOW` polls of all of
/// them, after a warm-up of as many, sorted.
fn polls_per_task() -> Vec<u64> {
    polls_per_task_of(TASKS)
}

fn polls_per_task_of(tasks: usize) -> Vec<u64> {
    let rt = unplug::Runtime::builder().workers(2).build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Arc<Vec<AtomicU64>> = Arc::new((0..tasks).map(|_| AtomicU64::new(0)).collect());
    for i in 0..tasks {
        let (counts, stop) = (counts.clone(), stop.clone());
        rt.spawn(async move {
            while !stop.load(Relaxed) {
                counts[i].fetch_add(1, Relaxed);
                unplug::yield_now().await;
            }
        });
    }
    let total = || counts.iter().map(|c| c.load(SeqCst)).sum::<u64>();
    wait_for("the warm-up", || total() >= WINDOW);
    let before: Vec<u64> = counts.iter().map(|c| c.load(SeqCst)).collect();
    let from: u64 = before.iter().sum();
    wait_for("the window", || total() >= from + WINDOW);
    let mut polls: Vec<u64> = counts
        .iter()
        .zip(&before)
        .map(|(c, b)| c.load(SeqCst) - b)
        .collect();
    stop.store(true, SeqCst);
    drop(rt);
    polls.sort_unstable();
    polls
}

#[test]
fn yielders_spawned_from_outside_get_even_shares_of_two_busy_workers() {
    with_watchdog("yielders on two workers", || {
        // The first split is a race (even in about half the runs before the
        // fix): five runtimes, each must end up even.
        for run in 0..5 {
            let polls = polls_per_task();
            let (least, median, most) = (polls[0], polls[TASKS / 2], polls[TASKS - 1]);
            eprintln!(
                "run {run}: polls per task over {WINDOW}: least {least}, median {median}, \
                 most {most} (even share {})",
                WINDOW / TASKS as u64
            );
            assert!(
                most <= 4 * median && least * 4 >= median,
                "uneven service in run {run}: least {least}, median {median}, most {most}"
            );
        }
    });
}

#[test]
fn a_few_yielders_stay_even_on_two_busy_workers() {
    with_watchdog("a few yielders on two workers", || {
        // 12 yielders: a red team found the grace for stuck workers moving
        // them off a worker the OS had descheduled, and a fixed slack of 16
        // never moving them back (most/least 2-4x in 13 of 30 runs).
        for run in 0..5 {
            let polls = polls_per_task_of(12);
            let (least, most) = (polls[0], polls[11]);
            eprintln!("run {run}: 12 yielders: least {least}, most {most} polls over {WINDOW}");
            assert!(
                most <= 2 * least,
                "uneven service in run {run}: least {least}, most {most}"
            );
        }
    });
}
