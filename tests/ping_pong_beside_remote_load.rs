//! A request/response pair of tasks beside a thread that keeps the
//! injector at about the workers' capacity (bursts of 16 tasks of 1 us
//! every 20 us on 2 workers). KNOWN TO FAIL, not yet root-caused, so
//! ignored: in some runs the pair falls to a few round trips a second
//! while the injector's backlog grows (hundreds of thousands of live
//! tasks). Found by the FIRST-LINK-BEHIND red team: 5 of 62 runs with that
//! rule (every hop of the pair sent behind the run queue while remote work
//! waited), which was therefore reverted; with the rule before and after
//! it (a first link runs next, a later one waits while remote work
//! waits), 1 of about 90 runs here. Taking one remote task instead of a
//! batch when a link waits did not remove it. Run with `--ignored`; the
//! test runs the scenario 30 times, each against a deadline.
#![cfg(not(loom))]

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use support::wait_for;

const RUNS: usize = 30;
const ROUND_TRIPS: usize = 20_000;
const DEADLINE: Duration = Duration::from_secs(10);

fn one_run() -> Result<(), String> {
    let rt = unplug::Runtime::builder().workers(2).build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let spawned = Arc::new(AtomicU64::new(0));
    let (h, s, n) = (rt.handle().clone(), stop.clone(), spawned.clone());
    // Bursts of 16 tasks of 1 us every 20 us: about the capacity of two
    // workers on this machine.
    let spawner = std::thread::spawn(move || {
        let mut next = Instant::now();
        while !s.load(Relaxed) {
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
            n.fetch_add(16, Relaxed);
        }
    });
    wait_for("the remote load to start", || {
        spawned.load(Relaxed) > 40_000
    });
    let (done_tx, done_rx) = mpsc::channel();
    rt.spawn(async move {
        let (req_tx, mut req_rx) =
            tokio::sync::mpsc::unbounded_channel::<tokio::sync::oneshot::Sender<()>>();
        unplug::spawn(async move {
            while let Some(tx) = req_rx.recv().await {
                let _ = tx.send(());
            }
        });
        for _ in 0..ROUND_TRIPS {
            let (tx, rx) = tokio::sync::oneshot::channel();
            req_tx.send(tx).unwrap();
            rx.await.unwrap();
        }
        done_tx.send(()).unwrap();
    });
    let started = Instant::now();
    let finished = done_rx.recv_timeout(DEADLINE);
    stop.store(true, Relaxed);
    spawner.join().unwrap();
    rt.shutdown_timeout(Duration::from_secs(5));
    finished.map_err(|_| {
        format!(
            "{ROUND_TRIPS} round trips did not finish in {:?}",
            started.elapsed()
        )
    })
}

#[test]
#[ignore = "known failure under a remote load at capacity (about 1 run in 90): see the module docs"]
fn a_ping_pong_pair_keeps_up_beside_a_remote_spawner_near_capacity() {
    for run in 0..RUNS {
        if let Err(e) = one_run() {
            panic!("run {run}: {e}");
        }
    }
}
