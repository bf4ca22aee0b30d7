//! Helpers for the std (non-loom) tests: standard worker bodies and waits
//! with deadlines (never a sleep as synchronisation).
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};
use unplug_worker::{SpawnError, Worker, WorkerContext};

/// Generous deadline for anything a test waits on.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// What a busy body exposes to its controller.
#[derive(Default)]
pub struct Busy {
    /// True while the body is inside a unit of user work.
    pub in_work: AtomicBool,
    /// Units of work done.
    pub units: AtomicU64,
    /// Times the body came back from parkme.
    pub resumed: AtomicU64,
}

/// P1 loop that works (spins) as long as it is allowed to run.
pub fn busy_body(ctx: &WorkerContext<'_>, busy: &Busy) -> u64 {
    loop {
        while ctx.keep_running() {
            busy.in_work.store(true, SeqCst);
            for _ in 0..200 {
                std::hint::spin_loop();
            }
            busy.units.fetch_add(1, SeqCst);
            busy.in_work.store(false, SeqCst);
        }
        if ctx.should_stop() {
            return busy.units.load(SeqCst);
        }
        ctx.parkme();
        busy.resumed.fetch_add(1, SeqCst);
    }
}

/// Spawns a busy worker, optionally pinned.
pub fn spawn_busy(cpu: Option<usize>) -> Result<(Worker<u64>, Arc<Busy>), SpawnError> {
    let busy = Arc::new(Busy::default());
    let b = busy.clone();
    let worker = Worker::builder()
        .name("busy")
        .cpu_opt(cpu)
        .spawn(move |ctx| busy_body(ctx, &b))?;
    Ok((worker, busy))
}

/// P1 loop with no work: idle, park when asked, return when stopped.
pub fn idle_body(ctx: &WorkerContext<'_>) {
    idle_body_then(ctx, || {})
}

/// [`idle_body`] that calls `resumed` each time the worker leaves `parkme`
/// (its body runs again).
pub fn idle_body_then(ctx: &WorkerContext<'_>, mut resumed: impl FnMut()) {
    loop {
        while ctx.keep_running() {
            ctx.idle_wait(|| false);
        }
        if ctx.should_stop() {
            return;
        }
        ctx.parkme();
        resumed();
    }
}

/// The kernel's counters for thread `tid`: (voluntary switches,
/// involuntary switches, nanoseconds on a CPU).
pub fn kernel_counters(tid: i32) -> (u64, u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap();
    let field = |key: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let sched = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).unwrap();
    let ran = sched.split_whitespace().next().unwrap().parse().unwrap();
    (
        field("voluntary_ctxt_switches"),
        field("nonvoluntary_ctxt_switches"),
        ran,
    )
}

/// Runs `f` on its own thread and returns its result; fails the test if it
/// panics or does not return within [`DEADLINE`] (a hang fails instead of
/// stalling the test).
pub fn with_watchdog<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(r) => r,
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what} did not return within {DEADLINE:?}")
        }
    }
}

/// Waits (yielding) until `cond` holds; panics with `what` at the deadline.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

/// The kernel's state letter for thread `tid` of this process.
pub fn kernel_state(tid: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 1..];
    after.trim_start().chars().next().unwrap()
}

/// The CPUs this process may use.
pub fn allowed() -> Vec<usize> {
    unplug_worker::affinity::allowed_cpus().unwrap()
}
