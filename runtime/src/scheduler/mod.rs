//! The scheduler: where runnable tasks wait and which worker runs them.
//! The rules, the places a task can be, and the invariants with the loom
//! models that check them: `runtime/SCHEDULER.md`.
//!
//! - [`Scheduler`] (here): the injector, one [`Slot`] per worker (its
//!   stealer, LIFO slot and notifier), the idle set, the task registry,
//!   the lifecycle word; spawning and the schedule function.
//! - `local`: a worker thread's own side (`next_task`, `steal`, `run`,
//!   `migrate`); `search`: the one-wake-at-a-time obligations;
//!   `worker_loop`: the body each parkable worker runs; `context`: the
//!   thread-local that tells a worker thread which scheduler it serves;
//!   `budget`: when a run phase refills tokio's cooperative budget.
//!
//! Where a task goes when it is scheduled:
//! - woken or spawned on a worker thread of this runtime: that worker's
//!   LIFO slot (the task it displaces goes to the back of its run queue);
//!   a task that woke itself (a yield) goes to the back of its queue of
//!   yielded tasks, run after the run queue and the injector (YIELD-LAST);
//! - woken by a reactor turn of a busy worker (a timer, a socket): that
//!   worker's woken queue, run ahead of its run queue (TURN-WOKEN-NEXT);
//! - from any other thread: the injector.
//!
//! Every push that may leave work where only a busy worker looks wakes at
//! most one sleeper (`IdleSet::pop`), never all (REACHABLE in
//! SCHEDULER.md).

mod budget;
mod clock;
pub(crate) mod context;
mod culprit;
mod current_poll;
mod dormancy;
mod local;
pub(crate) mod long_poll;
mod reactor_waiter;
mod search;
mod slot;
pub(crate) mod worker_loop;

#[cfg(all(test, loom))]
mod tests;

pub use culprit::PollCulprit;
pub(crate) use culprit::PollSnapshot;
pub(crate) use slot::{Queues, Slot};

use crate::loom::deque::{Injector, Steal};
use crate::loom::regress::{self, Regression};
use crate::loom::{fence, Arc, AtomicUsize, Ordering, RwLock, RwLockReadGuard};
use crate::task::{self, JoinHandle, Registry, Task, TaskOwner};
use async_task::ScheduleInfo;
use reactor_waiter::ReactorWaiter;
use std::future::Future;
use std::ptr::NonNull;
use std::time::{Duration, Instant};
use unplug_worker::IdleSet;

/// What the layers above want to hear from a worker thread.
pub(crate) trait WorkerEvents: Send + Sync {
    /// Worker `index` completed a park request (PARK-COUNT: counted by the
    /// worker as it happens, once per park, whoever asked for it and
    /// however many calls wait for it).
    fn parking(&self, index: usize);
    /// Worker `index`'s park ended, by an unpark or a stop (or by an
    /// unpark followed by a new park before it left); `latency` from the
    /// unpark to it running again (`None` if it never slept, if it leaves
    /// to stop, or if it parks again).
    fn resumed(&self, index: usize, latency: Option<Duration>);
    /// Where worker `index` reports its timed polls and schedule latencies
    /// (`None`: nothing is timed).
    fn observer(&self, index: usize) -> Option<std::sync::Arc<dyn PollObserver>>;
    /// The long-poll monitor saw a poll run past the threshold (once per
    /// poll).
    fn long_poll(&self, culprit: &PollCulprit);
}

/// One worker's receiver of timings (called on the worker thread).
pub(crate) trait PollObserver: Send + Sync {
    /// A timed poll took `took`.
    fn polled(&self, took: Duration);
    /// A sampled task waited `waited` from being scheduled to its poll.
    fn scheduled(&self, waited: Duration);
}

/// The I/O reactor the layers above run on the workers (`reactor.rs`):
/// an idle worker waits inside it, a busy one turns it now and then
/// (REACTOR-ON-WORKERS in `runtime/IO.md`).
pub(crate) trait Reactor: Send + Sync {
    /// Blocks until `wake` completes (false) or `deadline` passes (true),
    /// turning the reactor meanwhile unless another worker already does.
    fn block(
        &self,
        wake: &mut (dyn Future<Output = ()> + Unpin),
        deadline: Option<Instant>,
    ) -> bool;
    /// Processes ready I/O events and due timers without blocking, if no
    /// worker has done so lately (within the hot interval for a `hot`
    /// caller, HOT-TURNS) and none is doing it now. False when the rate
    /// limit skipped the turn.
    fn turn(&self, hot: bool) -> bool;
    /// Would [`turn`](Reactor::turn) turn the reactor now (its rate limit
    /// has passed)? A look only (TURN-READY).
    fn turn_ready(&self, hot: bool) -> bool;
    /// Runs `phase` under tokio's cooperative budget (COOP-BUDGET), so the
    /// tokio resources the tasks it polls use make a task yield once the
    /// budget is spent. `phase` gets a probe, "is the budget spent?", and
    /// returns `None` to be called again with a fresh budget, or why it
    /// ended.
    fn run_budgeted(
        &self,
        phase: &mut dyn FnMut(&dyn Fn() -> bool) -> Option<PhaseEnd>,
    ) -> PhaseEnd;
    /// Is the calling thread inside a poll of one of the reactor's own
    /// tasks (`tokio::spawn`)? Such a poll may be long.
    fn in_own_task(&self) -> bool;
    /// Has no worker turned the reactor for `period`, with none waiting
    /// inside it? (The long-poll monitor then asks the busy workers for a
    /// turn: TURN-NUDGE.)
    fn starved(&self, period: Duration) -> bool;
}

/// Why a worker's run phase ended (`worker_loop::run_phase`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PhaseEnd {
    /// No task was found: the idle wait.
    Idle,
    /// A busy worker's reactor turn (every 61 ticks, or 8 under HOT-TURNS),
    /// outside the budget scope.
    Turn,
    /// A park or stop request.
    Leave,
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
    /// Which polls are timed for the poll-time histogram: those whose
    /// worker-local poll count `& poll_sample_mask == 0` (0: every poll;
    /// 1023: one in 1024).
    pub(crate) poll_sample_mask: u64,
    /// Which schedules are stamped for the schedule-latency histogram:
    /// one in `schedule_sample_mask + 1` per scheduling thread.
    pub(crate) schedule_sample_mask: u32,
    /// Polls running longer than this are reported (`None`: no monitor).
    pub(crate) long_poll_threshold: Option<Duration>,
    /// The reactor the workers run (weak: the runtime owns it, so it can
    /// shut it down once the workers are gone).
    pub(crate) reactor: Option<std::sync::Weak<dyn Reactor>>,
}

/// Lifecycle: running. Tasks are queued and run.
const OPEN: usize = 0;
/// Lifecycle: shutdown began ([`Scheduler::close`]). Spawns are refused;
/// a woken task still goes to the injector (never dropped inside the
/// waker's `wake()`: the waking thread may hold a lock the future's `Drop`
/// needs), and shutdown drops it on its own thread.
const CLOSING: usize = 1;
/// Lifecycle: shutdown drained everything ([`Scheduler::cancel_all`]). A
/// push now is a wake-up that was in flight during the whole shutdown: its
/// pusher drops the task (CLOSE-DRAIN), since nobody else will look.
const DRAINED: usize = 2;

/// State shared by the workers, the handles and every task.
///
/// TASK-OWNER (`task/owner.rs`): `owner` comes first in a `#[repr(C)]`
/// layout, so a pointer to it is a pointer to the scheduler; every task
/// holds one count of the scheduler's `Arc` through it, and its schedule
/// function ([`schedule_task`]) finds the scheduler there.
#[repr(C)]
pub(crate) struct Scheduler {
    /// The task layer's view: the registry, and the scheduler's `Arc`
    /// count. At offset 0 (checked below).
    owner: TaskOwner,
    pub(crate) injector: Injector<Task>,
    slots: RwLock<Vec<Arc<Slot>>>,
    pub(crate) idle: IdleSet,
    /// [`OPEN`] → [`CLOSING`] → [`DRAINED`], never back.
    lifecycle: AtomicUsize,
    pub(crate) hooks: Hooks,
    /// TURN-NUDGE: the long-poll monitor saw the reactor starved; the next
    /// worker to finish a poll turns it (and clears this). Relaxed: a hint,
    /// read after every poll.
    pub(crate) turn_wanted: std::sync::atomic::AtomicBool,
    /// The slot count, kept beside the lock for the hot path. A sizing
    /// hint only (std atomic, Relaxed: nothing is published through it).
    workers_hint: std::sync::atomic::AtomicUsize,
    /// ONE-WAITER: the one worker whose idle waits are inside the reactor.
    pub(crate) reactor_waiter: ReactorWaiter,
    /// MONITOR-DORMANT: which workers run, and whether the long-poll
    /// monitor sleeps (shared with it: it holds no count of the scheduler
    /// while it sleeps).
    pub(crate) dormancy: std::sync::Arc<dormancy::Dormancy>,
}

impl Scheduler {
    pub(crate) fn new(hooks: Hooks) -> Self {
        Scheduler {
            injector: Injector::new(),
            slots: RwLock::new(Vec::new()),
            idle: IdleSet::new(),
            // SAFETY: `owner` is the first field of this `#[repr(C)]`
            // struct, and a `Scheduler` is only ever used inside an `Arc`
            // (`Scheduler::new`'s callers wrap it at once, before any task
            // is built); `retain` and `release` count that `Arc`.
            owner: unsafe { TaskOwner::new(Arc::new(Registry::new()), retain, release) },
            lifecycle: AtomicUsize::new(OPEN),
            reactor_waiter: ReactorWaiter::new(
                hooks.reactor.is_some() && hooks.long_poll_threshold.is_some(),
            ),
            hooks,
            workers_hint: std::sync::atomic::AtomicUsize::new(0),
            turn_wanted: std::sync::atomic::AtomicBool::new(false),
            dormancy: std::sync::Arc::new(dormancy::Dormancy::new()),
        }
    }

    /// The registry of its live tasks.
    pub(crate) fn registry(&self) -> &Registry {
        self.owner.registry()
    }

    /// Every worker's slot, by worker index.
    pub(crate) fn slots(&self) -> RwLockReadGuard<'_, Vec<Arc<Slot>>> {
        self.slots.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Installs worker `index`'s slot: appended for a new index, or in
    /// place of the slot of a stopped worker whose index is reused (its
    /// counters carry over, so totals and per-worker series stay
    /// monotonic). Published before the worker thread starts, so a producer
    /// can wake it from its first idle wait.
    pub(crate) fn install_slot(&self, index: usize, slot: Arc<Slot>) {
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        match slots.get_mut(index) {
            Some(old) => {
                slot.carry_counters_from(old);
                *old = slot;
            }
            None => {
                debug_assert_eq!(index, slots.len(), "worker ids are handed out in order");
                slots.push(slot);
            }
        }
        self.workers_hint
            .store(slots.len(), std::sync::atomic::Ordering::Relaxed);
    }

    /// How many slots there are (live workers and stopped ones whose ids
    /// wait to be reused).
    #[cfg(all(test, loom))]
    pub(crate) fn slot_count(&self) -> usize {
        self.slots().len()
    }

    /// Spawns `future`; after shutdown began, the handle reports cancelled.
    #[track_caller]
    pub(crate) fn spawn<F>(this: &Arc<Self>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if this.is_closing() {
            return JoinHandle::cancelled();
        }
        let spawned_at = std::panic::Location::caller();
        // TASK-OWNER: the task counts `this` through its metadata; the
        // schedule function captures nothing.
        let (runnable, handle) = task::build(&this.owner, spawned_at, future, schedule_task);
        // Shutdown may have begun since the check above: the push then
        // leaves the task where shutdown's drains drop it (CLOSE-DRAIN), and
        // its handle reports it cancelled.
        Scheduler::schedule_spawned(this, runnable);
        handle
    }

    /// Shutdown has drained every queue for the last time
    /// ([`cancel_all`](Self::cancel_all) is done).
    pub(crate) fn is_drained(&self) -> bool {
        // Acquire: pairs with the SeqCst store in `cancel_all`.
        self.lifecycle.load(Ordering::Acquire) == DRAINED
    }

    /// Shutdown has begun.
    pub(crate) fn is_closing(&self) -> bool {
        // Acquire: pairs with the SeqCst stores in `close` / `cancel_all`.
        self.lifecycle.load(Ordering::Acquire) != OPEN
    }

    /// Starts shutdown: from here spawns are refused and woken tasks wait
    /// in the injector for [`cancel_all`](Self::cancel_all). The caller then
    /// stops and joins the workers and calls `cancel_all`.
    pub(crate) fn close(&self) {
        self.lifecycle.store(CLOSING, Ordering::SeqCst);
    }

    /// Cancels every task still queued or waiting anywhere, on the calling
    /// (shutdown) thread: after [`close`](Self::close) and after the workers
    /// stopped. Every registered task is woken (its schedule function puts
    /// it in the injector), the injector is drained, and from then on a
    /// pusher drops what it pushes (CLOSE-DRAIN).
    pub(crate) fn cancel_all(&self) {
        self.drain_injector();
        self.drain_stuck_workers();
        self.registry().close_and_wake_all();
        self.drain_injector();
        self.lifecycle.store(DRAINED, Ordering::SeqCst);
        // CLOSE-DRAIN: pairs with the fence in `push_remote`.
        fence(Ordering::SeqCst);
        self.drain_injector();
    }

    /// A push after shutdown's last drain (a wake-up in flight through the
    /// whole shutdown): its task must be dropped, but not here, inside the
    /// caller's `wake()` (it may hold a lock the future's `Drop` takes).
    /// A short-lived thread drops what the injector holds.
    fn drop_late(&self) {
        let mut late = Vec::new();
        loop {
            match self.injector.steal() {
                Steal::Success(task) => late.push(task),
                Steal::Retry => continue,
                Steal::Empty => break,
            }
        }
        if late.is_empty() {
            return;
        }
        #[cfg(not(loom))]
        {
            let spawned = std::thread::Builder::new()
                .name("unplug-late-drop".into())
                .spawn(move || drop(late));
            // No thread to be had: dropping here is the only way left.
            if let Err(e) = spawned {
                log::warn!("unplug: dropping late-woken tasks inline: {e}");
            }
        }
        // Under loom the model's threads are all there is.
        #[cfg(loom)]
        drop(late);
    }

    /// STUCK-DRAIN: drops what the workers still hold in their queues and
    /// LIFO slots. A worker that stopped emptied its own (P7's migrate
    /// cancels at shutdown), but one still inside a poll past a
    /// `shutdown_timeout` (or the join bound of a drop inside tokio) holds
    /// them until that poll returns: a child it spawned before the poll
    /// stayed unresolved, its `JoinHandle` pending, for as long (a red team;
    /// tokio's is the same when every worker is stuck). Its queues are
    /// stealable from any thread, as the other workers steal them; what it
    /// pushes after this, it drops itself when it stops.
    fn drain_stuck_workers(&self) {
        let slots: Vec<Arc<Slot>> = self.slots().iter().cloned().collect();
        for slot in &slots {
            drop(slot.take_lifo());
            drop_all(|| slot.woken.steal());
            drop_all(|| slot.stealer.steal());
            drop_all(|| slot.yielded.steal());
        }
    }

    /// Drops every task in the injector.
    pub(crate) fn drain_injector(&self) {
        drop_all(|| self.injector.steal());
    }

    /// Counts a schedule on `counter` and stamps `task` for the
    /// schedule-latency histogram if it is one in `schedule_sample_mask +
    /// 1`. Workers count in their `Local`, other threads in
    /// [`stamp_remote`](Self::stamp_remote)'s thread-local.
    pub(crate) fn sample_schedule(&self, counter: &std::cell::Cell<u32>, task: &Task) {
        let n = counter.get().wrapping_add(1);
        counter.set(n);
        if n & self.hooks.schedule_sample_mask == 0 {
            task.metadata().words().stamp_scheduled(clock::now_us32());
        }
    }

    /// From a thread that is not a worker (with metrics on): a schedule
    /// counted per thread, from a per-thread offset so that threads that
    /// wake a few tasks each and end are sampled too.
    fn stamp_remote(&self, task: &Task) {
        #[cfg(not(loom))]
        if self.hooks.events.is_some() {
            std::thread_local! {
                static SCHEDULES: std::cell::Cell<u32> = std::cell::Cell::new({
                    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                    NEXT.fetch_add(0x9E37_79B9, std::sync::atomic::Ordering::Relaxed)
                });
            }
            let _ = SCHEDULES.try_with(|c| self.sample_schedule(c, task));
        }
        #[cfg(loom)]
        let _ = task;
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
        self.push_remote_waking(task, None);
    }

    /// [`push_remote`](Self::push_remote) from worker `me` while it runs a
    /// tokio task in the reactor (which may be long): the sleeper woken is
    /// another one, even while a search is under way (`me` may be
    /// registered as sleeping, or be that searcher, handed a wake-up it
    /// cannot act on until the tokio task returns).
    pub(crate) fn push_remote_waking_other(&self, task: Task, me: usize) {
        self.push_remote_waking(task, Some(me));
    }

    fn push_remote_waking(&self, task: Task, busy_sleeper: Option<usize>) {
        self.stamp_remote(&task);
        self.injector.push(task);
        // CLOSE-DRAIN (defect 2): pairs with the fence in `cancel_all`.
        // Either this load sees DRAINED and the pusher drops what is queued,
        // or shutdown's last drain (after its fence) sees the push. A spawn
        // or wake-up that passed the closing check before shutdown began
        // cannot leave its task in an injector nobody will empty. (SeqCst
        // load: free on x86, and the form loom models exactly.)
        fence(Ordering::SeqCst);
        match self.lifecycle.load(Ordering::SeqCst) {
            // The fence above serves the idle set's pairing too.
            OPEN => {
                match busy_sleeper {
                    None => self.wake_one_after_fence(),
                    Some(me) => {
                        if let Some(index) = self.idle.pop_other_after_fence(me) {
                            self.notify(index);
                        }
                    }
                }
                // MONITOR-DORMANT: work from outside the workers may wait
                // for RESCUE (the sleeper handed it may be held in a long
                // tokio task); the fence above pairs with the monitor's.
                self.dormancy.wake_monitor();
            }
            DRAINED if !regress::on(Regression::PushIgnoresClosing) => self.drop_late(),
            // CLOSING: shutdown drains it on its own thread.
            _ => {}
        }
    }

    /// RESCUE (the long-poll monitor, when work has waited a whole period
    /// while a worker sleeps): wakes a sleeper even while a search is under
    /// way. The searcher may be a worker held inside a long `tokio::spawn`
    /// task in its idle wait, handed a wake-up it cannot act on; a spare
    /// wake-up costs one look.
    pub(crate) fn rescue_wake(&self) {
        fence(Ordering::SeqCst);
        // No worker index is `usize::MAX`: any sleeper may be taken.
        if let Some(index) = self.idle.pop_other_after_fence(usize::MAX) {
            self.notify(index);
        }
    }

    /// ONE-WAITER: frees the reactor-waiter role if `holder` holds it
    /// (`None`: whoever does) and wakes a sleeper, search or not, to take
    /// it. Called by a holder leaving for a park or a stop (a parked worker
    /// never waits in the reactor: REACTOR-HANDOFF), and by the long-poll
    /// monitor when the reactor starves (the holder is held in a long poll).
    pub(crate) fn free_reactor_waiter(&self, holder: Option<usize>) {
        if self.reactor_waiter.free(holder) {
            self.rescue_wake();
        }
    }

    /// Wakes one sleeping worker, if any and if none is searching (P2
    /// pairing in `IdleSet`).
    pub(crate) fn wake_one(&self) {
        if let Some(index) = self.idle.pop() {
            self.notify(index);
        }
    }

    /// [`wake_one`](Self::wake_one) right after the caller's own
    /// `fence(SeqCst)` (which serves the idle set's pairing).
    fn wake_one_after_fence(&self) {
        if let Some(index) = self.idle.pop_after_fence() {
            self.notify(index);
        }
    }

    fn notify(&self, index: usize) {
        if let Some(slot) = self.slots().get(index) {
            slot.notifier.notify();
        }
    }

    /// Is there work anywhere, now or after a grace period?
    pub(crate) fn has_work(&self) -> bool {
        !self.injector.is_empty() || self.slots().iter().any(|s| s.has_work())
    }

    /// Is there work an idle worker may take at once (no grace period:
    /// the injector, or a queue holding more than its owner's next task)?
    /// The idle sleep's P2 re-check.
    pub(crate) fn has_work_now(&self) -> bool {
        !self.injector.is_empty() || self.slots().iter().any(|s| s.queued() >= 2)
    }

    /// Does a worker other than `me` hold work that only it may take for
    /// now (its LIFO slot, or a single queued task)? Then an idle worker
    /// watches instead of sleeping for good (WATCH).
    pub(crate) fn queued_elsewhere(&self, me: &Arc<Slot>) -> bool {
        self.slots()
            .iter()
            .any(|s| !Arc::ptr_eq(s, me) && s.has_work())
    }

    /// Work was just placed where only its (busy) owner looks: a LIFO fill
    /// or a yield. REACHABLE: offer it to a sleeper unless a watcher will
    /// look within `WATCH_INTERVAL` anyway.
    pub(crate) fn offer(&self) {
        // WATCH: publish, then look. Pairs with the SeqCst RMWs (watcher
        // count, then register) + fence in `IdleSet::sleep_until` that
        // precede a sleeper's re-check of `queued_elsewhere`: either that
        // re-check sees this work, or these loads see the watcher (or the
        // sleeper, through `pop_after_fence`).
        fence(Ordering::SeqCst);
        if self.idle.watchers() == 0 {
            self.wake_one_after_fence();
        }
    }

    /// How many worker slots there are (a hint for the injector's batch
    /// size; parked workers count too).
    pub(crate) fn workers_hint(&self) -> usize {
        self.workers_hint.load(std::sync::atomic::Ordering::Relaxed)
    }
}

// TASK-OWNER: a pointer to `Scheduler::owner` is a pointer to the
// scheduler.
const _: () = assert!(std::mem::offset_of!(Scheduler, owner) == 0);

/// `TaskOwner`'s `retain`: one more count of the scheduler's `Arc`.
///
/// # Safety
///
/// `owner` is the `owner` field of a live scheduler in an `Arc`.
unsafe fn retain(owner: NonNull<TaskOwner>) {
    // SAFETY: the caller's contract; the field is at offset 0 of the
    // `#[repr(C)]` scheduler, so this is the `Arc`'s data pointer.
    unsafe { Arc::increment_strong_count(owner.as_ptr() as *const Scheduler) }
}

/// `TaskOwner`'s `release`: gives a count back (the last one frees the
/// scheduler).
///
/// # Safety
///
/// As for [`retain`], and the count given back was taken by it.
unsafe fn release(owner: NonNull<TaskOwner>) {
    // SAFETY: as in `retain`; the count was taken there.
    unsafe { Arc::decrement_strong_count(owner.as_ptr() as *const Scheduler) }
}

/// async-task's schedule function (zero-sized: TASK-OWNER): a task was
/// woken. On a worker of its scheduler, that worker's LIFO slot or yielded
/// queue (the worker's own `Arc` keeps the scheduler alive); anywhere else,
/// or once shutdown began, the injector.
fn schedule_task(task: Task, info: ScheduleInfo) {
    let scheduler = task.metadata().owner() as *const TaskOwner as *const Scheduler;
    context::with_local_ptr(scheduler, |local| match local {
        Some(local) if !local.scheduler.is_closing() => {
            local.schedule_woken(task, info.woken_while_running)
        }
        // LATE-ON-WORKER: a task that woke itself in a poll that outlived
        // the whole shutdown (a worker held past `shutdown_timeout`'s
        // deadline, or the task that dropped its own runtime): its poll has
        // returned, no `wake()` of anybody's is under way, and this worker
        // is inside the runtime's context, so its future is dropped here
        // (before, on an `unplug-late-drop` thread with no runtime current).
        Some(local) if info.woken_while_running && local.scheduler.is_drained() => drop(task),
        // Never dropped here, inside somebody's `wake()`: see CLOSING.
        Some(local) => local.scheduler.push_remote(task),
        None => {
            // Once queued, the task may be run or dropped by another
            // thread, and its count of the scheduler with it: a waker (one
            // count of the task itself, uncontended) keeps the task, and so
            // the scheduler, alive until the push is done. (On a worker the
            // worker's own `Arc` does that.)
            let _keep = task.waker();
            // SAFETY: the task counts its scheduler (TASK-OWNER), and
            // `_keep` keeps the task alive for as long as this borrow.
            let scheduler = unsafe { &*scheduler };
            scheduler.push_remote(task);
        }
    })
}

/// Drops every task `steal` gives until it reports the queue empty.
fn drop_all(steal: impl Fn() -> Steal<Task>) {
    loop {
        match steal() {
            Steal::Success(task) => drop(task),
            Steal::Retry => continue,
            Steal::Empty => break,
        }
    }
}
