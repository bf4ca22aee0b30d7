//! CPU affinity: which CPUs the process may use, pinning a thread (the
//! caller, or another thread by its OS id, as `kthread_bind` does for a
//! parked thread).

use std::io;

/// The OS id of the calling thread (`gettid`).
pub fn current_tid() -> i32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() }
}

/// The CPUs the process may use: the affinity mask of the process's main
/// thread (what `taskset -p <pid>` shows), which the kernel keeps inside the
/// cgroup's cpuset.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    cpus_of(pid)
}

/// The affinity mask of thread `tid` (0: the caller) as a sorted list.
pub fn cpus_of(tid: i32) -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size we pass.
    let rc =
        unsafe { libc::sched_getaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((0..max_cpus())
        // SAFETY: `cpu` is below CPU_SETSIZE, the bound CPU_ISSET requires.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Pins thread `tid` (0: the caller) to the CPUs in `cpus`.
pub fn pin_to(tid: i32, cpus: &[usize]) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        if cpu >= max_cpus() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: `cpu` was checked to be below CPU_SETSIZE.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size we pass; the kernel
    // validates `tid` and the mask.
    let rc = unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The number of CPUs a `cpu_set_t` can name.
fn max_cpus() -> usize {
    libc::CPU_SETSIZE as usize
}
