//! LIFO-GRACE (runtime/SCHEDULER.md): work queued on a worker that stays
//! inside one long poll is taken by another worker, also when that worker
//! is busy with yielding tasks of its own (a red team found it waited the
//! whole poll then: 300 ms in 30 of 30 trials).

#![cfg(not(loom))]

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::with_watchdog;

/// How long the long poll lasts at most; it ends early once the stranded
/// work ran elsewhere.
const HOLD: Duration = Duration::from_secs(2);

/// What a long poll on one worker saw while another worker ran `yielders`
/// yielding tasks: `None` if the yielders were not on the other worker
/// (the trial does not count), else whether the work it left queued (a
/// child in its LIFO slot, and `queued` more tasks it woke) all ran before
/// the poll ended.
fn trial(rt: &unplug::Runtime, yielders: usize, queued: usize) -> Option<bool> {
    trial_beside(rt, Load::Yielders(yielders, Duration::ZERO), queued, HOLD)
        .map(|waited| waited < HOLD)
}

/// What keeps the other worker busy.
enum Load {
    /// This many tasks that yield, each working this long per poll.
    Yielders(usize, Duration),
    /// Two tasks passing a message back and forth (through the LIFO slot:
    /// that worker never runs out of tasks, and never yields).
    PingPong,
    /// A thread keeping about 3,000 remote tasks of this long each live:
    /// the injector is never empty, so that worker always finds work there.
    RemoteStream(Duration),
}

fn spawn_load(rt: &unplug::Runtime, load: &Load, polls: &Arc<AtomicU64>, stop: &Arc<AtomicBool>) {
    match *load {
        Load::Yielders(yielders, work) => {
            for _ in 0..yielders {
                let (polls, stop) = (polls.clone(), stop.clone());
                rt.spawn(async move {
                    while !stop.load(SeqCst) {
                        polls.fetch_add(1, SeqCst);
                        let start = Instant::now();
                        while start.elapsed() < work {
                            std::hint::spin_loop();
                        }
                        unplug::yield_now().await;
                    }
                });
            }
        }
        Load::RemoteStream(work) => {
            let (polls, stop, h) = (polls.clone(), stop.clone(), rt.handle().clone());
            std::thread::spawn(move || {
                while !stop.load(SeqCst) {
                    if h.live_tasks() >= 3_000 {
                        std::thread::yield_now();
                        continue;
                    }
                    let polls = polls.clone();
                    drop(h.spawn(async move {
                        polls.fetch_add(1, SeqCst);
                        let start = Instant::now();
                        while start.elapsed() < work {
                            std::hint::spin_loop();
                        }
                    }));
                }
            });
        }
        Load::PingPong => {
            let (polls, stop) = (polls.clone(), stop.clone());
            rt.spawn(async move {
                let (ping_tx, mut ping_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
                let (pong_tx, mut pong_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
                let partner = unplug::spawn(async move {
                    while ping_rx.recv().await.is_some() {
                        if pong_tx.send(()).is_err() {
                            break;
                        }
                    }
                });
                while !stop.load(SeqCst) {
                    polls.fetch_add(1, SeqCst);
                    ping_tx.send(()).unwrap();
                    pong_rx.recv().await.unwrap();
                }
                drop(ping_tx);
                partner.await.unwrap();
            });
        }
    }
}

/// A long poll of at most `hold` on one worker, which leaves a child in its
/// LIFO slot and `queued` more tasks, while `load` keeps the other worker
/// busy: `None` if the load was not on the other worker (the trial does
/// not count), else how long the long poll lasted (it ends once all it left
/// queued has run elsewhere).
fn trial_beside(
    rt: &unplug::Runtime,
    load: Load,
    queued: usize,
    hold: Duration,
) -> Option<Duration> {
    let polls = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    spawn_load(rt, &load, &polls, &stop);
    let work = match load {
        Load::Yielders(_, work) | Load::RemoteStream(work) => work,
        Load::PingPong => Duration::ZERO,
    };
    support::wait_for("the yielders to run", || polls.load(SeqCst) > 1_000);
    let p = polls.clone();
    let outcome = rt.block_on(rt.spawn(async move {
        // The yielders must be on the other worker: they advance while this
        // poll does not return.
        let (from, start) = (p.load(SeqCst), Instant::now());
        let advanced = if work.is_zero() { 1_000 } else { 3 };
        while p.load(SeqCst) < from + advanced {
            if start.elapsed() > Duration::from_millis(200) {
                return None;
            }
        }
        let ran = Arc::new(AtomicU64::new(0));
        let child = {
            let ran = ran.clone();
            unplug::spawn(async move {
                ran.fetch_add(1, SeqCst);
            })
        };
        // More work queued here: tasks this poll wakes (spawns land in the
        // LIFO slot and push the one before into the run queue).
        for _ in 0..queued {
            let ran = ran.clone();
            drop(unplug::spawn(async move {
                ran.fetch_add(1, SeqCst);
            }));
        }
        let start = Instant::now();
        let all = 1 + queued as u64;
        while ran.load(SeqCst) < all && start.elapsed() < hold {
            std::hint::spin_loop(); // the long poll
        }
        let waited = start.elapsed();
        child.await.unwrap();
        Some(waited)
    }));
    stop.store(true, SeqCst);
    outcome.unwrap()
}

fn stranded_trials(yielders: usize, queued: usize) -> (usize, usize) {
    let rt = unplug::Runtime::builder().workers(2).build().unwrap();
    let (mut counted, mut stranded) = (0, 0);
    for _ in 0..40 {
        if counted == 5 {
            break;
        }
        match trial(&rt, yielders, queued) {
            Some(done) => {
                counted += 1;
                stranded += usize::from(!done);
            }
            None => continue,
        }
    }
    (counted, stranded)
}

#[test]
fn a_task_behind_a_long_poll_is_taken_by_a_worker_busy_with_yielders() {
    with_watchdog("a LIFO task behind a long poll", || {
        let (counted, stranded) = stranded_trials(1, 0);
        assert!(
            counted >= 3,
            "only {counted} trials had the yielder elsewhere"
        );
        assert_eq!(
            stranded, 0,
            "stranded for the whole poll in {stranded} of {counted}"
        );
    });
}

#[test]
fn a_queue_behind_a_long_poll_is_taken_by_a_worker_busy_with_many_yielders() {
    with_watchdog("a run queue behind a long poll", || {
        let (counted, stranded) = stranded_trials(16, 8);
        assert!(
            counted >= 3,
            "only {counted} trials had the yielders elsewhere"
        );
        assert_eq!(
            stranded, 0,
            "stranded for the whole poll in {stranded} of {counted}"
        );
    });
}

/// The median wait of a child behind a 300 ms poll over 5 trials that had
/// `load` (made afresh for each) on the other worker.
fn median_wait_beside(load: impl Fn() -> Load) -> Duration {
    let rt = unplug::Runtime::builder().workers(2).build().unwrap();
    let mut waits = Vec::new();
    for _ in 0..40 {
        if waits.len() == 5 {
            break;
        }
        if let Some(waited) = trial_beside(&rt, load(), 0, Duration::from_millis(300)) {
            waits.push(waited);
        }
    }
    assert!(
        waits.len() >= 3,
        "only {} trials had the load elsewhere",
        waits.len()
    );
    waits.sort();
    eprintln!("waits behind the long poll: {waits:?}");
    waits[waits.len() / 2]
}

#[test]
fn a_task_behind_a_long_poll_is_taken_beside_yielders_that_work_a_millisecond() {
    with_watchdog("a LIFO task behind a long poll, slow yielders", || {
        // Yielders of 1 ms a poll: the other worker looks at most once a
        // millisecond (a red team measured 17-24 ms of waiting when the
        // grace was counted in looks). BUSY-GRACE's 1 ms, a look's 1 ms,
        // and slack for a shared machine.
        let median = median_wait_beside(|| Load::Yielders(1, Duration::from_millis(1)));
        assert!(
            median < Duration::from_millis(10),
            "the child waited {median:?}"
        );
    });
}

#[test]
fn a_task_behind_a_long_poll_is_taken_by_a_worker_busy_with_a_ping_pong_pair() {
    with_watchdog("a LIFO task behind a long poll, a pair elsewhere", || {
        // A pair hands the other worker a task at every poll: it never runs
        // out of work, so it never looked at the others (red team: the
        // whole 100 ms poll in 8 of 8). It looks every 61 polls of its
        // own: 2-3 ms here.
        let median = median_wait_beside(|| Load::PingPong);
        assert!(
            median < Duration::from_millis(50),
            "the child waited {median:?}"
        );
    });
}

#[test]
fn a_task_behind_a_long_poll_is_taken_by_a_worker_fed_by_remote_spawns() {
    with_watchdog(
        "a LIFO task behind a long poll, a remote stream elsewhere",
        || {
            // The injector is never empty: the other worker takes remote work at
            // every look, and before BUSY-GRACE looked ahead of the injector it
            // never reached its look at the others (a red team: the whole
            // 200 ms poll in 8 of 8 trials, every run).
            let median = median_wait_beside(|| Load::RemoteStream(Duration::from_micros(20)));
            assert!(
                median < Duration::from_millis(50),
                "the child waited {median:?}"
            );
        },
    );
}
