//! The platform seam: everything this crate asks of the operating system.
//!
//! Two implementations, chosen at compile time:
//!
//! - `linux.rs` (`cfg(all(target_os = "linux", not(unplug_portable)))`):
//!   `gettid`, `sched_setaffinity`/`sched_getaffinity`, the cgroup cpuset and
//!   online-CPU files, and the procfs inactivity probe
//!   (`/proc/self/task/<tid>/stat` reads `S`).
//! - `fallback.rs` (everything else): no `libc`, only `std`. Thread ids come
//!   from a process-wide counter, pinning fails with
//!   [`io::ErrorKind::Unsupported`](std::io::ErrorKind::Unsupported), the
//!   allowed CPUs are `0..available_parallelism()`, and inactivity is the
//!   protocol's own SLEEPING marker alone.
//!
//! `RUSTFLAGS="--cfg unplug_portable"` selects the fallback on Linux too, so
//! that the portable path is built and tested on a Linux machine
//! (`.ci/portable`); it is the only way it is exercised here, since no other
//! target is installed. The rest of the crate calls only what this module
//! re-exports, and never `libc` directly.
//!
//! What each inactivity answer guarantees is in `worker/PROTOCOL.md`,
//! "Platform seam and inactivity evidence".

#[cfg(all(target_os = "linux", not(unplug_portable)))]
mod linux;
#[cfg(all(target_os = "linux", not(unplug_portable)))]
use linux as imp;

#[cfg(not(all(target_os = "linux", not(unplug_portable))))]
mod fallback;
#[cfg(not(all(target_os = "linux", not(unplug_portable))))]
use fallback as imp;

pub(crate) use imp::{
    allowed_cpus_now, cpu_quota, cpus_of, cpuset_cpus, current_tid, pin_to, InactivityProbe,
    AFFINITY_SUPPORTED, MAX_CPUS,
};
