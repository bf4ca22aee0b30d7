//! Metrics on versus off, same run: yield_many and spawn_many_local on two
//! runtimes in one process, one recording into a real Prometheus recorder
//! (with its HTTP endpoint and upkeep running), one not. Target: metrics on
//! at most 3% slower.
//!
//! Run: `cargo bench --bench metrics_overhead`

mod workloads;

use criterion::{criterion_group, Criterion};
use std::time::{Duration, Instant};
use workloads::*;

fn runtimes() -> ((unplug::Runtime, Unplug), (unplug::Runtime, Unplug)) {
    let n = num_workers();
    unplug::metrics::serve_prometheus("127.0.0.1:0").expect("install the recorder");
    let off = unplug::Runtime::builder()
        .workers(n)
        .metrics(false)
        .build()
        .unwrap();
    let on = unplug::Runtime::builder()
        .workers(n)
        .metrics(true)
        .build()
        .unwrap();
    let (hoff, hon) = (Unplug(off.handle().clone()), Unplug(on.handle().clone()));
    ((off, hoff), (on, hon))
}

fn bench(c: &mut Criterion) {
    let ((_off_rt, off), (_on_rt, on)) = runtimes();
    let local = SpawnManyLocal::new();
    let mut g = c.benchmark_group("metrics");
    g.sample_size(20);
    g.bench_function("yield_many/off", |b| b.iter(|| yield_many(&off)));
    g.bench_function("yield_many/on", |b| b.iter(|| yield_many(&on)));
    g.bench_function("spawn_many_local/off", |b| b.iter(|| local.run(&off)));
    g.bench_function("spawn_many_local/on", |b| b.iter(|| local.run(&on)));
    g.finish();
    summary(&off, &on, &local);
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Alternating samples, medians, ratio on/off.
fn summary(off: &Unplug, on: &Unplug, local: &SpawnManyLocal) {
    let rounds = std::env::var("OVERHEAD_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(41);
    println!("\nmetrics overhead ({rounds} alternating rounds, medians)");
    println!(
        "{:<18} {:>10} {:>10} {:>9}",
        "workload", "off_ms", "on_ms", "on/off"
    );
    for (name, run) in [
        (
            "yield_many",
            &(|s: &Unplug| yield_many(s)) as &dyn Fn(&Unplug),
        ),
        ("spawn_many_local", &|s: &Unplug| local.run(s)),
    ] {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for r in 0..rounds {
            for k in 0..2 {
                let (s, v) = if (r + k) % 2 == 0 {
                    (off, &mut a)
                } else {
                    (on, &mut b)
                };
                let t = Instant::now();
                run(s);
                v.push(t.elapsed());
            }
        }
        let (a, b) = (median(&mut a), median(&mut b));
        println!(
            "{name:<18} {:>10.3} {:>10.3} {:>9.3}",
            a.as_secs_f64() * 1e3,
            b.as_secs_f64() * 1e3,
            b.as_secs_f64() / a.as_secs_f64()
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
