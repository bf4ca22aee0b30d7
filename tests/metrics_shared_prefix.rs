//! SHARED-SERIES (`runtime/src/metrics/recorder.rs`): runtimes of one
//! process that share a metrics prefix (the default one, say) add up in
//! the counters and in the `workers` gauge. A red team found on
//! 2026-12-04 that each runtime set the shared series to its own values:
//! two live runtimes with 300 and 5 tasks read 300, a runtime built after
//! a larger one was dropped never moved the counters, and the `workers`
//! gauge flipped between 1 and 2 (of 3 workers) from scrape to scrape.
//!
//! The recorder is process-wide: each test has a metrics prefix of its own.
#![cfg(not(loom))]

mod support;

use std::time::{Duration, Instant};
use support::{metrics_server, scrape_metrics, wait_for, with_watchdog, Exposition};
use unplug::Runtime;

fn server() -> std::net::SocketAddr {
    metrics_server()
}

fn scrape() -> Exposition {
    scrape_metrics()
}

fn runtime(prefix: &str, workers: usize) -> Runtime {
    server();
    Runtime::builder()
        .workers(workers)
        .metrics_prefix(prefix)
        .build()
        .unwrap()
}

/// Waits until `{prefix}_tasks_spawned_total` and
/// `{prefix}_tasks_completed_total` both read `want` (a publish may land
/// between the last output and its task's release).
fn wait_for_spawned(prefix: &str, want: f64) {
    let names = ["spawned", "completed"].map(|c| format!("{prefix}_tasks_{c}_total"));
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let e = scrape();
        let got = names.clone().map(|n| e.sum(&n, &[]));
        if got == [want, want] {
            return;
        }
        assert!(
            Instant::now() < end,
            "(spawned, completed) = {got:?}, want {want} each"
        );
        std::thread::yield_now();
    }
}

fn spawn_and_finish(rt: &Runtime, n: usize) {
    let tasks: Vec<_> = (0..n).map(|_| rt.spawn(async {})).collect();
    rt.block_on(async {
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[test]
fn two_live_runtimes_with_one_prefix_add_up() {
    with_watchdog("two live runtimes", || {
        let p = "sp_two";
        let (a, b) = (runtime(p, 2), runtime(p, 1));
        spawn_and_finish(&a, 300);
        spawn_and_finish(&b, 5);
        wait_for_spawned(p, 305.0);
        let workers = format!("{p}_workers");
        wait_for("3 workers published", || {
            let e = scrape();
            e.sum(&workers, &[("state", "running")]) + e.sum(&workers, &[("state", "idle")]) == 3.0
        });
        // And it stays at 3 (it flipped between the runtimes' own counts).
        for _ in 0..20 {
            let e = scrape();
            let live =
                e.sum(&workers, &[("state", "running")]) + e.sum(&workers, &[("state", "idle")]);
            assert_eq!(live, 3.0, "workers running or idle");
        }
    });
}

#[test]
fn a_runtime_built_after_a_larger_one_was_dropped_moves_the_counters() {
    with_watchdog("sequential runtimes", || {
        let p = "sp_seq";
        let a = runtime(p, 2);
        spawn_and_finish(&a, 500);
        wait_for_spawned(p, 500.0);
        drop(a);
        let b = runtime(p, 2);
        spawn_and_finish(&b, 200);
        wait_for_spawned(p, 700.0);
    });
}

/// PREFIX-CHECKED: a prefix the exporter would rewrite is refused at build.
/// Before, `"app-a"` became `app_a` in the exposition: a runtime built with
/// it and one built with `"app_a"` wrote one series, each publish
/// overwriting the other's counters (a counter read 40, 100, 40, 100 from
/// scrape to scrape: a red team).
#[test]
fn a_prefix_the_exporter_would_rewrite_is_refused_at_build() {
    for bad in ["app-a", "9lives", "", "app a", "app.a", "appé"] {
        let built = Runtime::builder().workers(1).metrics_prefix(bad).build();
        assert!(
            matches!(&built, Err(unplug::BuildError::InvalidMetricsPrefix(p)) if p == bad),
            "prefix {bad:?}: {:?}",
            built.map(|_| ())
        );
    }
    for good in ["app_a", "app:a", "_app", "App9"] {
        let built = Runtime::builder().workers(1).metrics_prefix(good).build();
        assert!(built.is_ok(), "prefix {good:?}: {:?}", built.map(|_| ()));
    }
}
