//! Metrics a red team (2026-12-04) found wrong, each failing before its
//! fix:
//! - PARKS-OF-STARTING: a worker's events (its parks, their latencies, its
//!   long polls) were dropped until `set_workers` had started every worker
//!   of the call, while its unparks, which come later, were counted:
//!   `parks_total` 0 against `unparks_total` 1 for good (5 of 5 runs).
//! - DEPTH-COUNTS-ALL: `queue_depth{queue="local"}` counted the run queue
//!   only; 100 runnable tasks that had yielded, waiting behind a long poll
//!   in the worker's yielded queue, read 0 (6 of 10 runs).
#![cfg(not(loom))]

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{metrics_server, scrape_metrics_until as scrape_until, with_watchdog, Exposition};
use unplug::worker::WorkerState;
use unplug::Runtime;

/// A park requested while a sibling of the same `set_workers` call is
/// still in its start hook.
#[test]
fn a_worker_parked_while_its_resize_still_starts_another_counts_the_park() {
    metrics_server();
    with_watchdog("park during a sibling's start hook", || {
        let p = "rtm_sibling";
        let gate = Arc::new(AtomicBool::new(true));
        let g = gate.clone();
        let rt = Runtime::builder()
            .workers(2)
            .thread_name("rtms")
            .metrics(true)
            .metrics_prefix(p)
            .on_thread_start(move || {
                if std::thread::current().name() == Some("rtms-3") {
                    let end = Instant::now() + Duration::from_secs(20);
                    while !g.load(SeqCst) && Instant::now() < end {
                        std::thread::yield_now();
                    }
                }
            })
            .build()
            .unwrap();
        gate.store(false, SeqCst);
        let h = rt.handle().clone();
        let grow = std::thread::spawn(move || h.set_workers(4).map(|r| r.started));
        let end = Instant::now() + Duration::from_secs(10);
        // Worker 2's hook returned: it sleeps idle, waiting for work.
        while !rt
            .workers()
            .iter()
            .any(|w| w.id == 2 && w.state == WorkerState::Idle)
        {
            assert!(Instant::now() < end, "worker 2 never ran");
            std::thread::yield_now();
        }
        let parked = rt.park_worker(2).unwrap();
        assert_eq!(parked.parked, vec![2]);
        gate.store(true, SeqCst);
        assert_eq!(grow.join().unwrap().unwrap(), vec![2, 3]);
        rt.unpark_worker(2, None).unwrap();
        let n = |s: &str| format!("{p}_{s}");
        let (ok, e) = scrape_until(Duration::from_secs(3), |e| {
            e.sum(&n("parks_total"), &[("worker", "2")]) == 1.0
                && e.sum(&n("unparks_total"), &[("worker", "2")]) == 1.0
                && e.sum(&n("park_latency_seconds_count"), &[("worker", "2")]) == 1.0
        });
        assert!(
            ok,
            "worker 2: parks_total {}, unparks_total {}, park_latency_seconds_count {}, \
             park_inactive_evidence_total (all workers) {}; want 1 each",
            e.sum(&n("parks_total"), &[("worker", "2")]),
            e.sum(&n("unparks_total"), &[("worker", "2")]),
            e.sum(&n("park_latency_seconds_count"), &[("worker", "2")]),
            e.sum(&n("park_inactive_evidence_total"), &[]),
        );
    });
}

/// `queue_depth` says "tasks queued: the global injector, or a worker's
/// local queue". A worker held in one long poll with 100 runnable tasks
/// queued behind it (tasks that yielded: YIELD-LAST's queue of the worker)
/// must show them in queue_depth{queue="local"} + queue_depth{queue="global"}.
#[test]
fn queue_depth_counts_yielded_tasks_waiting_behind_a_long_poll() {
    metrics_server();
    with_watchdog("queue depth of yielded tasks", || {
        let p = "rtm_depth";
        let rt = Runtime::builder()
            .workers(1)
            .metrics(true)
            .metrics_prefix(p)
            .build()
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let cycled = Arc::new(AtomicUsize::new(0));
        let n = 100;
        let mut tasks = Vec::new();
        for _ in 0..n {
            let (stop, cycled) = (stop.clone(), cycled.clone());
            tasks.push(rt.spawn(async move {
                cycled.fetch_add(1, SeqCst);
                while !stop.load(SeqCst) {
                    unplug::yield_now().await;
                }
            }));
        }
        // Every yielder ran once (and yielded) before the spinner comes.
        let end = Instant::now() + Duration::from_secs(10);
        while cycled.load(SeqCst) < n {
            assert!(Instant::now() < end, "the yielders never ran");
            std::thread::yield_now();
        }
        let spinning = Arc::new(AtomicBool::new(false));
        let (s, st) = (spinning.clone(), stop.clone());
        let spinner = rt.spawn(async move {
            s.store(true, SeqCst);
            let end = Instant::now() + Duration::from_secs(20);
            while !st.load(SeqCst) && Instant::now() < end {
                std::hint::spin_loop();
            }
        });
        let end = Instant::now() + Duration::from_secs(10);
        while !spinning.load(SeqCst) {
            assert!(Instant::now() < end, "the spinner never ran");
            std::thread::yield_now();
        }
        let depth = |e: &Exposition| {
            e.sum(&format!("{p}_queue_depth"), &[("queue", "local")])
                + e.sum(&format!("{p}_queue_depth"), &[("queue", "global")])
        };
        let (ok, e) = scrape_until(Duration::from_secs(2), |e| depth(e) >= (n - 1) as f64);
        stop.store(true, SeqCst);
        rt.block_on(async move {
            spinner.await.unwrap();
            for t in tasks {
                t.await.unwrap();
            }
        });
        assert!(
            ok,
            "{n} runnable tasks wait behind the long poll; queue_depth local + global = {} (local {}, global {})",
            depth(&e),
            e.sum(&format!("{p}_queue_depth"), &[("queue", "local")]),
            e.sum(&format!("{p}_queue_depth"), &[("queue", "global")]),
        );
    });
}
