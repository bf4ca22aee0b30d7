//! Bad input gets a typed error, never a panic or a hang.
#![cfg(not(loom))]

mod support;

use std::sync::Arc;
use std::time::Duration;
use support::{idle_body, spawn_busy, wait_for};
use unplug_worker::{ParkError, SpawnError, StopError, UnparkError, Worker, WorkerState};

#[test]
fn pinning_to_a_cpu_the_process_may_not_use_is_refused_at_spawn() {
    let err = Worker::builder().cpu(4000).spawn(idle_body).unwrap_err();
    match err {
        SpawnError::CpuNotAllowed { cpu, allowed } => {
            assert_eq!(cpu, 4000);
            assert_eq!(allowed, support::allowed());
        }
        other => panic!("expected CpuNotAllowed, got {other:?}"),
    }
}

#[test]
fn park_and_unpark_of_a_stopped_worker_are_typed_errors() {
    let worker = Worker::builder().spawn(idle_body).unwrap();
    worker.stop().unwrap();
    assert_eq!(worker.park().map(|_| ()), Err(ParkError::Stopped));
    assert!(matches!(worker.unpark(), Err(UnparkError::Stopped)));
    assert!(matches!(worker.unpark_on(0), Err(UnparkError::Stopped)));
    assert!(matches!(worker.stop(), Err(StopError::AlreadyJoined)));
}

#[test]
fn park_from_the_worker_thread_is_an_error_not_a_hang() {
    let slot: Arc<std::sync::OnceLock<Arc<Worker<()>>>> = Arc::default();
    let (tx, rx) = std::sync::mpsc::channel();
    let s = slot.clone();
    let worker = Arc::new(
        Worker::builder()
            .spawn(move |ctx| {
                let me = loop {
                    if let Some(me) = s.get() {
                        break me.clone();
                    }
                    std::thread::yield_now();
                };
                tx.send((
                    me.park().map(|_| ()),
                    me.stop().map(|_| ()).map_err(|e| e.to_string()),
                ))
                .unwrap();
                drop(me);
                idle_body(ctx);
            })
            .unwrap(),
    );
    slot.set(worker.clone()).unwrap();
    let (park, stop) = rx.recv_timeout(support::DEADLINE).expect("worker answered");
    assert_eq!(park, Err(ParkError::FromWorkerThread));
    assert_eq!(stop, Err(StopError::FromWorkerThread.to_string()));
    worker.stop().unwrap();
}

#[test]
fn unpark_of_a_running_worker_is_a_noop() {
    let (worker, _busy) = spawn_busy(None).unwrap();
    let generation = worker.protocol().generation();
    assert!(!worker.unpark().unwrap());
    assert!(!worker.unpark_on(0).unwrap());
    assert_eq!(worker.protocol().generation(), generation);
    assert_eq!(worker.state(), WorkerState::Running);
    worker.stop().unwrap();
}

#[test]
fn unpark_on_a_disallowed_cpu_changes_nothing() {
    let (worker, _busy) = spawn_busy(None).unwrap();
    worker.park().unwrap();
    assert!(matches!(
        worker.unpark_on(4000),
        Err(UnparkError::CpuNotAllowed { cpu: 4000, .. })
    ));
    assert_eq!(worker.state(), WorkerState::Parked);
    assert!(worker.unpark().unwrap());
    worker.stop().unwrap();
}

#[test]
fn a_panicking_body_is_returned_by_stop() {
    let worker = Worker::builder()
        .spawn(|_ctx| -> u32 { panic!("body failed on purpose") })
        .unwrap();
    wait_for("exit", || worker.state() == WorkerState::Stopped);
    assert_eq!(worker.park().map(|_| ()), Err(ParkError::Stopped));
    let err = worker.stop().unwrap_err();
    assert_eq!(err.panic_message(), Some("body failed on purpose"));
}

#[test]
fn park_timeout_on_a_worker_that_never_parks_withdraws_the_request() {
    // A body that ignores the protocol until told through a side channel.
    let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let r = release.clone();
    let worker = Worker::builder()
        .spawn(move |ctx| {
            while !r.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::yield_now();
            }
            idle_body(ctx);
        })
        .unwrap();
    assert_eq!(
        worker.park_timeout(Duration::from_millis(20)).map(|_| ()),
        Err(ParkError::Timeout)
    );
    // Withdrawn: not left half-parked.
    assert_eq!(worker.state(), WorkerState::Running);
    release.store(true, std::sync::atomic::Ordering::SeqCst);
    worker.park().unwrap();
    worker.stop().unwrap();
}
