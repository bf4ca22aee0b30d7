//! A worker thread's own side of the scheduler: where it looks for the
//! next task, how it steals, runs, and hands its queue over when it parks.

use super::budget::Refills;
use super::search::Search;
use super::{clock, PollObserver, Queues, Reactor, Scheduler, Slot};
use crate::loom::deque::{LocalQueue, Steal, Stealer};
use crate::loom::regress::{self, Regression};
use crate::loom::{fence, Arc, Ordering};
use crate::task::{unobserved_panic, Task};
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::Relaxed;
use std::task::Waker;

/// Check the injector before the local queue every this many ticks, so a
/// busy local queue cannot starve remote spawns (fairness); yielded tasks
/// join the run queue then at the latest (YIELD-LAST).
const GLOBAL_CHECK_INTERVAL: u32 = 61;

/// HOT-TURNS: a busy worker whose last reactor turn woke a task turns it
/// again after this many ticks (and at most once per `HOT_TURN_INTERVAL`
/// across the pool), so the tasks its own writes made ready join its queue
/// before the queue runs dry. `tcp_echo` measured 4-16 alike; 32 lost most
/// of the gain.
const HOT_TURN_TICKS: u32 = 8;

/// At most this many tasks from the injector at once (about crossbeam-deque's
/// block size, which bounds a batch anyway); fewer when the injector holds
/// little (INJECTOR-SHARE).
const MAX_INJECTOR_BATCH: usize = 64;

/// BOUNDED-INTAKE: a batch from the injector fills the worker's queues (run
/// queue and yielded queue together) up to this many tasks, no further; a
/// worker whose queues hold this many takes remote tasks one at a time
/// ([`REMOTE_ROUND`]). A remote backlog the workers cannot keep up with then
/// stays in the injector, and what a worker's own tasks wake waits behind
/// at most this much of it. tokio's run queue holds 256 too; 64 cost
/// `spawn_many_remote_busy2` 9% (a chain's displaced link comes round
/// sooner, and stalls the worker sooner).
const MAX_INTAKE_QUEUE: usize = 256;

/// BOUNDED-INTAKE: when a look at the injector finds the worker's queues
/// full, the next this many polls each take one remote task ahead of the
/// run queue (about half the 61-tick interval): while both local and remote
/// work are backlogged, remote work gets about half the worker, without
/// entering its queues.
const REMOTE_ROUND: u32 = 30;

/// BUSY-GRACE and YIELD-BALANCE are judged at a look of a worker holding
/// yielded tasks at most once per this long: each judgement reads lines
/// other workers write (misses), and looks may come as often as every poll.
#[cfg(not(loom))]
const BUSY_JUDGE_GAP_NS: u64 = 50_000;

/// Is a judging look due, the last one having been at `last`?
#[cfg(not(loom))]
fn judge_due(last: u64, now: u64) -> bool {
    now.saturating_sub(last) >= BUSY_JUDGE_GAP_NS
}

/// Under loom every look judges (the models make few).
#[cfg(loom)]
fn judge_due(_last: u64, _now: u64) -> bool {
    true
}

/// YIELD-BALANCE: how many more yielded tasks than `mine` another worker
/// may hold before this one takes half the difference: a quarter of its
/// own, at least 2 (so a split of a few tasks is evened out too, and a
/// difference of one, which a round under way makes, moves nothing).
fn yield_balance_slack(mine: usize) -> usize {
    (mine / 4).max(2)
}

/// At most this many tasks in a row from the LIFO slot; then the slot's task
/// goes to the back of the queue, so two tasks pinging each other cannot
/// starve the rest.
const MAX_LIFO_POLLS: u32 = 3;

/// How long an idle worker lets the owner of a LIFO slot get to its task
/// before taking it (LIFO-GRACE): longer than a short poll, far shorter
/// than a long one.
#[cfg(not(loom))]
const LIFO_GRACE: std::time::Duration = std::time::Duration::from_micros(5);

/// BUSY-GRACE: how long a worker holding yielded tasks of its own lets
/// another worker stay inside one poll before it takes what that one holds:
/// far longer than LIFO-GRACE, since it has work of its own and a worker
/// the OS merely descheduled for a moment would lose its warm tasks (a
/// grace of 5 us cost `yield_many` 11%); the bound an idle worker's WATCH
/// gives too.
#[cfg(not(loom))]
const BUSY_GRACE: std::time::Duration = std::time::Duration::from_millis(1);

/// Where in the reactor this worker is (REACTOR-LOCAL decides by it where
/// a task woken there goes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Turn {
    /// Not in the reactor: wake-ups take the ordinary paths.
    None,
    /// A busy worker's non-blocking turn.
    Busy,
    /// The idle wait, inside the reactor.
    IdleWait,
}

/// A worker thread's own state. Lives only on that thread.
pub(crate) struct Local {
    pub(crate) scheduler: Arc<Scheduler>,
    pub(crate) index: usize,
    pub(crate) slot: Arc<Slot>,
    /// The run queue.
    pub(crate) queue: LocalQueue<Task>,
    /// False only when the run queue is surely empty: only this thread
    /// adds to it (stealers only take), so the owner skips a pop it knows
    /// would fail (yield-heavy loads run with it empty).
    run_queued: Cell<bool>,
    /// Tasks that yielded (YIELD-LAST), run after everything else.
    yielded: LocalQueue<Task>,
    /// TURN-WOKEN-NEXT: tasks this worker's busy reactor turns woke, run
    /// ahead of the run queue.
    woken: LocalQueue<Task>,
    /// False only when `woken` is surely empty (only this thread adds to
    /// it), as `run_queued` for the run queue: most loads never fill it.
    woken_queued: Cell<bool>,
    /// TURN-WOKEN-NEXT: was the last task taken from `woken`? Then the run
    /// queue's front goes next: the two alternate while both hold tasks.
    /// (Sixteen woken tasks in a row made a backlog beside always-ready
    /// sockets finish 5-12x later than with none, a red team found; one in
    /// a row, 1.5-2x, and a timer waits for at most as many run-queue polls
    /// as there are woken tasks ahead of it.)
    woken_last: Cell<bool>,
    /// Yielded tasks left in the round under way (`next_round`): a task
    /// that yields again goes behind the round, not into it.
    round_left: Cell<usize>,
    /// Did this worker run a yielded task since the last 61-tick check?
    /// If not, they have waited a whole interval: they join the run queue.
    yielded_served: Cell<bool>,
    /// The round under way goes ahead of the run queue (it had waited).
    round_first: Cell<bool>,
    /// BOUNDED-INTAKE: polls left that each take one remote task ahead of
    /// the run queue ([`REMOTE_ROUND`]).
    remote_left: Cell<u32>,
    tick: Cell<u32>,
    lifo_polls: Cell<u32>,
    /// BUSY-GRACE: the other workers' poll counts at this worker's earlier
    /// looks ([`Local::owner_stuck_since_last_look`]).
    stuck_marks: RefCell<Vec<StuckMark>>,
    /// When a look of this worker, holding yielded tasks, last judged
    /// BUSY-GRACE and YIELD-BALANCE ([`Local::busy_judge_due`]).
    last_judged: Cell<u64>,
    rng: Cell<u64>,
    pub(crate) search: Cell<Search>,
    /// Where this worker's timed polls and schedule latencies go (metrics
    /// on), from `WorkerEvents::observer`.
    observer: Option<std::sync::Arc<dyn PollObserver>>,
    /// Schedules made on this worker (for sampling).
    schedules: Cell<u32>,
    /// The reactor this worker runs while idle and turns while busy.
    pub(crate) reactor: Option<std::sync::Arc<dyn Reactor>>,
    /// Inside a reactor turn or an idle wait in the reactor: tasks woken
    /// on this thread are the reactor's, and this worker runs them itself
    /// as soon as the turn ends (REACTOR-LOCAL).
    pub(crate) turn: Cell<Turn>,
    /// A busy worker's reactor turn is due (every 61 ticks, or every
    /// [`HOT_TURN_TICKS`] while `io_hot`).
    pub(crate) turn_due: Cell<bool>,
    /// HOT-TURNS: this worker's last reactor turn, busy or in the idle
    /// wait, woke a task: I/O is flowing, so turns come every
    /// [`HOT_TURN_TICKS`]. A turn that wakes nothing clears it.
    io_hot: Cell<bool>,
    /// The reactor woke a task during the turn under way (busy, or the
    /// idle wait, which it ends); cleared when the turn ends, after it set
    /// `io_hot`.
    pub(crate) turn_found: Cell<bool>,
    /// Wakes the idle wait once `turn_found` is set.
    pub(crate) turn_waker: RefCell<Option<Waker>>,
    /// When the run phase refills tokio's budget (BUDGET-REFILL).
    pub(crate) refills: Refills,
}

impl Local {
    pub(crate) fn new(
        scheduler: Arc<Scheduler>,
        index: usize,
        slot: Arc<Slot>,
        queues: Queues,
    ) -> Self {
        let reactor = scheduler.hooks.reactor.as_ref().and_then(|r| r.upgrade());
        let observer = scheduler
            .hooks
            .events
            .as_ref()
            .and_then(|e| e.observer(index));
        Local {
            observer,
            scheduler,
            index,
            slot,
            queue: queues.run,
            run_queued: Cell::new(false),
            yielded: queues.yielded,
            woken: queues.woken,
            woken_queued: Cell::new(false),
            woken_last: Cell::new(false),
            round_left: Cell::new(0),
            yielded_served: Cell::new(false),
            round_first: Cell::new(false),
            remote_left: Cell::new(0),
            tick: Cell::new(0),
            lifo_polls: Cell::new(0),
            stuck_marks: RefCell::new(Vec::new()),
            last_judged: Cell::new(0),
            rng: Cell::new(0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1)),
            search: Cell::new(Search::Settled),
            schedules: Cell::new(0),
            reactor,
            turn: Cell::new(Turn::None),
            turn_due: Cell::new(false),
            io_hot: Cell::new(false),
            turn_found: Cell::new(false),
            turn_waker: RefCell::new(None),
            refills: Refills::default(),
        }
    }

    /// A task woken (or spawned) on this thread: the LIFO slot, or the back
    /// of the yielded queue for a task that woke itself (a yield).
    pub(crate) fn schedule_woken(&self, task: Task, yielded: bool) {
        if self.observer.is_some() {
            self.scheduler.sample_schedule(&self.schedules, &task);
        }
        if self.turn.get() != Turn::None {
            self.schedule_from_reactor(task);
            return;
        }
        let offer = !regress::on(Regression::LifoFillWakesNobody);
        if yielded {
            // REACHABLE (defect 5): the next task this worker polls may be
            // long; the yielded one must not wait behind it while a sleeper
            // could run it. Offered when it makes the queue non-empty: a
            // queue already holding tasks was offered by the push that
            // started it (and a sleeper that looks takes a queue of two
            // without grace).
            let was_empty = self.queue.is_empty() && self.yielded.is_empty();
            // YIELD-LAST: behind the run queue and the injector.
            self.yielded.push(task);
            if offer && was_empty {
                self.scheduler.offer();
            }
            return;
        }
        match self.slot.put_lifo(task) {
            Some(displaced) => self.push_local(displaced),
            // REACHABLE (defect 5): the slot's task waits behind the poll
            // under way, which may be long. Offer it to a sleeper: it takes
            // the task only if this worker stays in that poll past
            // LIFO-GRACE. Cheap when a watcher exists, nobody sleeps or
            // someone searches.
            None if offer => self.scheduler.offer(),
            None => {}
        }
    }

    /// REACTOR-LOCAL: a task the reactor woke on this worker (an I/O event
    /// or timer it processed, or a spawn from a tokio task it ran) stays on
    /// this worker, which runs it as soon as the turn ends: from its run
    /// queue after an idle wait, ahead of its run queue after a busy turn
    /// (TURN-WOKEN-NEXT); the first wakes nobody else, later ones wake one
    /// sleeper each to help (REACHABLE).
    fn schedule_from_reactor(&self, task: Task) {
        // HOT-TURNS: I/O is flowing through this worker.
        self.turn_found.set(true);
        if self.reactor.as_ref().is_some_and(|r| r.in_own_task()) {
            // Inside the poll of a `tokio::spawn` task run in the reactor
            // (idle wait or busy turn), which may be long and holds this
            // worker: another worker runs the task. This worker may itself
            // be registered as sleeping, or be the searcher, so the
            // sleeper woken is another one, search or not.
            self.scheduler.push_remote_waking_other(task, self.index);
        } else if self.turn.get() == Turn::IdleWait {
            // The driver's dispatch in the idle wait: the wait ends when it
            // returns, and this worker runs the task.
            let was_empty = self.queue.is_empty();
            self.queue.push(task);
            self.run_queued.set(true);
            if !was_empty {
                self.scheduler.wake_one();
            }
        } else {
            // TURN-WOKEN-NEXT: a busy worker's turn. Queued at the back of
            // the run queue, a timer or a socket's reader waited behind the
            // whole backlog (a red team: 51 ms behind 1,024 polls of 50
            // us; tokio's LIFO slot serves only the last task a turn
            // wakes). They run next, ahead of the run queue, in order;
            // offered like the first task of a run queue (REACHABLE).
            let was_empty = self.woken.is_empty();
            self.woken.push(task);
            self.woken_queued.set(true);
            if was_empty {
                self.scheduler.offer();
            } else {
                self.scheduler.wake_one();
            }
        }
        if self.turn.get() == Turn::IdleWait {
            if let Some(waker) = self.turn_waker.borrow_mut().take() {
                waker.wake();
            }
        }
    }

    /// A busy worker's reactor turn (every 61 ticks, or every
    /// [`HOT_TURN_TICKS`] under HOT-TURNS; rate-limited by the reactor):
    /// I/O readiness and timers are served however busy the workers are.
    pub(crate) fn turn_reactor(&self) {
        if let Some(reactor) = &self.reactor {
            self.scheduler
                .turn_wanted
                .store(false, std::sync::atomic::Ordering::Relaxed);
            self.turn.set(Turn::Busy);
            // HOT-TURNS: a turn the rate limit skipped says nothing about
            // whether I/O still flows.
            if reactor.turn(self.io_hot.get()) {
                self.io_hot.set(self.turn_found.get());
            }
            self.turn.set(Turn::None);
            self.turn_found.set(false);
        }
    }

    /// TURN-READY: would a busy turn of the reactor happen now (its rate
    /// limit passed)? No reactor: nothing to turn.
    pub(crate) fn turn_ready(&self) -> bool {
        self.reactor
            .as_ref()
            .is_some_and(|reactor| reactor.turn_ready(self.io_hot.get()))
    }

    /// HOT-TURNS: an idle wait ended; if the reactor woke a task in it,
    /// I/O is flowing through this worker.
    pub(crate) fn idle_wait_ended(&self) {
        if self.turn_found.replace(false) {
            self.io_hot.set(true);
        }
    }

    /// The back of the local queue, and one sleeper woken to help
    /// (REACHABLE: the worker may be inside a long poll).
    pub(crate) fn push_local(&self, task: Task) {
        if !self.push_offering(task) {
            self.scheduler.wake_one();
        }
    }

    /// Pushes to the back of the local queue; a task that makes the queue
    /// non-empty is *offered* (it is alone there, so LIFO-GRACE applies to
    /// it: waking a sleeper for it woke it for nothing whenever two tasks
    /// hand off through the LIFO slot). Returns whether it was offered.
    fn push_offering(&self, task: Task) -> bool {
        let was_empty = self.queue.is_empty();
        self.queue.push(task);
        self.run_queued.set(true);
        if was_empty {
            self.scheduler.offer();
        }
        was_empty
    }

    /// The next task to run from this worker's own sources, yielded tasks
    /// aside (`next_round`).
    pub(crate) fn next_task(&self) -> Option<Task> {
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        if self.io_hot.get() && tick % HOT_TURN_TICKS == 0 {
            // HOT-TURNS: a turn is due after this task (the run phase ends
            // for it if the rate limit lets it happen: TURN-READY).
            self.turn_due.set(true);
        }
        if tick % GLOBAL_CHECK_INTERVAL == 0 {
            // A reactor turn is due after this task (TURN-READY).
            self.turn_due.set(true);
            // YIELD-LAST, bounded: yielded tasks that waited a whole
            // interval unserved (the run queue stayed busy) get a round
            // ahead of the run queue, of at most MAX_INTAKE_QUEUE of them
            // (BOUNDED-INTAKE: what waits behind it stays bounded).
            if !self.yielded_served.replace(false) && !self.yielded.is_empty() {
                self.round_left
                    .set(self.yielded.len().min(MAX_INTAKE_QUEUE));
                self.round_first.set(true);
            }
            // BUSY-GRACE for a worker its own tasks keep busy (a pair
            // passing messages through the LIFO slot, a stream of spawns):
            // it never runs out of tasks, so it never looks in `steal`.
            // Looked at before the injector, whose task is queued here if
            // both give one: a worker fed by remote spawns always found the
            // injector non-empty and never reached this look (a red team:
            // a task behind another worker's 200 ms poll waited all of it).
            let rescued = self.rescue_stuck();
            if let Some(task) = self.pop_injector() {
                let Some(rescued) = rescued else {
                    return Some(task);
                };
                self.push_local(task);
                return Some(rescued);
            }
            if rescued.is_some() {
                return rescued;
            }
        }
        if self.round_first.get() {
            // TURN-WOKEN-NEXT: a due round of yielded tasks (up to 256 of
            // them) alternates with the woken queue too; ahead of it, a
            // timer waited 25 ms behind yielders of 100 us (a red team).
            if !self.woken_last.replace(false) {
                if let Some(task) = self.pop_woken() {
                    return Some(task);
                }
            }
            if let Some(task) = self.pop_round() {
                return Some(task);
            }
        }
        // CHAIN-YIELDS: the LIFO slot's task next if it is the first link
        // of a chain, or a later one (up to MAX_LIFO_POLLS) while no remote
        // work waits. The injector is read only when the slot holds a task
        // after a first link: its lines are written by every remote push.
        let lifo_polls = self.lifo_polls.get();
        if let Some(task) = self.slot.take_lifo() {
            let next = lifo_polls == 0
                || (lifo_polls < MAX_LIFO_POLLS && self.scheduler.injector.is_empty());
            if next {
                self.lifo_polls.set(lifo_polls + 1);
                return Some(task);
            }
            // The chain spent its budget: like a yield, it lets the
            // injector go first, then waits behind what was queued. With
            // the queues full, remote work has its rounds (BOUNDED-INTAKE).
            let remote = if self.intake_full() {
                None
            } else {
                self.pop_injector()
            };
            self.push_local(task);
            if remote.is_some() {
                self.lifo_polls.set(0);
                return remote;
            }
        }
        self.lifo_polls.set(0);
        if self.remote_left.get() > 0 {
            // BOUNDED-INTAKE: a remote round under way (ahead of the woken
            // queue too: a red team saw sockets always ready starve it).
            self.remote_left.set(self.remote_left.get() - 1);
            match self.steal_one_remote() {
                Some(task) => return Some(task),
                None => self.remote_left.set(0),
            }
        }
        // TURN-WOKEN-NEXT: what a busy turn woke goes ahead of the run
        // queue, alternating with it.
        if self.woken_last.replace(false) {
            if let Some(task) = self.pop_run_queue() {
                return Some(task);
            }
        }
        if let Some(task) = self.pop_woken() {
            return Some(task);
        }
        if let Some(task) = self.pop_run_queue() {
            return Some(task);
        }
        // A round of yielded tasks under way goes on; the injector is looked
        // at between rounds (and every 61 ticks).
        if let Some(task) = self.pop_round() {
            return Some(task);
        }
        self.pop_injector()
    }

    /// The front of the run queue, unless it is surely empty.
    fn pop_run_queue(&self) -> Option<Task> {
        pop_unless_empty(&self.queue, &self.run_queued)
    }

    /// The front of the woken queue, unless it is surely empty; the run
    /// queue's front goes next (TURN-WOKEN-NEXT alternates them).
    fn pop_woken(&self) -> Option<Task> {
        let task = pop_unless_empty(&self.woken, &self.woken_queued)?;
        self.woken_last.set(true);
        Some(task)
    }

    /// The next task of the round of yielded tasks under way, if any.
    fn pop_round(&self) -> Option<Task> {
        if self.round_left.get() > 0 {
            self.round_left.set(self.round_left.get() - 1);
            if let Some(task) = self.yielded.pop() {
                self.yielded_served.set(true);
                return Some(task);
            }
            self.round_left.set(0);
        }
        self.round_first.set(false);
        None
    }

    /// YIELD-LAST: nothing else was found (run queue, LIFO slot, injector,
    /// the other workers' backlogs), so a round of the yielded tasks
    /// starts: each of those queued now runs once before the injector is
    /// looked at again.
    pub(crate) fn next_round(&self) -> Option<Task> {
        let task = self.yielded.pop()?;
        self.yielded_served.set(true);
        self.round_left.set(self.yielded.len());
        Some(task)
    }

    /// A batch from the injector into the run queue, returning one.
    /// INJECTOR-SHARE: at most this worker's share of what waits there
    /// (`len / workers`, rounded up, at most 64), so one worker does not
    /// take a backlog the others could run at once. BOUNDED-INTAKE: at
    /// most what fills the worker's queues to [`MAX_INTAKE_QUEUE`]; full
    /// ones take a single task (which runs now, queueing nothing) and start
    /// a remote round ([`REMOTE_ROUND`]).
    fn pop_injector(&self) -> Option<Task> {
        let injector = &self.scheduler.injector;
        if injector.is_empty() {
            return None;
        }
        let room = MAX_INTAKE_QUEUE.saturating_sub(self.queued_here());
        if room <= 1 {
            // Also beside a yielded queue that is full on its own: remote
            // tasks that yield grow it, but a forced YIELD-LAST round runs
            // at most MAX_INTAKE_QUEUE of it, so what this worker's own
            // wake-ups wait behind stays bounded; skipping the round gave
            // remote work one task per 61 polls (red team).
            self.remote_left.set(REMOTE_ROUND);
            return self.steal_one_remote();
        }
        let workers = self.scheduler.workers_hint().max(1);
        let share = injector
            .len()
            .div_ceil(workers)
            .clamp(1, MAX_INJECTOR_BATCH.min(room));
        loop {
            match injector.steal_batch_with_limit_and_pop(&self.queue, share) {
                Steal::Success(task) => {
                    self.run_queued.set(true);
                    if !self.queue.is_empty() {
                        // More than we can run at once: let a sleeper help.
                        self.scheduler.wake_one();
                    }
                    return Some(task);
                }
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }

    /// Tasks in this worker's woken, run and yielded queues together.
    fn queued_here(&self) -> usize {
        self.woken.len() + self.queue.len() + self.yielded.len()
    }

    /// BOUNDED-INTAKE: do this worker's queues hold all they may take in?
    /// (The same test as `pop_injector`'s `room <= 1`.)
    fn intake_full(&self) -> bool {
        self.queued_here() + 1 >= MAX_INTAKE_QUEUE
    }

    /// One task from the injector, queueing nothing.
    fn steal_one_remote(&self) -> Option<Task> {
        loop {
            match self.scheduler.injector.steal() {
                Steal::Success(task) => return Some(task),
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }

    /// Steals from the other workers (their queues, then their LIFO slots),
    /// starting at a random one; then the injector. A worker holding
    /// yielded tasks of its own is not idle and takes less
    /// ([`steal_busy`](Local::steal_busy)).
    pub(crate) fn steal(&self) -> Option<Task> {
        let idle = self.yielded.is_empty();
        let slots = self.scheduler.slots();
        let n = slots.len();
        if n > 1 {
            let judge = if idle { None } else { self.busy_judge_due() };
            let start = (self.next_random() % n as u64) as usize;
            for i in 0..n {
                let slot = &slots[(start + i) % n];
                if Arc::ptr_eq(slot, &self.slot) {
                    continue;
                }
                if !idle {
                    if let Some(task) = self.steal_busy(slot, judge) {
                        return Some(task);
                    }
                    continue;
                }
                // LIFO-GRACE: a lone queued task (a yield) is its owner's
                // next, like the LIFO slot's: both are taken only from an
                // owner stuck in one poll. Judged once per slot.
                let mut stuck = None;
                let mut owner_is_stuck = || *stuck.get_or_insert_with(|| owner_stuck(slot));
                let len = slot.queued();
                if len >= 2 || (len == 1 && owner_is_stuck()) {
                    // The run queue first: yielded tasks are the owner's
                    // last, but still taken (REACHABLE).
                    if let Some(task) = self.steal_all_kinds(slot) {
                        return Some(task);
                    }
                }
                if slot.has_lifo() && owner_is_stuck() {
                    if let Some(task) = self.take_lifo_of(slot) {
                        return Some(task);
                    }
                }
            }
        }
        drop(slots);
        self.pop_injector()
    }

    /// What a worker holding yielded tasks of its own takes from `slot`
    /// (it is not idle, and its looks come between rounds of its yielded
    /// tasks, which may be as short as one poll of about 50 ns: each line
    /// of another worker read here is a cache miss, so it reads few):
    /// a backlog of the run queue at once; at a judging look (`judge`, its
    /// time: at most one per 50 us), everything an owner stuck in one poll
    /// holds, its LIFO task first (BUSY-GRACE), and half the difference of
    /// a longer yielded queue (YIELD-BALANCE).
    fn steal_busy(&self, slot: &Arc<Slot>, judge: Option<u64>) -> Option<Task> {
        // TURN-WOKEN-NEXT: a burst a busy turn woke is a backlog too (a red
        // team: 400 readers woken at once stayed with one worker).
        if slot.woken.len() >= 2 {
            if let Some(task) = self.steal_woken(slot) {
                return Some(task);
            }
        }
        if slot.stealer.len() >= 2 {
            if let Some(task) = self.steal_from(&slot.stealer) {
                return Some(task);
            }
        }
        let now = judge?;
        if self.owner_stuck_since_last_look(slot, now) {
            if let Some(task) = self.take_from_stuck(slot) {
                return Some(task);
            }
        }
        // YIELD-BALANCE: so yielding tasks get even shares of busy workers
        // (the split of their first moments does not stay for good); taking
        // half the difference leaves both about even.
        let (theirs, mine) = (slot.yielded_visible(), self.yielded.len());
        if theirs > mine + yield_balance_slack(mine) {
            return self.steal_some(&slot.yielded, (theirs - mine) / 2);
        }
        None
    }

    /// BUSY-GRACE at the 61-tick check: what another worker stuck in one
    /// poll for [`BUSY_GRACE`] holds, its LIFO task first (at most one
    /// judgement per 50 us, like a look of a worker holding yielded tasks).
    fn rescue_stuck(&self) -> Option<Task> {
        let now = self.busy_judge_due()?;
        let slots = self.scheduler.slots();
        for slot in slots.iter() {
            if Arc::ptr_eq(slot, &self.slot) || !self.owner_stuck_since_last_look(slot, now) {
                continue;
            }
            if let Some(task) = self.take_from_stuck(slot) {
                return Some(task);
            }
        }
        None
    }

    /// BUSY-GRACE: what an owner stuck in one poll holds, its LIFO task
    /// first (its next, the one a long poll strands first), then a batch
    /// of its queues.
    fn take_from_stuck(&self, slot: &Slot) -> Option<Task> {
        self.take_lifo_of(slot)
            .or_else(|| self.steal_all_kinds(slot))
    }

    /// Another worker's LIFO task, counted as a steal.
    fn take_lifo_of(&self, slot: &Slot) -> Option<Task> {
        let task = slot.take_lifo()?;
        self.slot.steals.fetch_add(1, Relaxed);
        Some(task)
    }

    /// BUSY-GRACE and YIELD-BALANCE judge at a look of a worker holding
    /// yielded tasks at most once per `BUSY_JUDGE_GAP_NS` (each judgement
    /// reads lines other workers write); the time now if this look judges.
    fn busy_judge_due(&self) -> Option<u64> {
        let now = grace_clock();
        if judge_due(self.last_judged.get(), now) {
            self.last_judged.set(now);
            Some(now)
        } else {
            None
        }
    }

    /// A batch of `slot`'s woken queue, else of its run queue, else of its
    /// yielded queue (REACHABLE: yielded tasks are the owner's last, but
    /// still taken).
    fn steal_all_kinds(&self, slot: &Slot) -> Option<Task> {
        self.steal_woken(slot)
            .or_else(|| self.steal_from(&slot.stealer))
            .or_else(|| {
                if regress::on(Regression::YieldedKeptPrivate) {
                    return None;
                }
                self.steal_from(&slot.yielded)
            })
    }

    /// BUSY-GRACE: LIFO-GRACE for a worker that holds yielded tasks of its
    /// own, which must not spend the grace period spinning (a yield-heavy
    /// load looks at the other workers between every round of its yielded
    /// tasks, as often as every poll). It spreads the grace over its looks
    /// instead: `slot`'s owner is stuck if its poll count is the one this
    /// worker saw at an earlier judging look, at least [`BUSY_GRACE`] ago
    /// (`now` is this look's time). The first look at a count notes it.
    fn owner_stuck_since_last_look(&self, slot: &Arc<Slot>, now: u64) -> bool {
        if regress::on(Regression::BusyTakesOnlyBacklogs) {
            return false; // the red team's defect, kept as the model's control
        }
        let key = Arc::as_ptr(slot) as usize;
        let polled = slot.polled.load(Relaxed);
        let mut marks = self.stuck_marks.borrow_mut();
        match marks.iter_mut().find(|mark| mark.slot == key) {
            Some(mark) if mark.polled == polled => grace_passed(mark.since, now),
            Some(mark) => {
                (mark.polled, mark.since) = (polled, now);
                false
            }
            None => {
                // Slots come and go with resizes: forget the old ones
                // rather than grow.
                if marks.len() >= 64 {
                    marks.clear();
                }
                marks.push(StuckMark {
                    slot: key,
                    polled,
                    since: now,
                });
                false
            }
        }
    }

    /// At most `limit` tasks from `stealer` (and at most half of it) into
    /// the run queue, returning one.
    fn steal_some(&self, stealer: &Stealer<Task>, limit: usize) -> Option<Task> {
        self.take_batch(&self.run_queued, || {
            stealer.steal_batch_with_limit_and_pop(&self.queue, limit.max(1))
        })
    }

    /// TURN-WOKEN-NEXT: a batch of `slot`'s woken queue into this worker's
    /// own, returning one: a timer taken from a worker stuck in a long poll
    /// stays ahead of the taker's backlog.
    fn steal_woken(&self, slot: &Slot) -> Option<Task> {
        self.take_batch(&self.woken_queued, || {
            slot.woken.steal_batch_and_pop(&self.woken)
        })
    }

    /// A batch from `stealer` into the run queue, returning one.
    fn steal_from(&self, stealer: &Stealer<Task>) -> Option<Task> {
        self.take_batch(&self.run_queued, || {
            stealer.steal_batch_and_pop(&self.queue)
        })
    }

    /// Runs `steal` (a batch into one of this worker's queues, whose
    /// "may hold tasks" flag is `queued`, returning one) until it does not
    /// ask for a retry; counts a success.
    fn take_batch(&self, queued: &Cell<bool>, steal: impl Fn() -> Steal<Task>) -> Option<Task> {
        loop {
            match steal() {
                Steal::Success(task) => {
                    queued.set(true);
                    self.slot.steals.fetch_add(1, Relaxed);
                    return Some(task);
                }
                Steal::Retry => continue,
                Steal::Empty => return None,
            }
        }
    }

    /// Runs one task. A task that was aborted drops its future in this poll
    /// (ABORT-AT-POLL, in the task layer).
    pub(crate) fn run(&self, task: Task) {
        self.found_work();
        if regress::on(Regression::AbortCheckedBeforeRun) && task.metadata().words().is_aborted() {
            drop(task); // defect 1, kept only as the loom model's control
            return;
        }
        // OWNER-COUNTS: only this thread writes `polled`, so a load and a
        // store count it (a locked RMW drains the store buffer every poll).
        let polled = self.slot.polled.load(Relaxed);
        self.slot.polled.store(polled.wrapping_add(1), Relaxed);
        // For culprits: which task this worker is inside (CULPRIT-SITE).
        let meta = task.metadata();
        self.slot.current.enter(meta.id().as_u64(), meta.site());
        // With metrics on: the schedule latency of a stamped task, and the
        // duration of one poll in `poll_sample_mask + 1`.
        let timed = self.observer.as_ref().and_then(|observer| {
            if let Some(stamp) = task.metadata().words().take_scheduled() {
                observer.scheduled(clock::since_us30(stamp));
            }
            (polled & self.scheduler.hooks.poll_sample_mask == 0)
                .then(|| (observer, std::time::Instant::now()))
        });
        let ran = catch_unwind(AssertUnwindSafe(|| task.run()));
        if let Some((observer, start)) = timed {
            observer.polled(start.elapsed());
        }
        self.slot.current.leave();
        // The task layer catches every panic of the user's code; this is
        // the worker's own safety net (it must live on).
        if let Err(payload) = ran {
            unobserved_panic("a task's run", payload);
        }
    }

    /// The worker found a task: a search it was on ends; if it was the last
    /// searcher and more work waits, the next sleeper is woken (wake-ups
    /// chain, one at a time).
    fn found_work(&self) {
        if self.search.get() == Search::Searching {
            let mut searching = true;
            if self.scheduler.idle.found_work(&mut searching) && self.scheduler.has_work() {
                self.scheduler.wake_one();
            }
            self.search.set(Search::from_flag(searching));
        }
    }

    /// The worker leaves its run loop for a park or a stop.
    /// SEARCH-HANDOFF (defect 4): end a search it was on, then re-check
    /// every queue and pass a wake-up on if work is there. The search may
    /// also have ended inside the idle sleep, just before it saw the park
    /// request; producers that saw it searching woke nobody, so their work
    /// is found here or nowhere.
    pub(crate) fn leave(&self) {
        if self.search.get() == Search::Searching {
            let mut searching = true;
            self.scheduler.idle.found_work(&mut searching);
            self.search.set(Search::Settled);
        }
        if regress::on(Regression::LeaveWithoutHandoff) {
            return;
        }
        // Pairs with the fence in `IdleSet::pop`: a producer that saw a
        // searcher (and woke nobody) pushed before that search ended.
        fence(Ordering::SeqCst);
        if self.scheduler.has_work() {
            self.scheduler.wake_one();
        }
    }

    /// P7: everything queued here goes to the injector (or, at shutdown, is
    /// cancelled) before the worker parks or stops, and one sleeper is woken
    /// per batch moved.
    pub(crate) fn migrate(&self) -> usize {
        let closing = self.scheduler.is_closing();
        let mut moved = 0;
        let mut dispose = |task: Task| {
            moved += 1;
            if closing {
                drop(task);
            } else {
                self.scheduler.injector.push(task);
            }
        };
        if let Some(task) = self.slot.take_lifo() {
            dispose(task);
        }
        while let Some(task) = self.woken.pop() {
            dispose(task);
        }
        while let Some(task) = self.queue.pop() {
            dispose(task);
        }
        while let Some(task) = self.yielded.pop() {
            dispose(task);
        }
        self.round_left.set(0);
        self.round_first.set(false);
        self.remote_left.set(0);
        if closing {
            // Shutdown: cancel what other workers left in the injector too.
            self.scheduler.drain_injector();
        } else {
            self.slot.migrated.fetch_add(moved as u64, Relaxed);
            if moved > 0 {
                self.scheduler.wake_one();
            }
        }
        moved
    }

    fn next_random(&self) -> u64 {
        // xorshift64*
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// The front of `queue`, one of this worker's own, unless its `queued`
/// flag says it is surely empty (only the owner adds to it; stealers only
/// take); a pop that finds it empty clears the flag.
fn pop_unless_empty(queue: &LocalQueue<Task>, queued: &Cell<bool>) -> Option<Task> {
    if !queued.get() {
        return None;
    }
    let task = queue.pop();
    if task.is_none() {
        queued.set(false);
    }
    task
}

/// LIFO-GRACE: the owner runs its LIFO task (or a lone yielded task) next
/// as soon as its current poll returns; another worker takes it only if
/// the owner has started no new poll over the grace period, so a short
/// chain stays on its warm worker and a long poll strands nothing.
///
/// Has `slot`'s owner stayed inside one poll for the grace period? Reads
/// the owner's poll count twice, [`LIFO_GRACE`] apart, and nothing in
/// between (its cache line is the owner's hot one).
fn owner_stuck(slot: &Slot) -> bool {
    let mark = slot.polled.load(Relaxed);
    grace_period();
    slot.polled.load(Relaxed) == mark
}

/// BUSY-GRACE: what a worker with yielded tasks saw of another worker's
/// poll count at an earlier look.
struct StuckMark {
    /// The slot's address (compared, never followed).
    slot: usize,
    /// Its poll count then.
    polled: u64,
    /// When this worker first saw that count ([`grace_clock`]).
    since: u64,
}

#[cfg(not(loom))]
fn grace_clock() -> u64 {
    super::clock::now_ns()
}

#[cfg(not(loom))]
fn grace_passed(since: u64, now: u64) -> bool {
    now.saturating_sub(since) >= BUSY_GRACE.as_nanos() as u64
}

/// Under loom time does not pass: an earlier look that saw the same count
/// is the grace (the owner had a chance to run in between, as with the
/// idle worker's yield).
#[cfg(loom)]
fn grace_clock() -> u64 {
    0
}

#[cfg(loom)]
fn grace_passed(_since: u64, _now: u64) -> bool {
    true
}

#[cfg(not(loom))]
fn grace_period() {
    let start = std::time::Instant::now();
    while start.elapsed() < LIFO_GRACE {
        std::hint::spin_loop();
    }
}

/// Under loom time does not pass: the grace is one chance for the owner to
/// run (a yield).
#[cfg(loom)]
fn grace_period() {
    loom::thread::yield_now();
}
