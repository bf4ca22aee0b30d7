//! Park metrics, through the `metrics` facade, served by
//! `metrics-exporter-prometheus` (latencies as Prometheus *histograms*).
//!
//! Names (prefix `unplug_` by default, [`Builder::metrics_prefix`]):
//!
//! | name | type | labels |
//! |------|------|--------|
//! | `park_latency_seconds` | histogram: park request → `parked` | `worker` |
//! | `park_to_inactive_seconds` | histogram: park request → `park()` returning | `worker` |
//! | `unpark_latency_seconds` | histogram: unpark request → the worker running | `worker` |
//! | `task_poll_seconds` | histogram, opt-in ([`Builder::metrics_poll_time`]) | |
//! | `parks_total`, `unparks_total` | counters | `worker` |
//! | `tasks_spawned_total`, `tasks_completed_total` | counters (completed: finished or cancelled) | |
//! | `tasks_polled_total`, `tasks_migrated_total`, `steals_total`, `idle_sleeps_total`, `wakeups_total` | counters | `worker` |
//! | `hotplug_events_total` | counter | `kind` |
//! | `worker_state` | gauge, 1 for the worker's current state, else 0 | `worker`, `cpu`, `state` |
//! | `workers` | gauge: workers by state | `state` |
//! | `queue_depth` | gauge | `queue` (`global`/`local`), `worker` |
//!
//! Handles are registered once (per worker when it starts). Park events are
//! recorded as they happen (they are rare); per-poll counts live in plain
//! per-worker atomics and a publisher thread copies them into the counters
//! every [`PUBLISH_INTERVAL`], so with metrics off the hot path pays nothing
//! beyond those increments.
//!
//! [`Builder::metrics_prefix`]: crate::Builder::metrics_prefix
//! [`Builder::metrics_poll_time`]: crate::Builder::metrics_poll_time

use crate::scheduler::Shared;
use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use unplug_worker::WorkerState;

/// The default metric name prefix.
pub const DEFAULT_PREFIX: &str = "unplug";

/// How often per-worker counts are published.
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(250);

/// Histogram buckets for every latency, in seconds: 1 µs to 1 s.
pub const LATENCY_BUCKETS: [f64; 19] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2,
    5e-2, 0.1, 0.25, 0.5, 1.0,
];

/// How long the exporter keeps histogram samples before its upkeep drains
/// them into the buckets (memory stays flat).
const UPKEEP: Duration = Duration::from_secs(5);

static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Has [`serve_prometheus`] installed the recorder in this process?
pub fn installed() -> bool {
    INSTALLED.load(Ordering::Acquire)
}

/// Why [`serve_prometheus`] failed. The runtime is unaffected.
#[derive(Debug)]
#[non_exhaustive]
pub enum MetricsError {
    /// The address could not be parsed.
    InvalidAddress(String),
    /// The listener could not be bound (in use, not permitted, ...).
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the exporter said.
        message: String,
    },
    /// A recorder is already installed in this process (by an earlier call
    /// or by other code).
    AlreadyInstalled,
    /// Anything else the exporter reported.
    Exporter(String),
}

impl fmt::Display for MetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricsError::InvalidAddress(a) => write!(f, "not a listen address: {a:?}"),
            MetricsError::Bind { addr, message } => write!(f, "cannot listen on {addr}: {message}"),
            MetricsError::AlreadyInstalled => {
                f.write_str("a metrics recorder is already installed")
            }
            MetricsError::Exporter(m) => write!(f, "prometheus exporter: {m}"),
        }
    }
}

impl std::error::Error for MetricsError {}

/// A running `/metrics` endpoint.
#[derive(Clone)]
pub struct MetricsServer {
    addr: SocketAddr,
    handle: PrometheusHandle,
}

impl MetricsServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The exposition text a scrape would get now.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

impl fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsServer")
            .field("addr", &self.addr)
            .finish()
    }
}

/// Parses a listen address; a bare port (`"9000"` or `":9000"`) binds
/// 127.0.0.1.
fn parse_addr(addr: &str) -> Result<SocketAddr, MetricsError> {
    let a = addr.trim();
    let port_only = a.strip_prefix(':').unwrap_or(a);
    if let Ok(port) = port_only.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    a.parse()
        .map_err(|_| MetricsError::InvalidAddress(addr.to_owned()))
}

/// Installs the Prometheus recorder and serves `/metrics` on `addr` (a bare
/// port binds 127.0.0.1; port 0 picks a free port, see
/// [`MetricsServer::addr`]). Call it before building the runtime: a runtime
/// built afterwards records its metrics (see [`Builder::metrics`]).
///
/// ```no_run
/// let server = unplug::metrics::serve_prometheus("127.0.0.1:9100").unwrap();
/// let rt = unplug::Runtime::new().unwrap();
/// println!("scrape http://{}/metrics", server.addr());
/// # drop(rt);
/// ```
///
/// [`Builder::metrics`]: crate::Builder::metrics
pub fn serve_prometheus(addr: &str) -> Result<MetricsServer, MetricsError> {
    let mut addr = parse_addr(addr)?;
    if addr.port() == 0 {
        // The exporter does not report the port it bound: pick a free one.
        let probe = std::net::TcpListener::bind(addr).map_err(|e| MetricsError::Bind {
            addr,
            message: e.to_string(),
        })?;
        addr = probe
            .local_addr()
            .map_err(|e| MetricsError::Exporter(e.to_string()))?;
    }
    if INSTALLED
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Err(MetricsError::AlreadyInstalled);
    }
    let result = start_exporter(addr);
    if result.is_err() {
        INSTALLED.store(false, Ordering::Release);
    }
    result
}

fn start_exporter(addr: SocketAddr) -> Result<MetricsServer, MetricsError> {
    let io = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| MetricsError::Exporter(e.to_string()))?;
    let builder = PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets(&LATENCY_BUCKETS)
        .map_err(|e| MetricsError::Exporter(e.to_string()))?
        .upkeep_timeout(UPKEEP);
    let (recorder, exporter) = {
        let _enter = io.enter();
        builder.build().map_err(|e| match e {
            metrics_exporter_prometheus::BuildError::FailedToCreateHTTPListener(message) => {
                MetricsError::Bind { addr, message }
            }
            other => MetricsError::Exporter(other.to_string()),
        })?
    };
    let handle = recorder.handle();
    // Only once the recorder is ours does the listener start serving; on
    // failure both are dropped here (nothing keeps listening).
    metrics::set_global_recorder(recorder).map_err(|_| MetricsError::AlreadyInstalled)?;
    std::thread::Builder::new()
        .name("unplug-metrics-http".into())
        .spawn(move || {
            let _ = io.block_on(exporter);
        })
        .map_err(|e| MetricsError::Exporter(e.to_string()))?;
    Ok(MetricsServer { addr, handle })
}

// ---- the runtime's handles ----

fn meta() -> Metadata<'static> {
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()))
}

/// Name builder with the configured prefix.
#[derive(Clone, Debug)]
pub(crate) struct Names {
    prefix: String,
}

impl Names {
    fn key(&self, name: &str, labels: Vec<Label>) -> Key {
        Key::from_parts(format!("{}_{name}", self.prefix), labels)
    }

    fn counter(&self, name: &str, labels: Vec<Label>) -> Counter {
        metrics::with_recorder(|r| r.register_counter(&self.key(name, labels), &meta()))
    }

    fn gauge(&self, name: &str, labels: Vec<Label>) -> Gauge {
        metrics::with_recorder(|r| r.register_gauge(&self.key(name, labels), &meta()))
    }

    fn histogram(&self, name: &str, labels: Vec<Label>) -> Histogram {
        metrics::with_recorder(|r| r.register_histogram(&self.key(name, labels), &meta()))
    }
}

/// The kinds of hotplug event counted.
pub(crate) const HOTPLUG_KINDS: [&str; 6] = [
    "unplug_cpu",
    "plug_cpu",
    "park_worker",
    "unpark_worker",
    "set_workers",
    "follow",
];

/// Runtime-wide handles.
pub(crate) struct RuntimeMetrics {
    names: Names,
    pub(crate) poll_time: Option<Histogram>,
    spawned: Counter,
    completed: Counter,
    hotplug: HashMap<&'static str, Counter>,
    workers_by_state: Vec<(WorkerState, Gauge)>,
    global_depth: Gauge,
    /// (worker, cpu) whose `worker_state` series were last set, so a
    /// re-pinned worker's old series can be zeroed.
    last_cpu: Mutex<HashMap<usize, Option<usize>>>,
}

const STATES: [WorkerState; 6] = [
    WorkerState::Running,
    WorkerState::Idle,
    WorkerState::Parking,
    WorkerState::Parked,
    WorkerState::Stopping,
    WorkerState::Stopped,
];

/// Every metric with its kind and help text.
const DESCRIPTIONS: [(&str, Kind, &str); 17] = [
    (
        "park_latency_seconds",
        Kind::Histogram,
        "Park request to the parked completion, per worker.",
    ),
    (
        "park_to_inactive_seconds",
        Kind::Histogram,
        "Park request to park() returning with the worker inactive, per worker.",
    ),
    (
        "unpark_latency_seconds",
        Kind::Histogram,
        "Unpark request to the worker running again, per worker.",
    ),
    (
        "task_poll_seconds",
        Kind::Histogram,
        "Duration of one task poll (opt-in).",
    ),
    ("parks_total", Kind::Counter, "Parks completed, per worker."),
    (
        "unparks_total",
        Kind::Counter,
        "Unparks of parked workers, per worker.",
    ),
    ("tasks_spawned_total", Kind::Counter, "Tasks spawned."),
    (
        "tasks_completed_total",
        Kind::Counter,
        "Tasks finished (completed, panicked or cancelled).",
    ),
    (
        "tasks_polled_total",
        Kind::Counter,
        "Task polls, per worker.",
    ),
    (
        "tasks_migrated_total",
        Kind::Counter,
        "Tasks handed to other workers when a worker parked or stopped.",
    ),
    (
        "steals_total",
        Kind::Counter,
        "Successful steals from other workers, per worker.",
    ),
    (
        "idle_sleeps_total",
        Kind::Counter,
        "Idle sleeps entered, per worker.",
    ),
    (
        "wakeups_total",
        Kind::Counter,
        "Idle sleeps ended by work, per worker.",
    ),
    (
        "hotplug_events_total",
        Kind::Counter,
        "Controller changes by kind.",
    ),
    (
        "worker_state",
        Kind::Gauge,
        "1 for the worker's current state (with its CPU), else 0.",
    ),
    ("workers", Kind::Gauge, "Workers by state."),
    (
        "queue_depth",
        Kind::Gauge,
        "Tasks queued: the global injector, or a worker's local queue.",
    ),
];

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Names {
    fn describe(&self) {
        for (name, kind, help) in DESCRIPTIONS {
            let key = metrics::KeyName::from(format!("{}_{name}", self.prefix));
            let unit = name.ends_with("_seconds").then_some(metrics::Unit::Seconds);
            let help = metrics::SharedString::from(help);
            metrics::with_recorder(|r| match kind {
                Kind::Counter => r.describe_counter(key, unit, help),
                Kind::Gauge => r.describe_gauge(key, unit, help),
                Kind::Histogram => r.describe_histogram(key, unit, help),
            });
        }
    }
}

impl RuntimeMetrics {
    pub(crate) fn new(prefix: &str, poll_time: bool) -> Self {
        let names = Names {
            prefix: prefix.to_owned(),
        };
        names.describe();
        let hotplug = HOTPLUG_KINDS
            .iter()
            .map(|&k| {
                (
                    k,
                    names.counter("hotplug_events_total", vec![Label::new("kind", k)]),
                )
            })
            .collect();
        RuntimeMetrics {
            poll_time: poll_time.then(|| names.histogram("task_poll_seconds", vec![])),
            spawned: names.counter("tasks_spawned_total", vec![]),
            completed: names.counter("tasks_completed_total", vec![]),
            hotplug,
            workers_by_state: STATES
                .iter()
                .map(|&s| {
                    (
                        s,
                        names.gauge("workers", vec![Label::new("state", s.as_str())]),
                    )
                })
                .collect(),
            global_depth: names.gauge("queue_depth", vec![Label::new("queue", "global")]),
            last_cpu: Mutex::new(HashMap::new()),
            names,
        }
    }

    pub(crate) fn worker(&self, id: usize) -> WorkerMetrics {
        let w = || vec![Label::new("worker", id.to_string())];
        let n = &self.names;
        WorkerMetrics {
            park_latency: n.histogram("park_latency_seconds", w()),
            park_to_inactive: n.histogram("park_to_inactive_seconds", w()),
            unpark_latency: n.histogram("unpark_latency_seconds", w()),
            parks: n.counter("parks_total", w()),
            unparks: n.counter("unparks_total", w()),
            polled: n.counter("tasks_polled_total", w()),
            migrated: n.counter("tasks_migrated_total", w()),
            steals: n.counter("steals_total", w()),
            idle_sleeps: n.counter("idle_sleeps_total", w()),
            wakeups: n.counter("wakeups_total", w()),
            local_depth: n.gauge(
                "queue_depth",
                vec![
                    Label::new("queue", "local"),
                    Label::new("worker", id.to_string()),
                ],
            ),
        }
    }

    pub(crate) fn hotplug_event(&self, kind: &'static str) {
        if let Some(c) = self.hotplug.get(kind) {
            c.increment(1);
        }
    }

    fn worker_state_gauge(&self, id: usize, cpu: Option<usize>, state: WorkerState) -> Gauge {
        let cpu = cpu.map_or_else(|| "none".to_owned(), |c| c.to_string());
        self.names.gauge(
            "worker_state",
            vec![
                Label::new("worker", id.to_string()),
                Label::new("cpu", cpu),
                Label::new("state", state.as_str()),
            ],
        )
    }

    /// Copies the per-worker atomics into the counters and refreshes the
    /// gauges.
    pub(crate) fn publish(&self, shared: &Shared) {
        let (spawned, live) = shared.registry.counts();
        self.spawned.absolute(spawned as u64);
        self.completed.absolute((spawned - live) as u64);
        self.global_depth.set(shared.injector.len() as f64);
        for slot in shared.slots().iter() {
            if let Some(m) = &slot.metrics {
                slot.publish(m);
            }
        }
        let pool = shared.lock_pool();
        let mut by_state: HashMap<WorkerState, usize> = HashMap::new();
        let mut last = self.last_cpu.lock().unwrap_or_else(|p| p.into_inner());
        for e in &pool.entries {
            let state = e.worker.state();
            *by_state.entry(state).or_default() += 1;
            if let Some(previous) = last.insert(e.index, e.cpu) {
                if previous != e.cpu {
                    for s in STATES {
                        self.worker_state_gauge(e.index, previous, s).set(0.0);
                    }
                }
            }
            for s in STATES {
                self.worker_state_gauge(e.index, e.cpu, s)
                    .set(if s == state { 1.0 } else { 0.0 });
            }
        }
        // Workers resized away: their series drop to "stopped".
        let gone: Vec<(usize, Option<usize>)> = last
            .iter()
            .filter(|(id, _)| !pool.entries.iter().any(|e| e.index == **id))
            .map(|(&id, &cpu)| (id, cpu))
            .collect();
        for (id, cpu) in gone {
            for s in STATES {
                self.worker_state_gauge(id, cpu, s)
                    .set(if s == WorkerState::Stopped { 1.0 } else { 0.0 });
            }
            last.remove(&id);
        }
        for (state, gauge) in &self.workers_by_state {
            gauge.set(by_state.get(state).copied().unwrap_or(0) as f64);
        }
    }
}

/// One worker's handles.
pub(crate) struct WorkerMetrics {
    pub(crate) park_latency: Histogram,
    pub(crate) park_to_inactive: Histogram,
    pub(crate) unpark_latency: Histogram,
    pub(crate) parks: Counter,
    pub(crate) unparks: Counter,
    pub(crate) polled: Counter,
    pub(crate) migrated: Counter,
    pub(crate) steals: Counter,
    pub(crate) idle_sleeps: Counter,
    pub(crate) wakeups: Counter,
    pub(crate) local_depth: Gauge,
}

/// The publisher thread: every `PUBLISH_INTERVAL` until the runtime closes.
pub(crate) fn start_publisher(shared: &Arc<Shared>) {
    let weak: Weak<Shared> = Arc::downgrade(shared);
    let _ = std::thread::Builder::new()
        .name("unplug-metrics".into())
        .spawn(move || loop {
            let Some(shared) = weak.upgrade() else { return };
            if shared.is_closing() {
                return;
            }
            if let Some(m) = &shared.metrics {
                m.publish(&shared);
            }
            let wait = shared.publisher_wait.clone();
            drop(shared);
            wait.wait(PUBLISH_INTERVAL);
        });
}

/// Lets shutdown end the publisher's wait at once.
#[derive(Default)]
pub(crate) struct PublisherWait {
    stop: Mutex<bool>,
    cv: std::sync::Condvar,
}

impl PublisherWait {
    fn wait(&self, timeout: Duration) {
        let stop = self.stop.lock().unwrap_or_else(|p| p.into_inner());
        if !*stop {
            let _ = self.cv.wait_timeout(stop, timeout);
        }
    }

    pub(crate) fn stop(&self) {
        *self.stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_all();
    }
}
