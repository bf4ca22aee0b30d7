//! Worker ids and scheduler slots are reused, not leaked, across resizes
//! (issue 13, defect 4): after K `set_workers(1)` / `set_workers(4)` cycles
//! the largest worker id stays below 4 + a small slack, the metrics
//! exposition holds at most 4 `worker` series per per-worker metric, and
//! memory does not grow with K (the cost of a `yield_now` is printed).
//!
//! K = `UNPLUG_RESIZE_CYCLES`, else `support::scaled(300)` (CI runs
//! 10,000). Alone in its binary: the metrics recorder
//! is process-wide, and RSS is measured for the whole process.
#![cfg(not(loom))]

mod control_support;
mod support;

use control_support::{describe, watchdog, Findings};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use support::{block_on_timeout, http_get, Exposition};
use unplug::{Handle, Runtime};

/// How far above the pool size an id may go (a fix may keep a few spare).
const ID_SLACK: usize = 2;
const WORKERS: usize = 4;

fn vm_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The least of seven timings of 100k `yield_now` in one task.
fn yield_cost(h: &Handle) -> Duration {
    // The least of seven: the machine is shared and noisy; a real growth
    // (every steal scanning dead slots) shows in every run.
    (0..7)
        .map(|_| {
            let t = h.spawn(async {
                let t0 = Instant::now();
                for _ in 0..100_000 {
                    unplug::yield_now().await;
                }
                t0.elapsed()
            });
            block_on_timeout(t, Duration::from_secs(60))
                .expect("100k yields did not finish within 60 s")
                .unwrap()
        })
        .min()
        .unwrap()
}

/// Per metric name (with a `worker` label): its distinct `worker` values.
fn worker_series(e: &Exposition) -> BTreeMap<String, BTreeSet<String>> {
    let mut by_metric: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, labels, _) in &e.samples {
        if let Some((_, w)) = labels.iter().find(|(k, _)| k == "worker") {
            by_metric.entry(name.clone()).or_default().insert(w.clone());
        }
    }
    by_metric
}

#[test]
fn worker_ids_metric_series_and_memory_stay_bounded_over_resize_cycles() {
    let cycles = std::env::var("UNPLUG_RESIZE_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| support::scaled(300));
    let server = unplug::metrics::serve_prometheus("127.0.0.1:0").unwrap();
    let addr = server.addr();
    let rt = Runtime::builder()
        .workers(WORKERS)
        .metrics(true)
        .build()
        .unwrap();
    let h = rt.handle().clone();
    let limit = Duration::from_secs(120) + Duration::from_millis(50) * cycles as u32;
    let findings = watchdog("resize cycles", limit, &h.clone(), move || {
        let mut f = Findings::default();
        let mut errors = Vec::new();
        let mut cycle = |i: usize| {
            for n in [1, WORKERS] {
                if let Err(e) = h.set_workers(n) {
                    errors.push(format!("cycle {i}: set_workers({n}): {e:?}"));
                }
            }
        };
        // Warm up (allocator arenas, metric handles), then measure.
        for i in 0..5 {
            cycle(i);
        }
        let rss0 = vm_rss_kb();
        let y0 = yield_cost(&h);
        let max_id0 = h.workers().iter().map(|w| w.id).max().unwrap();
        let t0 = Instant::now();
        for i in 0..cycles {
            cycle(i);
        }
        let took = t0.elapsed();
        let ws = h.workers();
        let max_id = ws.iter().map(|w| w.id).max().unwrap();
        let rss1 = vm_rss_kb();
        let y1 = yield_cost(&h);
        // A scrape that already shows every current worker.
        let current: BTreeSet<String> = ws.iter().map(|w| w.id.to_string()).collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        let (text, series) = loop {
            let text = http_get(addr, "/metrics").expect("scrape /metrics");
            let series = worker_series(&Exposition::parse(&text));
            let shown = series
                .get("unplug_worker_state")
                .cloned()
                .unwrap_or_default();
            if current.is_subset(&shown) || Instant::now() >= deadline {
                break (text, series);
            }
            std::thread::yield_now();
        };
        let widest = series
            .iter()
            .max_by_key(|(_, ws)| ws.len())
            .map(|(m, ws)| (m.clone(), ws.len()))
            .unwrap_or_default();
        eprintln!(
            "resize cycles: K={cycles} in {took:?} ({:?}/cycle); max worker id {max_id0} after \
             warm-up -> {max_id}; worker series: widest {} with {} values ({} metrics with a \
             worker label, scrape {} bytes); VmRSS {rss0} kB -> {rss1} kB (+{} kB); 100k \
             yields {y0:?} -> {y1:?} ({:.2}x); set_workers errors: {}",
            took / cycles as u32,
            widest.0,
            widest.1,
            series.len(),
            text.len(),
            rss1 as i64 - rss0 as i64,
            y1.as_secs_f64() / y0.as_secs_f64(),
            errors.len()
        );
        f.check(errors.is_empty(), || {
            format!("set_workers failed: {:?}", &errors[..errors.len().min(5)])
        });
        f.check(ws.len() == WORKERS, || {
            format!(
                "{} workers listed, expected {WORKERS}: [{}]",
                ws.len(),
                describe(&h)
            )
        });
        f.check(max_id < WORKERS + ID_SLACK, || {
            format!(
                "worker ids are not reused: max id {max_id} after {cycles} cycles (limit < {})",
                WORKERS + ID_SLACK
            )
        });
        f.check(widest.1 <= WORKERS, || {
            format!(
                "metric {} has {} worker series after {cycles} cycles (limit {WORKERS})",
                widest.0, widest.1
            )
        });
        f.check(rss1 < rss0 + 20 * 1024, || {
            format!(
                "VmRSS grew {} kB over {cycles} cycles (limit 20 MB)",
                rss1 - rss0
            )
        });
        // The yield cost is printed, not asserted: on this shared 2-CPU
        // machine it is bimodal (1.0x-1.6x between two measurements of the
        // same pool, whatever K), and it did not separate the leaking code
        // either (1.32x at 10,000 cycles there). What made yields slower —
        // every steal scanning dead slots — is bounded by the id check
        // above: slots never outnumber the largest id + 1.
        let _ = (y0, y1);
        f
    });
    drop(rt);
    findings.assert_none("worker_ids_metric_series_and_memory_stay_bounded_over_resize_cycles");
}
