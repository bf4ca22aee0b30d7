//! The body every worker thread runs: the P1 loop of the worker crate with
//! the scheduler inside.

use super::context;
use super::local::{Local, Turn};
use super::search::Search;
use super::{PhaseEnd, Queues, Reactor, Scheduler, Slot};
use crate::loom::regress::{self, Regression};
use crate::loom::Arc;
use std::future::Future;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use unplug_worker::{IdleBlock, Wake, WorkerContext};

/// How often a watching worker looks at the work other workers hold (the
/// bound on how long a task can wait behind a long poll while a worker is
/// idle).
const WATCH_INTERVAL: Duration = Duration::from_millis(1);

/// What a worker tells its starter once its start hook has run: `Ok`, or
/// the hook's panic message (the worker then ends, re-raising the panic).
pub(crate) type StartResult = Result<(), String>;

/// Runs worker `index` until it is stopped: inside the context the layers
/// above provide (`Hooks::enter`), with the start and stop hooks around it.
/// `started` hears how the start hook went before any task runs.
pub(crate) fn run(
    ctx: &WorkerContext<'_>,
    scheduler: Arc<Scheduler>,
    index: usize,
    slot: Arc<Slot>,
    queues: Queues,
    started: impl FnOnce(StartResult),
) {
    let enter = scheduler.hooks.enter.clone();
    let mut queues = Some(queues);
    let mut started = Some(started);
    let mut body = || {
        let queues = queues.take().expect("the body runs once");
        let started = started.take().expect("the body runs once");
        run_loop(ctx, &scheduler, index, &slot, queues, started);
    };
    match enter {
        Some(enter) => enter(&mut body),
        None => body(),
    }
}

fn run_loop(
    ctx: &WorkerContext<'_>,
    scheduler: &Arc<Scheduler>,
    index: usize,
    slot: &Arc<Slot>,
    queues: Queues,
    started: impl FnOnce(StartResult),
) {
    let local = Rc::new(Local::new(scheduler.clone(), index, slot.clone(), queues));
    let worker = context::enter_worker(local.clone());
    if let Some(hook) = &scheduler.hooks.on_start {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| hook())) {
            started(Err(crate::task::panic_message(&*payload)));
            drop(worker);
            // The worker crate records the thread as ended by a panic.
            resume_unwind(payload);
        }
    }
    started(Ok(()));
    // MONITOR-DORMANT: a running worker keeps the long-poll monitor awake.
    scheduler.dormancy.started_running();
    loop {
        // P1: leave only for a park or a stop.
        while ctx.keep_running() {
            let end = match &local.reactor {
                // COOP-BUDGET: tasks run inside tokio's budget scope.
                Some(reactor) => reactor.run_budgeted(&mut |spent| run_phase(ctx, &local, spent)),
                None => run_phase(ctx, &local, &|| false).unwrap_or(PhaseEnd::Turn),
            };
            if end != PhaseEnd::Leave {
                // The next phase starts under a fresh budget.
                local.refills.refilled();
            }
            match end {
                PhaseEnd::Idle => sleep(ctx, &local),
                PhaseEnd::Turn => local.turn_reactor(),
                PhaseEnd::Leave => {}
            }
        }
        scheduler.dormancy.stopped_running();
        // ONE-WAITER: a worker leaving for a park or a stop gives up the
        // role (and wakes a sleeper to take it).
        scheduler.free_reactor_waiter(Some(index));
        // SEARCH-HANDOFF: a wake-up this worker owes the pool is passed on.
        local.leave();
        // P7: hand every queued task to the other workers before `parked`
        // completes (or cancel it, at shutdown).
        local.migrate();
        if ctx.should_stop() {
            break;
        }
        // P1: unconditionally after leaving for a park. PARK-COUNT: each
        // request completed is counted as it is (a later one in the same
        // call first ends the park before it, an unpark).
        let events = scheduler.hooks.events.as_deref();
        let mut completed = 0;
        let parkme = ctx.parkme_counted(|| {
            if let Some(events) = events {
                if completed > 0 {
                    events.resumed(index, None);
                }
                events.parking(index);
            }
            completed += 1;
        });
        let unpark_latency = parkme.unpark_latency;
        // MONITOR-DORMANT: counted out above, in again here (a stop
        // requested meanwhile counts it out at the top of the loop).
        scheduler.dormancy.started_running();
        // PARK-COUNT: the last park counted above ends here, by an unpark
        // or a stop (a stop may also come right after an unpark, before
        // this line: that unpark was reported to its caller and must count).
        let stopping = ctx.should_stop();
        if let (Some(events), 1..) = (events, parkme.parks) {
            events.resumed(index, unpark_latency.filter(|_| !stopping));
        }
        // `resumes` and the unpark latency: a park it slept in and leaves
        // to run again.
        if let (Some(latency), false) = (unpark_latency, stopping) {
            slot.last_unpark_ns
                .store(latency.as_nanos() as u64, Relaxed);
            slot.resumes.fetch_add(1, Relaxed);
        }
    }
    // Out of the worker context before the stop hook: a task it wakes goes
    // through the injector, which shutdown drains (CLOSE-DRAIN), instead of
    // into a queue nobody will look at again.
    drop(worker);
    if let Some(hook) = &scheduler.hooks.on_stop {
        // SHUTDOWN-BLOCK-ON: at shutdown no worker turns the reactor while
        // this hook runs, and shutdown waits for it.
        let _shutdown = scheduler
            .is_closing()
            .then(|| context::enter_shutdown(scheduler));
        hook();
    }
}

/// Runs tasks until none is found, a reactor turn is due or a park or stop
/// is requested; `None` when tokio's budget is spent (the caller calls
/// again with a fresh one).
fn run_phase(
    ctx: &WorkerContext<'_>,
    local: &Local,
    budget_spent: &dyn Fn() -> bool,
) -> Option<PhaseEnd> {
    loop {
        // P1: leave only for a park or a stop.
        if !ctx.keep_running() {
            return Some(PhaseEnd::Leave);
        }
        // YIELD-LAST: yielded tasks only when nothing else is found.
        let found = local.next_task().or_else(|| local.steal());
        let Some(task) = found.or_else(|| local.next_round()) else {
            return Some(PhaseEnd::Idle);
        };
        local.run(task);
        // Every 61 ticks (8 under HOT-TURNS), or sooner when the monitor
        // saw the reactor starved (TURN-NUDGE). TURN-READY: only for a
        // turn that will happen; a phase ended for one the rate limit
        // skips costs a whole re-entry into tokio's context for nothing.
        if (local.turn_due.replace(false) && local.turn_ready())
            || local.scheduler.turn_wanted.load(Relaxed)
        {
            return Some(PhaseEnd::Turn);
        }
        // COOP-BUDGET: one budget is shared by the tasks polled since the
        // last refill, so a task may be told to yield before it used 128
        // units itself, never after; BUDGET-REFILL gives each poll its own
        // while the tasks spend it fast.
        if local.refills.after_poll(budget_spent()) {
            return None;
        }
    }
}

/// The idle sleep: the worker crate's `IdleSet::sleep` (end a search,
/// register, re-check work and a hand-delivered wake-up, sleep, pass on an
/// unused wake-up).
fn sleep(ctx: &WorkerContext<'_>, local: &Local) {
    let scheduler = &local.scheduler;
    local.slot.idle_sleeps.fetch_add(1, Relaxed);
    // MONITOR-DORMANT: out of the count for the wait, in again after it.
    scheduler.dormancy.stopped_running();
    let mut searching = local.search.get().as_flag();
    // WATCH: a timed sleep (counted by the idle set as a watcher) while
    // another worker holds work only it may take for now. A sleep for good
    // re-checks that condition after registering: an offer made meanwhile
    // either saw this worker or is seen here.
    let watch = scheduler.queued_elsewhere(&local.slot);
    let deadline = watch.then(|| Instant::now() + WATCH_INTERVAL);
    // ONE-WAITER: only the role's holder waits inside the reactor; the
    // others wait on their own notifiers, so another worker's socket write
    // never wakes them (a sync wake-up, which the kernel answers by moving
    // the woken thread onto the writer's CPU when no CPU is idle).
    let inside = local.reactor.is_some() && scheduler.reactor_waiter.take(local.index);
    let has_work = || {
        // REACTOR-LOCAL: what the reactor woke during this wait is this
        // worker's to run.
        local.turn_found.get()
            // ONE-WAITER: the role was freed; end this wait to take it.
            || (!inside && scheduler.reactor_waiter.is_free())
            || scheduler.has_work_now()
            || (!watch
                && !regress::on(Regression::WatchExitWithoutRecheck)
                && scheduler.queued_elsewhere(&local.slot))
    };
    let pass_on = || scheduler.wake_one();
    let in_reactor = local
        .reactor
        .as_deref()
        .filter(|_| inside)
        .map(|reactor| InReactor { local, reactor });
    let wake = scheduler.idle.sleep_until_with(
        ctx,
        local.index,
        &mut searching,
        has_work,
        pass_on,
        deadline,
        in_reactor.as_ref().map(|b| b as &dyn IdleBlock),
    );
    scheduler.dormancy.started_running();
    local.idle_wait_ended();
    local.search.set(Search::from_flag(searching));
    if wake == Some(Wake::Work) {
        local.slot.wakeups.fetch_add(1, Relaxed);
    }
}

/// REACTOR-ON-WORKERS: an idle worker waits inside the reactor, so it is
/// the one that turns it while no other worker does; what the reactor wakes
/// meanwhile lands in this worker's run queue and ends the wait
/// (REACTOR-LOCAL).
struct InReactor<'a> {
    local: &'a Local,
    reactor: &'a dyn Reactor,
}

impl IdleBlock for InReactor<'_> {
    fn block(
        &self,
        wake: &mut (dyn Future<Output = ()> + Unpin),
        deadline: Option<Instant>,
    ) -> bool {
        let mut until = UntilWoken {
            wake,
            local: self.local,
        };
        self.local.turn.set(Turn::IdleWait);
        let timed_out = self.reactor.block(&mut until, deadline);
        self.local.turn.set(Turn::None);
        self.local.turn_waker.borrow_mut().take();
        timed_out && !self.local.turn_found.get()
    }
}

/// Completes when the idle wait's own wake-up (work, park, stop) comes, or
/// when the reactor woke a task into this worker's run queue.
struct UntilWoken<'a> {
    wake: &'a mut (dyn Future<Output = ()> + Unpin),
    local: &'a Local,
}

impl Future for UntilWoken<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Pin::new(&mut *self.wake).poll(cx).is_ready() || self.local.turn_found.get() {
            return Poll::Ready(());
        }
        *self.local.turn_waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}
