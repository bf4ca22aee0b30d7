//! Memory of `metrics_poll_time(true)` between two upkeeps of the
//! exporter: each timed poll and schedule is a raw sample held until the
//! upkeep drains it. Alone in its binary (it reads the RSS, and installs
//! the process's recorder).
//!
//! Fixed defect (a red team, 2026-12-04), UPKEEP-OFTEN: the upkeep ran
//! every 5 s, and two workers looping on `yield_now` with poll timing on
//! held 443 MB more after 4.5 s (2 MB with it off).
#![cfg(not(loom))]

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::with_watchdog;
use unplug::Runtime;

fn rss_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn run(poll_time: bool, prefix: &str) -> (u64, u64) {
    let rt = Runtime::builder()
        .workers(2)
        .metrics(true)
        .metrics_prefix(prefix)
        .metrics_poll_time(poll_time)
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let polls = Arc::new(AtomicU64::new(0));
    let base = rss_kb();
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let (stop, polls) = (stop.clone(), polls.clone());
            rt.spawn(async move {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    unplug::yield_now().await;
                    n += 1;
                }
                polls.fetch_add(n, SeqCst);
            })
        })
        .collect();
    let ms: u64 = std::env::var("RT_MEM_MS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let end = Instant::now() + Duration::from_millis(ms);
    let mut peak = base;
    while Instant::now() < end {
        peak = peak.max(rss_kb());
        // The sampling rate of the RSS, not synchronisation.
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, SeqCst);
    rt.block_on(async move {
        for t in tasks {
            t.await.unwrap();
        }
    });
    (peak.saturating_sub(base), polls.load(SeqCst))
}

#[test]
fn timing_every_poll_holds_no_pile_of_samples() {
    unplug::metrics::serve_prometheus("127.0.0.1:0").unwrap();
    with_watchdog("poll time memory", || {
        let (off_kb, off_polls) = run(false, "rtm_mem_off");
        let (on_kb, on_polls) = run(true, "rtm_mem_on");
        eprintln!(
            "off: +{off_kb} kB over {off_polls} polls; on: +{on_kb} kB over {on_polls} polls"
        );
        assert!(
            on_kb < off_kb + 64 * 1024,
            "metrics_poll_time(true): RSS +{on_kb} kB in RT_MEM_MS (default 2000 ms) ({on_polls} polls), off: +{off_kb} kB ({off_polls} polls)"
        );
    });
}
