//! Typed errors of building a runtime.

use std::fmt;
use std::io;

/// Why [`Builder::build`](crate::Builder::build) failed. Nothing is left
/// running.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// `workers(0)`.
    ZeroWorkers,
    /// `cpus([])`.
    EmptyCpuList,
    /// A CPU in `cpus(..)` the process may not use.
    CpuNotAllowed {
        /// The CPU that was asked for.
        cpu: usize,
        /// The CPUs the process may use.
        allowed: Vec<usize>,
    },
    /// The tokio reactor could not be started.
    Reactor(io::Error),
    /// A worker thread could not be spawned.
    Worker(unplug_worker::SpawnError),
    /// More workers than [`MAX_WORKERS`](crate::MAX_WORKERS).
    TooManyWorkers {
        /// The number asked for.
        requested: usize,
        /// The most a runtime may have.
        max: usize,
    },
    /// The thread name contains a NUL byte, which no OS thread name may.
    InvalidThreadName(String),
    /// The metrics prefix is not the start of a Prometheus metric name
    /// (`[a-zA-Z_:][a-zA-Z0-9_:]*`). The exporter would rewrite it (`-` to
    /// `_`, ...), and two runtimes whose prefixes differ only there would
    /// overwrite each other's series.
    InvalidMetricsPrefix(String),
    /// A worker's `on_thread_start` hook panicked.
    StartHookPanicked {
        /// The worker whose hook panicked.
        worker: usize,
        /// The panic message.
        message: String,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroWorkers => f.write_str("a runtime needs at least one worker"),
            BuildError::EmptyCpuList => f.write_str("the CPU list is empty"),
            BuildError::CpuNotAllowed { cpu, allowed } => {
                write!(
                    f,
                    "CPU {cpu} is not allowed for this process (allowed: {allowed:?})"
                )
            }
            BuildError::Reactor(e) => write!(f, "cannot start the tokio reactor: {e}"),
            BuildError::Worker(e) => write!(f, "cannot start a worker: {e}"),
            BuildError::TooManyWorkers { requested, max } => {
                write!(f, "{requested} workers asked for; the most is {max}")
            }
            BuildError::InvalidThreadName(name) => {
                write!(f, "thread name {name:?} contains a NUL byte")
            }
            BuildError::InvalidMetricsPrefix(prefix) => write!(
                f,
                "metrics prefix {prefix:?} is not a Prometheus name (letters, digits, `_` \
                 and `:`, not starting with a digit)"
            ),
            BuildError::StartHookPanicked { worker, message } => {
                write!(f, "worker {worker}'s start hook panicked: {message}")
            }
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Reactor(e) => Some(e),
            BuildError::Worker(e) => Some(e),
            _ => None,
        }
    }
}
