//! Metrics over real HTTP: scrape `/metrics` while tasks run and CPUs are
//! unplugged and plugged, parse the exposition, and check the values move
//! as they must; `promtool check metrics` accepts a scrape.
//! Alone in its binary: the recorder is process-wide.
#![cfg(not(loom))]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Instant;
use support::{http_get, Exposition, DEADLINE};
use unplug::worker::WorkerState;
use unplug::Runtime;

fn scrape(addr: std::net::SocketAddr) -> (String, Exposition) {
    let text = http_get(addr, "/metrics").expect("scrape /metrics");
    let parsed = Exposition::parse(&text);
    (text, parsed)
}

/// Scrapes until `cond` holds (the publisher runs every 250 ms).
fn scrape_until(
    addr: std::net::SocketAddr,
    what: &str,
    cond: impl Fn(&Exposition) -> bool,
) -> (String, Exposition) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (text, e) = scrape(addr);
        if cond(&e) {
            return (text, e);
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last scrape:\n{text}"
        );
        std::thread::yield_now();
    }
}

#[test]
fn scraped_metrics_match_what_the_runtime_did() {
    let cpus = unplug::worker::affinity::allowed_cpus().unwrap();
    let server = unplug::metrics::serve_prometheus("127.0.0.1:0").unwrap();
    let addr = server.addr();
    assert!(addr.ip().is_loopback());
    let rt = Runtime::builder()
        .workers(2 * cpus.len())
        .pin_workers(true)
        .metrics_poll_time(true)
        .build()
        .unwrap();
    let h = rt.handle().clone();

    // Load while CPUs go and come back.
    let done = Arc::new(AtomicUsize::new(0));
    const TASKS: usize = 5_000;
    for i in 0..TASKS {
        let done = done.clone();
        rt.spawn(async move {
            if i % 7 == 0 {
                tokio::time::sleep(std::time::Duration::from_micros(100)).await;
            }
            unplug::yield_now().await;
            done.fetch_add(1, SeqCst);
        });
    }
    let mut parks_by_worker = vec![0u64; 2 * cpus.len()];
    let (mut unplugs, mut plugs, mut unparks) = (0, 0, 0);
    for round in 0..10 {
        let cpu = cpus[round % cpus.len()];
        if cpus.len() > 1 {
            let report = h.unplug_cpu(cpu).unwrap();
            for id in &report.parked {
                parks_by_worker[*id] += 1;
            }
            unplugs += 1;
            // A scrape in the middle of it all.
            let (_, mid) = scrape(addr);
            assert!(mid.has("unplug_parks_total"));
            let plugged = h.plug_cpu(cpu).unwrap();
            assert!(!plugged.unparked.is_empty());
            unparks += plugged.unparked.len();
            plugs += 1;
        } else {
            let report = h.park_worker(1).unwrap();
            parks_by_worker[1] += report.parked.len() as u64;
            unparks += h.unpark_worker(1, None).unwrap().unparked.len();
        }
    }
    support::wait_for("load", || done.load(SeqCst) == TASKS);
    let parks: u64 = parks_by_worker.iter().sum();
    assert!(parks >= 10);

    // Quiescent: park one CPU's workers so the state gauges are stable.
    let parked_now = if cpus.len() > 1 {
        h.unplug_cpu(cpus[1]).unwrap().parked
    } else {
        vec![]
    };
    for id in &parked_now {
        parks_by_worker[*id] += 1;
    }
    let parks = parks + parked_now.len() as u64;
    let spawned = TASKS as f64;
    let (text, e) = scrape_until(addr, "published counters", |e| {
        e.sum("unplug_parks_total", &[]) == parks as f64
            // Every park says which evidence of inactivity it used.
            && e.sum("unplug_park_inactive_evidence_total", &[]) == parks as f64
            && e.sum("unplug_tasks_completed_total", &[]) == spawned
            && e.sum("unplug_unpark_latency_seconds_count", &[]) >= plugs as f64
            // The worker records an unpark latency each time it comes back
            // from a park (`resumes`): the counts agree once published.
            && h.workers().iter().all(|w| {
                e.sum("unplug_unpark_latency_seconds_count", &[("worker", &w.id.to_string())]) == w.resumes as f64
            })
            && e.sum("unplug_workers", &[("state", "parked")]) == parked_now.len() as f64
    });

    // Histograms, not summaries, with the explicit 1 us .. 1 s buckets.
    for h in [
        "park_latency_seconds",
        "park_to_inactive_seconds",
        "unpark_latency_seconds",
        "poll_duration_seconds",
        "schedule_latency_seconds",
    ] {
        let name = format!("unplug_{h}");
        assert_eq!(
            e.types.get(&name).map(String::as_str),
            Some("histogram"),
            "{name}"
        );
        assert!(e.sum(&format!("{name}_bucket"), &[("le", "0.000001")]) >= 0.0);
        assert!(
            text.contains(&format!("{name}_bucket{{")),
            "{name} has buckets"
        );
    }
    // Each worker: parks counter = parks performed = histogram counts.
    for (id, &n) in parks_by_worker.iter().enumerate() {
        let w = id.to_string();
        let labels = [("worker", w.as_str())];
        assert_eq!(
            e.sum("unplug_parks_total", &labels),
            n as f64,
            "parks of worker {id}"
        );
        assert_eq!(
            e.sum("unplug_park_latency_seconds_count", &labels),
            n as f64,
            "park latency count {id}"
        );
        assert_eq!(
            e.sum("unplug_park_to_inactive_seconds_count", &labels),
            n as f64,
            "inactive count {id}"
        );
    }
    assert_eq!(e.sum("unplug_tasks_spawned_total", &[]), spawned);
    assert_eq!(
        e.sum("unplug_hotplug_events_total", &[("kind", "unplug_cpu")]),
        (unplugs + parked_now.len().min(1)) as f64
    );
    assert_eq!(
        e.sum("unplug_hotplug_events_total", &[("kind", "plug_cpu")]),
        plugs as f64
    );
    // An unpark followed by a re-park before the worker left `parkme` is
    // one resume for two unparks.
    assert!(
        e.sum("unplug_unparks_total", &[]) >= e.sum("unplug_unpark_latency_seconds_count", &[])
    );
    assert_eq!(e.sum("unplug_unparks_total", &[]), unparks as f64);
    assert!(e.sum("unplug_tasks_polled_total", &[]) >= spawned);
    // metrics_poll_time(true): every poll timed, per worker.
    assert!(e.sum("unplug_poll_duration_seconds_count", &[]) >= spawned);
    assert!(text.contains("unplug_poll_duration_seconds_bucket{worker=\"0\",le=\"10\"}"));
    // One schedule in 64 per thread is sampled: thousands of tasks give some.
    assert!(e.sum("unplug_schedule_latency_seconds_count", &[]) > 0.0);
    assert_eq!(e.sum("unplug_queue_depth", &[("queue", "global")]), 0.0);
    // Worker state gauges match workers().
    let workers = h.workers();
    for w in &workers {
        let (id, cpu) = (w.id.to_string(), w.cpu.unwrap().to_string());
        let state = match w.state {
            // Running and idle flicker; parked is stable here.
            WorkerState::Running | WorkerState::Idle => None,
            s => Some(s.as_str()),
        };
        if let Some(state) = state {
            assert_eq!(
                e.sum(
                    "unplug_worker_state",
                    &[("worker", &id), ("cpu", &cpu), ("state", state)]
                ),
                1.0,
                "worker {id} on CPU {cpu} should be {state}"
            );
        } else {
            assert_eq!(
                e.sum(
                    "unplug_worker_state",
                    &[("worker", &id), ("state", "parked")]
                ),
                0.0,
                "worker {id} is not parked"
            );
        }
    }

    // promtool agrees the exposition is valid.
    match std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "promtool check metrics failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool is required in CI: {e}"
            );
            eprintln!("promtool not installed ({e}); skipped its check");
        }
    }
    drop(rt);
    // After the runtime is gone the endpoint still answers.
    scrape(addr);
}
