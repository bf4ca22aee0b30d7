//! Park latency against the machine's floor, measured in one run.
//!
//! - floor: a plain thread-to-thread wake-up round trip (`thread::park` /
//!   `unpark`, a futex each way) between the same two CPUs the controller
//!   and worker use;
//! - park request → `parked` completion, and → `park()` returning (inactive),
//!   on an idle worker;
//! - unpark request → the worker running again (first instruction after
//!   `parkme` returns).
//!
//! Criterion measures each; then a summary pass (interleaved samples) prints
//! p50/p99 and the ratios to the floor (park vs round trip, unpark vs one
//! way). Run: `cargo bench --bench park_latency`.

#[path = "workloads/floor.rs"]
mod floor;

use criterion::{criterion_group, Criterion};
use floor::Floor;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};
use unplug_worker::{affinity, Worker};

/// The CPUs the controller and the worker run on.
fn cpus() -> (usize, usize) {
    let cpus = affinity::allowed_cpus().unwrap();
    (cpus[0], *cpus.last().unwrap())
}

/// An idle worker that records when it comes back from `parkme`.
struct Parkable {
    worker: Worker<()>,
    base: Instant,
    resumed_at: Arc<AtomicU64>,
}

impl Parkable {
    fn new(cpu: usize) -> Self {
        let base = Instant::now();
        let resumed_at = Arc::new(AtomicU64::new(0));
        let r = resumed_at.clone();
        let worker = Worker::builder()
            .name("bench-worker")
            .cpu(cpu)
            .spawn(move |ctx| loop {
                while ctx.keep_running() {
                    ctx.idle_wait(|| false);
                }
                if ctx.should_stop() {
                    return;
                }
                ctx.parkme();
                r.store(base.elapsed().as_nanos() as u64, SeqCst);
            })
            .unwrap();
        Parkable {
            worker,
            base,
            resumed_at,
        }
    }

    /// Unparks and returns the time from the request to the worker running.
    fn unpark_to_running(&self) -> Duration {
        let before = self.resumed_at.load(SeqCst);
        let start = self.base.elapsed().as_nanos() as u64;
        self.worker.unpark().unwrap();
        loop {
            let now = self.resumed_at.load(SeqCst);
            if now != before {
                return Duration::from_nanos(now.saturating_sub(start));
            }
            std::hint::spin_loop();
        }
    }
}

fn bench(c: &mut Criterion) {
    let (here, there) = cpus();
    affinity::pin_to(0, &[here]).unwrap();
    let mut floor = Floor::new(there);
    let parkable = Parkable::new(there);

    let mut group = c.benchmark_group("park");
    group.bench_function("floor_round_trip", |b| {
        b.iter_custom(|n| (0..n).map(|_| floor.round_trip()).sum())
    });
    group.bench_function("request_to_parked", |b| {
        b.iter_custom(|n| {
            (0..n)
                .map(|_| {
                    let t = parkable.worker.park().unwrap();
                    parkable.worker.unpark().unwrap();
                    t.to_parked
                })
                .sum()
        })
    });
    group.bench_function("request_to_inactive", |b| {
        b.iter_custom(|n| {
            (0..n)
                .map(|_| {
                    let t = parkable.worker.park().unwrap();
                    parkable.worker.unpark().unwrap();
                    t.to_inactive
                })
                .sum()
        })
    });
    group.bench_function("unpark_to_running", |b| {
        b.iter_custom(|n| {
            (0..n)
                .map(|_| {
                    parkable.worker.park().unwrap();
                    parkable.unpark_to_running()
                })
                .sum()
        })
    });
    group.finish();
    summary(&mut floor, &parkable);
    parkable.worker.stop().unwrap();
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Interleaved samples of all four, then p50/p99 and the ratios.
fn summary(floor: &mut Floor, parkable: &Parkable) {
    let samples = std::env::var("PARK_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    let (mut rt, mut parked, mut inactive, mut unpark) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..samples {
        rt.push(floor.round_trip());
        let t = parkable.worker.park().unwrap();
        parked.push(t.to_parked);
        inactive.push(t.to_inactive);
        unpark.push(parkable.unpark_to_running());
    }
    let rt50 = pct(&mut rt, 0.5);
    let one_way = rt50 / 2;
    println!("\npark latency summary ({samples} interleaved samples, controller and worker on different CPUs)");
    println!(
        "{:<22} {:>10} {:>10} {:>14}",
        "measure", "p50", "p99", "p50 / floor"
    );
    let row = |name: &str, v: &mut Vec<Duration>, floor: Duration, floor_name: &str| {
        let (p50, p99) = (pct(v, 0.5), pct(v, 0.99));
        println!(
            "{name:<22} {:>10.1?} {:>10.1?} {:>9.2}x {floor_name}",
            p50,
            p99,
            p50.as_secs_f64() / floor.as_secs_f64()
        );
    };
    row("floor round trip", &mut rt, rt50, "rt");
    row("request -> parked", &mut parked, rt50, "rt");
    row("request -> inactive", &mut inactive, rt50, "rt");
    row("unpark -> running", &mut unpark, one_way, "one-way");
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
