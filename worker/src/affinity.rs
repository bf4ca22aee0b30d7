//! CPU affinity: which CPUs the process may use, pinning a thread (the
//! caller, or another thread by its OS id, as `kthread_bind` does for a
//! parked thread).
//!
//! On Linux this is `sched_setaffinity` and the cgroup cpuset. In the
//! portable build (any other target, or Linux with `--cfg unplug_portable`)
//! pinning is not available: [`AFFINITY_SUPPORTED`] is false, [`pin_to`]
//! fails with [`io::ErrorKind::Unsupported`], and the allowed CPUs are
//! `0..available_parallelism()`. Check [`AFFINITY_SUPPORTED`] before
//! offering a pin; [`Builder::cpu`](crate::Builder::cpu),
//! [`Worker::unpark_on`](crate::Worker::unpark_on) and
//! [`Worker::repin`](crate::Worker::repin) return a typed `Unsupported`
//! error without it.

use crate::{cpu_text, platform};
use std::io;

/// Whether this build can pin threads to CPUs ([`pin_to`], a worker's
/// `cpu`, `unpark_on`, `repin`). True on Linux; false in the portable build.
///
/// ```
/// use unplug_worker::{affinity, SpawnError, Worker};
///
/// let spawned = Worker::builder().cpu(0).spawn(|_ctx| ());
/// if affinity::AFFINITY_SUPPORTED {
///     spawned.unwrap().stop().unwrap();
/// } else {
///     assert!(matches!(spawned, Err(SpawnError::Unsupported)));
/// }
/// ```
pub const AFFINITY_SUPPORTED: bool = platform::AFFINITY_SUPPORTED;

/// The OS id of the calling thread: Linux `gettid`. In the portable build,
/// a process-unique id from a counter (stable for the thread's life, but
/// not an OS id and not usable with [`pin_to`]).
pub fn current_tid() -> i32 {
    platform::current_tid()
}

/// How long [`allowed_cpus`] reuses its last reading: it reads three or
/// four small files (about 40 µs), and controllers validate every pin with
/// it. A CPU removed within this window is still refused by the kernel when
/// pinned to (a typed error), so the cache is never unsafe, only late.
pub const ALLOWED_CPUS_TTL: std::time::Duration = std::time::Duration::from_millis(50);

/// The CPUs the process may use: the CPUs of its cgroup's cpuset (v2
/// `cpuset.cpus.effective`, v1 `cpuset.effective_cpus`) that are online.
/// This is the set `sched_setaffinity` lets any thread of the process bind
/// to; it does not shrink when one thread (the main one, say) pins itself.
/// Without a readable cpuset, the online CPUs; without those, the calling
/// thread's own mask. In the portable build, `0..available_parallelism()`.
/// A reading is reused for [`ALLOWED_CPUS_TTL`]; see [`allowed_cpus_now`]
/// for a fresh one.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    use std::sync::Mutex;
    use std::time::Instant;
    static CACHE: Mutex<Option<(Instant, Vec<usize>)>> = Mutex::new(None);
    if let Some((at, cpus)) = &*CACHE.lock().unwrap_or_else(|p| p.into_inner()) {
        if at.elapsed() < ALLOWED_CPUS_TTL {
            return Ok(cpus.clone());
        }
    }
    let cpus = allowed_cpus_now()?;
    *CACHE.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), cpus.clone()));
    Ok(cpus)
}

/// `Ok` if the process may use `cpu`; otherwise the CPUs it may use.
///
/// A refusal is always read fresh: the cached set ([`allowed_cpus`]) may
/// still lack a CPU that came back within [`ALLOWED_CPUS_TTL`] (a cgroup
/// widened, a CPU brought online), and a runtime built or plugged there
/// right after must not be refused for it.
pub fn check_allowed(cpu: usize) -> Result<(), Vec<usize>> {
    if allowed_cpus().is_ok_and(|cached| cached.contains(&cpu)) {
        return Ok(());
    }
    let allowed = allowed_cpus_now().unwrap_or_default();
    if allowed.contains(&cpu) {
        Ok(())
    } else {
        Err(allowed)
    }
}

/// [`allowed_cpus`], read fresh from the kernel (portable build:
/// `0..available_parallelism()`).
pub fn allowed_cpus_now() -> io::Result<Vec<usize>> {
    platform::allowed_cpus_now()
}

/// The CPUs the process's threads should run on now: those of
/// [`allowed_cpus_now`] that are also in the main thread's mask (what
/// `taskset` gave the process; the main thread's id is the process id), or
/// every allowed one if that mask cannot be read or shares none with them.
/// An unpinned [`Worker`](crate::Worker) takes this mask when it starts
/// (AFFINITY-INHERIT), and the runtime's CPU follower follows it.
pub fn process_cpus_now() -> io::Result<Vec<usize>> {
    let allowed = allowed_cpus_now()?;
    let main_mask = i32::try_from(std::process::id())
        .ok()
        .and_then(|main| cpus_of(main).ok());
    let Some(mask) = main_mask else {
        return Ok(allowed);
    };
    let cpus: Vec<usize> = allowed
        .iter()
        .copied()
        .filter(|c| mask.contains(c))
        .collect();
    Ok(if cpus.is_empty() { allowed } else { cpus })
}

/// The effective CPUs of this process's cpuset cgroup, if the cgroup file
/// system shows them (portable build: `None`).
pub fn cpuset_cpus() -> Option<Vec<usize>> {
    platform::cpuset_cpus()
}

/// The cgroup CPU quota of this process in CPUs (v2 `cpu.max`, v1
/// `cpu.cfs_quota_us` / `cpu.cfs_period_us`): the smallest of its own
/// cgroup's and every parent's (each throttles it), `None` if none is
/// limited or none is shown (portable build: `None`). 1.5 means "one and a
/// half CPUs' worth of time per period".
pub fn cpu_quota() -> Option<f64> {
    platform::cpu_quota()
}

/// Parses cgroup v2 `cpu.max` ("max 100000" or "150000 100000").
pub fn parse_cpu_max(text: &str) -> Option<f64> {
    cpu_text::parse_cpu_max(text)
}

/// Parses a kernel CPU list ("0-3,5,7-8"); `None` if malformed or empty.
pub fn parse_cpu_list(list: &str) -> Option<Vec<usize>> {
    cpu_text::parse_cpu_list_below(list, platform::MAX_CPUS)
}

/// The affinity mask of thread `tid` (0: the caller) as a sorted list
/// (portable build: every allowed CPU).
pub fn cpus_of(tid: i32) -> io::Result<Vec<usize>> {
    platform::cpus_of(tid)
}

/// Pins thread `tid` (0: the caller) to the CPUs in `cpus`. In the portable
/// build this always fails with [`io::ErrorKind::Unsupported`].
pub fn pin_to(tid: i32, cpus: &[usize]) -> io::Result<()> {
    platform::pin_to(tid, cpus)
}

#[cfg(test)]
mod tests {
    use super::parse_cpu_list;

    #[test]
    fn cpu_lists_parse_ranges_and_singles() {
        assert_eq!(parse_cpu_list("0-3,5,7-8"), Some(vec![0, 1, 2, 3, 5, 7, 8]));
        assert_eq!(parse_cpu_list("1"), Some(vec![1]));
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn cpu_max_gives_cpus_or_none_when_unlimited() {
        use super::parse_cpu_max;
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("150000 100000"), Some(1.5));
        assert_eq!(parse_cpu_max("garbage"), None);
    }
}
