//! What awaiting a `JoinHandle` does with the awaiter's waker
//! (JOIN-FINISHED, `task/join.rs`): a finished task's output is taken
//! without touching the waker at all, a pending one registers a guard of
//! it once and wakes it exactly once, a waker that changes between polls
//! is the one woken, and a waker that panics when dropped is caught like
//! one that panics when woken (async-task drops a replaced waker where a
//! panic aborts the process: found by the JOIN-FINISHED red team).
#![cfg(not(loom))]

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::Duration;
use support::{wait_until, with_watchdog};

const DEADLINE: Duration = Duration::from_secs(20);

/// Counts what is done with a waker: clones, wakes, drops (of clones);
/// a drop panics while `panic_on_drop` is set.
#[derive(Default)]
struct Counts {
    clones: AtomicUsize,
    wakes: AtomicUsize,
    drops: AtomicUsize,
    panic_on_drop: AtomicBool,
}

fn counting_waker(counts: &Arc<Counts>) -> Waker {
    fn clone(data: *const ()) -> RawWaker {
        // SAFETY: `data` is an `Arc<Counts>` pointer this vtable made; one
        // more count is taken for the clone.
        let counts = unsafe { &*(data as *const Counts) };
        counts.clones.fetch_add(1, SeqCst);
        unsafe { Arc::increment_strong_count(data as *const Counts) };
        RawWaker::new(data, &VTABLE)
    }
    fn wake(data: *const ()) {
        wake_by_ref(data);
        drop_waker(data);
    }
    fn wake_by_ref(data: *const ()) {
        // SAFETY: as in `clone`: the waker holds a count.
        unsafe { &*(data as *const Counts) }
            .wakes
            .fetch_add(1, SeqCst);
    }
    fn drop_waker(data: *const ()) {
        // SAFETY: gives back the count this waker held.
        let counts = unsafe { Arc::from_raw(data as *const Counts) };
        counts.drops.fetch_add(1, SeqCst);
        if counts.panic_on_drop.load(SeqCst) && !std::thread::panicking() {
            panic!("the awaiter's waker panics when dropped");
        }
    }
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);
    let data = Arc::into_raw(counts.clone()) as *const ();
    // SAFETY: the vtable's functions keep the `Arc` count contract above.
    unsafe { Waker::from_raw(RawWaker::new(data, &VTABLE)) }
}

fn poll_with<F: Future + Unpin>(fut: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(fut).poll(&mut Context::from_waker(waker))
}

/// A task that holds the runtime's worker (unfinished) until told, then
/// returns `output`.
fn held_task<T: Send + 'static>(
    rt: &unplug::Runtime,
    output: T,
) -> (unplug::JoinHandle<T>, mpsc::Sender<()>) {
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let handle = rt.spawn(async move {
        go_rx.recv().unwrap();
        output
    });
    (handle, go_tx)
}

/// Polls `handle` (pending) with a fresh counting waker and drops this
/// copy of it: the join's guard then holds the last one.
fn guarded_once<T>(handle: &mut unplug::JoinHandle<T>) -> Arc<Counts> {
    let counts = Arc::new(Counts::default());
    assert!(poll_with(handle, &counting_waker(&counts)).is_pending());
    counts
}

#[test]
fn joining_a_finished_task_leaves_the_awaiters_waker_untouched() {
    let rt = unplug::Runtime::builder().workers(1).build().unwrap();
    let mut handle = rt.spawn(async { 7 });
    assert!(wait_until(DEADLINE, || handle.is_finished()));
    let counts = Arc::new(Counts::default());
    let waker = counting_waker(&counts);
    assert!(matches!(poll_with(&mut handle, &waker), Poll::Ready(Ok(7))));
    assert_eq!(counts.clones.load(SeqCst), 0, "no clone of the waker");
    assert_eq!(counts.wakes.load(SeqCst), 0, "no wake-up");
    drop(handle);
    drop(waker);
    assert_eq!(counts.drops.load(SeqCst), 1, "only our own waker dropped");
}

#[test]
fn a_pending_join_wakes_its_awaiter_once_and_then_gives_the_output() {
    let rt = unplug::Runtime::builder().workers(1).build().unwrap();
    let (mut handle, go_tx) = held_task(&rt, "done");
    let counts = Arc::new(Counts::default());
    let waker = counting_waker(&counts);
    // Polled twice while pending: the guard is made once, and the second
    // poll reuses it (no second clone of the awaiter's waker).
    assert!(poll_with(&mut handle, &waker).is_pending());
    assert!(poll_with(&mut handle, &waker).is_pending());
    assert_eq!(counts.clones.load(SeqCst), 1, "one guard around the waker");
    go_tx.send(()).unwrap();
    assert!(
        wait_until(DEADLINE, || counts.wakes.load(SeqCst) == 1),
        "the awaiter was woken when the task completed"
    );
    assert!(matches!(
        poll_with(&mut handle, &waker),
        Poll::Ready(Ok("done"))
    ));
    assert_eq!(counts.wakes.load(SeqCst), 1, "woken exactly once");
}

#[test]
fn a_join_polled_with_a_new_waker_wakes_the_new_one() {
    let rt = unplug::Runtime::builder().workers(1).build().unwrap();
    let (mut handle, go_tx) = held_task(&rt, ());
    let (old, new) = (Arc::new(Counts::default()), Arc::new(Counts::default()));
    assert!(poll_with(&mut handle, &counting_waker(&old)).is_pending());
    assert!(poll_with(&mut handle, &counting_waker(&new)).is_pending());
    go_tx.send(()).unwrap();
    assert!(
        wait_until(DEADLINE, || new.wakes.load(SeqCst) == 1),
        "the latest waker was woken"
    );
    assert_eq!(old.wakes.load(SeqCst), 0, "the replaced waker was not");
    assert!(poll_with(&mut handle, &counting_waker(&new)).is_ready());
}

/// `unplug::unobserved_panics()` counts for the whole process: the tests
/// that read it hold this, so they do not count each other's panics.
static COUNTS_PANICS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn replacing_a_waker_whose_drop_panics_is_caught_not_an_abort() {
    with_watchdog("a waker swap", || {
        let _serial = COUNTS_PANICS.lock().unwrap_or_else(|e| e.into_inner());
        let rt = unplug::Runtime::builder().workers(1).build().unwrap();
        let (mut handle, go_tx) = held_task(&rt, ());
        let a = guarded_once(&mut handle);
        a.panic_on_drop.store(true, SeqCst);
        let before = unplug::unobserved_panics();
        // The awaiter moves on to another waker (another task, a select):
        // the guard of A, and A with it, is dropped inside async-task.
        let b = Arc::new(Counts::default());
        assert!(poll_with(&mut handle, &counting_waker(&b)).is_pending());
        assert_eq!(
            unplug::unobserved_panics(),
            before + 1,
            "the panic was caught"
        );
        go_tx.send(()).unwrap();
        assert!(wait_until(DEADLINE, || b.wakes.load(SeqCst) == 1));
        assert!(matches!(
            poll_with(&mut handle, &counting_waker(&b)),
            Poll::Ready(Ok(()))
        ));
    });
}

#[test]
fn a_pending_handle_dropped_with_a_waker_that_panics_when_dropped_is_caught() {
    with_watchdog("a pending handle's guard", || {
        let _serial = COUNTS_PANICS.lock().unwrap_or_else(|e| e.into_inner());
        let rt = unplug::Runtime::builder().workers(1).build().unwrap();
        let (mut handle, go_tx) = held_task(&rt, ());
        let a = guarded_once(&mut handle);
        a.panic_on_drop.store(true, SeqCst);
        let before = unplug::unobserved_panics();
        // The handle takes its guard out of async-task and drops it, and A
        // with it, here (JOIN-RELEASE; before, the worker dropped it when
        // the task completed, caught there).
        drop(handle);
        assert_eq!(
            unplug::unobserved_panics(),
            before + 1,
            "the panic was caught at the drop"
        );
        go_tx.send(()).unwrap();
        // The worker still runs tasks.
        let after = rt.spawn(async { 3 });
        assert_eq!(rt.block_on(after).unwrap(), 3);
        a.panic_on_drop.store(false, SeqCst);
    });
}
