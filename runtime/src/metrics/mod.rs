//! Park metrics, through the `metrics` facade, served by
//! `metrics-exporter-prometheus` (latencies as Prometheus *histograms*).
//!
//! Names (prefix `unplug_` by default, [`Builder::metrics_prefix`]):
//!
//! | name | type | labels |
//! |------|------|--------|
//! | `park_latency_seconds` | histogram: park request → `parked`, once per park a call waited for (not a deferred one) | `worker` |
//! | `park_to_inactive_seconds` | histogram: park request → `park()` returning, as above | `worker` |
//! | `unpark_latency_seconds` | histogram: unpark request → the worker running | `worker` |
//! | `poll_duration_seconds` | histogram (1 µs to 10 s): one poll in 1024 timed, every poll with [`Builder::metrics_poll_time`] | `worker` |
//! | `schedule_latency_seconds` | histogram: runnable → poll start, one schedule in 1024 sampled (every one with [`Builder::metrics_poll_time`]) | |
//! | `long_polls_total` | counter: polls past [`Builder::long_poll_threshold`], each once | `worker` |
//! | `long_poll_running_seconds` | gauge: how long the current long poll has run, 0 if none | `worker` |
//! | `parks_total`, `unparks_total` | counters: the worker's parks, each once whoever asked (deferred and shared ones too), and their ends (an unpark, or a stop: a worker that ended is parked no more) | `worker` |
//! | `park_inactive_evidence_total` | counter: parks by the evidence of inactivity used (`kernel`, or `marker` where procfs is unreadable) | `evidence` |
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
//! beyond those increments. Shutdown publishes once more at its end: the
//! counts the runtime ends with (every task cancelled then counts as
//! completed) and every worker's `worker_state` at `stopped`.
//!
//! [`Builder::metrics_prefix`]: crate::Builder::metrics_prefix
//! [`Builder::metrics_poll_time`]: crate::Builder::metrics_poll_time
//! [`Builder::long_poll_threshold`]: crate::Builder::long_poll_threshold

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
mod recorder;

pub(crate) use recorder::{start_publisher, RuntimeMetrics};

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The default metric name prefix.
pub const DEFAULT_PREFIX: &str = "unplug";

/// How often per-worker counts are published.
pub const PUBLISH_INTERVAL: Duration = Duration::from_millis(250);

/// Histogram buckets for every latency, in seconds: 1 µs to 1 s.
pub const LATENCY_BUCKETS: [f64; 19] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2,
    5e-2, 0.1, 0.25, 0.5, 1.0,
];

/// Histogram buckets of `poll_duration_seconds`: 1 µs to 10 s (a poll
/// that long is what the long-poll detector is for).
pub const POLL_BUCKETS: [f64; 22] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2,
    5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
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

/// PREFIX-CHECKED: is `name` a Prometheus metric name
/// (`[a-zA-Z_:][a-zA-Z0-9_:]*`)? A runtime's metrics prefix must be one:
/// the exporter rewrote any other character to `_`, so runtimes built with
/// `"app-a"` and `"app_a"` wrote one series, each overwriting the other's
/// counters at every publish (a counter that went back and forth).
pub(crate) fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
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

/// Starts the exporter on a thread of its own, which then serves
/// `/metrics`. EXPORTER-THREAD: its tokio runtime is built, and on a
/// failure dropped, on that thread: dropping a tokio runtime inside an
/// async context (a task of tokio's or of unplug's calling
/// `serve_prometheus`) panics, and the panic used to skip the reset of
/// `INSTALLED`, refusing every later call.
fn start_exporter(addr: SocketAddr) -> Result<MetricsServer, MetricsError> {
    let (started_tx, started) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("unplug-metrics-http".into())
        .spawn(move || match build_exporter(addr) {
            Ok((io, exporter, server)) => {
                let _ = started_tx.send(Ok(server));
                let _ = io.block_on(exporter);
            }
            Err(e) => {
                let _ = started_tx.send(Err(e));
            }
        })
        .map_err(|e| MetricsError::Exporter(e.to_string()))?;
    started.recv().unwrap_or_else(|_| {
        Err(MetricsError::Exporter(
            "the exporter thread ended before it started".into(),
        ))
    })
}

/// The exporter's future, the runtime that runs it and the server's face.
type Exporter = (
    tokio::runtime::Runtime,
    metrics_exporter_prometheus::ExporterFuture,
    MetricsServer,
);

fn build_exporter(addr: SocketAddr) -> Result<Exporter, MetricsError> {
    let io = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| MetricsError::Exporter(e.to_string()))?;
    let builder = PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets(&LATENCY_BUCKETS)
        .map_err(|e| MetricsError::Exporter(e.to_string()))?
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Suffix("poll_duration_seconds".into()),
            &POLL_BUCKETS,
        )
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
    Ok((io, exporter, MetricsServer { addr, handle }))
}
