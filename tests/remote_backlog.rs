//! BOUNDED-INTAKE (runtime/SCHEDULER.md): a backlog of remote work (more
//! spawns from outside than the workers can run at once) stays in the
//! injector; a worker takes from it only what fills its queues to 256
//! tasks, and while they are full it serves remote work in rounds of one
//! task at a time. So what its own tasks wake waits behind a bounded share
//! of the backlog, not all of it, and remote work still gets about half
//! the worker beside a local load that keeps the queues full. The checks
//! count polls of the backlog's tasks, not time.
//!
//! Before the rule, every look at the injector (every 61 ticks, and
//! whenever a chain of wake-ups spent its LIFO budget) moved up to 64 tasks
//! into the run queue, more than the worker ran in between: the run queue
//! took in the whole backlog, and a request/response pair's round trips
//! each waited for tens of thousands of its polls (2,000 round trips did
//! not finish within the watchdog's 60 s; they take under 1 s now).

#![cfg(not(loom))]

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use support::{wait_for, with_watchdog};

/// The tests here each load every CPU; run in parallel they would measure
/// each other's load (and the timed one miss its deadline).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The backlog kept waiting, in tasks of 1 us.
const BACKLOG: u64 = 50_000;
/// The backlog's tasks report progress to the spawner every this many polls.
const PROGRESS_EVERY: u64 = 4_096;
const ROUND_TRIPS: usize = 2_000;

/// The near-capacity scenario: runs, round trips per run, deadline per run.
const NEAR_CAPACITY_RUNS: usize = 10;
const NEAR_CAPACITY_ROUND_TRIPS: usize = 2_000;
const NEAR_CAPACITY_DEADLINE: Duration = Duration::from_secs(10);

/// Keeps about [`BACKLOG`] remote tasks waiting until dropped; each polls
/// `yields + 1` times (yielding in between), spins 1 us per poll and counts
/// it in `polls`. The spawner waits for progress when the backlog is full,
/// so it takes a CPU from the workers only to refill.
struct Backlog {
    polls: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn spin_1us() {
    let start = Instant::now();
    while start.elapsed() < Duration::from_micros(1) {}
}

impl Backlog {
    fn start(rt: &unplug::Runtime, yields: u32) -> Backlog {
        let polls = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (progress_tx, progress) = mpsc::sync_channel::<()>(1);
        let (h, p, d, s) = (
            rt.handle().clone(),
            polls.clone(),
            done.clone(),
            stop.clone(),
        );
        let thread = std::thread::spawn(move || {
            let mut spawned = 0u64;
            while !s.load(SeqCst) {
                if spawned - d.load(SeqCst) >= BACKLOG {
                    // Bounded so a stop is seen even if no task reports.
                    let _ = progress.recv_timeout(Duration::from_millis(50));
                    continue;
                }
                for _ in 0..64 {
                    let (p, d, progress_tx) = (p.clone(), d.clone(), progress_tx.clone());
                    drop(h.spawn(async move {
                        for i in 0..=yields {
                            spin_1us();
                            p.fetch_add(1, SeqCst);
                            if i < yields {
                                unplug::yield_now().await;
                            }
                        }
                        if d.fetch_add(1, SeqCst) % PROGRESS_EVERY == 0 {
                            let _ = progress_tx.try_send(());
                        }
                    }));
                }
                spawned += 64;
            }
        });
        Backlog {
            polls,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Backlog {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How many polls of the backlog ran during each round trip.
#[derive(Debug)]
#[allow(dead_code)] // read through Debug
struct Gaps {
    median: u64,
    p90: u64,
    p99: u64,
    max: u64,
}

/// A request/response pair of tasks (a tokio mpsc for requests, a oneshot
/// per response) makes [`ROUND_TRIPS`] round trips.
async fn round_trips(polls: Arc<AtomicU64>) -> Gaps {
    let (req_tx, mut req_rx) =
        tokio::sync::mpsc::unbounded_channel::<tokio::sync::oneshot::Sender<()>>();
    unplug::spawn(async move {
        while let Some(tx) = req_rx.recv().await {
            let _ = tx.send(());
        }
    });
    let mut gaps = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let before = polls.load(SeqCst);
        let (tx, rx) = tokio::sync::oneshot::channel();
        req_tx.send(tx).unwrap();
        rx.await.unwrap();
        gaps.push(polls.load(SeqCst) - before);
    }
    gaps.sort();
    let at = |q: usize| gaps[(gaps.len() - 1) * q / 100];
    Gaps {
        median: at(50),
        p90: at(90),
        p99: at(99),
        max: at(100),
    }
}

fn round_trips_beside_a_backlog(workers: usize, yields: u32) -> Gaps {
    with_watchdog("round trips beside a remote backlog", move || {
        let rt = unplug::Runtime::builder().workers(workers).build().unwrap();
        let backlog = Backlog::start(&rt, yields);
        let polls = backlog.polls.clone();
        wait_for("the backlog to build", || polls.load(SeqCst) > 2 * BACKLOG);
        let gaps = rt.block_on(rt.spawn(round_trips(polls.clone()))).unwrap();
        drop(backlog);
        rt.shutdown_timeout(Duration::from_secs(10));
        gaps
    })
}

#[test]
fn a_round_trip_on_one_worker_waits_behind_one_intake_of_a_remote_backlog() {
    let _serial = serial();
    let gaps = round_trips_beside_a_backlog(1, 0);
    // One hop runs next (the LIFO slot); the other waits behind the run
    // queue, which the backlog fills to 256 at most.
    eprintln!("backlog polls per round trip: {gaps:?}");
    assert!(gaps.p99 <= 600, "{gaps:?}");
}

#[test]
fn a_round_trip_on_two_workers_waits_behind_a_bounded_share_of_a_remote_backlog() {
    let _serial = serial();
    let gaps = round_trips_beside_a_backlog(2, 0);
    // The tail holds round trips whose worker the OS descheduled (the
    // spawner needs a CPU to refill): the other worker goes on with the
    // backlog meanwhile.
    eprintln!("backlog polls per round trip: {gaps:?}");
    assert!(gaps.p90 <= 2_000, "{gaps:?}");
}

#[test]
fn a_round_trip_waits_behind_a_bounded_share_of_a_remote_backlog_that_yields() {
    let _serial = serial();
    // Each backlog task yields 64 times: taken in, it waits in the yielded
    // queue, which counts against the intake too, and a round of yielded
    // tasks run ahead of the run queue holds at most 256 of them. Before
    // (with or without the run queue alone bounded), 2,000 round trips did
    // not finish within the watchdog's 60 s.
    let gaps = round_trips_beside_a_backlog(1, 64);
    eprintln!("backlog polls per round trip: {gaps:?}");
    assert!(gaps.p99 <= 600, "{gaps:?}");
}

/// One task keeps [`LOCAL_LOAD`] local tasks of 1 us queued (they wake
/// nobody, so only the worker's own looks at the injector see remote
/// work); once it runs, a burst of [`BURST`] remote spawns: the most polls
/// of the local load any of them waited.
fn remote_burst_beside_a_full_run_queue(workers: usize, yielders: usize) -> u64 {
    const LOCAL_LOAD: u64 = 2_000;
    const BURST: usize = 1_000;
    with_watchdog("a remote burst beside a local load", move || {
        let rt = unplug::Runtime::builder().workers(workers).build().unwrap();
        let polls = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (polls.clone(), stop.clone());
        rt.spawn(async move {
            // Tasks that only yield, spawned here: they fill the worker's
            // yielded queue.
            for _ in 0..yielders {
                let s = s.clone();
                unplug::spawn(async move {
                    while !s.load(SeqCst) {
                        unplug::yield_now().await;
                    }
                });
            }
            let live = Arc::new(AtomicU64::new(0));
            while !s.load(SeqCst) {
                while live.load(SeqCst) < LOCAL_LOAD {
                    live.fetch_add(1, SeqCst);
                    let (p, live) = (p.clone(), live.clone());
                    unplug::spawn(async move {
                        spin_1us();
                        p.fetch_add(1, SeqCst);
                        live.fetch_sub(1, SeqCst);
                    });
                }
                unplug::yield_now().await;
            }
        });
        wait_for("the local load to run", || {
            polls.load(SeqCst) > 10 * LOCAL_LOAD
        });
        let at_burst = polls.load(SeqCst);
        let burst: Vec<_> = (0..BURST)
            .map(|_| {
                let p = polls.clone();
                rt.spawn(async move { p.load(SeqCst) - at_burst })
            })
            .collect();
        let most = rt.block_on(async {
            let mut most = 0;
            for waited in burst {
                most = most.max(waited.await.unwrap());
            }
            most
        });
        stop.store(true, SeqCst);
        rt.shutdown_timeout(Duration::from_secs(10));
        most
    })
}

/// A remote burst beside a full run queue (and `yielders` yielding tasks)
/// on 1 worker: the last of it runs within 2,500 polls of the local load.
fn the_burst_keeps_its_remote_rounds(yielders: usize) {
    let _serial = serial();
    let most = remote_burst_beside_a_full_run_queue(1, yielders);
    eprintln!(
        "with {yielders} yielders, the last of the burst waited {most} polls of the local load"
    );
    assert!(
        most <= 2_500,
        "a remote spawn waited for {most} polls of the local load"
    );
}

#[test]
fn remote_spawns_get_about_half_a_worker_whose_run_queue_a_local_load_keeps_full() {
    // A round of 30 remote tasks every 61 polls: the last of 1,000 runs
    // after about 1,000 polls of the local load. With one remote task per
    // 61 polls it was 59,470; taking batches into the run queue (before
    // BOUNDED-INTAKE) 2,983.
    the_burst_keeps_its_remote_rounds(0);
}

#[test]
fn remote_spawns_keep_their_rounds_while_the_worker_also_holds_many_yielders() {
    // 200 yielders beside the same local load: remote rounds were skipped
    // while the yielded queue held 128 or more (red team: the last of the
    // burst waited 19,777-19,837 polls of the local load, one remote task
    // per 61 polls).
    the_burst_keeps_its_remote_rounds(200);
}

/// The same pair beside a spawner that keeps the injector at about the
/// workers' capacity (bursts of 16 tasks of 1 us every 20 us on 2
/// workers), timed: found by the FIRST-LINK-BEHIND red team (5 of 62 runs
/// fell to a few round trips a second with that rule, about 1 in 90
/// without it, whenever the spawner got ahead for a moment). Since
/// BOUNDED-INTAKE, 0 of 180 runs in release (60 of them with 20,000
/// round trips each); in a debug build the same load is over capacity,
/// and a run takes about 1.7 s.
fn ping_pong_near_capacity() -> Result<(), String> {
    let rt = unplug::Runtime::builder().workers(2).build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let spawned = Arc::new(AtomicU64::new(0));
    let (h, s, n) = (rt.handle().clone(), stop.clone(), spawned.clone());
    // Bursts of 16 tasks of 1 us every 20 us: about the capacity of two
    // workers on this machine.
    let spawner = std::thread::spawn(move || {
        let mut next = Instant::now();
        while !s.load(SeqCst) {
            while Instant::now() < next {
                std::hint::spin_loop();
            }
            next += Duration::from_micros(20);
            for _ in 0..16 {
                h.spawn(async {
                    let t = Instant::now();
                    while t.elapsed() < Duration::from_micros(1) {}
                });
            }
            n.fetch_add(16, SeqCst);
        }
    });
    wait_for("the remote load to start", || spawned.load(SeqCst) > 40_000);
    let (done_tx, done_rx) = mpsc::channel();
    rt.spawn(async move {
        let (req_tx, mut req_rx) =
            tokio::sync::mpsc::unbounded_channel::<tokio::sync::oneshot::Sender<()>>();
        unplug::spawn(async move {
            while let Some(tx) = req_rx.recv().await {
                let _ = tx.send(());
            }
        });
        for _ in 0..NEAR_CAPACITY_ROUND_TRIPS {
            let (tx, rx) = tokio::sync::oneshot::channel();
            req_tx.send(tx).unwrap();
            rx.await.unwrap();
        }
        done_tx.send(()).unwrap();
    });
    let started = Instant::now();
    let finished = done_rx.recv_timeout(NEAR_CAPACITY_DEADLINE);
    stop.store(true, SeqCst);
    spawner.join().unwrap();
    rt.shutdown_timeout(Duration::from_secs(5));
    finished.map_err(|_| {
        format!(
            "{NEAR_CAPACITY_ROUND_TRIPS} round trips did not finish in {:?}",
            started.elapsed()
        )
    })
}

#[test]
fn a_ping_pong_pair_keeps_up_beside_a_remote_spawner_near_capacity() {
    let _serial = serial();
    for run in 0..NEAR_CAPACITY_RUNS {
        if let Err(e) = ping_pong_near_capacity() {
            panic!("run {run}: {e}");
        }
    }
}
