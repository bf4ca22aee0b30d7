//! `JoinHandle::id`, `JoinHandle::abort_handle` and `AbortHandle`: abort
//! from anywhere, `is_finished`, ids, and what an abort handle does not
//! keep alive.
#![cfg(not(loom))]

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use support::DropCounter;
use unplug::{AbortHandle, Runtime};

#[test]
fn abort_handle_is_clone_send_and_sync() {
    fn assert_traits<T: Clone + Send + Sync + 'static>() {}
    assert_traits::<AbortHandle>();
}

#[test]
fn abort_from_another_thread_cancels_a_pending_task_and_the_join_handle_sees_cancelled() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let counter = DropCounter(dropped.clone());
    let task = rt.spawn(async move {
        let _c = counter;
        std::future::pending::<()>().await
    });
    let abort = task.abort_handle();
    std::thread::spawn(move || abort.abort()).join().unwrap();
    support::wait_for("the aborted future to be dropped", || {
        dropped.load(SeqCst) == 1
    });
    let err =
        support::with_watchdog("awaiting the aborted task", move || rt.block_on(task)).unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
}

#[test]
fn is_finished_flips_when_the_task_completes_and_when_it_is_aborted() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
    let completes = rt.spawn(async move { rx.await.unwrap() });
    let completes_abort = completes.abort_handle();
    let aborted = rt.spawn(std::future::pending::<()>());
    let aborted_abort = aborted.abort_handle();
    assert!(!completes_abort.is_finished());
    assert!(!aborted_abort.is_finished());

    tx.send(7).unwrap();
    support::wait_for("the task to complete", || completes_abort.is_finished());
    assert_eq!(rt.block_on(completes).unwrap(), 7);
    assert!(completes_abort.is_finished());

    assert!(!aborted_abort.is_finished());
    aborted_abort.clone().abort();
    support::wait_for("the aborted task to finish", || aborted_abort.is_finished());
    assert!(rt.block_on(aborted).unwrap_err().is_cancelled());
}

#[test]
fn ids_are_unique_and_equal_between_join_handle_and_abort_handle() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let handle = rt.handle().clone();
    // Spawned from several threads at once, so every registry shard and
    // several per-thread shard rotations hand out ids.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let handle = handle.clone();
            std::thread::spawn(move || {
                (0..500)
                    .map(|_| {
                        let task = handle.spawn(async {});
                        let abort = task.abort_handle();
                        assert_eq!(task.id(), abort.id());
                        assert_eq!(abort.clone().id(), abort.id());
                        task.id()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let ids: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let unique: HashSet<_> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "duplicate task ids");

    // The id stays the same after the task is gone.
    let task = rt.spawn(async {});
    let id = task.id();
    support::wait_for("the task to finish", || task.is_finished());
    assert_eq!(task.id(), id);
    assert_eq!(task.abort_handle().id(), id);
}

#[test]
fn abort_after_completion_through_the_abort_handle_keeps_the_output() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let task = rt.spawn(async { "done" });
    let abort = task.abort_handle();
    support::wait_for("the task to finish", || task.is_finished());
    abort.abort();
    assert_eq!(rt.block_on(task).unwrap(), "done");
}

#[test]
fn an_abort_handle_does_not_keep_the_output_alive() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let counter = DropCounter(dropped.clone());
    let task = rt.spawn(async move { counter });
    let abort = task.abort_handle();
    // Detached: the output is dropped as soon as the task completes, even
    // though an abort handle is still held.
    drop(task);
    support::wait_for("the detached output to be dropped", || {
        dropped.load(SeqCst) == 1
    });
    assert!(abort.is_finished());
    abort.abort(); // a no-op on a gone task
}

#[test]
fn a_stale_abort_handle_never_cancels_a_newer_task() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let old = rt.spawn(async {});
    let stale = old.abort_handle();
    support::wait_for("the old task to finish", || old.is_finished());
    drop(old);
    // Enough pending tasks that some reuse the old task's registry key.
    let (tx, rx) = tokio::sync::watch::channel(false);
    let newer: Vec<_> = (0..256)
        .map(|_| {
            let mut rx = rx.clone();
            rt.spawn(async move {
                rx.wait_for(|go| *go).await.unwrap();
            })
        })
        .collect();
    stale.abort();
    tx.send(true).unwrap();
    for task in newer {
        rt.block_on(task)
            .expect("a newer task was cancelled by a stale abort handle");
    }
}

#[test]
fn abort_handle_of_a_task_refused_at_shutdown_reports_finished() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let handle = rt.handle().clone();
    let live = rt.spawn(async {});
    drop(rt);
    let refused = handle.spawn(async {});
    let other = handle.spawn(async {});
    let abort = refused.abort_handle();
    assert!(abort.is_finished());
    abort.abort();
    assert_eq!(abort.id(), refused.id());
    assert_ne!(refused.id(), other.id());
    assert_ne!(refused.id(), live.id());
    let result = support::block_on_timeout(refused, support::DEADLINE).unwrap();
    assert!(result.unwrap_err().is_cancelled());
}
