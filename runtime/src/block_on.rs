//! `block_on`: drive one future on the calling thread.

use crate::current;
use crate::inner::Inner;
use crate::scheduler::context::{in_shutdown_of, in_worker};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

/// Wakes the blocked thread; a token so a wake before the park is not lost.
struct ThreadWaker {
    thread: Thread,
    notified: AtomicBool,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Release: pairs with the Acquire swap in `block_on`, so what the
        // waker's caller published is visible to the next poll.
        if !self.notified.swap(true, Ordering::Release) {
            self.thread.unpark();
        }
    }
}

#[track_caller]
pub(crate) fn block_on<F: Future>(runtime: &Arc<Inner>, future: F) -> F::Output {
    if in_worker() {
        panic!(
            "Cannot block_on inside an unplug worker thread: this would block the thread \
             that drives other tasks. Use `.await` inside tasks instead."
        );
    }
    // SHUTDOWN-BLOCK-ON: this runtime's shutdown waits for this thread (a
    // `Drop` it runs, a stop hook at shutdown) and no worker turns tokio's
    // drivers any more: a timer or socket awaited here would wait forever.
    if in_shutdown_of(Arc::as_ptr(&runtime.scheduler)) {
        panic!(
            "Cannot block_on an unplug runtime inside its own shutdown (a task's `Drop` \
             run by the shutdown, or an `on_thread_stop` hook at shutdown): no worker \
             drives its timers and I/O any more, so this could wait forever."
        );
    }
    let _tokio = runtime.tokio.enter();
    let _runtime = current::enter(runtime.clone());
    let signal = Arc::new(ThreadWaker {
        thread: thread::current(),
        notified: AtomicBool::new(false),
    });
    let waker = Waker::from(signal.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
            return value;
        }
        // Acquire: pairs with the Release swap in `wake_by_ref`.
        while !signal.notified.swap(false, Ordering::Acquire) {
            thread::park();
        }
    }
}
