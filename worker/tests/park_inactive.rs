//! P4 on real threads: `park()` returns with the worker parked, asleep in
//! the kernel, and making no progress; `unpark_on` re-binds before it runs.
#![cfg(not(loom))]

mod support;

use std::sync::atomic::Ordering::SeqCst;
#[cfg(all(target_os = "linux", not(unplug_portable)))]
use support::{allowed, kernel_state};
use support::{spawn_busy, wait_for};
use unplug_worker::WorkerState;

#[test]
fn park_returns_with_the_busy_worker_asleep_in_the_kernel() {
    let (worker, busy) = spawn_busy(None).unwrap();
    wait_for("first units", || busy.units.load(SeqCst) > 10);
    for _ in 0..50 {
        let timings = worker.park().unwrap();
        assert!(timings.to_inactive >= timings.to_parked);
        assert_eq!(worker.state(), WorkerState::Parked);
        assert!(!busy.in_work.load(SeqCst), "P4: parked inside user work");
        assert!(worker.protocol().is_inactive());
        let units = busy.units.load(SeqCst);
        // Asleep per the kernel (where the kernel was asked), and no unit
        // of work completes while parked.
        #[cfg(all(target_os = "linux", not(unplug_portable)))]
        assert_eq!(kernel_state(worker.os_tid()), 'S');
        assert_eq!(busy.units.load(SeqCst), units);
        let resumed = busy.resumed.load(SeqCst);
        assert!(worker.unpark().unwrap());
        wait_for("resume", || busy.resumed.load(SeqCst) > resumed);
    }
    assert!(worker.stop().unwrap() > 10);
}

#[cfg(all(target_os = "linux", not(unplug_portable)))]
#[test]
fn unpark_on_rebinds_the_parked_worker_before_it_runs() {
    let cpus = allowed();
    let (worker, busy) = spawn_busy(Some(cpus[0])).unwrap();
    assert_eq!(worker.cpu(), Some(cpus[0]));
    for round in 0..20 {
        let target = cpus[round % cpus.len()];
        worker.park().unwrap();
        let resumed = busy.resumed.load(SeqCst);
        assert!(worker.unpark_on(target).unwrap());
        assert_eq!(worker.cpu(), Some(target));
        assert_eq!(
            unplug_worker::affinity::cpus_of(worker.os_tid()).unwrap(),
            vec![target]
        );
        wait_for("resume", || busy.resumed.load(SeqCst) > resumed);
    }
    worker.stop().unwrap();
}

#[test]
fn stop_works_from_running_idle_parking_and_parked() {
    // Running.
    let (worker, _busy) = spawn_busy(None).unwrap();
    worker.stop().unwrap();
    // Idle.
    let idle = unplug_worker::Worker::builder()
        .spawn(support::idle_body)
        .unwrap();
    wait_for("idle", || idle.state() == WorkerState::Idle);
    idle.stop().unwrap();
    // Parked.
    let (worker, _busy) = spawn_busy(None).unwrap();
    worker.park().unwrap();
    worker.stop().unwrap();
    assert_eq!(worker.state(), WorkerState::Stopped);
    // Parking: a park racing the stop from another thread returns.
    let (worker, _busy) = spawn_busy(None).unwrap();
    let worker = std::sync::Arc::new(worker);
    let parker = {
        let w = worker.clone();
        std::thread::spawn(move || w.park().map(|_| ()))
    };
    worker.stop().unwrap();
    let parked = parker.join().unwrap();
    assert!(
        matches!(parked, Ok(()) | Err(unplug_worker::ParkError::Stopped)),
        "{parked:?}"
    );
}
