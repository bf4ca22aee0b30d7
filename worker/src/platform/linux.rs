//! The Linux implementation of the platform seam: `libc` system calls,
//! cgroup and sysfs files, and the procfs inactivity probe.

use crate::InactiveEvidence;
use std::io;
use std::path::{Path, PathBuf};

/// Where procfs lists this process's threads.
const DEFAULT_TASK_DIR: &str = "/proc/self/task";

/// Pinning works: `sched_setaffinity` on any thread of the process.
pub(crate) const AFFINITY_SUPPORTED: bool = true;

/// The number of CPUs a `cpu_set_t` can name.
pub(crate) const MAX_CPUS: usize = libc::CPU_SETSIZE as usize;

/// The OS id of the calling thread (`gettid`).
pub(crate) fn current_tid() -> i32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() }
}

/// The affinity mask of thread `tid` (0: the caller) as a sorted list.
pub(crate) fn cpus_of(tid: i32) -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size we pass.
    let rc =
        unsafe { libc::sched_getaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((0..MAX_CPUS)
        // SAFETY: `cpu` is below CPU_SETSIZE, the bound CPU_ISSET requires.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Pins thread `tid` (0: the caller) to the CPUs in `cpus`.
pub(crate) fn pin_to(tid: i32, cpus: &[usize]) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        if cpu >= MAX_CPUS {
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

/// The cpuset CPUs that are online; without a readable cpuset, the online
/// CPUs; without those, the calling thread's own mask.
pub(crate) fn allowed_cpus_now() -> io::Result<Vec<usize>> {
    let online = read_cpu_list("/sys/devices/system/cpu/online");
    let cpuset = cpuset_cpus();
    match (cpuset, online) {
        (Some(set), Some(online)) => Ok(set.into_iter().filter(|c| online.contains(c)).collect()),
        (Some(set), None) => Ok(set),
        (None, Some(online)) => Ok(online),
        (None, None) => cpus_of(0),
    }
}

/// The effective CPUs of this process's cpuset cgroup, if the cgroup file
/// system shows them.
pub(crate) fn cpuset_cpus() -> Option<Vec<usize>> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in cgroups.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let candidates: Vec<String> = if controllers.is_empty() {
            // cgroup v2 (pure, or the unified half of a hybrid mount).
            ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
                .iter()
                .map(|root| format!("{root}{path}/cpuset.cpus.effective"))
                .collect()
        } else if controllers.split(',').any(|c| c == "cpuset") {
            vec![
                format!("/sys/fs/cgroup/cpuset{path}/cpuset.effective_cpus"),
                format!("/sys/fs/cgroup/cpuset{path}/cpuset.cpus"),
            ]
        } else {
            continue;
        };
        if let Some(cpus) = candidates.iter().find_map(|f| read_cpu_list(f)) {
            return Some(cpus);
        }
    }
    None
}

/// The cgroup CPU quota of this process in CPUs (v2 `cpu.max`, v1
/// `cpu.cfs_quota_us` / `cpu.cfs_period_us`): the smallest over its cgroup
/// and every cgroup above it, since the kernel throttles the process by
/// each of them (QUOTA-INHERITED: a quota set on a parent, as a systemd
/// slice or a pod does, was not seen; a red team).
pub(crate) fn cpu_quota() -> Option<f64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in cgroups.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        if controllers.is_empty() {
            for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
                if let Some(quota) = smallest_quota(root, path, |dir| {
                    crate::cpu_text::parse_cpu_max(
                        &std::fs::read_to_string(format!("{dir}/cpu.max")).ok()?,
                    )
                }) {
                    return quota;
                }
            }
        } else if controllers.split(',').any(|c| c == "cpu") {
            for mount in ["cpu", "cpu,cpuacct", "cpuacct,cpu"] {
                let root = format!("/sys/fs/cgroup/{mount}");
                if let Some(quota) = smallest_quota(&root, path, |dir| {
                    let read = |file: &str| std::fs::read_to_string(format!("{dir}/{file}")).ok();
                    let q: i64 = read("cpu.cfs_quota_us")?.trim().parse().ok()?;
                    let p: i64 = read("cpu.cfs_period_us")?.trim().parse().ok()?;
                    (q > 0 && p > 0).then(|| q as f64 / p as f64)
                }) {
                    return quota;
                }
            }
        }
    }
    None
}

/// In the hierarchy mounted at `root`, the smallest quota `read` finds in
/// the cgroup `path` and the cgroups above it (`Some(None)`: none limited);
/// `None` if `path` is not there (another mount point is tried).
fn smallest_quota(
    root: &str,
    path: &str,
    read: impl Fn(&str) -> Option<f64>,
) -> Option<Option<f64>> {
    if !std::path::Path::new(&format!("{root}{path}")).is_dir() {
        return None;
    }
    Some(
        crate::cpu_text::cgroup_ancestors(path)
            .filter_map(|dir| read(&format!("{root}{dir}")))
            .reduce(f64::min),
    )
}

/// Reads a kernel CPU list file ("0-3,5").
fn read_cpu_list(path: &str) -> Option<Vec<usize>> {
    crate::cpu_text::parse_cpu_list_below(std::fs::read_to_string(path).ok()?.trim(), MAX_CPUS)
}

/// "Inactive" as the kernel sees it: the analogue of `wait_task_inactive`.
///
/// The controller reads `/proc/self/task/<tid>/stat` and accepts the worker
/// as inactive when the kernel reports state `S` (interruptible sleep)
/// while the worker's SLEEPING marker is up for the park's generation. The
/// marker alone says "the worker has committed to its blocking call and runs
/// no user code"; the kernel's `S` adds "and it has actually gone to sleep in
/// the kernel", so a `sched_setaffinity` re-bind right after `park()` acts on
/// a sleeping thread. Cost: one open of a small procfs file per park and one
/// `pread` per probe (a few microseconds), usually one or two probes.
///
/// What it does not guarantee: the kernel sets the task state before the
/// final context switch, so `S` can be read a few hundred nanoseconds before
/// the thread has left the CPU (`wait_task_inactive` also checks `on_cpu`,
/// which procfs does not show). Nothing of the worker's user code can run in
/// that window; see PROTOCOL.md, P4.
///
/// When the file cannot be opened or read (no procfs in a container, a
/// tmpfs over `/proc`, the fd table full: `EMFILE`), or what it holds has no
/// state field, the kernel cannot be asked: the probe answers
/// [`InactiveEvidence::Marker`] from then on for this park, so the park
/// ends on the marker alone (weaker, and reported as such) instead of
/// waiting forever for an answer that cannot come.
///
/// The file stays open for the whole park and is re-read with `pread` at
/// offset 0 (procfs regenerates the text on every read).
pub(crate) struct InactivityProbe {
    path: PathBuf,
    file: Option<std::fs::File>,
    buf: Vec<u8>,
    /// The file could not be opened or read once: the marker decides.
    unreadable: bool,
}

impl InactivityProbe {
    /// A probe for thread `tid` of this process, reading
    /// `<task_dir>/<tid>/stat` (`task_dir` defaults to `/proc/self/task`);
    /// nothing is opened yet.
    pub(crate) fn new(task_dir: Option<&Path>, tid: i32) -> Self {
        let task_dir = task_dir.unwrap_or(Path::new(DEFAULT_TASK_DIR));
        InactivityProbe {
            path: task_dir.join(tid.to_string()).join("stat"),
            file: None,
            buf: Vec::new(),
            unreadable: false,
        }
    }

    /// `Some(Kernel)` when the kernel reports the thread sleeping (`S`),
    /// `None` for any other state ("not yet"), `Some(Marker)` when the
    /// kernel cannot be asked.
    pub(crate) fn poll(&mut self) -> Option<InactiveEvidence> {
        if self.unreadable {
            return Some(InactiveEvidence::Marker);
        }
        match self.read().and_then(|()| state_char(&self.buf)) {
            Some(b'S') => Some(InactiveEvidence::Kernel),
            Some(_) => None,
            None => {
                self.unreadable = true;
                Some(InactiveEvidence::Marker)
            }
        }
    }

    /// Reads the stat text into `buf`; `None` if it cannot be read.
    fn read(&mut self) -> Option<()> {
        use std::os::unix::fs::FileExt;
        if self.file.is_none() {
            self.file = Some(std::fs::File::open(&self.path).ok()?);
        }
        let file = self.file.as_ref()?;
        self.buf.resize(1024, 0);
        loop {
            match file.read_at(&mut self.buf, 0) {
                Ok(n) if n > 0 => {
                    self.buf.truncate(n);
                    return Some(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                _ => return None,
            }
        }
    }
}

/// The state field of a `stat` line: the first non-space byte after the
/// *last* `)` (the command name may itself contain `)` and spaces).
fn state_char(stat: &[u8]) -> Option<u8> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    stat[close + 1..]
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace())
}

#[cfg(test)]
mod tests {
    use super::state_char;

    #[test]
    fn state_is_read_after_the_last_paren_of_the_name() {
        assert_eq!(state_char(b"123 (a) b) S 1 2 3"), Some(b'S'));
        assert_eq!(state_char(b"123 (worker-0) R 1 2"), Some(b'R'));
        assert_eq!(state_char(b"garbage"), None);
    }
}
