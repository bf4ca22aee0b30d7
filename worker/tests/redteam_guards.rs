//! Red team, attacks the crate survived, kept as guards: P4 measured by the
//! kernel's own counters, P4 under six kinds of racing controller calls,
//! and no thread left behind by a handle dropped in any state.
#![cfg(not(loom))]

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{idle_body, kernel_counters, spawn_busy, wait_for, with_watchdog, Busy};
use unplug_worker::{Worker, WorkerState};

/// P4 as the kernel counts it: from `park()` returning `Ok` until the
/// `unpark()`, a busy worker does no unit of work, is never switched in or
/// out, and gains no CPU time (a 2 ms window per park, 200 parks).
#[test]
fn after_park_the_worker_neither_works_nor_runs_until_unparked() {
    // The kernel's counters need an OS thread id: the portable seam's ids
    // are a counter of its own (`os_tid`), so there is nothing to read.
    if !cfg!(target_os = "linux") || !unplug_worker::affinity::AFFINITY_SUPPORTED {
        return;
    }
    let (worker, busy) = spawn_busy(None).unwrap();
    for i in 0..200 {
        worker.park().unwrap();
        let (counters, units) = (kernel_counters(worker.os_tid()), busy.units.load(SeqCst));
        // A negative check: nothing may happen within the window.
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(busy.units.load(SeqCst), units, "park {i}: the body worked");
        assert_eq!(
            kernel_counters(worker.os_tid()),
            counters,
            "park {i}: the parked thread ran"
        );
        assert!(worker.unpark().unwrap());
    }
    worker.stop().unwrap();
}

/// Four controllers race park, park_timeout (0-200 µs), unpark, unpark_on,
/// repin and a shared wait on one busy worker for 3 s. Whenever a park
/// returns `Ok` and the generation is unchanged after a look at the body,
/// the body must not have been inside a unit of work nor done one. No call
/// may hang (each controller is waited for under a deadline).
#[test]
fn racing_controllers_never_see_a_parked_worker_run() {
    let (worker, busy) = spawn_busy(None).unwrap();
    let worker = Arc::new(worker);
    let cpus = support::allowed();
    let (violations, parks, done) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let controllers: Vec<_> = (0..4u64)
        .map(|seed| {
            let (w, b, v, p, d, cpus) = (
                worker.clone(),
                busy.clone(),
                violations.clone(),
                parks.clone(),
                done.clone(),
                cpus.clone(),
            );
            std::thread::spawn(move || control(seed, &w, &b, &v, &p, &d, &cpus))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3)); // load shaping: the race's length
    done.store(true, SeqCst);
    let deadline = Instant::now() + support::DEADLINE;
    for c in controllers {
        while !c.is_finished() {
            assert!(
                Instant::now() < deadline,
                "a controller hung: {}",
                worker.protocol().describe()
            );
            let _ = worker.unpark(); // release a park() still waiting
            std::thread::yield_now();
        }
        c.join().unwrap();
    }
    assert!(parks.load(SeqCst) > 0, "no park succeeded");
    assert_eq!(violations.load(SeqCst), 0, "a parked worker ran its body");
    let w = worker.clone();
    with_watchdog("stop", move || w.stop().map_err(|e| e.to_string())).unwrap();
}

fn control(
    seed: u64,
    worker: &Worker<u64>,
    busy: &Busy,
    violations: &AtomicU64,
    parks: &AtomicU64,
    done: &AtomicBool,
    cpus: &[usize],
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    while !done.load(SeqCst) {
        let parked = match rng.u32(..6) {
            0 => worker.park(),
            1 => worker.park_timeout(Duration::from_micros(rng.u64(0..200))),
            2 => {
                let _ = worker.unpark();
                continue;
            }
            3 => {
                let _ = worker.unpark_on(cpus[rng.usize(..cpus.len())]);
                continue;
            }
            4 => {
                let _ = worker.repin(cpus[rng.usize(..cpus.len())]);
                continue;
            }
            _ => worker.request_park().and_then(|t| {
                worker.wait_park_shared(t, Some(Instant::now() + Duration::from_micros(300)))
            }),
        };
        if let Ok(t) = parked {
            parks.fetch_add(1, SeqCst);
            let (units, in_work) = (busy.units.load(SeqCst), busy.in_work.load(SeqCst));
            for _ in 0..50 {
                std::hint::spin_loop();
            }
            let moved = busy.units.load(SeqCst) != units;
            if worker.protocol().generation() == t.generation && (moved || in_work) {
                violations.fetch_add(1, SeqCst);
            }
        }
    }
}

/// Threads of this process whose name starts with `prefix`.
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with(prefix))
        .count()
}

/// A handle dropped without `stop()` in each state (running, idle,
/// parking, parked, stopping, stopped but not joined) requests a stop and
/// detaches: every one of those threads ends (counted by name in procfs).
#[test]
fn a_handle_dropped_in_any_state_leaves_no_thread_behind() {
    const NAME: &str = "rt-dropped";
    let busy = |_: ()| {
        let b = Arc::new(Busy::default());
        Worker::builder()
            .name(NAME)
            .spawn(move |ctx| support::busy_body(ctx, &b))
            .unwrap()
    };
    drop(busy(())); // running
    let idle = Worker::builder().name(NAME).spawn(idle_body).unwrap();
    wait_for("idle", || idle.state() == WorkerState::Idle);
    drop(idle);
    let parking = busy(());
    parking.request_park().unwrap();
    drop(parking);
    let parked = busy(());
    parked.park().unwrap();
    drop(parked);
    let stopping = Worker::builder()
        .name(NAME)
        .spawn(|ctx| {
            while !ctx.should_stop() {
                std::thread::yield_now();
            }
            std::thread::sleep(Duration::from_millis(20)); // a slow wind-down
        })
        .unwrap();
    let _ = stopping.stop_timeout(Duration::ZERO);
    drop(stopping);
    let stopped = Worker::builder().name(NAME).spawn(|_ctx| ()).unwrap();
    wait_for("exit", || stopped.state().is_exited());
    drop(stopped);
    wait_for("every dropped worker's thread to end", || {
        threads_named(NAME) == 0
    });
}
