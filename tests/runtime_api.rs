//! The embedding API: build, block_on, spawn from inside and outside,
//! handles, JoinHandle, hooks, bad input.
#![cfg(not(loom))]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use unplug::{BuildError, Handle, Runtime};

#[test]
fn spawn_from_outside_and_inside_completes() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let outside = rt.spawn(async { 1u32 });
    let total = rt.block_on(async move {
        let inside = unplug::spawn(async {
            let nested = unplug::spawn(async { 10u32 });
            nested.await.unwrap() + 100
        });
        outside.await.unwrap() + inside.await.unwrap()
    });
    assert_eq!(total, 111);
}

#[test]
fn handle_is_current_inside_tasks_and_block_on_only() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    assert!(Handle::try_current().is_none());
    assert!(rt.block_on(async { Handle::try_current().is_some() }));
    let inside = rt.block_on(rt.spawn(async { Handle::try_current().is_some() }));
    assert!(inside.unwrap());
    assert!(Handle::try_current().is_none());
}

#[test]
fn join_handle_reports_finished_and_abort_cancels_a_pending_task() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let done = rt.spawn(async { 3 });
    support::wait_for("task finish", || done.is_finished());
    assert_eq!(rt.block_on(done).unwrap(), 3);

    let dropped = Arc::new(AtomicUsize::new(0));
    let counter = support::DropCounter(dropped.clone());
    let pending = rt.spawn(async move {
        let _c = counter;
        std::future::pending::<()>().await
    });
    assert!(!pending.is_finished());
    pending.abort();
    let err = rt.block_on(pending).unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
    assert_eq!(dropped.load(SeqCst), 1);
}

#[test]
fn abort_after_completion_keeps_the_output() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let task = rt.spawn(async { "done" });
    support::wait_for("task finish", || task.is_finished());
    task.abort();
    assert_eq!(rt.block_on(task).unwrap(), "done");
}

#[test]
fn block_on_inside_a_worker_panics_with_a_clear_message() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let handle = rt.handle().clone();
    let err = rt
        .block_on(rt.spawn(async move { handle.block_on(async {}) }))
        .unwrap_err();
    let msg = err.panic_message().unwrap();
    assert!(
        msg.contains("Cannot block_on inside an unplug worker thread"),
        "{msg}"
    );
    // The worker lived on.
    assert_eq!(rt.block_on(rt.spawn(async { 7 })).unwrap(), 7);
}

#[test]
fn bad_builder_input_is_a_typed_error() {
    assert!(matches!(
        Runtime::builder().workers(0).build(),
        Err(BuildError::ZeroWorkers)
    ));
    assert!(matches!(
        Runtime::builder().cpus(Vec::new()).build(),
        Err(BuildError::EmptyCpuList)
    ));
    assert!(matches!(
        Runtime::builder().cpus([0, 4000]).build(),
        Err(BuildError::CpuNotAllowed { cpu: 4000, .. })
    ));
}

#[test]
fn hooks_run_once_per_worker_and_workers_can_be_pinned() {
    let started = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicUsize::new(0));
    let (s, t) = (started.clone(), stopped.clone());
    let cpus = unplug::worker::affinity::allowed_cpus().unwrap();
    let rt = Runtime::builder()
        .workers(2)
        .pin_workers(true)
        .thread_name("hooked")
        .on_thread_start(move || {
            s.fetch_add(1, SeqCst);
        })
        .on_thread_stop(move || {
            t.fetch_add(1, SeqCst);
        })
        .build()
        .unwrap();
    support::wait_for("start hooks", || started.load(SeqCst) == 2);
    for (i, w) in rt.workers().iter().enumerate() {
        assert!(w.pinned);
        assert_eq!(w.cpu, Some(cpus[i % cpus.len()]));
        assert_eq!(
            unplug::worker::affinity::cpus_of(w.os_tid).unwrap(),
            vec![cpus[i % cpus.len()]]
        );
    }
    drop(rt);
    assert_eq!(stopped.load(SeqCst), 2);
}

#[test]
fn spawn_after_shutdown_yields_cancelled_and_drops_the_future() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let handle = rt.handle().clone();
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    let dropped = Arc::new(AtomicUsize::new(0));
    let counter = support::DropCounter(dropped.clone());
    let task = handle.spawn(async move {
        let _c = counter;
    });
    assert!(task.is_finished());
    assert_eq!(dropped.load(SeqCst), 1);
    let err = futures_lite::future::block_on(task).unwrap_err();
    assert!(err.is_cancelled());
    assert_eq!(handle.live_tasks(), 0);
}

#[test]
#[should_panic(expected = "JoinHandle polled after it returned its output")]
fn polling_a_join_handle_after_it_returned_panics_instead_of_inventing_a_cancellation() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let rt = Runtime::builder().workers(1).build().unwrap();
    let mut handle = rt.spawn(async { 5 });
    support::wait_for("the task to finish", || handle.is_finished());
    let mut cx = Context::from_waker(Waker::noop());
    let first = std::pin::Pin::new(&mut handle).poll(&mut cx);
    assert!(matches!(first, Poll::Ready(Ok(5))), "{first:?}");
    // Outside the `Future` contract, as for any future: a bug in the caller,
    // reported as such (not as the task having been cancelled).
    let _ = std::pin::Pin::new(&mut handle).poll(&mut cx);
}
