//! Park and hotplug under load, against the machine's floor measured in the
//! same run:
//!
//! - floor: a thread-to-thread futex wake-up round trip between CPUs;
//! - with every worker busy on 10 µs tasks: p50/p99 of park request to
//!   inactive (`unplug_cpu`'s park latencies) and of unpark request to the
//!   worker running (`plug_cpu`), as ratios to the floor (round trip for
//!   park, one way = round trip / 2 for unpark);
//! - unplug+plug cycles per second under that saturating load, with every
//!   task accounted for afterwards;
//! - throughput with k of n workers running relative to all n, for every
//!   k (CPUs unplugged one by one; k counted from the pool), as a ratio
//!   to k/n.
//!
//! Run: `cargo run --release --example park_under_load [-- --samples N] [--workers-per-cpu K]`

#[path = "../benches/workloads/floor.rs"]
mod floor;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use unplug::worker::affinity;
use unplug::{Handle, Runtime};

const TASK: Duration = Duration::from_micros(10);

fn spin_for(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// Saturating load: `n` tasks, each spinning 10 µs then yielding, forever
/// until `running` clears; counts completed 10 µs slices.
fn saturate(
    h: &Handle,
    n: usize,
    running: &Arc<AtomicBool>,
    slices: &Arc<AtomicU64>,
) -> Vec<unplug::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let (running, slices) = (running.clone(), slices.clone());
            h.spawn(async move {
                while running.load(Relaxed) {
                    spin_for(TASK);
                    slices.fetch_add(1, Relaxed);
                    unplug::yield_now().await;
                }
            })
        })
        .collect()
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let samples: usize = args
        .iter()
        .position(|a| a == "--samples")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let cpus = affinity::allowed_cpus().unwrap();
    if cpus.len() < 2 {
        println!("park_under_load: needs two CPUs; skipped");
        return;
    }
    let (c0, c1) = (cpus[0], cpus[1]);

    // The floor, on the same two CPUs.
    affinity::pin_to(0, &[c0]).unwrap();
    let mut floor = floor::Floor::new(c1);
    let mut rt_samples: Vec<Duration> = (0..2000).map(|_| floor.round_trip()).collect();
    let rt50 = pct(&mut rt_samples, 0.5);
    drop(floor);
    affinity::pin_to(0, &cpus).unwrap();

    let per_cpu: usize = args
        .iter()
        .position(|a| a == "--workers-per-cpu")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let n = per_cpu * cpus.len();
    let rt = Runtime::builder()
        .workers(n)
        .pin_workers(true)
        .build()
        .unwrap();
    let h = rt.handle().clone();
    let running = Arc::new(AtomicBool::new(true));
    let slices = Arc::new(AtomicU64::new(0));
    let load = saturate(&h, 4 * n, &running, &slices);

    // The floor again, now under the same load: what any wake-up between
    // these CPUs costs while every worker spins.
    affinity::pin_to(0, &[c0]).unwrap();
    let mut floor = floor::Floor::new(c1);
    let mut loaded_rt: Vec<Duration> = (0..samples).map(|_| floor.round_trip()).collect();
    drop(floor);
    affinity::pin_to(0, &cpus).unwrap();
    let (lrt50, lrt99) = (pct(&mut loaded_rt, 0.5), pct(&mut loaded_rt, 0.99));

    // Park / unpark latencies with every worker busy.
    let (mut park, mut unpark, mut to_parked) = (Vec::new(), Vec::new(), Vec::new());
    // Where unpark time goes: the `plug_cpu` call (re-pinning the thread
    // with sched_setaffinity, then the unpark's CAS and wake-up) happens
    // before the unpark stamp; the latency runs from that stamp to the
    // worker running.
    let (mut plug_calls, mut pins) = (Vec::new(), Vec::new());
    for _ in 0..samples {
        let report = h.unplug_cpu(c1).unwrap();
        park.extend(report.park_latencies.iter().map(|t| t.to_inactive));
        to_parked.extend(report.park_latencies.iter().map(|t| t.to_parked));
        let before: Vec<(usize, u64)> = h.workers().iter().map(|w| (w.id, w.resumes)).collect();
        let pin_start = Instant::now();
        affinity::pin_to(0, &[c0]).unwrap();
        pins.push(pin_start.elapsed());
        affinity::pin_to(0, &cpus).unwrap();
        let call = Instant::now();
        let plugged = h.plug_cpu(c1).unwrap();
        plug_calls.push(call.elapsed());
        for id in plugged.unparked {
            let was = before.iter().find(|(i, _)| *i == id).map_or(0, |b| b.1);
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let w = h.workers().into_iter().find(|w| w.id == id).unwrap();
                if w.resumes > was {
                    unpark.push(w.last_unpark_latency);
                    break;
                }
                assert!(Instant::now() < deadline, "worker {id} never resumed");
                std::thread::yield_now();
            }
        }
    }

    // Unplug+plug cycles per second under the same load.
    let start = Instant::now();
    let mut cycles = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        h.unplug_cpu(c1).unwrap();
        h.plug_cpu(c1).unwrap();
        cycles += 1;
    }
    let per_second = cycles as f64 / start.elapsed().as_secs_f64();

    // Capacity with k of n workers running, for every k: CPUs are
    // unplugged one by one (their workers parked) while the 4n CPU-bound
    // tasks (10 us of spinning per poll, more than any k workers can run)
    // keep every running worker busy. k is counted from the pool, not
    // assumed: the ratio to k/n should be about 1 for every k.
    let measure = |secs: f64| {
        let before = slices.load(Relaxed);
        let t = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(secs));
        (slices.load(Relaxed) - before) as f64 / t.elapsed().as_secs_f64()
    };
    let running_workers = || {
        h.workers()
            .iter()
            .filter(|w| {
                matches!(
                    w.state,
                    unplug::worker::WorkerState::Running | unplug::worker::WorkerState::Idle
                )
            })
            .count()
    };
    let all = measure(1.0);
    let mut capacity = vec![(n, 1.0)];
    for &cpu in cpus.iter().skip(1).rev() {
        h.unplug_cpu(cpu).unwrap();
        let k = running_workers();
        capacity.push((k, measure(1.0) / all));
    }
    for &cpu in cpus.iter().skip(1) {
        h.plug_cpu(cpu).unwrap();
    }

    running.store(false, Relaxed);
    let finished = rt.block_on(async move {
        let mut done = 0;
        for t in load {
            if t.await.is_ok() {
                done += 1;
            }
        }
        done
    });
    let lost = 4 * n - finished;

    let (p50, p99) = (pct(&mut park, 0.5), pct(&mut park, 0.99));
    let (u50, u99) = (pct(&mut unpark, 0.5), pct(&mut unpark, 0.99));
    let one_way = rt50 / 2;
    let r = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!("# {n} workers pinned over CPUs {cpus:?}, every worker busy on 10 us tasks; {samples} unplug/plug samples");
    println!("floor round trip p50          {rt50:>10.1?}   (under the same load: p50 {lrt50:.1?}, p99 {lrt99:.1?})");
    let (q50, q99) = (pct(&mut to_parked, 0.5), pct(&mut to_parked, 0.99));
    println!(
        "park -> parked     p50 {q50:>10.1?} ({:.2}x rt)   p99 {q99:>10.1?} ({:.2}x rt)",
        r(q50, rt50),
        r(q99, rt50)
    );
    println!(
        "park -> inactive   p50 {p50:>10.1?} ({:.2}x rt)   p99 {p99:>10.1?} ({:.2}x rt; {:.2}x the loaded floor's p99)",
        r(p50, rt50),
        r(p99, rt50),
        r(p99, lrt99)
    );
    println!(
        "unpark -> running  p50 {u50:>10.1?} ({:.2}x one-way)   p99 {u99:>10.1?} ({:.2}x one-way)",
        r(u50, one_way),
        r(u99, one_way)
    );
    let (c50, p50_pin) = (pct(&mut plug_calls, 0.5), pct(&mut pins, 0.5));
    println!(
        "  before the stamp: plug_cpu call p50 {c50:.1?} (one sched_setaffinity p50 {p50_pin:.1?}); \
         after it: the futex wake-up and the woken thread's first instructions"
    );
    println!("unplug+plug cycles per second under load: {per_second:.0} (load tasks lost: {lost})");
    for (k, share) in capacity.iter().skip(1) {
        let ideal = *k as f64 / n as f64;
        println!(
            "throughput with {k} of {n} workers running: {share:.3} of full (k/n = {ideal:.3}; ratio to k/n {:.2})",
            share / ideal
        );
    }
    assert_eq!(lost, 0, "load tasks lost");
}
