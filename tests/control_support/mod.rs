//! Helpers for the controller-defect tests (issue 13): hold a poll open on
//! chosen workers, run code inside such a poll, watchdogs whose report
//! includes the workers' states (queried with a time limit of its own, so a
//! held pool lock cannot hang the report).
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use unplug::worker::WorkerState;
use unplug::{Handle, WorkerInfo};

/// The CPUs the process may use.
pub fn cpus() -> Vec<usize> {
    unplug::worker::affinity::allowed_cpus().unwrap()
}

/// The two CPUs the controller tests use, or `None` (skipped, saying why).
pub fn two_cpus() -> Option<(usize, usize)> {
    let c = cpus();
    if c.len() < 2 {
        eprintln!("skipped: needs two CPUs");
        return None;
    }
    Some((c[0], c[1]))
}

/// A runtime of two workers, worker 0 on `c0` and worker 1 on `c1`.
pub fn pair_runtime(c0: usize, c1: usize) -> unplug::Runtime {
    unplug::Runtime::builder()
        .workers(2)
        .cpus([c0, c1])
        .build()
        .unwrap()
}

/// Runs `f` on a thread of its own; its result comes on the channel.
pub fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx
}

/// Ids of the workers `Running` or `Idle` on `cpu`.
pub fn live_on(h: &Handle, cpu: usize) -> Vec<usize> {
    h.workers()
        .into_iter()
        .filter(|w| {
            w.cpu == Some(cpu) && matches!(w.state, WorkerState::Running | WorkerState::Idle)
        })
        .map(|w| w.id)
        .collect()
}

/// The id of the worker this thread is, from its name (`<prefix>-<id>`), or
/// None off a worker thread.
pub fn worker_id_here() -> Option<usize> {
    let t = std::thread::current();
    let name = t.name()?;
    name.rsplit_once('-')?.1.parse().ok()
}

/// `workers()` with a time limit (a controller call that holds the pool lock
/// must not hang a diagnostic).
pub fn workers_timeout(h: &Handle, limit: Duration) -> Option<Vec<WorkerInfo>> {
    let (tx, rx) = mpsc::channel();
    let h = h.clone();
    std::thread::spawn(move || {
        let _ = tx.send(h.workers());
    });
    rx.recv_timeout(limit).ok()
}

/// "id:state@cpu" for every worker, or a note that `workers()` hung.
pub fn describe(h: &Handle) -> String {
    match workers_timeout(h, Duration::from_secs(2)) {
        Some(ws) => ws
            .iter()
            .map(|w| format!("{}:{:?}@{:?}", w.id, w.state, w.cpu))
            .collect::<Vec<_>>()
            .join(" "),
        None => "<workers() did not answer within 2 s>".to_owned(),
    }
}

/// The state of worker `id`, if listed.
pub fn state_of(h: &Handle, id: usize) -> Option<WorkerState> {
    h.workers()
        .into_iter()
        .find(|w| w.id == id)
        .map(|w| w.state)
}

/// Workers in Running or Idle state.
pub fn live_count(ws: &[WorkerInfo]) -> usize {
    ws.iter()
        .filter(|w| matches!(w.state, WorkerState::Running | WorkerState::Idle))
        .count()
}

/// Runs `f` on a thread; if it does not finish within `limit`, panics with
/// `what` and the workers' states (the scenario thread is left behind: a
/// hang fails the test instead of stalling it). A panic inside `f` is
/// re-raised with its message.
pub fn watchdog<T: Send + 'static>(
    what: &str,
    limit: Duration,
    h: &Handle,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name(format!("scenario: {what}"))
        .spawn(move || {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            let _ = tx.send(r);
        })
        .unwrap();
    match rx.recv_timeout(limit) {
        Ok(Ok(v)) => v,
        Ok(Err(payload)) => std::panic::resume_unwind(payload),
        Err(_) => panic!(
            "watchdog: {what} did not finish within {limit:?}; workers: [{}]",
            describe(h)
        ),
    }
}

/// Waits for a thread's result with a time limit.
pub fn join_timeout<T>(rx: &mpsc::Receiver<T>, limit: Duration) -> Option<T> {
    rx.recv_timeout(limit).ok()
}

/// The message of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic>".to_owned()
    }
}

/// Whether a freshly spawned task completes within `limit`.
pub fn task_runs_within(h: &Handle, limit: Duration) -> bool {
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    drop(h.spawn(async move { d.store(true, SeqCst) }));
    crate::support::wait_until(limit, || done.load(SeqCst))
}

type Job = Box<dyn FnOnce() + Send>;

enum Cmd {
    Run(Job),
    Release,
}

/// A task holding one worker inside a single long poll: it blocks that
/// worker until released (or 60 s pass), and runs jobs sent to it on that
/// worker, inside the poll.
pub struct Holder {
    /// The worker it holds.
    pub worker: usize,
    cmds: mpsc::Sender<Cmd>,
    released: bool,
}

impl Holder {
    /// Lets the poll return.
    pub fn release(&mut self) {
        if !self.released {
            self.released = true;
            let _ = self.cmds.send(Cmd::Release);
        }
    }

    /// Runs `f` inside the held poll, on the held worker; its result comes
    /// back on the returned channel.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> mpsc::Receiver<T> {
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        let _ = self.cmds.send(Cmd::Run(job));
        rx
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.release();
    }
}

/// Spawns `n` holder tasks and waits (up to `limit`) until each is inside
/// its poll on a distinct worker. Sorted by worker id.
pub fn hold_workers(h: &Handle, n: usize, limit: Duration) -> Result<Vec<Holder>, String> {
    let (up_tx, up_rx) = mpsc::channel::<(usize, usize)>();
    let mut senders = Vec::new();
    for k in 0..n {
        let (cmd_tx, cmd_rx) = mpsc::channel::<Cmd>();
        senders.push(Some(cmd_tx));
        let up_tx = up_tx.clone();
        drop(h.spawn(async move {
            let me = worker_id_here().unwrap_or(usize::MAX);
            let _ = up_tx.send((k, me));
            let until = Instant::now() + Duration::from_secs(60);
            // The long poll: blocks this worker until released.
            loop {
                let left = until.saturating_duration_since(Instant::now());
                match cmd_rx.recv_timeout(left) {
                    Ok(Cmd::Run(job)) => job(),
                    Ok(Cmd::Release) | Err(_) => break,
                }
            }
        }));
    }
    let deadline = Instant::now() + limit;
    let mut holders = Vec::new();
    while holders.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match up_rx.recv_timeout(left) {
            Ok((k, worker)) => holders.push(Holder {
                worker,
                cmds: senders[k].take().unwrap(),
                released: false,
            }),
            Err(_) => {
                return Err(format!(
                    "only {} of {n} holder tasks got a worker within {limit:?} (on {:?}); workers: [{}]",
                    holders.len(),
                    holders.iter().map(|x| x.worker).collect::<Vec<_>>(),
                    describe(h)
                ))
            }
        }
    }
    holders.sort_by_key(|x| x.worker);
    Ok(holders)
}

/// Waits (yielding) until `cond` or `limit`; returns whether it held.
pub fn wait_until(limit: Duration, cond: impl FnMut() -> bool) -> bool {
    crate::support::wait_until(limit, cond)
}

/// Collects failed expectations and reports them all at once.
#[derive(Default)]
pub struct Findings(pub Vec<String>);

impl Findings {
    pub fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            let w = what();
            eprintln!("FINDING: {w}");
            self.0.push(w);
        }
    }

    pub fn assert_none(&self, test: &str) {
        assert!(
            self.0.is_empty(),
            "{test}: {} failed expectation(s):\n  - {}",
            self.0.len(),
            self.0.join("\n  - ")
        );
    }
}
