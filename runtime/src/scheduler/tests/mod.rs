//! Loom models over the scheduler's real code: the worker loop, the idle
//! sleep and wake-up, `next_task`, `steal`, abort, spawn and shutdown, with
//! the worker crate's real protocol under loom. Run with
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p unplug --lib --release scheduler::tests
//! ```
//!
//! Each model has a failing control: the same model with one fix switched
//! off (`crate::loom::regress`), which loom must catch. Loom's report ends
//! the process, so a control runs in a child process (see
//! [`model_must_fail`]).

mod loom_abort;
mod loom_abort_handle;
mod loom_busy_grace;
mod loom_lifo;
mod loom_search_handoff;
mod loom_shutdown;
mod loom_yield;

use super::{worker_loop, Hooks, Queues, Scheduler, Slot};
use crate::loom::regress::{self, Regression};
use crate::loom::{Arc, AtomicBool, AtomicUsize, Ordering::SeqCst};
use event_listener::{Event, Listener};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Wake, Waker};
use unplug_worker::{Notifier, Protocol};

/// The preemption bound every model runs with (override with
/// `LOOM_MAX_PREEMPTIONS`).
const PREEMPTION_BOUND: usize = 2;

/// Runs `f` under loom with our preemption bound.
fn model<F>(f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    model_bounded(PREEMPTION_BOUND, f);
}

/// Runs `f` under loom with preemption bound `bound` (unless
/// `LOOM_MAX_PREEMPTIONS` says otherwise).
fn model_bounded<F>(bound: usize, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(bound);
    }
    builder.check(f);
}

const CHILD_ENV: &str = "UNPLUG_RUNTIME_LOOM_MUST_FAIL";

/// Runs `f` with `regression` switched on, as a model that must fail, and
/// returns what loom reported. In the parent: re-runs this test binary for
/// `test_name` only, in a child process, and checks that it failed.
fn model_must_fail<F>(test_name: &str, regression: Regression, f: F) -> String
where
    F: Fn() + Sync + Send + 'static,
{
    model_must_fail_bounded(test_name, regression, PREEMPTION_BOUND, f)
}

/// [`model_must_fail`] with preemption bound `bound`.
fn model_must_fail_bounded<F>(test_name: &str, regression: Regression, bound: usize, f: F) -> String
where
    F: Fn() + Sync + Send + 'static,
{
    if std::env::var(CHILD_ENV).as_deref() == Ok(test_name) {
        regress::enable(regression);
        model_bounded(bound, f);
        return String::new(); // loom found nothing: the parent fails
    }
    let exe = std::env::current_exe().expect("test binary path");
    let output = std::process::Command::new(exe)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test_name)
        .output()
        .expect("re-run the test binary");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !output.status.success(),
        "loom explored every interleaving and found no bug in {test_name} with {regression:?}:\n{report}"
    );
    report
}

/// A scheduler with `n` workers, each the real `worker_loop::run` on a loom
/// thread with the real park protocol.
struct Pool {
    scheduler: Arc<Scheduler>,
    protocols: Vec<std::sync::Arc<Protocol>>,
    threads: Vec<loom::thread::JoinHandle<()>>,
}

impl Pool {
    fn start(n: usize) -> Pool {
        let scheduler = Arc::new(Scheduler::new(Hooks::default()));
        let mut protocols = Vec::new();
        let mut threads = Vec::new();
        for _ in 0..n {
            let protocol = std::sync::Arc::new(Protocol::new());
            let queues = Queues::new();
            let slot = Arc::new(Slot::new(&queues, Notifier::new(protocol.clone())));
            let index = scheduler.slot_count();
            scheduler.install_slot(index, slot.clone());
            let (s, p) = (scheduler.clone(), protocol.clone());
            threads.push(loom::thread::spawn(move || {
                worker_loop::run(&p.context(), s, index, slot, queues, |_| {});
                p.mark_exited();
            }));
            protocols.push(protocol);
        }
        Pool {
            scheduler,
            protocols,
            threads,
        }
    }

    /// Shutdown as the runtime does it (`Runtime::shutdown`): close, stop
    /// and join every worker, cancel what is left.
    fn shutdown(mut self) {
        self.scheduler.close();
        self.join_workers();
        self.scheduler.cancel_all();
    }

    /// Stops and joins every worker.
    fn join_workers(&mut self) {
        for p in &self.protocols {
            p.request_stop();
        }
        for t in self.threads.drain(..) {
            t.join().expect("worker thread");
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.join_workers();
    }
}

/// A one-shot flag with a blocking wait (listen, re-check, wait).
#[derive(Default)]
struct Flag {
    set: AtomicBool,
    event: Event,
}

impl Flag {
    fn set(&self) {
        self.set.store(true, SeqCst);
        self.event.notify(usize::MAX);
    }

    fn is_set(&self) -> bool {
        self.set.load(SeqCst)
    }

    fn wait(&self) {
        while !self.is_set() {
            let listener = self.event.listen();
            if self.is_set() {
                return;
            }
            listener.wait();
        }
    }
}

/// Spawns a parent that spawns a child (into its worker's LIFO slot) that
/// sets `child_ran`, and then blocks its worker until the child has run:
/// the long poll only another worker can end.
fn spawn_long_poll_behind_a_lifo_task(
    pool: &Pool,
    child_ran: &Arc<Flag>,
) -> crate::task::JoinHandle<()> {
    let flag = child_ran.clone();
    let scheduler = pool.scheduler.clone();
    Scheduler::spawn(&pool.scheduler, async move {
        let f = flag.clone();
        let child = Scheduler::spawn(&scheduler, async move { f.set() });
        flag.wait(); // the long poll: blocks this worker
        drop(child);
    })
}

/// Wakes `block_on`'s thread: a token (a wake before the park is kept).
///
/// The token is a *std* atomic on purpose: the waker reaches the worker
/// through async-task's own (std) atomics, which loom does not see, so a
/// loom object created here and touched there would be reported as a
/// causality violation of the harness, not of the scheduler. Loom runs one
/// thread at a time, so the std atomic is sequentially consistent; the
/// loom `unpark` carries the happens-before edge.
struct Signal {
    token: std::sync::atomic::AtomicBool,
    thread: loom::thread::Thread,
}

impl Wake for Signal {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.token.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// Polls `future` on this loom thread until it completes, parking between
/// polls until woken. A future nobody wakes leaves every thread blocked:
/// loom reports a deadlock.
fn block_on<F: Future>(future: F) -> F::Output {
    let signal = std::sync::Arc::new(Signal {
        token: std::sync::atomic::AtomicBool::new(false),
        thread: loom::thread::current(),
    });
    let waker = Waker::from(signal.clone());
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut Context::from_waker(&waker)) {
            return v;
        }
        while !signal
            .token
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            loom::thread::park();
        }
    }
}

/// Counts its drops.
struct DropCount(Arc<AtomicUsize>);

impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// Pending forever, never waking itself; counts its drop.
async fn pending_forever(dropped: DropCount) {
    let _keep = dropped;
    std::future::pending::<()>().await
}
