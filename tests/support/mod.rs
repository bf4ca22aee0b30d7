//! Helpers for the runtime tests: waits with deadlines, drop counters.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Generous deadline for anything a test waits on.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Waits (yielding) until `cond` holds; panics with `what` at the deadline.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::yield_now();
    }
}

/// Counts its drops.
pub struct DropCounter(pub Arc<AtomicUsize>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// Runs `f` on a thread and fails (naming `what`) if it does not finish
/// within the deadline: a hang fails the test instead of stalling CI.
/// A panic inside `f` is raised again here with its own message (it used
/// to read as a hang: the channel closed and the wait reported a timeout).
pub fn with_watchdog<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(Ok(v)) => v,
        Ok(Err(payload)) => std::panic::resume_unwind(payload),
        Err(_) => panic!("watchdog: {what} did not finish within {DEADLINE:?}"),
    }
}

/// A plain HTTP/1.1 GET over a real TCP connection; returns the body.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header end"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("HTTP status: {head}")));
    }
    Ok(body.to_owned())
}

/// One sample: metric name, labels as they appear, value.
pub type Sample = (String, Vec<(String, String)>, f64);

/// A parsed Prometheus text exposition.
pub struct Exposition {
    pub samples: Vec<Sample>,
    pub types: std::collections::HashMap<String, String>,
}

impl Exposition {
    pub fn parse(text: &str) -> Exposition {
        let mut samples = Vec::new();
        let mut types = std::collections::HashMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(n), Some(t)) = (parts.next(), parts.next()) {
                    types.insert(n.to_owned(), t.to_owned());
                }
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().expect("sample value"),
            };
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let (k, v) = l.split_once('=').expect("label");
                    (k.to_owned(), v.trim_matches('"').to_owned())
                })
                .collect();
            samples.push((name.to_owned(), labels, value));
        }
        Exposition { samples, types }
    }

    /// Sum of every sample of `name` whose labels include all of `with`.
    pub fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, labels, _)| {
                n == name
                    && with
                        .iter()
                        .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    /// Whether any sample of `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|(n, _, _)| n == name)
    }
}

/// [`with_watchdog`] with a deadline of its own.
pub fn with_watchdog_for<T: Send + 'static>(
    what: &str,
    deadline: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(deadline) {
        Ok(v) => v,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("watchdog: {what} did not finish within {deadline:?}")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            panic!("watchdog: {what} panicked (see its message above)")
        }
    }
}

/// Multiplier for stress counts: `UNPLUG_STRESS_SCALE` (default 1.0). The
/// tests document their full-size counts next to their defaults.
pub fn stress_scale() -> f64 {
    std::env::var("UNPLUG_STRESS_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .unwrap_or(1.0)
}

/// `base` scaled by [`stress_scale`], at least 1.
pub fn scaled(base: usize) -> usize {
    ((base as f64 * stress_scale()).round() as usize).max(1)
}

/// Wakes a parked thread; the flag keeps a wake before the park.
struct ThreadWake {
    thread: std::thread::Thread,
    woken: std::sync::atomic::AtomicBool,
}

impl std::task::Wake for ThreadWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, SeqCst);
        self.thread.unpark();
    }
}

/// A tiny block-on of our own (usable after the runtime is gone): polls
/// `fut` on this thread until it is ready or `timeout` passes (`None`).
pub fn block_on_timeout<F: std::future::Future>(fut: F, timeout: Duration) -> Option<F::Output> {
    let deadline = Instant::now() + timeout;
    let wake = Arc::new(ThreadWake {
        thread: std::thread::current(),
        woken: std::sync::atomic::AtomicBool::new(false),
    });
    let waker = std::task::Waker::from(wake.clone());
    let mut cx = std::task::Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Some(v);
        }
        while !wake.woken.swap(false, SeqCst) {
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            std::thread::park_timeout(deadline - now);
        }
    }
}

/// Polls `fut` once with a waker that does nothing.
pub fn poll_once<F: std::future::Future + Unpin>(fut: &mut F) -> std::task::Poll<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    std::pin::Pin::new(fut).poll(&mut cx)
}

/// Waits (yielding) until `cond` holds or `timeout` passes; returns whether
/// it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::yield_now();
    }
}

/// Installs `handler` for SIGUSR2 (the stress tests' way to stall a chosen
/// thread wherever it is, widening a race window). The handler must only
/// touch atomics and the clock.
pub fn install_sigusr2(handler: extern "C" fn(libc::c_int)) {
    // SAFETY: a zeroed sigaction is valid; the handler is async-signal-safe
    // by the contract above; SA_RESTART so interrupted calls resume.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as usize;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGUSR2, &action, std::ptr::null_mut()),
            0
        );
    }
}

/// Does a worker of `rt` on `cpu` run (not parked or parking)?
pub fn running_on(rt: &unplug::Runtime, cpu: usize) -> bool {
    rt.workers().iter().any(|w| {
        w.cpu == Some(cpu)
            && !matches!(
                w.state,
                unplug::worker::WorkerState::Parked | unplug::worker::WorkerState::Parking
            )
    })
}

/// This test binary's `/metrics` endpoint (the recorder is process-wide:
/// started once, on a free port).
pub fn metrics_server() -> std::net::SocketAddr {
    static SERVER: std::sync::OnceLock<unplug::metrics::MetricsServer> = std::sync::OnceLock::new();
    SERVER
        .get_or_init(|| unplug::metrics::serve_prometheus("127.0.0.1:0").unwrap())
        .addr()
}

/// A scrape of [`metrics_server`], parsed.
pub fn scrape_metrics() -> Exposition {
    Exposition::parse(&http_get(metrics_server(), "/metrics").unwrap())
}

/// Scrapes [`metrics_server`] until `cond` holds (true) or `within` passes
/// (false, with the last scrape).
pub fn scrape_metrics_until(
    within: Duration,
    cond: impl Fn(&Exposition) -> bool,
) -> (bool, Exposition) {
    let end = Instant::now() + within;
    loop {
        let e = scrape_metrics();
        if cond(&e) {
            return (true, e);
        }
        if Instant::now() > end {
            return (false, e);
        }
        std::thread::yield_now();
    }
}

/// Every log record at warn or above, with when it was logged: the test
/// binary's logger ([`logs`]).
pub struct LogCapture(std::sync::Mutex<Vec<(Instant, String)>>);

impl LogCapture {
    /// Forgets what was logged so far.
    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }

    /// The messages logged so far.
    pub fn lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// When the first message matching `matches` was logged.
    pub fn first(&self, matches: impl Fn(&str) -> bool) -> Option<Instant> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|(_, l)| matches(l))
            .map(|(at, _)| *at)
    }
}

impl log::Log for LogCapture {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Warn
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            let line = r.args().to_string();
            self.0.lock().unwrap().push((Instant::now(), line));
        }
    }
    fn flush(&self) {}
}

/// The test binary's logger, installed on first use (one per process).
pub fn logs() -> &'static LogCapture {
    static LOGS: std::sync::OnceLock<&'static LogCapture> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let capture: &'static LogCapture =
            Box::leak(Box::new(LogCapture(std::sync::Mutex::new(Vec::new()))));
        log::set_logger(capture).expect("no other logger in this binary");
        log::set_max_level(log::LevelFilter::Warn);
        capture
    })
}

/// Runs this test binary's test `test_name` again, alone, in a child
/// process with the environment variable `env` set to `test_name` (the
/// test sees it and runs its case there: a crash or an abort then fails
/// the case instead of the whole binary). A child still running after
/// [`DEADLINE`] is killed (status `None`). Returns the child's exit status
/// and its stdout and stderr.
pub fn rerun_in_child(test_name: &str, env: &str) -> (Option<std::process::ExitStatus>, String) {
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(env, test_name)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("re-run the test binary");
    let finished = wait_until(DEADLINE, || matches!(child.try_wait(), Ok(Some(_))));
    if !finished {
        let _ = child.kill();
    }
    let output = child.wait_with_output().expect("child output");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (finished.then_some(output.status), report)
}

/// Holds the thread for `d` without yielding: a poll that keeps its worker.
pub fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// One time origin for the whole test process, for stamps that cross
/// threads (a datagram's send time read by its receiver).
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// A fan-out storm, run as an unplug task: batches of `batch` children
/// spawned from it, each spinning `poll` once (so they wait in the run
/// queue, displaced from the LIFO slot), the next batch once the last
/// child of this one is done, until `stop`; `done` counts the children.
pub async fn fan_out_storm(
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    batch: usize,
    poll: Duration,
) {
    let left = Arc::new(AtomicUsize::new(0));
    let batch_done = Arc::new(tokio::sync::Notify::new());
    while !stop.load(SeqCst) {
        left.store(batch, SeqCst);
        for _ in 0..batch {
            let (left, batch_done, done) = (left.clone(), batch_done.clone(), done.clone());
            drop(unplug::spawn(async move {
                spin(poll);
                done.fetch_add(1, SeqCst);
                if left.fetch_sub(1, SeqCst) == 1 {
                    batch_done.notify_one();
                }
            }));
        }
        batch_done.notified().await;
    }
}

/// How late `samples` sleeps of 1 ms (tokio's timer) come back, one after
/// another, measured inside the task that sleeps.
pub async fn sleep_lateness(samples: usize) -> Vec<Duration> {
    let d = Duration::from_millis(1);
    let mut late = Vec::new();
    for _ in 0..samples {
        let start = Instant::now();
        tokio::time::sleep(d).await;
        late.push(start.elapsed().saturating_sub(d));
    }
    late
}

/// Starts [`fan_out_storm`] on `rt` and waits until two of its batches
/// have run.
pub fn start_fan_out_storm(
    rt: &unplug::Runtime,
    stop: &Arc<AtomicBool>,
    batch: usize,
    poll: Duration,
) {
    let done = Arc::new(AtomicUsize::new(0));
    drop(rt.spawn(fan_out_storm(stop.clone(), done.clone(), batch, poll)));
    wait_for("the storm to run", || done.load(SeqCst) > 2 * batch);
}

/// [`sleep_lateness`] in `sleepers` tasks at once on `rt`: every sample.
pub fn sleepers_lateness(rt: &unplug::Runtime, sleepers: usize, samples: usize) -> Vec<Duration> {
    let handles: Vec<_> = (0..sleepers)
        .map(|_| rt.spawn(sleep_lateness(samples)))
        .collect();
    let mut late = Vec::new();
    for handle in handles {
        late.extend(rt.block_on(handle).unwrap());
    }
    late
}
