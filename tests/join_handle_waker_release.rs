//! What is left of the awaiter's waker once a `JoinHandle` is done with
//! it (JOIN-RELEASE, `task/join.rs`): after the handle returns its output,
//! or is dropped (pending or not, on the thread that polled it or on
//! another), no clone of the waker survives anywhere, in the handle's
//! task, in async-task or in a per-thread cache.
//!
//! The defect it caught (red team): a per-thread cache kept the guard of
//! the last awaiter waker a thread had guarded, waker and all, for as long
//! as the thread lived. A waker owns what it wakes: a current-thread tokio
//! runtime that awaited an unplug `JoinHandle` and was then dropped kept
//! its epoll fd and eventfd open until another handle was polled on that
//! thread, and a custom waker's `Arc` count stayed at 2 after the handle,
//! the waker and the runtime were dropped. A handle dropped while its task
//! was pending also left its guard registered in async-task until the task
//! completed.
#![cfg(not(loom))]

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;
use support::{wait_until, with_watchdog};

const DEADLINE: Duration = Duration::from_secs(20);

/// The fd test counts the whole process's fds: every test here holds this,
/// so no other test's runtime opens or closes fds meanwhile.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A waker whose `Arc` count is the number of its live clones plus ours.
#[derive(Default)]
struct CountedWaker {
    wakes: AtomicUsize,
}

impl Wake for CountedWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, SeqCst);
    }
}

/// Clones of `waker` alive besides the test's own `Arc`.
fn clones_left(waker: &Arc<CountedWaker>) -> usize {
    Arc::strong_count(waker) - 1
}

fn poll_with<F: Future + Unpin>(fut: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(waker))
}

/// A task that stays pending until told, then returns `output`.
fn held_task<T: Send + 'static>(
    rt: &unplug::Runtime,
    output: T,
) -> (unplug::JoinHandle<T>, tokio::sync::oneshot::Sender<()>) {
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let handle = rt.spawn(async move {
        let _ = go_rx.await;
        output
    });
    (handle, go_tx)
}

#[test]
fn a_handle_that_returned_its_output_keeps_no_clone_of_the_awaiters_waker() {
    let _serial = serial();
    with_watchdog("a joined handle", || {
        let rt = unplug::Runtime::builder().workers(1).build().unwrap();
        let (mut handle, go) = held_task(&rt, 1);
        let counted = Arc::new(CountedWaker::default());
        let waker = Waker::from(counted.clone());
        assert!(poll_with(&mut handle, &waker).is_pending());
        go.send(()).unwrap();
        assert!(wait_until(DEADLINE, || counted.wakes.load(SeqCst) == 1));
        assert!(matches!(poll_with(&mut handle, &waker), Poll::Ready(Ok(1))));
        drop(waker);
        // The handle is still alive (returned, not dropped), and so is the
        // runtime: neither may hold the waker now.
        assert_eq!(clones_left(&counted), 0, "clones left after the output");
        drop(handle);
        assert_eq!(clones_left(&counted), 0, "clones left after the drop");
    });
}

#[test]
fn a_handle_dropped_while_its_task_is_pending_keeps_no_clone_of_the_awaiters_waker() {
    let _serial = serial();
    with_watchdog("a pending handle dropped", || {
        let rt = unplug::Runtime::builder().workers(1).build().unwrap();
        let (mut handle, go) = held_task(&rt, ());
        let counted = Arc::new(CountedWaker::default());
        let waker = Waker::from(counted.clone());
        assert!(poll_with(&mut handle, &waker).is_pending());
        drop(waker);
        drop(handle);
        // The task has not completed: async-task must not keep the guard
        // registered until it does.
        assert_eq!(clones_left(&counted), 0, "clones left after the drop");
        assert_eq!(counted.wakes.load(SeqCst), 0, "no wake-up for a drop");
        go.send(()).unwrap();
        drop(rt);
        assert_eq!(clones_left(&counted), 0);
        assert_eq!(
            counted.wakes.load(SeqCst),
            0,
            "the detached task woke nobody"
        );
    });
}

#[test]
fn a_handle_dropped_on_another_thread_leaves_no_clone_on_the_thread_that_polled_it() {
    let _serial = serial();
    with_watchdog("a handle dropped elsewhere", || {
        let rt = unplug::Runtime::builder().workers(1).build().unwrap();
        let (mut handle, go) = held_task(&rt, ());
        let counted = Arc::new(CountedWaker::default());
        let waker = Waker::from(counted.clone());
        assert!(poll_with(&mut handle, &waker).is_pending());
        drop(waker);
        go.send(()).unwrap();
        assert!(wait_until(DEADLINE, || handle.is_finished()));
        // Joined and dropped on another thread; this one lives on.
        std::thread::spawn(move || {
            assert!(poll_with(&mut handle, Waker::noop()).is_ready());
        })
        .join()
        .unwrap();
        assert_eq!(clones_left(&counted), 0, "clones left on this thread");
    });
}

#[test]
fn many_handles_joined_in_turn_leave_no_clone_of_the_awaiters_waker() {
    let _serial = serial();
    with_watchdog("handles joined in turn", || {
        let rt = unplug::Runtime::builder().workers(2).build().unwrap();
        let counted = Arc::new(CountedWaker::default());
        let waker = Waker::from(counted.clone());
        for round in 0..100 {
            let (mut handle, go) = held_task(&rt, round);
            assert!(poll_with(&mut handle, &waker).is_pending());
            go.send(()).unwrap();
            assert!(wait_until(DEADLINE, || counted.wakes.load(SeqCst) == round + 1));
            assert!(matches!(poll_with(&mut handle, &waker), Poll::Ready(Ok(r)) if r == round));
            assert_eq!(clones_left(&counted), 1, "only the test's waker");
        }
        drop(waker);
        assert_eq!(clones_left(&counted), 0);
    });
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn a_tokio_runtime_that_awaited_a_handle_closes_its_fds_when_dropped() {
    let _serial = serial();
    with_watchdog("a tokio runtime's fds", || {
        let rt = unplug::Runtime::builder().workers(1).build().unwrap();
        let new_tokio = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        // Whatever is opened once per process, opened before counting.
        assert_eq!(rt.block_on(rt.spawn(async { 0 })).unwrap(), 0);
        drop(new_tokio());
        let before = open_fds();
        let tokio_rt = new_tokio();
        let opened = open_fds() - before;
        assert!(opened > 0, "a tokio runtime with I/O opens fds");
        let (mut handle, go) = held_task(&rt, 1);
        let mut go = Some(go);
        let joined = tokio_rt.block_on(async move {
            // Awaited from a tokio task on this thread: the guard wraps a
            // waker of that task, which holds the tokio runtime's driver.
            // The task is let go only once the handle was polled pending.
            let awaiting = tokio::spawn(std::future::poll_fn(move |cx| {
                let polled = Pin::new(&mut handle).poll(cx);
                if let Some(go) = go.take() {
                    assert!(polled.is_pending());
                    go.send(()).unwrap();
                }
                polled
            }));
            awaiting.await.unwrap().unwrap()
        });
        assert_eq!(joined, 1);
        drop(tokio_rt);
        // The worker that completed the task may still be inside its wake of
        // the awaiter (holding the guard a few instructions longer) when the
        // tokio task has already returned: the fds close when it lets go
        // (1 run in 4 read 11 against 9 right after the drop on a loaded
        // machine). Kept for good is the failure.
        let closed = wait_until(Duration::from_secs(5), || open_fds() == before);
        let after = open_fds();
        eprintln!("fds: {before} before the tokio runtime, {opened} opened by it, {after} after it was dropped");
        assert!(
            closed,
            "the dropped tokio runtime's fds are still open: {after} against {before}"
        );
    });
}
