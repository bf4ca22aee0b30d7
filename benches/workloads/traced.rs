//! A spawner that counts where each task's polls and wake-ups happen, for
//! `compare --explain`: whether a workload's tasks stay on one thread, and
//! whether their wake-ups come from the thread that last polled them. The
//! counting (a waker allocated per poll, two shared counters) costs time,
//! so its runs are for these counts, not for speed.

use super::Spawner;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// Counts of a [`Traced`] spawner's tasks since it was made.
#[derive(Default)]
pub struct Placement {
    /// Polls of every task.
    pub polls: AtomicUsize,
    /// Polls on another thread than the task's previous poll.
    pub moved: AtomicUsize,
    /// Wake-ups of every task.
    pub wakes: AtomicUsize,
    /// Wake-ups from another thread than the one that last polled the task.
    pub cross_wakes: AtomicUsize,
}

/// `S`, with every task spawned through it counted in a [`Placement`].
#[derive(Clone)]
pub struct Traced<S> {
    pub inner: S,
    pub counts: Arc<Placement>,
}

impl<S> Traced<S> {
    pub fn new(inner: S) -> Self {
        Traced {
            inner,
            counts: Arc::default(),
        }
    }
}

/// A small number naming the current thread.
fn thread_number() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    thread_local!(static NUMBER: usize = NEXT.fetch_add(1, Relaxed));
    NUMBER.with(|n| *n)
}

/// The waker a traced task's future sees: counts, then wakes the task.
struct CountingWaker {
    task: Waker,
    last_thread: Arc<AtomicUsize>,
    counts: Arc<Placement>,
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref()
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.counts.wakes.fetch_add(1, Relaxed);
        if self.last_thread.load(Relaxed) != thread_number() {
            self.counts.cross_wakes.fetch_add(1, Relaxed);
        }
        self.task.wake_by_ref()
    }
}

/// A future counted in `counts`.
pub struct TracedTask<F> {
    future: Pin<Box<F>>,
    last_thread: Arc<AtomicUsize>,
    counts: Arc<Placement>,
}

impl<F: Future> Future for TracedTask<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let here = thread_number();
        self.counts.polls.fetch_add(1, Relaxed);
        let before = self.last_thread.swap(here, Relaxed);
        if before != 0 && before != here {
            self.counts.moved.fetch_add(1, Relaxed);
        }
        let waker = Waker::from(Arc::new(CountingWaker {
            task: cx.waker().clone(),
            last_thread: self.last_thread.clone(),
            counts: self.counts.clone(),
        }));
        self.future.as_mut().poll(&mut Context::from_waker(&waker))
    }
}

impl<S: Spawner> Spawner for Traced<S> {
    type Join<T: Send + 'static> = S::Join<T>;
    fn spawn<F>(&self, f: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.inner.spawn(TracedTask {
            future: Box::pin(f),
            last_thread: Arc::default(),
            counts: self.counts.clone(),
        })
    }
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.inner.block_on(f)
    }
    fn yield_now() -> impl Future<Output = ()> + Send {
        S::yield_now()
    }
}
