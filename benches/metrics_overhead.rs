//! What watching the workers costs, same run: yield_many, spawn_many_local
//! and spawn_many_remote_idle on three runtimes in one process, at one
//! worker per CPU (`BENCH_WORKERS` overrides):
//! - `bare`: no metrics, no long-poll monitor (`long_poll_threshold(ZERO)`);
//! - `off`: the default without metrics: the long-poll monitor on (two
//!   Relaxed stores per poll and a thread that looks every 2.5 ms);
//! - `on`: metrics into a real Prometheus recorder (endpoint and upkeep
//!   running): per-worker counters, one poll in 1024 timed into
//!   `poll_duration_seconds`, one schedule in 1024 into
//!   `schedule_latency_seconds`, the monitor on.
//!
//! Target: `on` at most 3% slower than `bare`. Run:
//! `cargo bench --bench metrics_overhead` (the summary table at the end
//! alternates the three, `OVERHEAD_ROUNDS` rounds, medians).

mod workloads;

use criterion::{criterion_group, Criterion};
use std::time::{Duration, Instant};
use workloads::*;

/// (name, runtime, its spawner) for bare, off, on.
fn runtimes() -> Vec<(&'static str, unplug::Runtime, Unplug)> {
    let n = num_workers();
    unplug::metrics::serve_prometheus("127.0.0.1:0").expect("install the recorder");
    let build = |metrics: bool, threshold: Duration| {
        unplug::Runtime::builder()
            .workers(n)
            .metrics(metrics)
            .long_poll_threshold(threshold)
            .build()
            .unwrap()
    };
    [
        ("bare", build(false, Duration::ZERO)),
        ("off", build(false, unplug::DEFAULT_LONG_POLL_THRESHOLD)),
        ("on", build(true, unplug::DEFAULT_LONG_POLL_THRESHOLD)),
    ]
    .into_iter()
    .map(|(name, rt)| {
        let s = Unplug(rt.handle().clone());
        (name, rt, s)
    })
    .collect()
}

fn bench(c: &mut Criterion) {
    let rts = runtimes();
    let local = SpawnManyLocal::new();
    let mut g = c.benchmark_group("metrics");
    g.sample_size(20);
    for (name, _, s) in &rts {
        g.bench_function(format!("yield_many/{name}"), |b| b.iter(|| yield_many(s)));
        g.bench_function(format!("spawn_many_local/{name}"), |b| {
            b.iter(|| local.run(s))
        });
        g.bench_function(format!("spawn_many_remote_idle/{name}"), |b| {
            b.iter(|| spawn_many_remote_idle(s))
        });
    }
    g.finish();
    let spawners: Vec<(&str, &Unplug)> = rts.iter().map(|(n, _, s)| (*n, s)).collect();
    summary(&spawners, &local);
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A named workload run on one runtime.
type Workload<'a> = (&'a str, &'a dyn Fn(&Unplug));

/// Alternating samples, medians, ratios to `bare`.
fn summary(rts: &[(&str, &Unplug)], local: &SpawnManyLocal) {
    let rounds = std::env::var("OVERHEAD_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(41);
    println!(
        "\nwatching overhead: {} workers, {} CPUs, {rounds} alternating rounds, medians",
        num_workers(),
        num_cpus()
    );
    println!(
        "{:<24} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "workload", "bare_ms", "off_ms", "on_ms", "off/bare", "on/bare"
    );
    let workloads: [Workload<'_>; 3] = [
        ("yield_many", &|s: &Unplug| yield_many(s)),
        ("spawn_many_local", &|s: &Unplug| local.run(s)),
        ("spawn_many_remote_idle", &|s: &Unplug| {
            spawn_many_remote_idle(s)
        }),
    ];
    for (name, run) in workloads {
        let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); rts.len()];
        for r in 0..rounds {
            for k in 0..rts.len() {
                let i = (r + k) % rts.len();
                let t = Instant::now();
                run(rts[i].1);
                samples[i].push(t.elapsed());
            }
        }
        let m: Vec<Duration> = samples.iter_mut().map(|v| median(v)).collect();
        println!(
            "{name:<24} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            m[0].as_secs_f64() * 1e3,
            m[1].as_secs_f64() * 1e3,
            m[2].as_secs_f64() * 1e3,
            m[1].as_secs_f64() / m[0].as_secs_f64(),
            m[2].as_secs_f64() / m[0].as_secs_f64()
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
