//! Park metrics, through the `metrics` facade, recorded by
//! `metrics-exporter-prometheus` (latencies as Prometheus *histograms*) and
//! served by unplug's own `/metrics` endpoint (`endpoint.rs`).
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
mod endpoint;
mod recorder;

pub use endpoint::HEADER_READ_TIMEOUT;

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

/// How often the endpoint runs the recorder's upkeep, which drains
/// histogram samples into the buckets (memory stays flat). UPKEEP-OFTEN:
/// the exporter holds every sample raw until then, about 28 bytes each;
/// with `metrics_poll_time(true)` two workers record millions a second,
/// and at the 5 s this was, a red team measured 443 MB held after 4.5 s.
const UPKEEP: Duration = Duration::from_millis(100);

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
/// 127.0.0.1, and a host name (`"localhost:9000"`) its first address.
fn parse_addr(addr: &str) -> Result<SocketAddr, MetricsError> {
    let a = addr.trim();
    let port_only = a.strip_prefix(':').unwrap_or(a);
    if let Ok(port) = port_only.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Ok(parsed) = a.parse() {
        return Ok(parsed);
    }
    std::net::ToSocketAddrs::to_socket_addrs(a)
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| MetricsError::InvalidAddress(addr.to_owned()))
}

/// Installs the Prometheus recorder and serves `/metrics` on `addr` (a bare
/// port binds 127.0.0.1; port 0 picks a free port, see
/// [`MetricsServer::addr`]; a host name is resolved, its first address
/// used). Call it before building the runtime: a runtime built afterwards
/// records its metrics (see [`Builder::metrics`]).
///
/// The endpoint answers `GET` and `HEAD` of `/metrics` (any other path is
/// `404`, any other method `405`), closes a connection that sends nothing
/// within 30 s or does not finish its request head within
/// [`HEADER_READ_TIMEOUT`], and retries an accept that failed for want of
/// a resource (`EMFILE`, ...) after 50 ms (`runtime/src/metrics/endpoint.rs`).
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
    let addr = parse_addr(addr)?;
    if INSTALLED
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return Err(MetricsError::AlreadyInstalled);
    }
    let result = start_endpoint(addr);
    if result.is_err() {
        INSTALLED.store(false, Ordering::Release);
    }
    result
}

/// Binds `addr` (here, on the caller's thread: a bind error is the
/// caller's, and port 0's port is known at once), starts the endpoint's
/// thread, installs the recorder, then lets the thread serve. On a failure
/// nothing is left installed or listening. EXPORTER-THREAD: the endpoint's
/// tokio runtime is built, and on a failure dropped, on that thread:
/// dropping a tokio runtime inside an async context (a task of tokio's or
/// of unplug's calling `serve_prometheus`) panics.
fn start_endpoint(addr: SocketAddr) -> Result<MetricsServer, MetricsError> {
    let bind_error = |e: std::io::Error| MetricsError::Bind {
        addr,
        message: e.to_string(),
    };
    let listener = std::net::TcpListener::bind(addr).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let recorder = PrometheusBuilder::new()
        .set_buckets(&LATENCY_BUCKETS)
        .map_err(|e| MetricsError::Exporter(e.to_string()))?
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Suffix("poll_duration_seconds".into()),
            &POLL_BUCKETS,
        )
        .map_err(|e| MetricsError::Exporter(e.to_string()))?
        .build_recorder();
    let handle = recorder.handle();
    let (started_tx, started) = std::sync::mpsc::channel::<Result<(), MetricsError>>();
    let (go_tx, go) = std::sync::mpsc::channel::<bool>();
    let served = handle.clone();
    std::thread::Builder::new()
        .name("unplug-metrics-http".into())
        .spawn(move || {
            let io = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(io) => io,
                Err(e) => {
                    let _ = started_tx.send(Err(MetricsError::Exporter(e.to_string())));
                    return;
                }
            };
            let listener = {
                let _enter = io.enter();
                tokio::net::TcpListener::from_std(listener)
            };
            let listener = match listener {
                Ok(listener) => listener,
                Err(e) => {
                    let _ = started_tx.send(Err(MetricsError::Exporter(e.to_string())));
                    return;
                }
            };
            let _ = started_tx.send(Ok(()));
            // Serves only once the recorder is ours.
            if go.recv() == Ok(true) {
                io.block_on(endpoint::serve(listener, served, UPKEEP));
            }
        })
        .map_err(|e| MetricsError::Exporter(e.to_string()))?;
    started.recv().unwrap_or_else(|_| {
        Err(MetricsError::Exporter(
            "the endpoint thread ended before it started".into(),
        ))
    })?;
    if metrics::set_global_recorder(recorder).is_err() {
        let _ = go_tx.send(false);
        return Err(MetricsError::AlreadyInstalled);
    }
    let _ = go_tx.send(true);
    Ok(MetricsServer { addr, handle })
}
