//! The metrics a runtime leaves behind (FINAL-PUBLISH and STATE-SERIES in
//! `runtime/src/metrics/recorder.rs`), found by a red team on 2026-12-04:
//! - the publisher stopped when shutdown began, so up to a publish
//!   interval of counts was never shown (0 of 1,050 spawns in one run),
//!   tasks cancelled at shutdown never counted as completed, and the
//!   gauges said "idle" for good after the runtime was dropped;
//! - a worker index that came back on another CPU had two current states,
//!   its old CPU's series stuck at `stopped`.
//!
//! The recorder is process-wide: each test has a metrics prefix of its own.
#![cfg(not(loom))]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use support::{
    metrics_server, scrape_metrics, scrape_metrics_until as scrape_until, wait_for, with_watchdog,
    Exposition,
};
use unplug::Runtime;

fn server() -> std::net::SocketAddr {
    metrics_server()
}

fn scrape() -> Exposition {
    scrape_metrics()
}

#[test]
fn the_last_counts_are_published_at_shutdown_with_cancelled_tasks_completed() {
    server();
    with_watchdog("counts at shutdown", || {
        let p = "ml_last";
        let rt = Runtime::builder()
            .workers(2)
            .metrics_prefix(p)
            .build()
            .unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..1000 {
            let done = done.clone();
            drop(rt.spawn(async move {
                done.fetch_add(1, SeqCst);
            }));
        }
        for _ in 0..50 {
            drop(rt.spawn(std::future::pending::<()>()));
        }
        wait_for("1000 tasks done", || done.load(SeqCst) == 1000);
        drop(rt);
        // Read at once: nothing publishes after the drop.
        let e = scrape();
        let spawned = e.sum(&format!("{p}_tasks_spawned_total"), &[]);
        let completed = e.sum(&format!("{p}_tasks_completed_total"), &[]);
        assert_eq!(
            (spawned, completed),
            (1050.0, 1050.0),
            "spawned / completed (finished or cancelled) after the drop"
        );
    });
}

#[test]
fn no_worker_reads_running_or_idle_after_the_runtime_is_dropped() {
    server();
    with_watchdog("gauges after drop", || {
        let p = "ml_gone";
        let rt = Runtime::builder()
            .workers(2)
            .metrics_prefix(p)
            .build()
            .unwrap();
        let workers = format!("{p}_workers");
        let live = |e: &Exposition| {
            e.sum(&workers, &[("state", "running")]) + e.sum(&workers, &[("state", "idle")])
        };
        let (seen, _) = scrape_until(Duration::from_secs(20), |e| live(e) == 2.0);
        assert!(seen, "two workers published");
        drop(rt);
        let e = scrape();
        assert_eq!(live(&e), 0.0, "workers running or idle after the drop");
        let state = format!("{p}_worker_state");
        for s in ["running", "idle"] {
            assert_eq!(e.sum(&state, &[("state", s)]), 0.0, "worker_state {s}");
        }
        assert_eq!(e.sum(&state, &[("state", "stopped")]), 2.0);
    });
}

#[test]
fn a_worker_index_reused_on_another_cpu_has_one_current_state() {
    server();
    let cpus = unplug::worker::affinity::allowed_cpus().unwrap();
    if cpus.len() < 2 {
        eprintln!("skipped: needs two CPUs");
        return;
    }
    with_watchdog("state series of a reused index", || {
        let p = "ml_reuse";
        let rt = Runtime::builder()
            .workers(3)
            .pin_workers(true)
            .metrics_prefix(p)
            .build()
            .unwrap();
        let state = format!("{p}_worker_state");
        let old_cpu = rt
            .workers()
            .iter()
            .find(|w| w.id == 2)
            .unwrap()
            .cpu
            .unwrap();
        let old = old_cpu.to_string();
        let (seen, _) = scrape_until(Duration::from_secs(20), |e| {
            ["running", "idle"]
                .iter()
                .any(|s| e.sum(&state, &[("worker", "2"), ("cpu", &old), ("state", s)]) == 1.0)
        });
        assert!(seen, "worker 2 published on CPU {old}");
        rt.set_workers(2).unwrap();
        let (seen, _) = scrape_until(Duration::from_secs(20), |e| {
            e.sum(
                &state,
                &[("worker", "2"), ("cpu", &old), ("state", "stopped")],
            ) == 1.0
        });
        assert!(seen, "worker 2 published as stopped on CPU {old}");
        // Worker 2's CPU goes, then the pool grows: index 2 comes back on
        // another CPU.
        rt.unplug_cpu(old_cpu).unwrap();
        rt.set_workers(3).unwrap();
        let after = rt.workers();
        let new_cpu = after.iter().find(|w| w.id == 2).unwrap().cpu.unwrap();
        assert_ne!(new_cpu, old_cpu);
        let new = new_cpu.to_string();
        let (seen, e) = scrape_until(Duration::from_secs(20), |e| {
            ["running", "idle"]
                .iter()
                .any(|s| e.sum(&state, &[("worker", "2"), ("cpu", &new), ("state", s)]) == 1.0)
        });
        assert!(seen, "the new worker 2 published on CPU {new}");
        // Every series of a worker is 0 or 1: one current state is a sum
        // of one.
        assert_eq!(
            e.sum(&state, &[("worker", "2")]),
            1.0,
            "worker 2's current states (old CPU {old}, new CPU {new})"
        );
    });
}
