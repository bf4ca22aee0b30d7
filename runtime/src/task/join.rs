//! `JoinHandle` and `JoinError`.

use super::meta::MetaRef;
use super::panics::unobserved_panic;
use super::registry::Registered;
use super::tracked::{Failure, Outcome, Payload};
use super::{AbortHandle, TaskId, TaskMeta};
use async_task::{FallibleTask, Task};
use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

/// An owned permission to await a spawned task's output.
///
/// Awaiting it gives `Ok(output)`, or a [`JoinError`] if the task panicked
/// (in a poll, or in its future's `Drop`) or was cancelled (aborted, or
/// dropped at shutdown). Dropping the handle detaches the task: it keeps
/// running, and its output is dropped when it completes.
///
/// ```
/// let rt = unplug::Runtime::builder().workers(2).build().unwrap();
/// let answer = rt.block_on(async {
///     let task = unplug::spawn(async { 6 * 7 });
///     task.await
/// });
/// assert_eq!(answer.unwrap(), 42);
/// ```
///
/// # Panics
///
/// Polled again after it returned `Ready` (as for any future, that is a bug
/// of the caller; the output was handed over already).
pub struct JoinHandle<T> {
    task: Option<FallibleTask<Outcome<T>, TaskMeta>>,
    // SAFETY (of `MetaRef::get`): `task` keeps the allocation holding the
    // metadata alive; `Drop` clears `meta` before it lets `task` go.
    meta: Option<MetaRef>,
    /// The guard around the awaiter's waker handed to async-task in its
    /// place, reused while the awaiter's waker stays the same (one pointer:
    /// a `block_on` or task joining many handles keeps a vector of them).
    /// Let go when the handle returns or is dropped (JOIN-RELEASE).
    awaiter: Option<Arc<GuardedWaker>>,
    /// Kept here, not read from the registry: the task leaves the registry
    /// when its future is dropped, and the tag holds only 32 bits of it.
    id: TaskId,
    /// `poll` returned `Ready`: polling again is a bug of the caller.
    returned: bool,
}

/// Wakes the task awaiting a join handle, catching a panic from its waker
/// when woken or dropped (async-task, which wakes it when the task
/// completes and drops it when another waker replaces it, would abort the
/// process; the worker running the task must live on).
///
/// `None` only in a thread's spare guard (JOIN-RELEASE): no handle and no
/// task holds one of those.
struct GuardedWaker(Option<Waker>);

impl Wake for GuardedWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(waker) = &self.0 {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| waker.wake_by_ref())) {
                unobserved_panic("the waker of a JoinHandle's awaiter", payload);
            }
        }
    }
}

impl Drop for GuardedWaker {
    fn drop(&mut self) {
        self.release();
    }
}

impl GuardedWaker {
    /// A guard of a clone of `waker`, in this thread's spare allocation if
    /// it has one.
    fn new(waker: &Waker) -> Arc<Self> {
        if let Some(mut spare) = SPARE_GUARD.try_with(Cell::take).ok().flatten() {
            // Always unique: a spare is stored only once nothing else holds
            // it, and is never cloned while stored.
            if let Some(guard) = Arc::get_mut(&mut spare) {
                guard.0 = Some(waker.clone());
                return spare;
            }
        }
        Arc::new(GuardedWaker(Some(waker.clone())))
    }

    fn guards(&self, waker: &Waker) -> bool {
        self.0.as_ref().is_some_and(|ours| ours.will_wake(waker))
    }

    /// Drops the waker, catching a panic of its `Drop`.
    fn release(&mut self) {
        if let Some(waker) = self.0.take() {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(waker))) {
                unobserved_panic("the waker of a JoinHandle's awaiter (dropped)", payload);
            }
        }
    }
}

std::thread_local! {
    /// JOIN-RELEASE: the allocation of a guard that this thread's last
    /// released handle was done with, its waker dropped, for the next guard
    /// made on this thread (a task or `block_on` awaiting many handles in
    /// turn allocates one guard, not one per handle). Never a waker: a
    /// waker may own a runtime, a socket, a task.
    static SPARE_GUARD: Cell<Option<Arc<GuardedWaker>>> = const { Cell::new(None) };
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(task: Task<Outcome<T>, TaskMeta>) -> Self {
        let id = task.metadata().id();
        let meta = MetaRef::new(task.metadata());
        JoinHandle {
            task: Some(task.fallible()),
            meta: Some(meta),
            awaiter: None,
            id,
            returned: false,
        }
    }

    /// A handle for a task that was never started (spawn after shutdown).
    pub(crate) fn cancelled() -> Self {
        JoinHandle {
            task: None,
            meta: None,
            awaiter: None,
            id: TaskId::refused(),
            returned: false,
        }
    }

    /// The task's id: unique among the tasks of its runtime, and stable for
    /// the task's whole life (and after). A task refused at spawn (shutdown
    /// had begun) has an id of its own too, with the top bit set.
    ///
    /// ```
    /// let rt = unplug::Runtime::builder().workers(1).build().unwrap();
    /// let a = rt.spawn(async {});
    /// let b = rt.spawn(async {});
    /// assert_ne!(a.id(), b.id());
    /// ```
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// A cloneable, `Send + Sync` handle that can cancel this task from
    /// anywhere, without the right to its output; see [`AbortHandle`] (and
    /// its example).
    pub fn abort_handle(&self) -> AbortHandle {
        // The task enters the registry now if it has not yet (without a
        // waker: it has not waited), so the handle can find it later.
        let target = self.meta.as_ref().and_then(|meta| {
            let meta = meta.get();
            match meta.registry().register(meta.words(), meta.id(), None) {
                Registered::Key(key) => Some((meta.owner().registry_arc(), key)),
                Registered::Gone | Registered::Closed => None,
            }
        });
        AbortHandle::new(target, self.id)
    }

    /// Cancels the task: its future is dropped at its next poll boundary (a
    /// poll under way finishes first), and awaiting this handle gives a
    /// cancelled [`JoinError`] unless the task had already completed.
    /// Aborting a finished task, aborting twice, or a task aborting itself
    /// are all fine.
    ///
    /// ```
    /// let rt = unplug::Runtime::builder().workers(1).build().unwrap();
    /// let result = rt.block_on(async {
    ///     let task = unplug::spawn(std::future::pending::<()>());
    ///     task.abort();
    ///     task.await
    /// });
    /// assert!(result.unwrap_err().is_cancelled());
    /// ```
    pub fn abort(&self) {
        if let Some(meta) = &self.meta {
            let meta = meta.get();
            // Sets the bit and gets the task polled, so it sees it
            // (ABORT-AT-POLL, ABORT-REGISTER).
            meta.registry().abort_task(meta.words(), meta.id());
        }
    }

    /// Has the task completed (or been cancelled)?
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    /// The guarded stand-in for the awaiter's `waker`: this handle's last
    /// one while the waker stays the same, else a new one (in this
    /// thread's spare allocation when it has one).
    fn guarded(&mut self, waker: &Waker) -> Waker {
        if let Some(ours) = &self.awaiter {
            if ours.guards(waker) {
                return Waker::from(ours.clone());
            }
        }
        let ours = GuardedWaker::new(waker);
        let handed = Waker::from(ours.clone());
        self.awaiter = Some(ours);
        handed
    }

    /// JOIN-RELEASE: the handle is done with its guard (it returned, or it
    /// is dropped and async-task holds the guard no longer). If nothing
    /// else holds the guard, its waker is dropped now and the allocation
    /// kept as this thread's spare; else async-task is notifying it (the
    /// task completing on a worker right now), and that drops the last one.
    fn release_awaiter(&mut self) {
        let Some(mut ours) = self.awaiter.take() else {
            return;
        };
        if let Some(guard) = Arc::get_mut(&mut ours) {
            guard.release();
            // Replaces an older spare, which holds no waker either.
            let _ = SPARE_GUARD.try_with(move |spare| spare.set(Some(ours)));
        }
    }
}

impl<T> JoinHandle<T> {
    /// Polls for the output with `cx`'s waker handed to async-task as it
    /// is, without the guard [`Future::poll`] wraps it in: that waker must
    /// not panic when woken (async-task would abort the process). For
    /// wakers of this crate that catch panics themselves (a `JoinSet`'s).
    pub(crate) fn poll_unguarded(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
        let id = self.id;
        let Some(task) = self.task.as_mut() else {
            return Poll::Ready(Err(JoinError::cancelled(id)));
        };
        match Pin::new(task).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(outcome)) => Poll::Ready(match outcome.into_inner() {
                Ok(value) => Ok(value),
                Err(Failure::Panicked(payload)) => Err(JoinError::panicked(id, payload)),
                Err(Failure::Cancelled) => Err(JoinError::cancelled(id)),
            }),
            Poll::Ready(None) => Poll::Ready(Err(JoinError::cancelled(id))),
        }
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let polled = self.poll_once(cx);
        if polled.is_ready() {
            self.returned = true;
            // async-task took the guard out when the task finished.
            self.release_awaiter();
        }
        polled
    }
}

impl<T> JoinHandle<T> {
    /// [`Future::poll`], before it notes whether the handle returned.
    fn poll_once(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
        // The output was handed over already; async-task would answer as
        // for a cancelled task, which this one was not.
        assert!(
            !self.returned,
            "JoinHandle polled after it returned its output (a finished future \
             must not be polled again; `FutureExt::fuse` allows it)"
        );
        match &self.task {
            None => return Poll::Ready(Err(JoinError::cancelled(self.id))),
            // JOIN-FINISHED: a finished task's output is taken without a
            // waker (async-task registers none for a completed task), so
            // joining it costs no guard and no waker clones: half of a
            // join's cost on the awaiting thread, measured. A task closed
            // while still running answers `Pending` here (the noop waker is
            // registered, and replaced by the guard just below).
            Some(task) if task.is_finished() => {
                if let Poll::Ready(outcome) =
                    self.poll_unguarded(&mut Context::from_waker(Waker::noop()))
                {
                    return Poll::Ready(outcome);
                }
            }
            Some(_) => {}
        }
        let waker = self.guarded(cx.waker());
        self.poll_unguarded(&mut Context::from_waker(&waker))
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        self.meta = None; // before the task it points into
        if let Some(mut task) = self.task.take() {
            if self.awaiter.is_some() && !task.is_finished() {
                // JOIN-RELEASE: async-task keeps the last awaiter registered
                // until the task ends, and detaching does not take it out. A
                // no-op waker registered in its place drops our guard now.
                // Should the task have completed meanwhile, this takes its
                // output, which `detach` would have dropped here too.
                let _ = Pin::new(&mut task).poll(&mut Context::from_waker(Waker::noop()));
            }
            task.detach();
        }
        self.release_awaiter();
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.id)
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Why a task gave no output: it panicked, or it was cancelled.
pub struct JoinError {
    id: TaskId,
    repr: Repr,
}

enum Repr {
    Cancelled,
    Panicked(Mutex<Payload>),
}

impl JoinError {
    fn cancelled(id: TaskId) -> Self {
        JoinError {
            id,
            repr: Repr::Cancelled,
        }
    }

    fn panicked(id: TaskId, payload: Payload) -> Self {
        JoinError {
            id,
            repr: Repr::Panicked(Mutex::new(payload)),
        }
    }

    /// The id of the task that gave no output (the id its
    /// [`JoinHandle::id`] reported).
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The task was aborted or dropped at shutdown.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// The task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panicked(_))
    }

    /// The panic payload, to resume with `std::panic::resume_unwind`.
    ///
    /// # Panics
    ///
    /// If the task was cancelled, not panicked (see
    /// [`try_into_panic`](Self::try_into_panic)).
    ///
    /// ```
    /// let rt = unplug::Runtime::builder().workers(1).build().unwrap();
    /// let err = rt
    ///     .block_on(rt.spawn(async { std::panic::panic_any(7_u32) }))
    ///     .unwrap_err();
    /// assert_eq!(err.into_panic().downcast_ref::<u32>(), Some(&7));
    /// ```
    #[track_caller]
    pub fn into_panic(self) -> Payload {
        match self.try_into_panic() {
            Ok(payload) => payload,
            Err(e) => panic!("JoinError::into_panic on a task that did not panic: {e}"),
        }
    }

    /// The panic payload (resume it with `std::panic::resume_unwind`).
    /// Returns the error back if it is not a panic.
    pub fn try_into_panic(self) -> Result<Payload, JoinError> {
        match self.repr {
            Repr::Panicked(payload) => Ok(payload.into_inner().unwrap_or_else(|p| p.into_inner())),
            Repr::Cancelled => Err(self),
        }
    }

    /// The panic message, if the task panicked with a string.
    pub fn panic_message(&self) -> Option<String> {
        match &self.repr {
            Repr::Panicked(payload) => {
                let payload = payload.lock().unwrap_or_else(|p| p.into_inner());
                payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
            }
            Repr::Cancelled => None,
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => write!(f, "JoinError::Cancelled({})", self.id),
            Repr::Panicked(_) => write!(
                f,
                "JoinError::Panicked({}, {:?})",
                self.id,
                self.panic_message()
            ),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => write!(f, "task {} was cancelled", self.id),
            Repr::Panicked(_) => match self.panic_message() {
                Some(msg) => write!(f, "task {} panicked: {msg}", self.id),
                None => write!(f, "task {} panicked", self.id),
            },
        }
    }
}

impl std::error::Error for JoinError {}
