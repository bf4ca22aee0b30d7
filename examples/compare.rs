//! tokio's multi-thread workloads on unplug, tokio and async-executor,
//! without criterion: each workload runs `--rounds` times per runtime,
//! alternating runtimes round by round (so drift on a noisy machine hits all
//! three alike), and the table gives medians and ratios.
//!
//! Run: `cargo run --release --example compare [-- --rounds N | --quick]`
//! (`BENCH_WORKERS=n` for the worker count, default one per CPU the process
//! may use, for all three runtimes).
//! `--quick` is a smoke run: it checks nothing about speed.

#[path = "../benches/workloads/mod.rs"]
mod workloads;

use std::time::{Duration, Instant};
use workloads::*;

const WORKLOADS: [&str; 7] = [
    "spawn_many_local",
    "spawn_many_remote_idle",
    "spawn_many_remote_busy1",
    "spawn_many_remote_busy2",
    "yield_many",
    "ping_pong",
    "chained_spawn",
];

fn run_one<S: Spawner>(workload: &str, s: &S, local: &SpawnManyLocal) -> Duration {
    match workload {
        "spawn_many_remote_busy1" => {
            let _load = busy1(s);
            let start = Instant::now();
            spawn_many_remote(s, NUM_SPAWN);
            start.elapsed()
        }
        "spawn_many_remote_busy2" => {
            let _load = busy2(s);
            let start = Instant::now();
            spawn_many_remote(s, 1_000);
            start.elapsed()
        }
        _ => {
            let start = Instant::now();
            match workload {
                "spawn_many_local" => local.run(s),
                "spawn_many_remote_idle" => spawn_many_remote_idle(s),
                "yield_many" => yield_many(s),
                "ping_pong" => ping_pong(s),
                "chained_spawn" => chained_spawn(s),
                other => unreachable!("{other}"),
            }
            start.elapsed()
        }
    }
}

fn median(v: &mut [Duration]) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 3 } else { 31 });
    // `--workload NAME` / `--only RUNTIME`: narrow the run (for profiling).
    let pick = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let (only_workload, only_runtime) = (pick("--workload"), pick("--only"));
    let n = num_workers();
    let (_u_rt, unplug) = Unplug::new(n);
    let (_t_rt, tokio) = Tokio::new(n);
    let (_a_threads, asx) = AsyncExecutor::new(n);
    let local = SpawnManyLocal::new();
    println!(
        "# {n} workers each on {} CPUs, {rounds} rounds per runtime, medians, runtimes alternating",
        num_cpus()
    );
    println!(
        "{:<26} {:>10} {:>10} {:>17} {:>12} {:>21}",
        "workload",
        "unplug_ms",
        "tokio_ms",
        "async_executor_ms",
        "unplug/tokio",
        "unplug/async_executor"
    );
    let (mut worst_tokio, mut worst_best) = (0f64, 0f64);
    for workload in WORKLOADS {
        if only_workload.as_deref().is_some_and(|w| w != workload) {
            continue;
        }
        if let Some(rt) = only_runtime.as_deref() {
            let mut v: Vec<Duration> = (0..rounds)
                .map(|_| match rt {
                    "unplug" => run_one(workload, &unplug, &local),
                    "tokio" => run_one(workload, &tokio, &local),
                    _ => run_one(workload, &asx, &local),
                })
                .collect();
            println!("{workload:<26} {rt} median {:.3} ms", median(&mut v));
            continue;
        }
        // Warm-up: one run each.
        run_one(workload, &unplug, &local);
        run_one(workload, &tokio, &local);
        run_one(workload, &asx, &local);
        let (mut u, mut t, mut a) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..rounds {
            // Rotate the order so no runtime always goes first.
            for k in 0..3 {
                match (r + k) % 3 {
                    0 => u.push(run_one(workload, &unplug, &local)),
                    1 => t.push(run_one(workload, &tokio, &local)),
                    _ => a.push(run_one(workload, &asx, &local)),
                }
            }
        }
        let (u, t, a) = (median(&mut u), median(&mut t), median(&mut a));
        worst_tokio = worst_tokio.max(u / t);
        worst_best = worst_best.max(u / t.min(a));
        println!(
            "{workload:<26} {u:>10.3} {t:>10.3} {a:>17.3} {:>12.2} {:>21.2}",
            u / t,
            u / a
        );
    }
    println!("worst unplug/tokio: {worst_tokio:.2}");
    println!("worst unplug/best peer: {worst_best:.2}");
}
