//! TASK-OWNER (`runtime/SCHEDULER.md`): every task counts its scheduler,
//! so a waker, join handle or task that outlives the runtime is safe to
//! use, the scheduler is freed exactly once when the last of them goes, and
//! an `AbortHandle` counts only the registry. A task woken on another
//! runtime's worker goes home. (From the TASK-OWNER red team.)
#![cfg(not(loom))]

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Counts when dropped.
struct Probe(Arc<AtomicUsize>);

impl Drop for Probe {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// A runtime whose scheduler, when freed, bumps the returned counter: the
/// `on_thread_stop` closure lives in the scheduler's hooks and nowhere
/// else, so its captured probe drops exactly when the scheduler is freed.
fn runtime_with_probe(
    name: &str,
    extra: impl Send + Sync + 'static,
) -> (unplug::Runtime, Arc<AtomicUsize>) {
    let freed = Arc::new(AtomicUsize::new(0));
    let probe = Probe(freed.clone());
    let rt = unplug::Runtime::builder()
        .workers(2)
        .thread_name(name)
        .on_thread_stop(move || {
            let _ = (&probe, &extra);
        })
        .build()
        .unwrap();
    (rt, freed)
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

#[test]
fn a_waker_outliving_its_runtime_is_safe_and_the_last_one_frees_the_scheduler() {
    let (rt, freed) = runtime_with_probe("lifetime", ());
    let wakers: Arc<Mutex<Vec<Waker>>> = Arc::default();
    let dropped = Arc::new(AtomicUsize::new(0));
    let mut joins = Vec::new();
    for _ in 0..16 {
        let (wakers, probe) = (wakers.clone(), Probe(dropped.clone()));
        joins.push(rt.spawn(async move {
            let _probe = probe;
            let mut stored = false;
            poll_fn(|cx| {
                if !stored {
                    stored = true;
                    wakers.lock().unwrap().push(cx.waker().clone());
                }
                Poll::<()>::Pending
            })
            .await
        }));
    }
    wait_until("every task to wait", || wakers.lock().unwrap().len() == 16);
    drop(rt);
    assert_eq!(dropped.load(SeqCst), 16, "shutdown drops every future once");
    assert_eq!(
        freed.load(SeqCst),
        0,
        "the wakers and join handles still count the scheduler"
    );
    // Wakes and joins after the runtime is gone, from other threads.
    let taken: Vec<Waker> = std::mem::take(&mut *wakers.lock().unwrap());
    std::thread::scope(|s| {
        for chunk in taken.chunks(4) {
            s.spawn(move || chunk.iter().for_each(Waker::wake_by_ref));
        }
    });
    for join in joins {
        assert!(futures_lite_block_on(join).unwrap_err().is_cancelled());
    }
    assert_eq!(
        freed.load(SeqCst),
        0,
        "the wakers still count the scheduler"
    );
    drop(taken);
    assert_eq!(
        freed.load(SeqCst),
        1,
        "freed exactly once, by the last waker"
    );
    assert_eq!(dropped.load(SeqCst), 16);
}

#[test]
fn an_abort_handle_kept_in_a_thread_hook_does_not_keep_the_runtime_alive() {
    let stash: Arc<Mutex<Option<unplug::AbortHandle>>> = Arc::default();
    let (rt, freed) = runtime_with_probe("hook-abort", stash.clone());
    let task = rt.spawn(async { 1 });
    *stash.lock().unwrap() = Some(task.abort_handle());
    assert_eq!(rt.block_on(task).unwrap(), 1);
    drop(stash);
    drop(rt);
    assert_eq!(
        freed.load(SeqCst),
        1,
        "hook state -> AbortHandle -> scheduler -> hook is a cycle"
    );
}

/// Completes after `until` polls, counting polls on threads not named
/// `home*`, and publishing its waker.
struct Counted {
    polls: Arc<AtomicUsize>,
    away: Arc<AtomicUsize>,
    waker: Arc<Mutex<Option<Waker>>>,
    until: usize,
}

impl Future for Counted {
    type Output = usize;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        let name = std::thread::current().name().unwrap_or("").to_owned();
        if !name.starts_with("home") {
            self.away.fetch_add(1, SeqCst);
        }
        *self.waker.lock().unwrap() = Some(cx.waker().clone());
        let n = self.polls.fetch_add(1, SeqCst) + 1;
        if n >= self.until {
            Poll::Ready(n)
        } else {
            Poll::Pending
        }
    }
}

#[test]
fn a_task_woken_on_another_runtimes_worker_runs_on_its_own() {
    let (home, _) = runtime_with_probe("home", ());
    let (other, _) = runtime_with_probe("other", ());
    const WAKES: usize = 2_000;
    let (polls, away) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let waker: Arc<Mutex<Option<Waker>>> = Arc::default();
    let task = home.spawn(Counted {
        polls: polls.clone(),
        away: away.clone(),
        waker: waker.clone(),
        until: WAKES + 1,
    });
    // The waker is woken on `other`'s worker, after each poll.
    let pinger = other.spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(20);
        for i in 1..=WAKES {
            while polls.load(SeqCst) < i {
                assert!(Instant::now() < deadline, "a wake-up was lost at {i}");
                unplug::yield_now().await;
            }
            let w = waker.lock().unwrap().clone().unwrap();
            w.wake();
        }
    });
    assert_eq!(home.block_on(task).unwrap(), WAKES + 1);
    other.block_on(pinger).unwrap();
    assert_eq!(away.load(SeqCst), 0, "polled on another runtime's thread");
}

/// Polls a future to completion on this thread (no runtime).
fn futures_lite_block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        assert!(Instant::now() < deadline, "a join handle never resolved");
        std::thread::park_timeout(Duration::from_millis(10));
    }
}
