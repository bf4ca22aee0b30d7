//! `JoinSet`: a set of tasks whose results come out in completion order.
//!
//! Each member's join handle is given a waker of ours as its awaiter at
//! spawn; the task's completion queues the member's index on a ready list
//! and wakes whoever waits in `join_next`. So `join_next` polls only what
//! was woken: O(1) per completion, whatever the size of the set.

use crate::handle::Handle;
use crate::task::{unobserved_panic, AbortHandle, JoinError, JoinHandle, SafeDrop};
use slab::Slab;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

/// SET-GIVES-BACK: an emptied set keeps an allocation of up to this many
/// entries (the common small set reuses its slots); a larger one is freed.
const GIVE_BACK_ABOVE: usize = 1024;

/// A set of spawned tasks, awaited in the order they complete.
///
/// [`join_next`](JoinSet::join_next) gives each task's result (`Ok`, or a
/// [`JoinError`] for a panic or a cancellation) as the tasks complete, not
/// in the order they were spawned, and `None` once the set is empty.
///
/// # Dropping
///
/// Dropping a `JoinSet` **aborts every task still in it** (as
/// [`abort_all`](JoinSet::abort_all)): each is cancelled at its next poll
/// boundary, on the runtime's threads, after the drop returns; results not
/// yet taken are dropped. Call [`detach_all`](JoinSet::detach_all) first to
/// let the tasks run on instead, or await [`shutdown`](JoinSet::shutdown)
/// to wait until they are gone.
///
/// ```
/// let rt = unplug::Runtime::builder().workers(2).build().unwrap();
/// let mut squares = rt.block_on(async {
///     let mut set = unplug::JoinSet::new();
///     for i in 0..4u64 {
///         set.spawn(async move { i * i });
///     }
///     let mut squares = Vec::new();
///     while let Some(result) = set.join_next().await {
///         squares.push(result.unwrap());
///     }
///     squares
/// });
/// squares.sort();
/// assert_eq!(squares, [0, 1, 4, 9]);
/// ```
pub struct JoinSet<T> {
    members: Slab<Member<T>>,
    ready: Arc<ReadyList>,
}

enum Member<T> {
    /// Not seen complete yet: its handle, and the waker its completion
    /// calls (a [`Notify`] for this member's index).
    Running { handle: JoinHandle<T>, waker: Waker },
    /// Complete already when it joined the set. Guarded like an output
    /// async-task holds: a set dropped (or emptied by `detach_all`) with
    /// it unjoined must not unwind a panic of its `Drop` into the caller.
    /// Behind a mutex (never contended: only `&mut self` reaches it) so the
    /// set is `Sync` whenever `T: Send`, as tokio's is; before, it needed
    /// `T: Sync` (a red team of the task API).
    Done(Mutex<SafeDrop<Result<T, JoinError>>>),
}

/// The indices of members whose tasks woke us (completed), in that order,
/// and the waker of whoever waits for one.
#[derive(Default)]
struct ReadyList(Mutex<Ready>);

#[derive(Default)]
struct Ready {
    /// May hold stale indices (a spurious wake, a slot reused since): a
    /// stale index costs one poll that finds its member pending or absent.
    queue: VecDeque<usize>,
    waiter: Option<Waker>,
}

impl ReadyList {
    fn lock(&self) -> MutexGuard<'_, Ready> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `index` and wakes the waiter, if any.
    fn push(&self, index: usize) {
        let waiter = {
            let mut ready = self.lock();
            ready.queue.push_back(index);
            ready.waiter.take()
        };
        if let Some(waiter) = waiter {
            // We may be inside async-task's completion of a task, which
            // would abort the process on a panic: catch it.
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| waiter.wake())) {
                unobserved_panic("the waker of a JoinSet's awaiter", payload);
            }
        }
    }

    /// The next queued index; if there is none, `waiter` (when given) is
    /// woken by the next push. Checked and registered under one lock, so no
    /// push falls in between.
    fn pop(&self, waiter: Option<&Waker>) -> Option<usize> {
        let mut ready = self.lock();
        let index = ready.queue.pop_front();
        let replaced = match (index, waiter) {
            (None, Some(w)) if !ready.waiter.as_ref().is_some_and(|o| o.will_wake(w)) => {
                ready.waiter.replace(w.clone())
            }
            _ => None,
        };
        drop(ready);
        // The old waker's `Drop` runs outside the lock.
        drop(replaced);
        index
    }

    /// SET-GIVES-BACK: frees the queue's allocation if it is empty and
    /// large.
    fn shrink_if_empty(&self) {
        let mut ready = self.lock();
        if ready.queue.is_empty() && ready.queue.capacity() > GIVE_BACK_ABOVE {
            ready.queue = VecDeque::new();
        }
    }

    /// Forgets the waiter (the set is going away or being emptied).
    fn forget_waiter(&self) {
        let waiter = self.lock().waiter.take();
        drop(waiter);
    }
}

/// A member's awaiter waker: queues its index on the ready list.
struct Notify {
    ready: Arc<ReadyList>,
    index: usize,
}

impl Wake for Notify {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.push(self.index);
    }
}

impl<T> JoinSet<T> {
    /// An empty set.
    pub fn new() -> Self {
        JoinSet {
            members: Slab::new(),
            ready: Arc::default(),
        }
    }

    /// How many tasks are in the set: spawned and not yet returned by
    /// [`join_next`](JoinSet::join_next) (finished or not).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Is the set empty?
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Spawns `future` on the current runtime (as [`crate::spawn`]) into
    /// the set; returns a handle to abort that one task.
    ///
    /// # Panics
    ///
    /// Outside any unplug runtime (a task, `block_on`, or an
    /// [`EnterGuard`](crate::EnterGuard)), as [`crate::spawn`] does.
    #[track_caller]
    pub fn spawn<F>(&mut self, future: F) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        // BOX-LARGE (`task/large.rs`).
        if crate::task::is_large::<F>() {
            return self.spawn_on(Box::pin(future), &Handle::current());
        }
        self.spawn_on(future, &Handle::current())
    }

    /// Spawns `future` on the runtime of `handle` into the set; returns a
    /// handle to abort that one task. After that runtime's shutdown began,
    /// the task's result is a cancelled [`JoinError`].
    #[track_caller]
    pub fn spawn_on<F>(&mut self, future: F, handle: &Handle) -> AbortHandle
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        // BOX-LARGE (`task/large.rs`).
        if crate::task::is_large::<F>() {
            return self.insert(handle.spawn(Box::pin(future)));
        }
        self.insert(handle.spawn(future))
    }

    fn insert(&mut self, mut handle: JoinHandle<T>) -> AbortHandle {
        let abort = handle.abort_handle();
        let slot = self.members.vacant_entry();
        let index = slot.key();
        let waker = Waker::from(Arc::new(Notify {
            ready: self.ready.clone(),
            index,
        }));
        // Registers `waker` as the task's awaiter (it catches panics of the
        // waiter's waker itself, so needs no guard), or finds it complete.
        let member = match handle.poll_unguarded(&mut Context::from_waker(&waker)) {
            Poll::Pending => Member::Running { handle, waker },
            Poll::Ready(result) => {
                self.ready.push(index);
                Member::Done(Mutex::new(SafeDrop::new(result)))
            }
        };
        slot.insert(member);
        abort
    }

    /// Waits for the next task to complete and returns its result; `None`
    /// once the set is empty. Results come in completion order.
    ///
    /// Cancel-safe: if the returned future is dropped before it completes,
    /// no result is lost.
    pub async fn join_next(&mut self) -> Option<Result<T, JoinError>> {
        std::future::poll_fn(|cx| self.poll_join_next(cx)).await
    }

    /// [`join_next`](JoinSet::join_next) as a poll function: `cx`'s waker
    /// is woken when a task completes.
    pub fn poll_join_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, JoinError>>> {
        self.next_ready(Some(cx.waker()))
    }

    /// The result of a task that has completed, if any, without waiting;
    /// `None` if the set is empty or no task in it has completed (yet).
    pub fn try_join_next(&mut self) -> Option<Result<T, JoinError>> {
        match self.next_ready(None) {
            Poll::Ready(result) => result,
            Poll::Pending => None,
        }
    }

    fn next_ready(&mut self, waiter: Option<&Waker>) -> Poll<Option<Result<T, JoinError>>> {
        loop {
            if self.members.is_empty() {
                return Poll::Ready(None);
            }
            let Some(index) = self.ready.pop(waiter) else {
                return Poll::Pending;
            };
            if let Some(result) = self.take_if_complete(index) {
                return Poll::Ready(Some(result));
            }
        }
    }

    /// SET-GIVES-BACK: an emptied set frees what its largest burst
    /// allocated (a red team: 1,000,000 tasks joined left 67 MB held by the
    /// empty set for its whole life; tokio's frees each entry as it is
    /// joined). Stale indices in the ready list stay harmless: each costs
    /// one look that finds its member absent or pending.
    fn give_back_if_empty(&mut self) {
        if self.members.is_empty() && self.members.capacity() > GIVE_BACK_ABOVE {
            self.members = Slab::new();
            self.ready.shrink_if_empty();
        }
    }

    /// The result of member `index` if its task is complete (the member
    /// leaves the set); `None` if it is pending (its waker registered
    /// again) or absent (a stale index).
    fn take_if_complete(&mut self, index: usize) -> Option<Result<T, JoinError>> {
        let polled = match self.members.get_mut(index)? {
            Member::Running { handle, waker } => {
                match handle.poll_unguarded(&mut Context::from_waker(waker)) {
                    Poll::Pending => return None,
                    Poll::Ready(result) => Some(result),
                }
            }
            Member::Done(_) => None,
        };
        let member = self.members.remove(index);
        self.give_back_if_empty();
        match member {
            Member::Done(result) => Some(
                result
                    .into_inner()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .into_inner(),
            ),
            Member::Running { .. } => polled,
        }
    }

    /// Aborts every task in the set (as [`JoinHandle::abort`]); they stay
    /// in the set, and [`join_next`](JoinSet::join_next) then gives a
    /// cancelled [`JoinError`] for each one that had not completed (and the
    /// output of each that had).
    ///
    /// ```
    /// let rt = unplug::Runtime::builder().workers(1).build().unwrap();
    /// rt.block_on(async {
    ///     let mut set = unplug::JoinSet::new();
    ///     set.spawn(std::future::pending::<()>());
    ///     set.abort_all();
    ///     assert!(set.join_next().await.unwrap().unwrap_err().is_cancelled());
    ///     assert!(set.join_next().await.is_none());
    /// });
    /// ```
    pub fn abort_all(&mut self) {
        for (_, member) in &self.members {
            if let Member::Running { handle, .. } = member {
                handle.abort();
            }
        }
    }

    /// Empties the set without aborting anything: the tasks run on, and
    /// their outputs are dropped as they complete (results already in are
    /// dropped now).
    pub fn detach_all(&mut self) {
        self.members.clear();
        // The detached tasks still hold wakers onto the old list: a fresh
        // one, so their completions never reach the set's new members.
        self.ready.forget_waiter();
        self.ready = Arc::default();
    }

    /// Aborts every task and waits until each has completed or been
    /// cancelled; the set is then empty.
    pub async fn shutdown(&mut self) {
        self.abort_all();
        while self.join_next().await.is_some() {}
    }
}

/// Dropping aborts every task still in the set (see the type's docs).
impl<T> Drop for JoinSet<T> {
    fn drop(&mut self) {
        self.abort_all();
        // Tasks completing later still wake onto the list: do not keep the
        // waiter's waker alive for them.
        self.ready.forget_waiter();
    }
}

impl<T> Default for JoinSet<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for JoinSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinSet").field("len", &self.len()).finish()
    }
}
