//! Why a controller call changed nothing.

use std::fmt;

/// Why a controller call changed nothing.
#[derive(Debug)]
#[non_exhaustive]
pub enum ControlError {
    /// It would leave no running worker.
    LastWorker,
    /// No worker of this runtime is on that CPU.
    NoWorkerOnCpu(usize),
    /// The CPU is not one the process may use.
    CpuNotAllowed {
        /// The CPU asked for.
        cpu: usize,
        /// The CPUs the process may use.
        allowed: Vec<usize>,
    },
    /// No worker has that id.
    UnknownWorker(usize),
    /// `set_workers(0)`.
    ZeroWorkers,
    /// The deadline passed before the park completed; every park this call
    /// requested was withdrawn (no half-parked worker is left).
    Timeout {
        /// The polls that were still running on the workers this call
        /// waited for: which task, spawned where, running how long.
        blocked_by: Vec<crate::scheduler::PollCulprit>,
    },
    /// The runtime is shutting down.
    ShuttingDown,
    /// A new worker could not be started.
    Spawn(unplug_worker::SpawnError),
    /// Re-binding a worker failed.
    Unpark(unplug_worker::UnparkError),
    /// Called from inside a task, the call would have to wait for a worker
    /// that is itself blocked in a controller call (or for the caller's own
    /// worker): waiting could deadlock, so nothing was changed. Parks are
    /// deferred instead (see [`ParkReport::deferred`](crate::ParkReport));
    /// a shrinking `set_workers` that cannot choose other workers returns
    /// this.
    WouldDeadlock,
    /// More workers than [`MAX_WORKERS`](crate::MAX_WORKERS) were asked
    /// for, or the call would have left the runtime with more than that
    /// at once (workers parked on unplugged CPUs count); nothing was
    /// started.
    TooManyWorkers {
        /// The number asked for, or the workers the call would have left
        /// the runtime with.
        requested: usize,
        /// The most a runtime may have.
        max: usize,
    },
    /// A new worker's `on_thread_start` hook panicked; the worker was
    /// joined and removed, and workers this call started before it were
    /// stopped again.
    StartHookPanicked {
        /// The id the worker had.
        worker: usize,
        /// The panic message.
        message: String,
    },
    /// The worker is being stopped by a resize, or its thread ended.
    WorkerGone(usize),
    /// CPU affinity is not supported on this platform: CPUs cannot be
    /// unplugged or plugged, and workers cannot be re-pinned (parking and
    /// unparking workers still works).
    Unsupported,
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::LastWorker => f.write_str("that would leave no running worker"),
            ControlError::NoWorkerOnCpu(cpu) => {
                write!(f, "no worker of this runtime is on CPU {cpu}")
            }
            ControlError::CpuNotAllowed { cpu, allowed } => {
                write!(
                    f,
                    "CPU {cpu} is not allowed for this process (allowed: {allowed:?})"
                )
            }
            ControlError::UnknownWorker(id) => write!(f, "no worker with id {id}"),
            ControlError::ZeroWorkers => f.write_str("a runtime needs at least one worker"),
            ControlError::Timeout { blocked_by } => {
                f.write_str("the park did not complete in time; it was withdrawn")?;
                for (i, c) in blocked_by.iter().enumerate() {
                    f.write_str(if i == 0 { "; blocked by " } else { ", " })?;
                    write!(f, "{c}")?;
                }
                Ok(())
            }
            ControlError::ShuttingDown => f.write_str("the runtime is shutting down"),
            ControlError::Spawn(e) => write!(f, "cannot start a worker: {e}"),
            ControlError::Unpark(e) => write!(f, "cannot unpark: {e}"),
            ControlError::WouldDeadlock => f.write_str(
                "waiting here could deadlock: a worker this call needs is blocked in a controller call",
            ),
            ControlError::TooManyWorkers { requested, max } => {
                write!(f, "{requested} workers asked for; the most is {max}")
            }
            ControlError::StartHookPanicked { worker, message } => {
                write!(f, "worker {worker}'s start hook panicked: {message}")
            }
            ControlError::WorkerGone(id) => {
                write!(f, "worker {id} is being stopped or has ended")
            }
            ControlError::Unsupported => {
                f.write_str("CPU affinity is not supported on this platform")
            }
        }
    }
}

impl std::error::Error for ControlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ControlError::Spawn(e) => Some(e),
            ControlError::Unpark(e) => Some(e),
            _ => None,
        }
    }
}
