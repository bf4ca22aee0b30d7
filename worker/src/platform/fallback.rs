//! The portable implementation of the platform seam: `std` only, no `libc`.
//!
//! Used on every target other than Linux, and on Linux under
//! `--cfg unplug_portable` (how it is tested: `.ci/portable`). It keeps the
//! park protocol whole (park, unpark, stop and the idle wait need nothing
//! from the OS beyond `std`'s threads and futex-backed parking); what it
//! gives up is pinning and the kernel's word on inactivity.

use std::io;

/// Pinning is not available: [`pin_to`] fails with
/// [`io::ErrorKind::Unsupported`].
pub(crate) const AFFINITY_SUPPORTED: bool = false;

/// A bound on the CPU numbers a CPU list may name, so a malformed range
/// cannot allocate without limit (the same bound as glibc's `CPU_SETSIZE`).
pub(crate) const MAX_CPUS: usize = 1024;

/// A process-unique id for the calling thread, from a process-wide counter
/// (1, 2, 3, ... in the order threads first ask). Stable for the thread's
/// lifetime; not an OS id.
pub(crate) fn current_tid() -> i32 {
    use std::sync::atomic::{AtomicI32, Ordering::Relaxed};
    static NEXT: AtomicI32 = AtomicI32::new(1);
    thread_local! {
        static TID: i32 = NEXT.fetch_add(1, Relaxed);
    }
    TID.with(|tid| *tid)
}

/// Every CPU the process may use: `0..available_parallelism()` (no thread
/// has a narrower mask, since nothing can be pinned).
pub(crate) fn cpus_of(_tid: i32) -> io::Result<Vec<usize>> {
    allowed_cpus_now()
}

/// Always fails with [`io::ErrorKind::Unsupported`].
pub(crate) fn pin_to(_tid: i32, _cpus: &[usize]) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "CPU pinning is not supported on this platform",
    ))
}

/// `0..available_parallelism()`.
pub(crate) fn allowed_cpus_now() -> io::Result<Vec<usize>> {
    Ok((0..std::thread::available_parallelism()?.get()).collect())
}

/// No cpuset is known here.
pub(crate) fn cpuset_cpus() -> Option<Vec<usize>> {
    None
}

/// No CPU quota is known here.
pub(crate) fn cpu_quota() -> Option<f64> {
    None
}

/// Inactivity without the kernel's word: the protocol's SLEEPING marker,
/// which `wait_inactive` has already seen up for the park's generation
/// before it asks, is all the evidence there is. It says the worker has
/// committed to its blocking futex wait and runs none of its body; it does
/// not say the thread has left the CPU.
pub(crate) struct InactivityProbe;

impl InactivityProbe {
    /// A probe for thread `tid` (neither argument is used here).
    pub(crate) fn new(_task_dir: Option<&std::path::Path>, _tid: i32) -> Self {
        InactivityProbe
    }

    /// Always `Marker`: the marker alone decides.
    pub(crate) fn poll(&mut self) -> Option<crate::InactiveEvidence> {
        Some(crate::InactiveEvidence::Marker)
    }
}
