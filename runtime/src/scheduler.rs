//! The scheduler's shared state: the injector, one slot per worker (its
//! stealer, LIFO slot and notifier), the idle set, the task registry.
//!
//! Where a task goes when it is scheduled:
//! - woken on a worker thread of this runtime: that worker's LIFO slot (the
//!   task it displaces goes to the back of its local queue); a yield goes to
//!   the back of the local queue;
//! - spawned on a worker thread: the same (the LIFO slot);
//! - from any other thread: the injector.
//!
//! Each push that may have made work for a sleeper wakes at most one
//! (`IdleSet::pop`), never all.

use crate::context;
use crate::metrics::{PublisherWait, RuntimeMetrics, WorkerMetrics};
use crate::pool::{Config, Pool};
use crate::registry::Registry;
use async_task::{Runnable, ScheduleInfo};
use crossbeam_deque::{Injector, Stealer};
use std::ptr::{null_mut, NonNull};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use unplug_worker::{IdleSet, Notifier};

/// A scheduled task.
pub(crate) type Task = Runnable<TaskMeta>;

/// What every task carries besides its future.
#[derive(Debug)]
pub(crate) struct TaskMeta {
    /// Its key in the registry.
    pub(crate) key: usize,
    /// Set by `JoinHandle::abort`; the worker drops an aborted task instead
    /// of running it.
    pub(crate) aborted: AtomicBool,
}

/// One worker's public face: what other threads may touch.
pub(crate) struct Slot {
    /// Steals from the worker's local queue.
    pub(crate) stealer: Stealer<Task>,
    /// The LIFO slot: a task the worker runs next. Any thread may take it
    /// (an idle worker steals it), so a task put here is never stranded
    /// behind a long poll (tokio #4941).
    lifo: AtomicPtr<()>,
    /// Wakes the worker's idle wait.
    pub(crate) notifier: Notifier,
    /// Tasks this worker has polled.
    pub(crate) polled: AtomicU64,
    /// Tasks this worker handed to the others when it parked or stopped.
    pub(crate) migrated: AtomicU64,
    /// Successful steals by this worker.
    pub(crate) steals: AtomicU64,
    /// Idle sleeps entered, and those ended by work.
    pub(crate) idle_sleeps: AtomicU64,
    pub(crate) wakeups: AtomicU64,
    /// The last unpark latency (request → running), in nanoseconds.
    pub(crate) last_unpark_ns: AtomicU64,
    /// Times this worker came back from a park.
    pub(crate) resumes: AtomicU64,
    /// Registered metric handles, if metrics are on.
    pub(crate) metrics: Option<WorkerMetrics>,
}

impl Slot {
    pub(crate) fn new(
        stealer: Stealer<Task>,
        notifier: Notifier,
        metrics: Option<WorkerMetrics>,
    ) -> Self {
        Slot {
            stealer,
            lifo: AtomicPtr::new(null_mut()),
            notifier,
            polled: AtomicU64::new(0),
            migrated: AtomicU64::new(0),
            steals: AtomicU64::new(0),
            idle_sleeps: AtomicU64::new(0),
            wakeups: AtomicU64::new(0),
            last_unpark_ns: AtomicU64::new(0),
            resumes: AtomicU64::new(0),
            metrics,
        }
    }

    /// Copies this worker's counts into its metric handles.
    pub(crate) fn publish(&self, m: &WorkerMetrics) {
        m.polled.absolute(self.polled.load(Ordering::Relaxed));
        m.migrated.absolute(self.migrated.load(Ordering::Relaxed));
        m.steals.absolute(self.steals.load(Ordering::Relaxed));
        m.idle_sleeps
            .absolute(self.idle_sleeps.load(Ordering::Relaxed));
        m.wakeups.absolute(self.wakeups.load(Ordering::Relaxed));
        m.local_depth.set(self.stealer.len() as f64);
    }

    /// Puts `task` in the LIFO slot; returns the task it displaced.
    pub(crate) fn put_lifo(&self, task: Task) -> Option<Task> {
        let new = task.into_raw().as_ptr();
        // AcqRel: Release publishes the task to whoever takes it; Acquire
        // takes ownership of the displaced one. Pairs with `take_lifo`.
        let old = self.lifo.swap(new, Ordering::AcqRel);
        // SAFETY: every non-null pointer in `lifo` came from
        // `Runnable::<TaskMeta>::into_raw`, and the swap made us its only
        // owner.
        NonNull::new(old).map(|p| unsafe { Task::from_raw(p) })
    }

    /// Takes the task in the LIFO slot, if any.
    pub(crate) fn take_lifo(&self) -> Option<Task> {
        if self.lifo.load(Ordering::Relaxed).is_null() {
            return None;
        }
        // Acquire: pairs with the Release half of `put_lifo`'s swap.
        let old = self.lifo.swap(null_mut(), Ordering::AcqRel);
        // SAFETY: as in `put_lifo`: the pointer came from `into_raw` and the
        // swap transferred ownership to us alone.
        NonNull::new(old).map(|p| unsafe { Task::from_raw(p) })
    }

    /// Anything queued here that another worker could take?
    pub(crate) fn has_work(&self) -> bool {
        !self.stealer.is_empty() || !self.lifo.load(Ordering::Relaxed).is_null()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        drop(self.take_lifo());
    }
}

// `Slot` is Send + Sync without help: the LIFO pointer lives in an
// `AtomicPtr`, and it only ever holds a `Runnable<TaskMeta>`, which is
// Send + Sync itself (checked below).
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Slot>();
    send_sync::<Task>();
};

/// Hooks run on each worker thread.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub(crate) on_start: Option<Arc<dyn Fn() + Send + Sync>>,
    pub(crate) on_stop: Option<Arc<dyn Fn() + Send + Sync>>,
}

/// State shared by the runtime, its handles, its workers and every task.
pub(crate) struct Shared {
    pub(crate) injector: Injector<Task>,
    pub(crate) slots: RwLock<Vec<Arc<Slot>>>,
    pub(crate) idle: IdleSet,
    pub(crate) registry: Registry,
    /// Set once at shutdown: scheduled tasks are dropped (cancelled)
    /// instead of queued, spawns are refused.
    pub(crate) closing: AtomicBool,
    pub(crate) tokio: tokio::runtime::Handle,
    pub(crate) hooks: Hooks,
    /// The workers; its lock serializes controller calls.
    pub(crate) pool: Mutex<Pool>,
    /// Metric handles, if metrics are on.
    pub(crate) metrics: Option<RuntimeMetrics>,
    pub(crate) publisher_wait: Arc<PublisherWait>,
    pub(crate) follow_stats: Arc<crate::follow::FollowStats>,
}

impl Shared {
    pub(crate) fn new(
        tokio: tokio::runtime::Handle,
        hooks: Hooks,
        config: Config,
        cpus: Vec<usize>,
        metrics: Option<RuntimeMetrics>,
    ) -> Self {
        Shared {
            injector: Injector::new(),
            slots: RwLock::new(Vec::new()),
            idle: IdleSet::new(),
            registry: Registry::new(),
            closing: AtomicBool::new(false),
            tokio,
            hooks,
            pool: Mutex::new(Pool {
                entries: Vec::new(),
                config,
                cpus,
            }),
            follow_stats: Arc::default(),
            metrics,
            publisher_wait: Arc::default(),
        }
    }

    pub(crate) fn lock_pool(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn slots(&self) -> RwLockReadGuard<'_, Vec<Arc<Slot>>> {
        self.slots.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn is_closing(&self) -> bool {
        // Acquire: pairs with the SeqCst store in shutdown.
        self.closing.load(Ordering::Acquire)
    }

    /// async-task's schedule function: a task was woken.
    pub(crate) fn schedule(self: &Arc<Self>, task: Task, info: ScheduleInfo) {
        if self.is_closing() {
            drop(task); // cancelled: its future is dropped here, once
            return;
        }
        context::with_local(self, |local| match local {
            Some(local) => local.schedule_woken(task, info.woken_while_running),
            None => self.push_remote(task),
        })
    }

    /// A newly spawned task.
    pub(crate) fn schedule_spawned(self: &Arc<Self>, task: Task) {
        context::with_local(self, |local| match local {
            // Like a wake-up on this worker: the LIFO slot, so a task that
            // spawns and then waits for its child runs the child next,
            // without waking anyone; the task it displaces goes to the
            // (stealable) queue, and that push wakes a sleeper.
            Some(local) => local.schedule_woken(task, false),
            None => self.push_remote(task),
        })
    }

    /// From outside the workers: the injector, then wake one sleeper.
    pub(crate) fn push_remote(&self, task: Task) {
        self.injector.push(task);
        self.wake_one();
    }

    /// Wakes one sleeping worker, if any (P2 pairing in `IdleSet`).
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
}
