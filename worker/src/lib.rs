//! A parkable OS thread that follows the fixed Linux kthread park protocol.
//!
//! A controller can [`park`](Worker::park) a worker (and know it is parked
//! *and* off the CPU when the call returns), re-pin it, [`unpark`] it and
//! [`stop`] it from any state, without hangs and without the worker still
//! running its body. The protocol, its invariants P1-P8 and the two Linux
//! races it is built against are told in `worker/PROTOCOL.md`.
//!
//! Everything OS-specific sits behind one seam: Linux (`gettid`,
//! `sched_setaffinity`, procfs) or a `std`-only fallback for other targets
//! (also selected on Linux by `--cfg unplug_portable`), which cannot pin
//! ([`affinity::AFFINITY_SUPPORTED`] is false) and proves inactivity by the
//! protocol's marker alone. Each park reports which proof it used
//! ([`ParkTimings::inactive_by`], [`InactiveEvidence`]).
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::Arc;
//! use unplug_worker::{Worker, WorkerState};
//!
//! let work = Arc::new(AtomicU64::new(0));
//! let w = work.clone();
//! let worker = Worker::builder().name("demo").spawn(move |ctx| loop {
//!     while ctx.keep_running() {
//!         w.fetch_add(1, Ordering::Relaxed); // the body's real work
//!         std::hint::spin_loop();
//!     }
//!     if ctx.should_stop() {
//!         return w.load(Ordering::Relaxed);
//!     }
//!     ctx.parkme();
//! }).unwrap();
//!
//! let timings = worker.park().unwrap();
//! assert_eq!(worker.state(), WorkerState::Parked);
//! let frozen = work.load(Ordering::Relaxed);
//! assert_eq!(work.load(Ordering::Relaxed), frozen); // parked: no progress
//! println!("parked in {:?}, inactive after {:?}", timings.to_parked, timings.to_inactive);
//! worker.unpark().unwrap();
//! assert!(worker.stop().unwrap() >= frozen);
//! ```
//!
//! [`unpark`]: Worker::unpark
//! [`stop`]: Worker::stop
#![warn(missing_docs)]

mod completion;
mod context;
#[cfg(not(loom))]
mod cpu_text;
mod error;
mod idle_set;
mod loom;
mod notifier;
mod protocol;
mod state;

#[cfg(not(loom))]
pub mod affinity;
#[cfg(not(loom))]
mod handle;
#[cfg(not(loom))]
mod platform;

pub use context::{IdleBlock, IdleWaiter, Parkme, Wake, WorkerContext};
pub use error::{ParkError, SpawnError, StopError, UnparkError};
pub use idle_set::IdleSet;
pub use notifier::Notifier;
pub use protocol::{InactiveEvidence, ParkTicket, ParkTimings, Protocol};
pub use state::WorkerState;

#[cfg(not(loom))]
pub use handle::{Builder, Worker};
