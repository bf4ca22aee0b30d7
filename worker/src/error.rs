//! Typed errors. No operation of this crate panics on bad input; it returns
//! one of these.

use std::any::Any;
use std::fmt;
use std::io;

/// Why a worker could not be spawned. No thread is left behind.
#[derive(Debug)]
#[non_exhaustive]
pub enum SpawnError {
    /// The CPU is not one the process may use.
    CpuNotAllowed {
        /// The CPU that was asked for.
        cpu: usize,
        /// The CPUs the process may use.
        allowed: Vec<usize>,
    },
    /// The kernel refused to pin the new thread.
    Affinity {
        /// The CPU that was asked for.
        cpu: usize,
        /// What `sched_setaffinity` said.
        source: io::Error,
    },
    /// The OS could not create the thread.
    Thread(io::Error),
    /// A CPU was asked for, but this build cannot pin threads
    /// ([`AFFINITY_SUPPORTED`](crate::affinity::AFFINITY_SUPPORTED) is
    /// false). Checked before any thread starts.
    Unsupported,
    /// The thread name contains a NUL byte, which no OS thread name can
    /// hold. Checked before any thread starts.
    InvalidName,
    /// [`Builder::protocol`](crate::Builder::protocol) was given a protocol
    /// that is not fresh: another worker was spawned on it, or its word
    /// has left the fresh state (a request, an exit). Checked before any
    /// thread starts.
    ProtocolInUse,
}

/// Why `park()` returned without the worker being parked and inactive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParkError {
    /// The worker is stopping or stopped (a stop was requested, or its body
    /// returned), so it will never park.
    Stopped,
    /// An `unpark()` (or a timed-out `park_timeout` of another caller)
    /// withdrew this park request before it completed.
    Superseded,
    /// The deadline passed first. The request was withdrawn (the worker is
    /// not left half-parked), unless the wait was a shared one
    /// (`Worker::wait_park_shared`), which leaves it to its owner.
    Timeout,
    /// `park()` was called on the worker's own thread; it would wait for
    /// itself forever.
    FromWorkerThread,
    /// The [`ParkTicket`](crate::ParkTicket) passed to a wait was issued
    /// by another worker's protocol; nothing was waited for or withdrawn.
    ForeignTicket,
}

/// Why `unpark()` failed. An unpark of a running worker is not an error (it
/// is a no-op).
#[derive(Debug)]
#[non_exhaustive]
pub enum UnparkError {
    /// The worker is stopping or stopped.
    Stopped,
    /// The CPU to re-bind to is not one the process may use; nothing changed.
    CpuNotAllowed {
        /// The CPU that was asked for.
        cpu: usize,
        /// The CPUs the process may use.
        allowed: Vec<usize>,
    },
    /// The kernel refused the re-bind; nothing changed.
    Affinity {
        /// The CPU that was asked for.
        cpu: usize,
        /// What `sched_setaffinity` said.
        source: io::Error,
    },
    /// A re-bind was asked for (`unpark_on`, `repin`), but this build cannot
    /// pin threads ([`AFFINITY_SUPPORTED`](crate::affinity::AFFINITY_SUPPORTED)
    /// is false); nothing changed.
    Unsupported,
}

/// Why `stop()` did not return the body's value.
#[non_exhaustive]
pub enum StopError {
    /// The body panicked; this is the payload, as `std::thread::JoinHandle`
    /// gives it.
    Panicked(Box<dyn Any + Send + 'static>),
    /// Another `stop()` call joined (or is joining) the thread and took its
    /// result. Returned only once the body has returned.
    AlreadyJoined,
    /// `stop()` was called on the worker's own thread; it cannot join itself.
    FromWorkerThread,
    /// `stop_timeout()`: the body did not return in time (the stop stays
    /// requested).
    Timeout,
}

impl StopError {
    /// The panic message, if the body panicked with a string.
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            StopError::Panicked(payload) => payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str)),
            _ => None,
        }
    }
}

impl fmt::Debug for StopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopError::Panicked(_) => f
                .debug_tuple("Panicked")
                .field(&self.panic_message().unwrap_or("<non-string payload>"))
                .finish(),
            StopError::AlreadyJoined => f.write_str("AlreadyJoined"),
            StopError::FromWorkerThread => f.write_str("FromWorkerThread"),
            StopError::Timeout => f.write_str("Timeout"),
        }
    }
}

/// What the `Unsupported` variants say.
const UNSUPPORTED: &str = "CPU pinning is not supported on this platform";

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::CpuNotAllowed { cpu, allowed } => {
                write!(
                    f,
                    "CPU {cpu} is not allowed for this process (allowed: {allowed:?})"
                )
            }
            SpawnError::Affinity { cpu, source } => write!(f, "cannot pin to CPU {cpu}: {source}"),
            SpawnError::Thread(e) => write!(f, "cannot spawn worker thread: {e}"),
            SpawnError::Unsupported => f.write_str(UNSUPPORTED),
            SpawnError::InvalidName => f.write_str("thread name contains a NUL byte"),
            SpawnError::ProtocolInUse => {
                f.write_str("the protocol is not fresh: another worker used it")
            }
        }
    }
}

impl fmt::Display for ParkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParkError::Stopped => "worker is stopping or stopped",
            ParkError::Superseded => {
                "park request was withdrawn (an unpark, or another caller's timeout) before it completed"
            }
            ParkError::Timeout => "park deadline passed",
            ParkError::FromWorkerThread => "park() called from the worker's own thread",
            ParkError::ForeignTicket => "the park ticket belongs to another worker",
        })
    }
}

impl fmt::Display for UnparkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnparkError::Stopped => f.write_str("worker is stopping or stopped"),
            UnparkError::CpuNotAllowed { cpu, allowed } => {
                write!(
                    f,
                    "CPU {cpu} is not allowed for this process (allowed: {allowed:?})"
                )
            }
            UnparkError::Affinity { cpu, source } => {
                write!(f, "cannot re-pin to CPU {cpu}: {source}")
            }
            UnparkError::Unsupported => f.write_str(UNSUPPORTED),
        }
    }
}

impl fmt::Display for StopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopError::Panicked(_) => write!(
                f,
                "worker panicked: {}",
                self.panic_message().unwrap_or("<non-string payload>")
            ),
            StopError::AlreadyJoined => f.write_str("worker was already joined by another stop()"),
            StopError::FromWorkerThread => {
                f.write_str("stop() called from the worker's own thread")
            }
            StopError::Timeout => f.write_str("worker did not stop in time"),
        }
    }
}

impl std::error::Error for SpawnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpawnError::Affinity { source, .. } | SpawnError::Thread(source) => Some(source),
            SpawnError::CpuNotAllowed { .. }
            | SpawnError::Unsupported
            | SpawnError::InvalidName
            | SpawnError::ProtocolInUse => None,
        }
    }
}
impl std::error::Error for ParkError {}
impl std::error::Error for UnparkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UnparkError::Affinity { source, .. } => Some(source),
            _ => None,
        }
    }
}
impl std::error::Error for StopError {}
