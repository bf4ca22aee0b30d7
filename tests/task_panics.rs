//! A panic at each place user code runs inside the runtime besides `poll`:
//! a future's `Drop` when it is cancelled, a future's `Drop` after it
//! completed, the output's `Drop` when the runtime drops it, a waker that
//! awaits a JoinHandle. For each: the process lives, the JoinHandle
//! resolves (reporting the panic where there is one), and the worker of the
//! 1-worker runtime lives on (a task spawned afterwards completes).
//!
//! A panic there may abort the whole process, so each case runs in a child
//! process: this test binary again, running only that test, with
//! `UNPLUG_PANIC_CASE` set. The parent checks the child exited successfully
//! and printed the case's success marker.
#![cfg(not(loom))]

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;
use support::block_on_timeout;
use unplug::{JoinError, JoinHandle, Runtime};

const CHILD_ENV: &str = "UNPLUG_PANIC_CASE";

/// In the child: runs `case` and prints the marker. In the parent: runs the
/// child and checks it.
fn in_child(test_name: &str, case: impl FnOnce()) {
    if std::env::var(CHILD_ENV).as_deref() == Ok(test_name) {
        case();
        println!("PANIC-CASE-OK {test_name}");
        return;
    }
    let (status, report) = support::rerun_in_child(test_name, CHILD_ENV);
    let marker = format!("PANIC-CASE-OK {test_name}");
    let status = status.unwrap_or_else(|| {
        panic!(
            "{test_name}: child hung (killed after {:?}):\n{report}",
            support::DEADLINE
        )
    });
    eprintln!(
        "{test_name}: child exit={status} marker={}",
        report.contains(&marker)
    );
    assert!(
        status.success() && report.contains(&marker),
        "{test_name}: child exit={status} (signal {:?}), marker printed: {}\n--- child output ---\n{report}",
        std::os::unix::process::ExitStatusExt::signal(&status),
        report.contains(&marker)
    );
}

fn resolve<T>(handle: JoinHandle<T>, what: &str) -> Result<T, JoinError> {
    block_on_timeout(handle, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{what}: the JoinHandle never resolved"))
}

/// The worker lives on: a task spawned now completes.
fn worker_lives(rt: &Runtime) {
    let after = rt.spawn(async {
        unplug::yield_now().await;
        41 + 1
    });
    assert_eq!(
        resolve(after, "the task spawned afterwards").unwrap(),
        42,
        "the worker serves tasks after the panic"
    );
}

/// Panics when dropped.
struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{}", self.0);
        }
    }
}

#[test]
fn a_panic_in_drop_of_an_aborted_future_is_contained() {
    in_child("a_panic_in_drop_of_an_aborted_future_is_contained", || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let started = Arc::new(AtomicBool::new(false));
        let s = started.clone();
        let task = rt.spawn(async move {
            let _bomb = PanicOnDrop("drop on cancel");
            s.store(true, SeqCst);
            std::future::pending::<()>().await
        });
        support::wait_for("the task started", || started.load(SeqCst));
        task.abort();
        let result = resolve(task, "aborted task whose drop panics");
        let err = result.unwrap_err();
        assert!(
            err.is_cancelled() || err.is_panic(),
            "cancelled or panic, got {err:?}"
        );
        eprintln!("drop-on-cancel: handle resolved as {err:?}");
        worker_lives(&rt);
    });
}

#[test]
fn a_panic_in_drop_after_completion_is_reported() {
    in_child("a_panic_in_drop_after_completion_is_reported", || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let task = rt.spawn(ReadyThenPanicOnDrop);
        let err = resolve(task, "future whose drop panics after Ready").unwrap_err();
        assert!(err.is_panic(), "expected a panic, got {err:?}");
        assert_eq!(err.panic_message().as_deref(), Some("drop after Ready"));
        worker_lives(&rt);
    });
}

/// Returns Ready on its first poll; its Drop (run by the runtime after
/// completion) panics.
struct ReadyThenPanicOnDrop;

impl Future for ReadyThenPanicOnDrop {
    type Output = u8;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u8> {
        Poll::Ready(1)
    }
}

impl Drop for ReadyThenPanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("drop after Ready");
        }
    }
}

/// An output whose Drop panics.
struct PanickyOutput;

impl Drop for PanickyOutput {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("output drop");
        }
    }
}

#[test]
fn a_panic_in_drop_of_a_detached_output_is_contained() {
    in_child("a_panic_in_drop_of_a_detached_output_is_contained", || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        let task = rt.spawn(async move {
            let _ = rx.await;
            d.store(1, SeqCst);
            PanickyOutput
        });
        // Detach before completion: the runtime drops the output.
        drop(task);
        tx.send(()).unwrap();
        support::wait_for("the task completed", || done.load(SeqCst) == 1);
        support::wait_for("the task is gone", || rt.handle().live_tasks() == 0);
        worker_lives(&rt);
    });
}

#[test]
fn an_awaited_output_whose_drop_panics_is_the_callers_business() {
    in_child(
        "an_awaited_output_whose_drop_panics_is_the_callers_business",
        || {
            let rt = Runtime::builder().workers(1).build().unwrap();
            let task = rt.spawn(async { PanickyOutput });
            let value = resolve(task, "task with a panicky output").expect("Ok output");
            // The user drops it, on the user's thread: the user's panic.
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(value)));
            assert!(
                caught.is_err(),
                "the user's drop panicked, on the user's side"
            );
            worker_lives(&rt);
        },
    );
}

/// A waker whose wake panics.
struct PanickyWaker {
    woken: AtomicUsize,
}

impl Wake for PanickyWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.fetch_add(1, SeqCst);
        panic!("waker panicked");
    }
}

#[test]
fn a_panicking_waker_awaiting_a_join_handle_is_contained() {
    in_child(
        "a_panicking_waker_awaiting_a_join_handle_is_contained",
        || {
            let rt = Runtime::builder().workers(1).build().unwrap();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let mut task = rt.spawn(async move {
                let _ = rx.await;
                7u32
            });
            // A custom future: polls the JoinHandle with the panicking waker,
            // so the runtime wakes that waker when the task completes.
            let waker_state = Arc::new(PanickyWaker {
                woken: AtomicUsize::new(0),
            });
            let waker = Waker::from(waker_state.clone());
            let mut cx = Context::from_waker(&waker);
            assert!(Pin::new(&mut task).poll(&mut cx).is_pending());
            tx.send(()).unwrap();
            support::wait_for("the panicking waker was called", || {
                waker_state.woken.load(SeqCst) > 0
            });
            assert_eq!(
                resolve(task, "JoinHandle after its waker panicked").unwrap(),
                7,
                "the handle still gives the output"
            );
            worker_lives(&rt);
        },
    );
}
