//! CPU affinity: which CPUs the process may use, pinning a thread (the
//! caller, or another thread by its OS id, as `kthread_bind` does for a
//! parked thread).

use std::io;

/// The OS id of the calling thread (`gettid`).
pub fn current_tid() -> i32 {
    // SAFETY: gettid has no preconditions and cannot fail.
    unsafe { libc::gettid() }
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
/// thread's own mask. A reading is reused for [`ALLOWED_CPUS_TTL`]; see
/// [`allowed_cpus_now`] for a fresh one.
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
pub fn check_allowed(cpu: usize) -> Result<(), Vec<usize>> {
    let allowed = allowed_cpus().unwrap_or_default();
    if allowed.contains(&cpu) {
        Ok(())
    } else {
        Err(allowed)
    }
}

/// [`allowed_cpus`], read fresh from the kernel.
pub fn allowed_cpus_now() -> io::Result<Vec<usize>> {
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
pub fn cpuset_cpus() -> Option<Vec<usize>> {
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
/// `cpu.cfs_quota_us` / `cpu.cfs_period_us`), `None` if unlimited or not
/// shown. 1.5 means "one and a half CPUs' worth of time per period".
pub fn cpu_quota() -> Option<f64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in cgroups.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        if controllers.is_empty() {
            for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
                if let Ok(max) = std::fs::read_to_string(format!("{root}{path}/cpu.max")) {
                    return parse_cpu_max(&max);
                }
            }
        } else if controllers.split(',').any(|c| c == "cpu") {
            for dir in ["cpu", "cpu,cpuacct", "cpuacct,cpu"] {
                let base = format!("/sys/fs/cgroup/{dir}{path}");
                let quota = std::fs::read_to_string(format!("{base}/cpu.cfs_quota_us"));
                let period = std::fs::read_to_string(format!("{base}/cpu.cfs_period_us"));
                if let (Ok(q), Ok(p)) = (quota, period) {
                    let (q, p): (i64, i64) = (q.trim().parse().ok()?, p.trim().parse().ok()?);
                    return (q > 0 && p > 0).then(|| q as f64 / p as f64);
                }
            }
        }
    }
    None
}

/// Parses cgroup v2 `cpu.max` ("max 100000" or "150000 100000").
pub fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut parts = text.split_whitespace();
    let (quota, period) = (parts.next()?, parts.next()?);
    if quota == "max" {
        return None;
    }
    let (q, p): (f64, f64) = (quota.parse().ok()?, period.parse().ok()?);
    (q > 0.0 && p > 0.0).then_some(q / p)
}

/// Reads a kernel CPU list file ("0-3,5").
fn read_cpu_list(path: &str) -> Option<Vec<usize>> {
    parse_cpu_list(std::fs::read_to_string(path).ok()?.trim())
}

/// Parses a kernel CPU list ("0-3,5,7-8"); `None` if malformed or empty.
pub fn parse_cpu_list(list: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi): (usize, usize) = (lo.parse().ok()?, hi.parse().ok()?);
                if lo > hi || hi >= max_cpus() {
                    return None;
                }
                cpus.extend(lo..=hi);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    (!cpus.is_empty()).then_some(cpus)
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
