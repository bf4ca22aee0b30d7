//! tokio's multi-thread scheduler workloads on unplug, tokio and
//! async-executor, side by side in one run, same worker count.
//!
//! Run: `cargo bench --bench rt_multi_threaded` (`BENCH_WORKERS=n` to change
//! the worker count; tokio's own benches use 4). `examples/compare.rs`
//! prints the ratios as a table.

mod workloads;

use criterion::{criterion_group, criterion_main, Criterion};
use workloads::*;

fn bench_on<S: Spawner>(c: &mut Criterion, name: &str, s: &S) {
    let mut g = c.benchmark_group(name);
    g.sample_size(20);
    let local = SpawnManyLocal::new();
    g.bench_function("spawn_many_local", |b| b.iter(|| local.run(s)));
    g.bench_function("spawn_many_remote_idle", |b| {
        b.iter(|| spawn_many_remote_idle(s))
    });
    {
        let _load = busy1(s);
        g.bench_function("spawn_many_remote_busy1", |b| {
            b.iter(|| spawn_many_remote(s, NUM_SPAWN))
        });
    }
    {
        let _load = busy2(s);
        g.bench_function("spawn_many_remote_busy2", |b| {
            b.iter(|| spawn_many_remote(s, 1_000))
        });
    }
    g.bench_function("yield_many", |b| b.iter(|| yield_many(s)));
    g.bench_function("ping_pong", |b| b.iter(|| ping_pong(s)));
    g.bench_function("chained_spawn", |b| b.iter(|| chained_spawn(s)));
    g.finish();
}

fn scheduler(c: &mut Criterion) {
    let n = num_workers();
    {
        let (_rt, s) = Unplug::new(n);
        bench_on(c, "unplug", &s);
    }
    {
        let (_rt, s) = Tokio::new(n);
        bench_on(c, "tokio", &s);
    }
    {
        let (_threads, s) = AsyncExecutor::new(n);
        bench_on(c, "async_executor", &s);
    }
}

criterion_group!(benches, scheduler);
criterion_main!(benches);
