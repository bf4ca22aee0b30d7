//! REACTOR-ON-WORKERS (`runtime/IO.md`): tokio's I/O and time drivers, in
//! a current-thread tokio runtime that no thread of its own runs. Idle
//! workers wait inside it (`Runtime::block_on`: whichever holds tokio's
//! core turns the drivers; the others wait for the core or their wake-up),
//! and busy workers turn it without blocking every 61 ticks, at most once
//! per [`TURN_INTERVAL`] across the pool, or every 8 ticks and
//! [`HOT_TURN_INTERVAL`] while their turns keep waking tasks (HOT-TURNS in
//! `runtime/IO.md`). So every readiness event and
//! timer is handled on a worker, on the CPUs the runtime may use, and the
//! task it wakes runs on the worker that handled it. A task spawned with
//! `tokio::spawn` from inside the runtime runs there too, on whichever
//! worker holds the core.

use crate::scheduler::{PhaseEnd, Reactor};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The least time between two busy turns of the reactor (any workers).
/// An idle worker waiting inside it turns it continuously; this bounds
/// what serving I/O costs a pool with no idle worker: one `epoll_wait` per
/// interval, not one per 61 polls (yield_many measured that).
pub(crate) const TURN_INTERVAL: Duration = Duration::from_micros(100);

/// HOT-TURNS: the least time between two busy turns while the turning
/// worker's last turn woke a task (I/O is flowing). `tcp_echo` measured
/// 20 us as good as none; 50 us lost a third of the gain.
pub(crate) const HOT_TURN_INTERVAL: Duration = Duration::from_micros(20);

/// The reactor: a current-thread tokio runtime with I/O and time enabled.
pub(crate) struct TokioReactor {
    rt: tokio::runtime::Runtime,
    epoch: Instant,
    /// When a busy turn last began, in nanoseconds since `epoch`. A rate
    /// limit only: Relaxed, and two workers may both turn at a boundary.
    last_turn_ns: AtomicU64,
    /// Workers inside an idle wait (one of them holds tokio's core and
    /// turns the drivers). A hint for TURN-NUDGE: Relaxed.
    waiting: AtomicUsize,
}

impl TokioReactor {
    /// A reactor whose blocking pool threads are named `thread_name` and
    /// run `on_start` when they start, `on_stop` when they end
    /// (BLOCKING-CONTEXT: the unplug runtime made current there).
    pub(crate) fn new(
        thread_name: String,
        on_start: impl Fn() + Send + Sync + 'static,
        on_stop: impl Fn() + Send + Sync + 'static,
    ) -> std::io::Result<TokioReactor> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .thread_name(thread_name)
            .on_thread_start(on_start)
            .on_thread_stop(on_stop)
            .enable_all()
            .build()?;
        Ok(TokioReactor {
            rt,
            epoch: Instant::now(),
            last_turn_ns: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
        })
    }

    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        self.rt.handle()
    }

    /// Has the rate limit's interval (HOT-TURNS: the hot one for a `hot`
    /// caller) passed since the last busy turn began, at `now`?
    fn interval_passed(&self, now: u64, hot: bool) -> bool {
        let interval = if hot {
            HOT_TURN_INTERVAL
        } else {
            TURN_INTERVAL
        };
        now.saturating_sub(self.last_turn_ns.load(Relaxed)) >= interval.as_nanos() as u64
    }

    /// The tokio runtime, for shutdown once no worker uses it.
    pub(crate) fn into_runtime(self) -> tokio::runtime::Runtime {
        self.rt
    }
}

impl Reactor for TokioReactor {
    fn block(
        &self,
        wake: &mut (dyn Future<Output = ()> + Unpin),
        deadline: Option<Instant>,
    ) -> bool {
        self.waiting.fetch_add(1, Relaxed);
        let _waiting = Waiting(&self.waiting);
        self.rt.block_on(async {
            match deadline {
                None => {
                    wake.await;
                    false
                }
                Some(deadline) => {
                    let deadline = tokio::time::Instant::from_std(deadline);
                    tokio::time::timeout_at(deadline, wake).await.is_err()
                }
            }
        })
    }

    fn turn(&self, hot: bool) -> bool {
        let now = self.epoch.elapsed().as_nanos() as u64;
        if !self.interval_passed(now, hot) {
            return false;
        }
        self.last_turn_ns.store(now, Relaxed);
        // Pending once (waking itself), then ready: with tokio's core, one
        // pass of its loop runs the tasks spawned on it and one driver
        // turn that does not block (the self-wake unparked the driver).
        // Without the core (an idle worker holds it and is turning the
        // drivers), it returns at once.
        self.rt.block_on(YieldOnce(false));
        true
    }

    fn turn_ready(&self, hot: bool) -> bool {
        self.interval_passed(self.epoch.elapsed().as_nanos() as u64, hot)
    }

    fn in_own_task(&self) -> bool {
        tokio::task::try_id().is_some()
    }

    fn starved(&self, period: Duration) -> bool {
        let now = self.epoch.elapsed().as_nanos() as u64;
        self.waiting.load(Relaxed) == 0
            && now.saturating_sub(self.last_turn_ns.load(Relaxed)) >= period.as_nanos() as u64
    }

    fn run_budgeted(
        &self,
        phase: &mut dyn FnMut(&dyn Fn() -> bool) -> Option<PhaseEnd>,
    ) -> PhaseEnd {
        // COOP-BUDGET: tokio's `Handle::block_on` polls its future under a
        // fresh budget each time (it does not take the core or turn the
        // drivers, so idle workers keep the reactor). A spent budget ends
        // one poll: the self-wake makes the next one immediate (a flag, no
        // system call).
        let spent = || !tokio::task::coop::has_budget_remaining();
        self.rt
            .handle()
            .block_on(std::future::poll_fn(|cx| match phase(&spent) {
                Some(end) => Poll::Ready(end),
                None => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            }))
    }
}

/// Counts a worker out of an idle wait, however the wait ends.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// Pending on its first poll (after waking itself), ready on the second.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
