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
    Timeout,
    /// The runtime is shutting down.
    ShuttingDown,
    /// A new worker could not be started.
    Spawn(unplug_worker::SpawnError),
    /// Re-binding a worker failed.
    Unpark(unplug_worker::UnparkError),
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
            ControlError::Timeout => {
                f.write_str("the park did not complete in time; it was withdrawn")
            }
            ControlError::ShuttingDown => f.write_str("the runtime is shutting down"),
            ControlError::Spawn(e) => write!(f, "cannot start a worker: {e}"),
            ControlError::Unpark(e) => write!(f, "cannot unpark: {e}"),
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
