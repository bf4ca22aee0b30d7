//! An io_uring SQPOLL-style polling thread built on `unplug-worker` alone.
//!
//! The poller spins on a submission queue, goes idle after a quiet period,
//! and is woken by submitters. Meanwhile a controller parks it, re-pins it
//! to another CPU, unparks it, and finally stops it while submissions keep
//! coming, and starts a fresh poller in its place (the stopped one drains
//! what it was handed first). At the end every submission must have been
//! consumed exactly once.
//!
//! Run: `cargo run --release --example sqpoll -- [--submissions N] [--submitters N]`

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::SeqCst};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use unplug_worker::{affinity, Wake, Worker, WorkerContext};

/// Spins without finding work before the poller goes idle.
const QUIET_SPINS: u32 = 2_000;

struct Ring {
    queue: Mutex<VecDeque<u64>>,
    consumed: Vec<AtomicU8>,
}

#[derive(Default)]
struct PollerStats {
    consumed: AtomicU64,
    idle_sleeps: AtomicU64,
    parks: AtomicU64,
}

fn poll_once(ring: &Ring, stats: &PollerStats) -> bool {
    let Some(id) = ring.queue.lock().unwrap().pop_front() else {
        return false;
    };
    ring.consumed[id as usize].fetch_add(1, SeqCst);
    stats.consumed.fetch_add(1, SeqCst);
    true
}

/// The SQPOLL loop after the fix in seed 000: leave only on park/stop,
/// park unconditionally after leaving for a park (P1); idle with the
/// prepare-to-wait pattern (P2).
fn sq_thread(ctx: &WorkerContext<'_>, ring: &Ring, stats: &PollerStats) {
    loop {
        let mut quiet = 0;
        while ctx.keep_running() {
            if poll_once(ring, stats) {
                quiet = 0;
                continue;
            }
            quiet += 1;
            if quiet < QUIET_SPINS {
                std::hint::spin_loop();
                continue;
            }
            stats.idle_sleeps.fetch_add(1, SeqCst);
            let has_work = || !ring.queue.lock().unwrap().is_empty();
            if ctx.idle_wait(has_work) != Wake::Work {
                break;
            }
            quiet = 0;
        }
        if ctx.should_stop() {
            // Nothing lost: drain what was submitted before the stop.
            while poll_once(ring, stats) {}
            return;
        }
        stats.parks.fetch_add(1, SeqCst);
        ctx.parkme();
    }
}

fn spawn_poller(ring: &Arc<Ring>, stats: &Arc<PollerStats>, cpu: usize) -> Arc<Worker<()>> {
    let (r, s) = (ring.clone(), stats.clone());
    let poller = Worker::builder()
        .name("sq-poll")
        .cpu(cpu)
        .spawn(move |ctx| sq_thread(ctx, &r, &s))
        .expect("spawn the poller");
    println!("sqpoll: poller tid {} pinned to CPU {cpu}", poller.os_tid());
    Arc::new(poller)
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number"))
        })
        .unwrap_or(default)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn main() {
    let submissions = arg("--submissions", 1_000_000);
    let submitters = arg("--submitters", 2).max(1);
    let cpus = affinity::allowed_cpus().expect("sched_getaffinity");
    let ring = Arc::new(Ring {
        queue: Mutex::new(VecDeque::new()),
        consumed: (0..submissions).map(|_| AtomicU8::new(0)).collect(),
    });
    let stats = Arc::new(PollerStats::default());
    let poller = spawn_poller(&ring, &stats, cpus[0]);
    let notifier = Arc::new(RwLock::new(poller.notifier()));

    // Submitters: push ids, then wake the poller (publish, then notify).
    let submitted = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut handles = Vec::new();
    for k in 0..submitters {
        let (ring, notifier, submitted) = (ring.clone(), notifier.clone(), submitted.clone());
        handles.push(std::thread::spawn(move || {
            let mut id = k;
            while id < submissions {
                ring.queue.lock().unwrap().push_back(id);
                notifier.read().unwrap().notify();
                submitted.fetch_add(1, SeqCst);
                id += submitters;
                if id % 64 == k {
                    std::thread::yield_now(); // bursts with gaps, so the poller idles too
                }
            }
        }));
    }

    // Controller: park, re-pin, unpark, over and over, while submissions
    // flow; half-way, stop the poller and start a fresh one.
    let controller = {
        let (mut poller, cpus, ring, stats, submitted, notifier) = (
            poller,
            cpus.clone(),
            ring.clone(),
            stats.clone(),
            submitted.clone(),
            notifier.clone(),
        );
        std::thread::spawn(move || {
            let (mut to_parked, mut to_inactive, mut repins) = (Vec::new(), Vec::new(), 0u64);
            let mut restarted = false;
            let mut round = 0usize;
            while submitted.load(SeqCst) < submissions {
                let t = poller.park().expect("park the poller");
                to_parked.push(t.to_parked);
                to_inactive.push(t.to_inactive);
                round += 1;
                let cpu = cpus[round % cpus.len()];
                if poller.unpark_on(cpu).expect("unpark the poller") {
                    repins += 1;
                }
                if !restarted && submitted.load(SeqCst) >= submissions / 2 {
                    // Stop mid-stream: the old poller drains its queue;
                    // submissions go on to the new one.
                    let fresh = spawn_poller(&ring, &stats, cpus[(round + 1) % cpus.len()]);
                    let old = std::mem::replace(&mut poller, fresh);
                    *notifier.write().unwrap() = poller.notifier();
                    old.stop().expect("first poller body");
                    println!("sqpoll: first poller stopped after {round} park rounds; replaced");
                    restarted = true;
                }
            }
            (poller, to_parked, to_inactive, repins)
        })
    };

    for h in handles {
        h.join().unwrap();
    }
    let (poller, mut to_parked, mut to_inactive, repins) = controller.join().unwrap();
    let left_at_stop = ring.queue.lock().unwrap().len();
    poller.stop().expect("poller body");
    let elapsed = started.elapsed();

    let once = ring.consumed.iter().filter(|c| c.load(SeqCst) == 1).count() as u64;
    let lost = ring.consumed.iter().filter(|c| c.load(SeqCst) == 0).count();
    let twice = ring.consumed.iter().filter(|c| c.load(SeqCst) > 1).count();
    println!(
        "sqpoll: {} submissions from {submitters} submitters in {elapsed:.2?}; consumed {}",
        submitted.load(SeqCst),
        stats.consumed.load(SeqCst)
    );
    println!(
        "sqpoll: {} parks (median to parked {:?}, to inactive {:?}), {repins} re-pins, {} idle sleeps, {left_at_stop} queued at stop",
        to_parked.len(),
        median(&mut to_parked),
        median(&mut to_inactive),
        stats.idle_sleeps.load(SeqCst),
    );
    println!("sqpoll: consumed exactly once {once}/{submissions}, lost {lost}, twice {twice}");
    assert_eq!(once, submissions, "every submission consumed exactly once");
    assert!(!to_parked.is_empty(), "the controller parked the poller");
}
