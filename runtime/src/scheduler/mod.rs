//! The scheduler: where runnable tasks wait and which worker runs them.
//! The rules, the places a task can be, and the invariants with the loom
//! models that check them: `runtime/SCHEDULER.md`.
//!
//! - [`Scheduler`] (here): the injector, one [`Slot`] per worker (its
//!   stealer, LIFO slot and notifier), the idle set, the task registry,
//!   the closing flag; spawning and the schedule function.
//! - `local`: a worker thread's own side (`next_task`, `steal`, `run`,
//!   `migrate`); `search`: the one-wake-at-a-time obligations;
//!   `worker_loop`: the body each parkable worker runs; `context`: the
//!   thread-local that tells a worker thread which scheduler it serves.
//!
//! Where a task goes when it is scheduled:
//! - woken or spawned on a worker thread of this runtime: that worker's
//!   LIFO slot (the task it displaces goes to the back of its local queue);
//!   a task that woke itself (a yield) goes to the back of the local queue;
//! - from any other thread: the injector.
//!
//! Every push that may leave work where only a busy worker looks wakes at
//! most one sleeper (`IdleSet::pop`), never all (REACHABLE in
//! SCHEDULER.md).

pub(crate) mod context;
mod local;
mod search;
mod slot;
pub(crate) mod worker_loop;

#[cfg(all(test, loom))]
mod tests;

pub(crate) use slot::Slot;

use crate::loom::deque::{Injector, LocalQueue, Steal};
use crate::loom::regress::{self, Regression};
use crate::loom::{fence, Arc, AtomicBool, Ordering, RwLock, RwLockReadGuard};
use crate::task::{self, JoinHandle, Registry, Task};
use async_task::ScheduleInfo;
use std::future::Future;
use std::time::Duration;
use unplug_worker::IdleSet;

/// What the layers above want to hear from a worker thread.
pub(crate) trait WorkerEvents: Send + Sync {
    /// Worker `index` came back from a park, `latency` after the unpark.
    fn resumed(&self, index: usize, latency: Duration);
    /// A poll took `took` (called only if [`Hooks::time_polls`]).
    fn polled(&self, took: Duration);
}

/// Runs a worker's body inside the context the layers above set up (the
/// tokio reactor, the current runtime handle).
pub(crate) type Enter = dyn Fn(&mut dyn FnMut()) + Send + Sync;

/// What the layers above hand the scheduler: hooks run on each worker
/// thread and the receiver of worker events.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) on_start: Option<std::sync::Arc<dyn Fn() + Send + Sync>>,
    pub(crate) on_stop: Option<std::sync::Arc<dyn Fn() + Send + Sync>>,
    pub(crate) enter: Option<std::sync::Arc<Enter>>,
    pub(crate) events: Option<std::sync::Arc<dyn WorkerEvents>>,
    /// Time every poll and report it to `events`.
    pub(crate) time_polls: bool,
}

/// State shared by the workers, the handles and every task.
pub(crate) struct Scheduler {
    pub(crate) injector: Injector<Task>,
    slots: RwLock<Vec<Arc<Slot>>>,
    pub(crate) idle: IdleSet,
    pub(crate) registry: Arc<Registry>,
    /// Set once at shutdown: scheduled tasks are dropped (cancelled)
    /// instead of queued, spawns are refused.
    closing: AtomicBool,
    pub(crate) hooks: Hooks,
}

impl Scheduler {
    pub(crate) fn new(hooks: Hooks) -> Self {
        Scheduler {
            injector: Injector::new(),
            slots: RwLock::new(Vec::new()),
            idle: IdleSet::new(),
            registry: Arc::new(Registry::new()),
            closing: AtomicBool::new(false),
            hooks,
        }
    }

    /// Every worker's slot, by worker index.
    pub(crate) fn slots(&self) -> RwLockReadGuard<'_, Vec<Arc<Slot>>> {
        self.slots.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a worker's slot; returns its index. Published before the worker
    /// thread starts, so a producer can wake it from its first idle wait.
    pub(crate) fn add_slot(&self, slot: Arc<Slot>) -> usize {
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        slots.push(slot);
        slots.len() - 1
    }

    /// Removes the slot added last (its worker failed to start).
    pub(crate) fn remove_last_slot(&self) {
        self.slots.write().unwrap_or_else(|p| p.into_inner()).pop();
    }

    /// Spawns `future`; after shutdown began, the handle reports cancelled.
    pub(crate) fn spawn<F>(this: &Arc<Self>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if this.is_closing() {
            return JoinHandle::cancelled();
        }
        let scheduler = this.clone();
        match task::build(&this.registry, future, move |task, info| {
            Scheduler::schedule(&scheduler, task, info)
        }) {
            Some((runnable, handle)) => {
                Scheduler::schedule_spawned(this, runnable);
                handle
            }
            // Closed between the check above and the registry's lock.
            None => JoinHandle::cancelled(),
        }
    }

    /// Shutdown has begun.
    pub(crate) fn is_closing(&self) -> bool {
        // Acquire: pairs with the SeqCst store in `close`.
        self.closing.load(Ordering::Acquire)
    }

    /// Starts shutdown: from here every task scheduled is dropped instead
    /// of queued. The caller then stops the workers and calls
    /// [`cancel_all`](Self::cancel_all).
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        // CLOSE-DRAIN: pairs with the fence in `push_remote`.
        fence(Ordering::SeqCst);
    }

    /// Cancels every task still queued or waiting anywhere (after
    /// [`close`](Self::close) and after the workers stopped): the injector's
    /// tasks are dropped, then every registered task is woken, and the
    /// schedule function drops it.
    pub(crate) fn cancel_all(&self) {
        self.drain_injector();
        self.registry.close_and_wake_all();
        // A push that raced the drain above re-checks `closing` and drains
        // itself (CLOSE-DRAIN), so nothing is left behind.
    }

    /// Drops every task in the injector.
    pub(crate) fn drain_injector(&self) {
        loop {
            match self.injector.steal() {
                Steal::Success(task) => drop(task),
                Steal::Retry => continue,
                Steal::Empty => break,
            }
        }
    }

    /// async-task's schedule function: a task was woken.
    pub(crate) fn schedule(this: &Arc<Self>, task: Task, info: ScheduleInfo) {
        if this.is_closing() {
            drop(task); // cancelled: its future is dropped here, once
            return;
        }
        context::with_local(this, |local| match local {
            Some(local) => local.schedule_woken(task, info.woken_while_running),
            None => this.push_remote(task),
        })
    }

    /// A newly spawned task.
    fn schedule_spawned(this: &Arc<Self>, task: Task) {
        context::with_local(this, |local| match local {
            // Like a wake-up on this worker: the LIFO slot, so a task that
            // spawns and then waits for its child runs the child next.
            Some(local) => local.schedule_woken(task, false),
            None => this.push_remote(task),
        })
    }

    /// From outside the workers: the injector, then wake one sleeper.
    pub(crate) fn push_remote(&self, task: Task) {
        self.injector.push(task);
        // CLOSE-DRAIN (defect 2): pairs with the fence in `close`. Either
        // this load sees `closing` and the task is dropped here, or the
        // shutdown's drain (after its fence) sees the push. A spawn that
        // passed the closing check before shutdown began cannot leave its
        // task in an injector nobody will empty.
        // (SeqCst load: free on x86, and the form loom models exactly.)
        fence(Ordering::SeqCst);
        if self.closing.load(Ordering::SeqCst) && !regress::on(Regression::PushIgnoresClosing) {
            self.drain_injector();
            return;
        }
        self.wake_one();
    }

    /// Wakes one sleeping worker, if any and if none is searching (P2
    /// pairing in `IdleSet`).
    pub(crate) fn wake_one(&self) {
        if let Some(index) = self.idle.pop() {
            if let Some(slot) = self.slots().get(index) {
                slot.notifier.notify();
            }
        }
    }

    /// Is there work anywhere a sleeping worker could take?
    pub(crate) fn has_work(&self) -> bool {
        !self.injector.is_empty() || self.slots().iter().any(|s| s.has_work())
    }

    /// A fresh local queue and its slot for a new worker.
    pub(crate) fn new_queue() -> LocalQueue<Task> {
        LocalQueue::new_fifo()
    }
}
