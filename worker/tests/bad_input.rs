//! Bad input gets a typed error, never a panic or a hang.
#![cfg(not(loom))]

mod support;

use std::sync::Arc;
use std::time::Duration;
use support::{idle_body, spawn_busy, wait_for, with_watchdog};
use unplug_worker::affinity::AFFINITY_SUPPORTED;
use unplug_worker::{ParkError, SpawnError, StopError, UnparkError, Worker, WorkerState};

#[test]
fn pinning_to_a_cpu_the_process_may_not_use_is_refused_at_spawn() {
    let err = Worker::builder().cpu(4000).spawn(idle_body).unwrap_err();
    match err {
        SpawnError::CpuNotAllowed { cpu, allowed } if AFFINITY_SUPPORTED => {
            assert_eq!(cpu, 4000);
            assert_eq!(allowed, support::allowed());
        }
        SpawnError::Unsupported if !AFFINITY_SUPPORTED => {}
        other => panic!("expected CpuNotAllowed (or Unsupported if portable), got {other:?}"),
    }
}

/// The portable build (`--cfg unplug_portable`, or any target but Linux):
/// every pin is refused up front with a typed error, nothing changes, and
/// park / unpark / stop work as everywhere.
#[test]
fn without_pinning_support_every_pin_is_unsupported_and_changes_nothing() {
    // `.ci/portable` must really build the fallback.
    #[cfg(any(unplug_portable, not(target_os = "linux")))]
    const {
        assert!(!AFFINITY_SUPPORTED)
    };
    if AFFINITY_SUPPORTED {
        return;
    }
    assert!(matches!(
        Worker::builder().cpu(0).spawn(idle_body),
        Err(SpawnError::Unsupported)
    ));
    let err = unplug_worker::affinity::pin_to(0, &[0]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
    let (worker, _busy) = spawn_busy(None).unwrap();
    assert!(matches!(worker.repin(0), Err(UnparkError::Unsupported)));
    worker.park().unwrap();
    assert!(matches!(worker.unpark_on(0), Err(UnparkError::Unsupported)));
    assert_eq!(worker.state(), WorkerState::Parked);
    assert_eq!(worker.cpu(), None);
    assert!(worker.unpark().unwrap());
    worker.stop().unwrap();
    // Thread ids are still unique and positive.
    let other = Worker::builder().spawn(idle_body).unwrap();
    assert!(worker.os_tid() > 0 && other.os_tid() > 0);
    assert_ne!(worker.os_tid(), other.os_tid());
    other.stop().unwrap();
    let n = std::thread::available_parallelism().unwrap().get();
    assert_eq!(support::allowed(), (0..n).collect::<Vec<_>>());
}

#[test]
fn park_and_unpark_of_a_stopped_worker_are_typed_errors() {
    let worker = Worker::builder().spawn(idle_body).unwrap();
    worker.stop().unwrap();
    assert_eq!(worker.park().map(|_| ()), Err(ParkError::Stopped));
    assert!(matches!(worker.unpark(), Err(UnparkError::Stopped)));
    if AFFINITY_SUPPORTED {
        assert!(matches!(worker.unpark_on(0), Err(UnparkError::Stopped)));
    } else {
        assert!(matches!(worker.unpark_on(0), Err(UnparkError::Unsupported)));
    }
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
    match worker.unpark_on(0) {
        Ok(false) if AFFINITY_SUPPORTED => {}
        Err(UnparkError::Unsupported) if !AFFINITY_SUPPORTED => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(worker.protocol().generation(), generation);
    assert_eq!(worker.state(), WorkerState::Running);
    worker.stop().unwrap();
}

#[test]
fn unpark_on_a_disallowed_cpu_changes_nothing() {
    let (worker, _busy) = spawn_busy(None).unwrap();
    worker.park().unwrap();
    match worker.unpark_on(4000) {
        Err(UnparkError::CpuNotAllowed { cpu: 4000, .. }) if AFFINITY_SUPPORTED => {}
        Err(UnparkError::Unsupported) if !AFFINITY_SUPPORTED => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(worker.state(), WorkerState::Parked);
    assert!(worker.unpark().unwrap());
    worker.stop().unwrap();
}

#[test]
fn a_panicking_body_is_returned_by_stop() {
    let worker = Worker::builder()
        .spawn(|_ctx| -> u32 { panic!("body failed on purpose") })
        .unwrap();
    wait_for("exit", || worker.state().is_exited());
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

/// A timeout too long to add to `Instant::now()` means "no deadline", not a
/// panic (`Instant + Duration` overflows).
#[test]
fn an_overflowing_timeout_means_no_deadline() {
    let (worker, _busy) = spawn_busy(None).unwrap();
    let worker = Arc::new(worker);
    let w = worker.clone();
    let timings = with_watchdog("park_timeout(Duration::MAX)", move || {
        w.park_timeout(Duration::MAX)
    })
    .expect("park of a live worker");
    assert_eq!(worker.state(), WorkerState::Parked);
    assert_eq!(timings.generation, 0);
    assert!(worker.unpark().unwrap());
    let w = worker.clone();
    with_watchdog("stop_timeout(Duration::MAX)", move || {
        w.stop_timeout(Duration::MAX)
    })
    .expect("the body's value");
    assert_eq!(worker.state(), WorkerState::Stopped);
}

#[test]
fn a_thread_name_with_a_nul_byte_is_refused_before_any_thread_starts() {
    let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let r = ran.clone();
    let spawned = std::panic::catch_unwind(move || {
        Worker::builder()
            .name("bad\0name")
            .spawn(move |_| r.store(true, std::sync::atomic::Ordering::SeqCst))
            .map(|w| w.stop().ok())
    });
    let err = spawned
        .expect("spawn must not panic on a NUL in the name")
        .unwrap_err();
    assert!(matches!(err, SpawnError::InvalidName), "{err:?}");
    assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
}

/// `park()` on the worker's own thread is refused *before* it requests
/// anything: the worker must not end up parking itself.
#[test]
fn park_from_the_worker_thread_changes_nothing() {
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
                let generation = ctx.protocol().generation();
                let park = me.park().map(|_| ());
                let park_timeout = me.park_timeout(Duration::from_secs(1)).map(|_| ());
                tx.send((
                    park,
                    park_timeout,
                    ctx.should_park(),
                    me.state(),
                    ctx.protocol().generation() == generation,
                ))
                .unwrap();
                drop(me);
                idle_body(ctx);
            })
            .unwrap(),
    );
    slot.set(worker.clone()).unwrap();
    let (park, park_timeout, should_park, state, same_generation) =
        rx.recv_timeout(support::DEADLINE).expect("worker answered");
    assert_eq!(park, Err(ParkError::FromWorkerThread));
    assert_eq!(park_timeout, Err(ParkError::FromWorkerThread));
    assert!(!should_park, "park() from the worker left SHOULD_PARK set");
    assert_eq!(state, WorkerState::Running);
    assert!(same_generation);
    worker.stop().unwrap();
}

/// Two `stop()` calls racing: neither returns while the body still runs;
/// one gets the value, the other `AlreadyJoined` once the body returned.
#[test]
fn a_second_stop_waits_for_the_body_to_return() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    let release = Arc::new(AtomicBool::new(false));
    let returned = Arc::new(AtomicBool::new(false));
    let (r, ret) = (release.clone(), returned.clone());
    let worker = Arc::new(
        Worker::builder()
            .spawn(move |ctx| loop {
                while ctx.keep_running() {
                    ctx.idle_wait(|| false);
                }
                if ctx.should_stop() {
                    // A body that takes its time to wind down.
                    while !r.load(SeqCst) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    ret.store(true, SeqCst);
                    return 7u32;
                }
                ctx.parkme();
            })
            .unwrap(),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    for _ in 0..2 {
        let (w, ret, tx) = (worker.clone(), returned.clone(), tx.clone());
        std::thread::spawn(move || {
            let result = w.stop().map_err(|e| e.to_string());
            // Whatever it returns, the body must have returned first.
            let _ = tx.send((result, ret.load(SeqCst)));
        });
    }
    wait_for("stopping", || worker.state() == WorkerState::Stopping);
    match rx.recv_timeout(Duration::from_millis(200)) {
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        other => panic!("a stop() returned while the body still ran: {other:?}"),
    }
    release.store(true, SeqCst);
    let mut results: Vec<_> = (0..2)
        .map(|_| rx.recv_timeout(support::DEADLINE).expect("stop returned"))
        .collect();
    results.sort();
    assert_eq!(
        results,
        vec![
            (Ok(7), true),
            (Err(StopError::AlreadyJoined.to_string()), true)
        ]
    );
}

/// A body that panics leaves the worker `Failed` (exited, like `Stopped`):
/// every control operation says it is stopped, and `stop()` hands out the
/// panic.
#[test]
fn a_panicking_body_leaves_the_worker_failed() {
    let worker = Worker::builder()
        .spawn(|_ctx| -> u32 { panic!("body failed on purpose") })
        .unwrap();
    wait_for("exit", || {
        matches!(worker.state(), WorkerState::Stopped | WorkerState::Failed)
    });
    assert_eq!(worker.state(), WorkerState::Failed);
    assert_eq!(worker.state().as_str(), "failed");
    assert_eq!(worker.park().map(|_| ()), Err(ParkError::Stopped));
    assert!(matches!(worker.unpark(), Err(UnparkError::Stopped)));
    if AFFINITY_SUPPORTED {
        let cpu = support::allowed()[0];
        assert!(matches!(worker.unpark_on(cpu), Err(UnparkError::Stopped)));
        assert!(matches!(worker.repin(cpu), Err(UnparkError::Stopped)));
    }
    assert!(worker.protocol().describe().contains("FAILED"));
    let err = worker.stop().unwrap_err();
    assert_eq!(err.panic_message(), Some("body failed on purpose"));
    assert_eq!(worker.state(), WorkerState::Failed);
    // A body that returns is Stopped, not Failed.
    let fine = Worker::builder().spawn(|_ctx| 1u32).unwrap();
    assert_eq!(fine.stop().unwrap(), 1);
    assert_eq!(fine.state(), WorkerState::Stopped);
}
