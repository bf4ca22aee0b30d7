//! The controller: unplug / plug CPUs, park / unpark workers, resize, bad
//! input refused with no change, concurrent callers serialized.
#![cfg(not(loom))]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use support::{wait_for, with_watchdog};
use unplug::worker::WorkerState;
use unplug::{ControlError, Runtime};

fn cpus() -> Vec<usize> {
    unplug::worker::affinity::allowed_cpus().unwrap()
}

fn two_cpu_runtime() -> Option<Runtime> {
    let cpus = cpus();
    if cpus.len() < 2 {
        eprintln!("skipped: needs two CPUs");
        return None;
    }
    Some(
        Runtime::builder()
            .workers(2)
            .cpus([cpus[0], cpus[1]])
            .pin_workers(true)
            .build()
            .unwrap(),
    )
}

fn spin(iters: u64) -> u64 {
    (0..iters).fold(0u64, |a, i| a.wrapping_add(std::hint::black_box(i)))
}

#[test]
fn unplug_parks_the_worker_on_that_cpu_and_plug_brings_it_back_under_load() {
    let Some(rt) = two_cpu_runtime() else { return };
    let cpu1 = cpus()[1];
    let done = Arc::new(AtomicUsize::new(0));
    const TASKS: usize = 2_000;
    for _ in 0..TASKS {
        let done = done.clone();
        rt.spawn(async move {
            spin(20_000);
            unplug::yield_now().await;
            done.fetch_add(1, SeqCst);
        });
    }
    let report = with_watchdog("unplug", {
        let h = rt.handle().clone();
        move || h.unplug_cpu(cpu1)
    })
    .unwrap();
    assert_eq!(report.parked, vec![1]);
    assert_eq!(report.park_latencies.len(), 1);
    let w = rt.workers();
    assert_eq!(w[1].state, WorkerState::Parked);
    assert!(matches!(
        w[0].state,
        WorkerState::Running | WorkerState::Idle
    ));
    let polled_while_parked = rt.workers()[1].tasks_polled;
    // Everything still completes, on the other worker.
    wait_for("all tasks", || done.load(SeqCst) == TASKS);
    assert_eq!(
        rt.workers()[1].tasks_polled,
        polled_while_parked,
        "a parked worker polled"
    );
    // Unplugging again changes nothing.
    assert!(rt.unplug_cpu(cpu1).unwrap().parked.is_empty());
    let plugged = rt.plug_cpu(cpu1).unwrap();
    assert_eq!(plugged.unparked, vec![1]);
    assert!(plugged.started.is_empty());
    assert_ne!(rt.workers()[1].state, WorkerState::Parked);
    assert_eq!(rt.block_on(rt.spawn(async { 9 })).unwrap(), 9);
}

#[test]
fn plug_of_a_cpu_without_worker_starts_one_pinned_there() {
    let cpus = cpus();
    if cpus.len() < 2 {
        return;
    }
    let rt = Runtime::builder()
        .workers(1)
        .cpus([cpus[0]])
        .build()
        .unwrap();
    let report = rt.plug_cpu(cpus[1]).unwrap();
    assert_eq!(report.started.len(), 1);
    let w = rt.workers();
    assert_eq!(w.len(), 2);
    assert_eq!(w[1].cpu, Some(cpus[1]));
    assert!(w[1].pinned);
    assert_eq!(
        unplug::worker::affinity::cpus_of(w[1].os_tid).unwrap(),
        vec![cpus[1]]
    );
}

#[test]
fn bad_input_is_refused_with_no_change() {
    let cpus = cpus();
    let rt = Runtime::builder()
        .workers(1)
        .cpus([cpus[0]])
        .build()
        .unwrap();
    let before = rt.workers();
    assert!(matches!(
        rt.unplug_cpu(cpus[0]),
        Err(ControlError::LastWorker)
    ));
    assert!(matches!(rt.park_worker(0), Err(ControlError::LastWorker)));
    assert!(matches!(
        rt.unplug_cpu(4000),
        Err(ControlError::CpuNotAllowed { cpu: 4000, .. })
    ));
    assert!(matches!(
        rt.plug_cpu(4000),
        Err(ControlError::CpuNotAllowed { .. })
    ));
    assert!(matches!(
        rt.park_worker(42),
        Err(ControlError::UnknownWorker(42))
    ));
    assert!(matches!(
        rt.unpark_worker(42, None),
        Err(ControlError::UnknownWorker(42))
    ));
    assert!(matches!(
        rt.unpark_worker(0, Some(4000)),
        Err(ControlError::CpuNotAllowed { .. })
    ));
    assert!(matches!(rt.set_workers(0), Err(ControlError::ZeroWorkers)));
    if cpus.len() > 1 {
        assert!(
            matches!(rt.unplug_cpu(cpus[1]), Err(ControlError::NoWorkerOnCpu(c)) if c == cpus[1])
        );
    }
    let after = rt.workers();
    assert_eq!(
        before
            .iter()
            .map(|w| (w.id, w.cpu, w.os_tid))
            .collect::<Vec<_>>(),
        after
            .iter()
            .map(|w| (w.id, w.cpu, w.os_tid))
            .collect::<Vec<_>>()
    );
    assert_ne!(after[0].state, WorkerState::Parked);
    assert_eq!(rt.block_on(rt.spawn(async { 1 })).unwrap(), 1);
}

#[test]
fn a_task_unplugging_its_own_worker_defers_the_park_until_its_poll_returns() {
    let Some(rt) = two_cpu_runtime() else { return };
    let handle = rt.handle().clone();
    let report = rt
        .block_on(rt.spawn(async move {
            let me = unplug::worker::affinity::current_tid();
            let mine = handle
                .workers()
                .into_iter()
                .find(|w| w.os_tid == me)
                .unwrap();
            (mine.id, handle.unplug_cpu(mine.cpu.unwrap()))
        }))
        .unwrap();
    let (id, report) = report;
    let report = report.unwrap();
    assert_eq!(report.deferred, vec![id]);
    assert!(report.parked.is_empty());
    wait_for("deferred park", || {
        rt.workers()[id].state == WorkerState::Parked
    });
    // The other worker carries on.
    assert_eq!(rt.block_on(rt.spawn(async { 2 })).unwrap(), 2);
    let cpu = rt.workers()[id].cpu.unwrap();
    assert_eq!(rt.plug_cpu(cpu).unwrap().unparked, vec![id]);
}

#[test]
fn unplug_waits_for_a_long_poll_and_the_deadline_variant_leaves_nothing_half_parked() {
    let Some(rt) = two_cpu_runtime() else { return };
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    rt.spawn(async move {
        let me = unplug::worker::affinity::current_tid();
        started_tx.send(me).unwrap();
        let _ = release_rx.recv_timeout(support::DEADLINE); // a long poll
    });
    let tid = started_rx.recv_timeout(support::DEADLINE).unwrap();
    let busy = rt.workers().into_iter().find(|w| w.os_tid == tid).unwrap();
    let cpu = busy.cpu.unwrap();
    assert!(matches!(
        rt.unplug_cpu_timeout(cpu, Duration::from_millis(50)),
        Err(ControlError::Timeout { .. })
    ));
    // No half-parked worker: the request was withdrawn.
    assert_eq!(rt.workers()[busy.id].state, WorkerState::Running);
    // Without a deadline, the unplug waits for the poll to return.
    let h = rt.handle().clone();
    let unplug = std::thread::spawn(move || h.unplug_cpu(cpu));
    wait_for("park requested", || {
        rt.workers()[busy.id].state == WorkerState::Parking
    });
    release_tx.send(()).unwrap();
    let report = unplug.join().unwrap().unwrap();
    assert_eq!(report.parked, vec![busy.id]);
    assert_eq!(rt.workers()[busy.id].state, WorkerState::Parked);
}

#[test]
fn set_workers_grows_and_shrinks_migrating_tasks() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let grown = rt.set_workers(4).unwrap();
    assert_eq!(grown.started.len(), 2);
    assert_eq!(rt.workers().len(), 4);
    let done = Arc::new(AtomicUsize::new(0));
    for _ in 0..1_000 {
        let done = done.clone();
        rt.spawn(async move {
            spin(10_000);
            unplug::yield_now().await;
            done.fetch_add(1, SeqCst);
        });
    }
    let shrunk = with_watchdog("shrink", {
        let h = rt.handle().clone();
        move || h.set_workers(1)
    })
    .unwrap();
    assert_eq!(shrunk.stopped.len(), 3);
    assert_eq!(rt.workers().len(), 1);
    wait_for("all tasks after shrink", || done.load(SeqCst) == 1_000);
    assert_eq!(rt.stats().live_tasks, 0);
}

#[test]
fn concurrent_controller_calls_are_serialized_and_never_leave_no_worker() {
    let cpus = cpus();
    let rt = Runtime::builder()
        .workers(cpus.len().max(2))
        .pin_workers(true)
        .build()
        .unwrap();
    let handle = rt.handle().clone();
    with_watchdog("concurrent controllers", move || {
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let (h, cpus) = (handle.clone(), cpus.clone());
                std::thread::spawn(move || {
                    let mut rng = fastrand::Rng::with_seed(t);
                    for _ in 0..300 {
                        let cpu = cpus[rng.usize(..cpus.len())];
                        let result = match rng.u8(..4) {
                            0 | 1 => h.unplug_cpu(cpu).map(|_| ()),
                            2 => h.plug_cpu(cpu).map(|_| ()),
                            _ => h.unpark_worker(rng.usize(..3), None).map(|_| ()),
                        };
                        match result {
                            Ok(())
                            | Err(ControlError::LastWorker)
                            | Err(ControlError::UnknownWorker(_)) => {}
                            Err(e) => panic!("unexpected controller error: {e}"),
                        }
                        let running = h
                            .workers()
                            .iter()
                            .filter(|w| {
                                !matches!(w.state, WorkerState::Parked | WorkerState::Parking)
                            })
                            .count();
                        assert!(running >= 1, "no running worker left");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        handle.block_on(handle.spawn(async { 3 })).unwrap()
    });
}

#[test]
fn a_growing_resize_starts_no_worker_on_an_unplugged_cpu_and_follows_pinning() {
    let Some(rt) = two_cpu_runtime() else { return };
    let (c0, c1) = (cpus()[0], cpus()[1]);
    rt.unplug_cpu(c1).unwrap();
    let report = rt.set_workers(3).unwrap();
    assert_eq!(report.started.len(), 2);
    for id in &report.started {
        let w = rt.workers().into_iter().find(|w| w.id == *id).unwrap();
        assert_eq!(w.cpu, Some(c0), "started on an unplugged CPU: {w:?}");
    }
    // Plugged back, the CPU takes new workers again.
    rt.plug_cpu(c1).unwrap();
    rt.set_workers(3).unwrap();
    let grown = rt.set_workers(5).unwrap();
    assert!(grown.started.iter().any(|id| rt
        .workers()
        .iter()
        .any(|w| w.id == *id && w.cpu == Some(c1))));

    // A runtime that does not pin starts unpinned workers when it grows.
    let loose = Runtime::builder().workers(1).build().unwrap();
    let grown = loose.set_workers(2).unwrap();
    let w = loose
        .workers()
        .into_iter()
        .find(|w| w.id == grown.started[0])
        .unwrap();
    assert!(!w.pinned, "pin_workers(false), yet a resize pinned: {w:?}");
}

#[test]
fn a_park_withdrawn_by_a_concurrent_unpark_is_reported_superseded() {
    let Some(rt) = two_cpu_runtime() else { return };
    let h = rt.handle().clone();
    // Worker 1 stays inside one poll until released, so the park waits.
    let release = Arc::new(AtomicUsize::new(0));
    let inside = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let (release, inside) = (release.clone(), inside.clone());
        rt.spawn(async move {
            inside.fetch_add(1, SeqCst);
            while release.load(SeqCst) == 0 {
                std::hint::spin_loop();
            }
        });
    }
    wait_for("both workers inside a poll", || inside.load(SeqCst) == 2);
    let parker = std::thread::spawn({
        let h = h.clone();
        move || h.park_worker(1)
    });
    wait_for("the park requested", || {
        rt.workers()[1].state == WorkerState::Parking
    });
    assert_eq!(rt.unpark_worker(1, None).unwrap().unparked, vec![1]);
    let report = parker.join().unwrap().unwrap();
    release.store(1, SeqCst);
    assert!(report.parked.is_empty());
    assert_eq!(report.superseded, vec![1]);
    // An id no worker has is refused by name.
    assert!(matches!(
        rt.park_worker(99),
        Err(ControlError::UnknownWorker(99))
    ));
}
