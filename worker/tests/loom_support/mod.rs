//! Shared pieces of the loom models: the standard worker body and a
//! one-shot flag to wait on without spinning.
#![allow(dead_code)]

use event_listener::{Event, Listener};
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use unplug_worker::{Protocol, WorkerContext};

/// The preemption bound every model runs with (override with
/// `LOOM_MAX_PREEMPTIONS`).
pub const PREEMPTION_BOUND: usize = 2;

/// Runs `f` under loom with our preemption bound.
pub fn model<F>(f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(PREEMPTION_BOUND);
    }
    builder.check(f);
}

/// Environment variable that tells a re-run test binary which must-fail
/// model to run in-process.
const CHILD_ENV: &str = "UNPLUG_LOOM_MUST_FAIL";

/// Runs `f` as a model that must fail and returns what loom reported.
///
/// Loom's report of a deadlock or a failed assertion ends the process (its
/// panic does not unwind out of the model's green threads), so the model
/// runs in a child process: this test binary again, running only the test
/// named `test_name` with an environment variable set. In the child this
/// function runs the model; in the parent it returns the child's output,
/// after checking that the child failed.
pub fn model_must_fail<F>(test_name: &str, f: F) -> String
where
    F: Fn() + Sync + Send + 'static,
{
    if std::env::var(CHILD_ENV).as_deref() == Ok(test_name) {
        model(f);
        // Only reached if loom found nothing: the parent sees success and
        // fails the test.
        return String::new();
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
        "loom explored every interleaving and found no bug in {test_name}:\n{report}"
    );
    report
}

/// Counts what the worker body did, for the models' assertions.
#[derive(Default)]
pub struct Trace {
    /// Turns through `parkme()`.
    pub parkme_calls: AtomicUsize,
    /// Set when the body returns.
    pub exited: AtomicBool,
}

/// The P1 worker loop with no work source: idle while running, park when
/// asked, return when stopped.
pub fn idle_body(ctx: &WorkerContext<'_>, trace: &Trace) {
    loop {
        while ctx.keep_running() {
            ctx.idle_wait(|| false);
        }
        if ctx.should_stop() {
            break;
        }
        trace.parkme_calls.fetch_add(1, SeqCst);
        ctx.parkme(); // P1: unconditional after leaving for a park
    }
    trace.exited.store(true, SeqCst);
}

/// Spawns the standard worker on a loom thread; the thread marks the
/// protocol exited when the body returns, as `Worker` does.
pub fn spawn_idle_worker(
    protocol: &Arc<Protocol>,
    trace: &Arc<Trace>,
) -> loom::thread::JoinHandle<()> {
    let p = protocol.clone();
    let t = trace.clone();
    loom::thread::spawn(move || {
        idle_body(&p.context(), &t);
        p.mark_exited();
    })
}

/// A one-shot flag with a blocking wait (listen, re-check, wait).
#[derive(Default)]
pub struct Flag {
    set: AtomicBool,
    event: Event,
}

impl Flag {
    pub fn set(&self) {
        self.set.store(true, SeqCst);
        self.event.notify(usize::MAX);
    }

    pub fn is_set(&self) -> bool {
        self.set.load(SeqCst)
    }

    pub fn wait(&self) {
        while !self.is_set() {
            let listener = self.event.listen();
            if self.is_set() {
                return;
            }
            listener.wait();
        }
    }
}
