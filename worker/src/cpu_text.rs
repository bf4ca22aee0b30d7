//! The kernel's CPU texts, parsed: CPU lists ("0-3,5") and cgroup v2
//! `cpu.max`. Pure functions, below both the platform seam and the public
//! `affinity` module, which read the files.

/// Parses a kernel CPU list ("0-3,5,7-8") naming CPUs below `max`; `None`
/// if malformed or empty.
pub(crate) fn parse_cpu_list_below(list: &str, max: usize) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi): (usize, usize) = (lo.parse().ok()?, hi.parse().ok()?);
                if lo > hi || hi >= max {
                    return None;
                }
                cpus.extend(lo..=hi);
            }
            None => {
                // The same bound as a range's: a cpu_set_t cannot name it.
                let cpu: usize = part.parse().ok()?;
                if cpu >= max {
                    return None;
                }
                cpus.push(cpu);
            }
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    (!cpus.is_empty()).then_some(cpus)
}

/// Parses cgroup v2 `cpu.max` ("max 100000" or "150000 100000") into CPUs
/// of quota; `None` if unlimited or malformed.
pub(crate) fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut parts = text.split_whitespace();
    let (quota, period) = (parts.next()?, parts.next()?);
    if quota == "max" {
        return None;
    }
    let (q, p): (f64, f64) = (quota.parse().ok()?, period.parse().ok()?);
    (q > 0.0 && p > 0.0).then_some(q / p)
}

/// A cgroup path and every cgroup above it, the path's own first:
/// `/a/b` gives `/a/b`, `/a`, then `` (the hierarchy's root).
#[cfg_attr(not(all(target_os = "linux", not(unplug_portable))), allow(dead_code))]
pub(crate) fn cgroup_ancestors(path: &str) -> impl Iterator<Item = &str> {
    let path = path.trim_end_matches('/');
    let mut next = Some(path);
    std::iter::from_fn(move || {
        let current = next?;
        next = current.rfind('/').map(|at| &current[..at]);
        Some(current)
    })
}

#[cfg(test)]
mod tests {
    use super::cgroup_ancestors;

    #[test]
    fn a_cgroup_path_lists_itself_then_each_parent_up_to_the_root() {
        let all: Vec<&str> = cgroup_ancestors("/a/b").collect();
        assert_eq!(all, ["/a/b", "/a", ""]);
        let root: Vec<&str> = cgroup_ancestors("/").collect();
        assert_eq!(root, [""]);
        let trailing: Vec<&str> = cgroup_ancestors("/a/").collect();
        assert_eq!(trailing, ["/a", ""]);
    }
}
