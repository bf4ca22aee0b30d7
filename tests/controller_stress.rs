//! A long concurrency stress of the controller (issue 13, defect 7): eight
//! callers — four plain threads and four unplug tasks calling through
//! `Handle::current()` — issue random park / unpark (with and without a
//! CPU) / unplug / unplug with a short deadline / plug / set_workers(1..=6)
//! for `UNPLUG_CONTROLLER_STRESS_SECS` seconds (default 5; CI full run 60)
//! while a stream of tasks runs (one in 16 holding its poll open for
//! 1-8 ms), each of which must complete. Invariants,
//! checked all along by monitor threads:
//!
//! - a canary task spawned every ~10 ms completes within 2 s;
//! - `workers()` never shows zero Running/Idle workers for longer than 1 s;
//! - no controller call takes longer than its timeout + 1 s (calls without
//!   a timeout: 10 s + 1 s);
//! - no listed worker stays Stopped for longer than 1 s (Stopping: 11 s);
//! - every load task completes once the callers stop and the pool is
//!   restored.
//!
//! The run prints operations by kind, outcomes by kind and the violations
//! (which must be 0). Seeded (`UNPLUG_STRESS_SEED`).
#![cfg(not(loom))]

mod control_support;
mod support;

use control_support::{cpus, describe, live_count, panic_message};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use unplug::worker::WorkerState;
use unplug::{Handle, Runtime};

/// A tiny xorshift64 (no new dependency).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const KINDS: [&str; 7] = [
    "park_worker",
    "unpark_worker",
    "unpark_worker_on_cpu",
    "unplug_cpu",
    "unplug_cpu_timeout",
    "plug_cpu",
    "set_workers",
];
/// The limit of a call without a timeout of its own.
const CALL_LIMIT: Duration = Duration::from_secs(10);
const GRACE: Duration = Duration::from_secs(1);

/// A call in progress, watched by the monitor.
struct InCall {
    kind: &'static str,
    started: Instant,
    limit: Duration,
    reported: bool,
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    violations: Mutex<Vec<String>>,
    violation_count: AtomicUsize,
    /// (kind, outcome) -> count
    outcomes: Mutex<BTreeMap<(&'static str, String), u64>>,
    calls: Vec<Mutex<Option<InCall>>>,
    spawned: AtomicUsize,
    completed: AtomicUsize,
}

impl Shared {
    fn violation(&self, what: String) {
        let n = self.violation_count.fetch_add(1, SeqCst);
        eprintln!("VIOLATION: {what}");
        if n < 50 {
            self.violations.lock().unwrap().push(what);
        }
    }
}

/// The variant name of an error's Debug form.
fn variant(e: &impl std::fmt::Debug) -> String {
    let s = format!("{e:?}");
    s.split(['(', ' ', '{']).next().unwrap_or("").to_owned()
}

/// One random controller call by caller `me`, timed and recorded.
fn one_op(h: &Handle, rng: &mut Rng, cpus: &[usize], shared: &Shared, me: usize) {
    let ids: Vec<usize> = h.workers().iter().map(|w| w.id).collect();
    let max_id = ids.iter().copied().max().unwrap_or(0);
    let id = if !ids.is_empty() && rng.below(8) != 0 {
        ids[rng.below(ids.len() as u64) as usize]
    } else {
        rng.below(max_id as u64 + 3) as usize
    };
    let cpu = cpus[rng.below(cpus.len() as u64) as usize];
    let roll = rng.below(100);
    let (kind, limit) = match roll {
        0..=19 => (0, CALL_LIMIT),
        20..=29 => (1, CALL_LIMIT),
        30..=39 => (2, CALL_LIMIT),
        40..=49 => (3, CALL_LIMIT),
        50..=64 => (4, Duration::from_millis(1 + rng.below(50))),
        65..=79 => (5, CALL_LIMIT),
        _ => (6, CALL_LIMIT),
    };
    let n = 1 + rng.below(6) as usize;
    let started = Instant::now();
    *shared.calls[me].lock().unwrap() = Some(InCall {
        kind: KINDS[kind],
        started,
        limit,
        reported: false,
    });
    let outcome: Result<(), String> = match kind {
        0 => h.park_worker(id).map(drop).map_err(|e| variant(&e)),
        1 => h.unpark_worker(id, None).map(drop).map_err(|e| variant(&e)),
        2 => h
            .unpark_worker(id, Some(cpu))
            .map(drop)
            .map_err(|e| variant(&e)),
        3 => h.unplug_cpu(cpu).map(drop).map_err(|e| variant(&e)),
        4 => h
            .unplug_cpu_timeout(cpu, limit)
            .map(drop)
            .map_err(|e| variant(&e)),
        5 => h.plug_cpu(cpu).map(drop).map_err(|e| variant(&e)),
        _ => h.set_workers(n).map(drop).map_err(|e| variant(&e)),
    };
    let took = started.elapsed();
    let call = shared.calls[me].lock().unwrap().take();
    if took > limit + GRACE && !call.is_some_and(|c| c.reported) {
        shared.violation(format!(
            "{} (caller {me}) took {took:?}, limit {limit:?} + 1 s",
            KINDS[kind]
        ));
    }
    let key = (
        KINDS[kind],
        outcome.err().unwrap_or_else(|| "Ok".to_owned()),
    );
    *shared.outcomes.lock().unwrap().entry(key).or_default() += 1;
}

fn run_secs() -> u64 {
    std::env::var("UNPLUG_CONTROLLER_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
}

#[test]
fn random_controller_calls_from_threads_and_tasks_keep_every_invariant() {
    let secs = run_secs();
    let seed: u64 = std::env::var("UNPLUG_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_0013);
    let cpus = cpus();
    let rt = Runtime::builder()
        .workers(4)
        .cpus(cpus.clone())
        .pin_workers(true)
        .build()
        .unwrap();
    let h = rt.handle().clone();
    const CALLERS: usize = 8;
    let shared = Arc::new(Shared {
        calls: (0..CALLERS).map(|_| Mutex::new(None)).collect(),
        ..Default::default()
    });
    let t_start = Instant::now();
    let until = t_start + Duration::from_secs(secs);

    // Load: a stream of tasks, each of which must complete.
    let spawner = {
        let (h, shared) = (h.clone(), shared.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !shared.stop.load(SeqCst) {
                i += 1;
                let s = shared.clone();
                shared.spawned.fetch_add(1, SeqCst);
                drop(h.spawn(async move {
                    // One task in 16 holds its poll open for 1-8 ms (a
                    // long poll: parks of its worker wait, short deadlines
                    // time out).
                    if i % 16 == 0 {
                        std::thread::sleep(Duration::from_millis(1 + (i / 16) % 8));
                    }
                    let mut x = i;
                    for _ in 0..(i % 5) {
                        for k in 0..2_000u64 {
                            x = x.wrapping_mul(31).wrapping_add(std::hint::black_box(k));
                        }
                        unplug::yield_now().await;
                    }
                    std::hint::black_box(x);
                    s.completed.fetch_add(1, SeqCst);
                }));
                // Bounded backlog (a bounded wait).
                let deadline = Instant::now() + Duration::from_millis(200);
                while shared.spawned.load(SeqCst) - shared.completed.load(SeqCst) > 2_000
                    && Instant::now() < deadline
                    && !shared.stop.load(SeqCst)
                {
                    std::thread::yield_now();
                }
            }
        })
    };

    // Canary + hung-call monitor.
    let canary = {
        let (h, shared) = (h.clone(), shared.clone());
        std::thread::spawn(move || {
            let mut outstanding: VecDeque<(u64, Instant, Arc<AtomicBool>, bool)> = VecDeque::new();
            let mut n = 0u64;
            let mut next = Instant::now();
            let (mut sent, mut late) = (0u64, 0u64);
            while !shared.stop.load(SeqCst) {
                if Instant::now() >= next {
                    next += Duration::from_millis(10);
                    n += 1;
                    let done = Arc::new(AtomicBool::new(false));
                    let d = done.clone();
                    drop(h.spawn(async move { d.store(true, SeqCst) }));
                    outstanding.push_back((n, Instant::now(), done, false));
                    sent += 1;
                }
                while outstanding.front().is_some_and(|c| c.2.load(SeqCst)) {
                    outstanding.pop_front();
                }
                for c in outstanding.iter_mut() {
                    if !c.3 && c.1.elapsed() > Duration::from_secs(2) {
                        c.3 = true;
                        late += 1;
                        if late <= 5 || late % 100 == 0 {
                            shared.violation(format!(
                                "canary {} not run within 2 s ({} late so far); workers: [{}]",
                                c.0,
                                late,
                                describe(&h)
                            ));
                        } else {
                            shared.violation_count.fetch_add(1, SeqCst);
                        }
                    }
                }
                for (me, slot) in shared.calls.iter().enumerate() {
                    let mut slot = slot.lock().unwrap();
                    if let Some(c) = slot.as_mut() {
                        if !c.reported && c.started.elapsed() > c.limit + GRACE {
                            c.reported = true;
                            let (kind, limit) = (c.kind, c.limit);
                            drop(slot);
                            shared.violation(format!(
                                "{kind} (caller {me}) still blocked after {limit:?} + 1 s; \
                                 workers: [{}]",
                                describe(&h)
                            ));
                        }
                    }
                }
                std::thread::yield_now();
            }
            (sent, late)
        })
    };

    // workers() monitor: zero live workers for > 1 s; Stopped > 1 s;
    // Stopping > 11 s.
    let states = {
        let (h, shared) = (h.clone(), shared.clone());
        std::thread::spawn(move || {
            let mut zero_since: Option<(Instant, bool)> = None;
            let mut odd_since: HashMap<(usize, WorkerState), (Instant, bool)> = HashMap::new();
            let mut samples = 0u64;
            while !shared.stop.load(SeqCst) {
                let ws = h.workers();
                samples += 1;
                let now = Instant::now();
                if live_count(&ws) == 0 {
                    let z = zero_since.get_or_insert((now, false));
                    if !z.1 && now - z.0 > Duration::from_secs(1) {
                        z.1 = true;
                        shared.violation(format!(
                            "no Running/Idle worker for over 1 s: [{}]",
                            describe(&h)
                        ));
                    }
                } else {
                    zero_since = None;
                }
                odd_since.retain(|(id, st), _| ws.iter().any(|w| w.id == *id && w.state == *st));
                for w in &ws {
                    let limit = match w.state {
                        WorkerState::Stopped => Duration::from_secs(1),
                        WorkerState::Stopping => CALL_LIMIT + GRACE,
                        _ => continue,
                    };
                    let e = odd_since.entry((w.id, w.state)).or_insert((now, false));
                    if !e.1 && now - e.0 > limit {
                        e.1 = true;
                        shared.violation(format!(
                            "worker {} listed as {:?} for over {limit:?}: [{}]",
                            w.id,
                            w.state,
                            describe(&h)
                        ));
                    }
                }
                // Sampling pace: ~1 ms between snapshots (not a sync).
                std::thread::sleep(Duration::from_millis(1));
            }
            samples
        })
    };

    // The callers: four threads, four tasks.
    let threads: Vec<_> = (0..4)
        .map(|me| {
            let (h, shared, cpus) = (h.clone(), shared.clone(), cpus.clone());
            std::thread::spawn(move || {
                let mut rng =
                    Rng::new(seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(me as u64 + 1)));
                let mut ops = 0u64;
                while Instant::now() < until {
                    one_op(&h, &mut rng, &cpus, &shared, me);
                    ops += 1;
                }
                ops
            })
        })
        .collect();
    let tasks: Vec<_> = (4..CALLERS)
        .map(|me| {
            let (shared, cpus) = (shared.clone(), cpus.clone());
            h.spawn(async move {
                let mut rng =
                    Rng::new(seed ^ (0x9E37_79B9_7F4A_7C15u64.wrapping_mul(me as u64 + 1)));
                let mut ops = 0u64;
                while Instant::now() < until {
                    // A few calls per poll (this task shares its worker with
                    // the load), then yield.
                    for _ in 0..1 + rng.below(8) {
                        one_op(&Handle::current(), &mut rng, &cpus, &shared, me);
                        ops += 1;
                    }
                    unplug::yield_now().await;
                }
                ops
            })
        })
        .collect();

    // Wait for the callers (each bounded by its limit).
    let mut ops_by_caller = Vec::new();
    let mut stuck_callers = Vec::new();
    let join_deadline = until + CALL_LIMIT + GRACE * 4;
    for (me, t) in threads.into_iter().enumerate() {
        while !t.is_finished() && Instant::now() < join_deadline {
            std::thread::yield_now();
        }
        if t.is_finished() {
            match t.join() {
                Ok(n) => ops_by_caller.push(n),
                Err(p) => {
                    shared.violation(format!("caller {me} panicked: {}", panic_message(&*p)));
                    ops_by_caller.push(0);
                }
            }
        } else {
            stuck_callers.push(me);
            ops_by_caller.push(0);
        }
    }
    for (k, t) in tasks.into_iter().enumerate() {
        let left = join_deadline.saturating_duration_since(Instant::now()) + GRACE;
        match support::block_on_timeout(t, left) {
            Some(Ok(n)) => ops_by_caller.push(n),
            Some(Err(e)) => {
                shared.violation(format!("in-task caller {} failed: {e:?}", 4 + k));
                ops_by_caller.push(0);
            }
            None => {
                stuck_callers.push(4 + k);
                ops_by_caller.push(0);
            }
        }
    }
    if !stuck_callers.is_empty() {
        shared.violation(format!(
            "callers {stuck_callers:?} did not finish within {:?} of the end; workers: [{}]",
            CALL_LIMIT + GRACE * 4,
            describe(&h)
        ));
    }

    // Restore the pool, then every load task must complete.
    let _ = h.set_workers(4);
    for w in h.workers() {
        let _ = h.unpark_worker(w.id, None);
    }
    shared.stop.store(true, SeqCst);
    spawner.join().unwrap();
    let settled = support::wait_until(Duration::from_secs(10), || {
        shared.completed.load(SeqCst) == shared.spawned.load(SeqCst)
    });
    let (spawned, completed) = (shared.spawned.load(SeqCst), shared.completed.load(SeqCst));
    if !settled {
        shared.violation(format!(
            "{} of {spawned} load tasks never completed (10 s after the pool was restored); \
             workers: [{}]",
            spawned - completed,
            describe(&h)
        ));
    }
    let (canaries, late) = canary.join().unwrap();
    let samples = states.join().unwrap();

    // The report.
    let outcomes = shared.outcomes.lock().unwrap().clone();
    let mut by_kind: BTreeMap<&str, u64> = BTreeMap::new();
    for ((k, _), n) in &outcomes {
        *by_kind.entry(k).or_default() += n;
    }
    let total: u64 = by_kind.values().sum();
    let violations = shared.violation_count.load(SeqCst);
    eprintln!(
        "controller stress: {secs} s, seed {seed:#x}, {} CPUs; {total} calls (by caller: \
         {ops_by_caller:?}); load tasks {spawned} spawned, {completed} completed; canaries \
         {canaries} ({late} late); {samples} workers() samples; elapsed {:?}",
        cpus.len(),
        t_start.elapsed()
    );
    eprintln!("operations by kind: {by_kind:?}");
    for ((k, o), n) in &outcomes {
        eprintln!("  {k:<22} {o:<16} {n}");
    }
    eprintln!("invariant violations: {violations}");
    let kept = shared.violations.lock().unwrap().clone();

    // Drop the runtime only if nothing is stuck (a stuck worker would hang
    // the drop); otherwise leak it so the failure is reported.
    if stuck_callers.is_empty() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(rt);
            let _ = tx.send(());
        });
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            panic!("drop(rt) did not return within 30 s after the stress");
        }
    } else {
        std::mem::forget(rt);
    }
    assert!(
        violations == 0,
        "{violations} invariant violation(s); the first ones:\n  - {}",
        kept.join("\n  - ")
    );
}
