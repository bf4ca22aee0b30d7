//! The future async-task runs: the user's future inside `catch_unwind`,
//! checking the abort bit at every poll, dropping the user's future itself
//! (so a panicking `Drop` is caught, not an abort of the process), and
//! leaving the registry when it is dropped. Kept small (the user's future
//! and one pointer): see `TaskMeta` for why size matters.

use super::meta::{MetaRef, TaskMeta};
use super::panics::unobserved_panic;
use super::registry::Registered;
use crate::loom::regress::{self, Regression};
use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

/// A panic payload.
pub(crate) type Payload = Box<dyn Any + Send + 'static>;

/// Why a task gave no output.
pub(crate) enum Failure {
    /// It panicked: in a poll, or in its future's `Drop`.
    Panicked(Payload),
    /// It was aborted.
    Cancelled,
}

/// What the task hands its join handle.
pub(crate) type Outcome<T> = SafeDrop<Result<T, Failure>>;

/// A value whose `Drop` may panic, dropped where a panic would otherwise
/// unwind into async-task (which aborts the process): the panic is caught
/// and counted ([`unobserved_panic`]).
pub(crate) struct SafeDrop<T>(Option<T>);

impl<T> SafeDrop<T> {
    /// Guards `value`'s `Drop` from here on.
    pub(crate) fn new(value: T) -> Self {
        SafeDrop(Some(value))
    }

    /// The value; its `Drop` is the receiver's business from here on.
    pub(crate) fn into_inner(mut self) -> T {
        self.0.take().expect("SafeDrop holds its value until taken")
    }
}

impl<T> Drop for SafeDrop<T> {
    fn drop(&mut self) {
        if let Some(value) = self.0.take() {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(value))) {
                unobserved_panic("the Drop of a task's output", payload);
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// The user's future and what the runtime keeps beside it.
    pub(crate) struct Tracked<F> {
        // `None` once dropped (completed, aborted, or torn down).
        #[pin]
        future: Option<F>,
        // SAFETY (of `MetaRef::get`): the metadata lives in the header of
        // the allocation that holds this future, and async-task drops the
        // future before it frees the header.
        meta: MetaRef,
    }

    impl<F> PinnedDrop for Tracked<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // Torn down (shutdown, or the runnable dropped): nobody is left
            // to receive a panic from the future's `Drop`.
            if let Err(payload) = drop_future(this.future) {
                unobserved_panic("a task future's Drop", payload);
            }
            // The task is gone (completed, cancelled or torn down): counted,
            // and out of the registry if it was in.
            let meta = this.meta.get();
            meta.registry().finished(meta.words().take_key_at_drop());
        }
    }
}

/// REGISTER-ON-PENDING: the task is about to wait where no queue holds
/// it, so shutdown must be able to reach it: the registry gets its waker
/// (once; later `Pending`s find the hint bit and return).
fn register_on_pending(meta: &TaskMeta, waker: &std::task::Waker) {
    let words = meta.words();
    if words.waker_registered() {
        return;
    }
    match meta.registry().register(words, meta.id(), Some(waker)) {
        // ABORT-REGISTER (`Registry::abort_task`): an abort that took the
        // shard lock before this registration set the bit before it, and
        // found no waker to wake: it is seen here.
        Registered::Key(_) => {
            if words.is_aborted() && !regress::on(Regression::RegisterWithoutAbortCheck) {
                waker.wake_by_ref();
            }
        }
        // Shutdown already woke every registered task: get in line the same
        // way (the schedule function sends a closing runtime's tasks to the
        // injector, which shutdown drains).
        Registered::Closed => waker.wake_by_ref(),
        // Not while the future is being polled.
        Registered::Gone => {}
    }
}

/// Drops the future in place, catching a panic from its `Drop`.
fn drop_future<F>(mut slot: Pin<&mut Option<F>>) -> Result<(), Payload> {
    if slot.is_none() {
        return Ok(());
    }
    // Dropping in place is allowed for pinned data.
    catch_unwind(AssertUnwindSafe(|| slot.set(None)))
}

impl<F> Tracked<F> {
    pub(crate) fn new(future: F, meta: &TaskMeta) -> Self {
        Tracked {
            future: Some(future),
            meta: MetaRef::new(meta),
        }
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = Outcome<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // ABORT-AT-POLL (defect 1): checked here, after async-task marked
        // the task running, not by the worker before `run()`. An abort that
        // lands before this load is seen now; one that lands after it finds
        // the task RUNNING, so its wake-up reschedules the task and the next
        // poll sees it. No window is left in between.
        if this.meta.get().words().is_aborted_at_poll()
            && !regress::on(Regression::AbortCheckedBeforeRun)
        {
            let outcome = match drop_future(this.future.as_mut()) {
                Ok(()) => Failure::Cancelled,
                Err(payload) => Failure::Panicked(payload),
            };
            return Poll::Ready(SafeDrop::new(Err(outcome)));
        }
        let Some(future) = this.future.as_mut().as_pin_mut() else {
            // async-task never polls a task after it returned Ready.
            return Poll::Ready(SafeDrop::new(Err(Failure::Cancelled)));
        };
        let result = match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => {
                register_on_pending(this.meta.get(), cx.waker());
                return Poll::Pending;
            }
            Ok(Poll::Ready(value)) => match drop_future(this.future.as_mut()) {
                Ok(()) => Ok(value),
                // The output is fine but the future's `Drop` panicked: the
                // handle gets the panic (the output is dropped, guarded).
                Err(payload) => {
                    drop(SafeDrop::new(value));
                    Err(Failure::Panicked(payload))
                }
            },
            Err(payload) => {
                if let Err(second) = drop_future(this.future.as_mut()) {
                    unobserved_panic("a panicked task future's Drop", second);
                }
                Err(Failure::Panicked(payload))
            }
        };
        Poll::Ready(SafeDrop::new(result))
    }
}
