//! Panics reach the JoinHandle and the worker lives on; shutdown cancels
//! every pending task exactly once and joins the threads.
#![cfg(not(loom))]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use support::DropCounter;
use unplug::Runtime;

#[test]
fn a_panicking_task_gives_its_payload_and_the_worker_lives_on() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let before = rt.workers();
    let err = rt
        .block_on(rt.spawn(async { panic!("task failed on purpose") }))
        .unwrap_err();
    assert!(err.is_panic());
    assert_eq!(
        err.panic_message().as_deref(),
        Some("task failed on purpose")
    );
    let payload = err.try_into_panic().unwrap();
    assert_eq!(
        *payload.downcast::<&str>().unwrap(),
        "task failed on purpose"
    );
    // Same worker thread, still serving.
    assert_eq!(rt.block_on(rt.spawn(async { 1 })).unwrap(), 1);
    let after = rt.workers();
    assert_eq!(before[0].os_tid, after[0].os_tid);
}

/// Futures parked in every place a pending task can be: waiting on a timer,
/// on a channel nobody sends to, queued behind a busy worker, and yielding.
#[test]
fn shutdown_drops_every_pending_future_exactly_once() {
    for shutdown_by_drop in [false, true] {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let mut senders = Vec::new();
        const EACH: usize = 200;
        for i in 0..EACH {
            let c = DropCounter(drops.clone());
            rt.spawn(async move {
                let _c = c;
                tokio::time::sleep(Duration::from_secs(3600)).await;
            });
            let c = DropCounter(drops.clone());
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            senders.push(tx);
            rt.spawn(async move {
                let _c = c;
                let _ = rx.await;
            });
            let c = DropCounter(drops.clone());
            rt.spawn(async move {
                let _c = c;
                loop {
                    unplug::yield_now().await;
                    if i == usize::MAX {
                        break;
                    }
                }
            });
        }
        let live = rt.handle().live_tasks();
        assert_eq!(live, 3 * EACH);
        let handle = rt.handle().clone();
        if shutdown_by_drop {
            drop(rt);
        } else {
            rt.shutdown_timeout(Duration::from_secs(10));
        }
        assert_eq!(
            drops.load(SeqCst),
            3 * EACH,
            "each future dropped exactly once"
        );
        assert_eq!(handle.live_tasks(), 0);
        drop(senders);
        assert_eq!(drops.load(SeqCst), 3 * EACH, "and never again");
    }
}

#[test]
fn shutdown_timeout_returns_even_if_a_task_blocks_its_worker() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    rt.spawn(async move {
        started_tx.send(()).unwrap();
        // Blocks its worker until the test releases it (or gives up).
        let _ = release_rx.recv_timeout(support::DEADLINE);
    });
    started_rx
        .recv_timeout(support::DEADLINE)
        .expect("the blocking task started");
    support::with_watchdog("shutdown_timeout", move || {
        rt.shutdown_timeout(Duration::from_millis(200));
    });
    let _ = release_tx.send(());
}

#[test]
fn shutdown_timeout_of_duration_max_means_no_deadline() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    assert_eq!(rt.block_on(rt.spawn(async { 7 })).unwrap(), 7);
    support::with_watchdog("shutdown_timeout(Duration::MAX)", move || {
        rt.shutdown_timeout(Duration::MAX);
    });
}

/// What a future's `Drop` found when shutdown dropped it: whether it could
/// use the runtime as it can anywhere inside it.
#[derive(Default)]
struct SeenAtDrop {
    dropped: AtomicUsize,
    had_handle: AtomicUsize,
    spawned: AtomicUsize,
    tokio_spawned: AtomicUsize,
}

/// Cleanup that spawns, as futures' `Drop`s do (a connection pool returning
/// a connection, a guard flushing a buffer).
struct SpawnsOnDrop(Arc<SeenAtDrop>);

impl Drop for SpawnsOnDrop {
    fn drop(&mut self) {
        let seen = &self.0;
        seen.dropped.fetch_add(1, SeqCst);
        if unplug::Handle::try_current().is_some() {
            seen.had_handle.fetch_add(1, SeqCst);
        }
        // After shutdown began: a cancelled handle, never a panic.
        drop(unplug::spawn(async {}));
        seen.spawned.fetch_add(1, SeqCst);
        drop(tokio::spawn(async {}));
        seen.tokio_spawned.fetch_add(1, SeqCst);
    }
}

#[test]
fn futures_dropped_by_shutdown_run_inside_the_runtime_context() {
    support::with_watchdog("shutdown with spawning Drops", || {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let seen = Arc::new(SeenAtDrop::default());
        let waiting = Arc::new(AtomicUsize::new(0));
        const WAITING: usize = 10;
        for _ in 0..WAITING {
            // Waits on a channel nobody sends on: no queue holds it, and
            // shutdown's cancel drops it on the thread that drops `rt`.
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let guard = SpawnsOnDrop(seen.clone());
            let waiting = waiting.clone();
            rt.spawn(async move {
                let _guard = guard;
                let _tx = tx;
                waiting.fetch_add(1, SeqCst);
                let _ = std::future::pending::<()>().await;
                drop(rx);
            });
        }
        support::wait_for("the tasks to wait", || waiting.load(SeqCst) == WAITING);
        drop(rt);
        assert_eq!(seen.dropped.load(SeqCst), WAITING, "each dropped once");
        assert_eq!(seen.had_handle.load(SeqCst), WAITING, "Handle::try_current");
        assert_eq!(seen.spawned.load(SeqCst), WAITING, "unplug::spawn returned");
        assert_eq!(
            seen.tokio_spawned.load(SeqCst),
            WAITING,
            "tokio::spawn returned"
        );
    });
}
