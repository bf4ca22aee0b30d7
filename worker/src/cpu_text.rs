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
                let (lo, hi) = (number(lo)?, number(hi)?);
                if lo > hi || hi >= max {
                    return None;
                }
                cpus.extend(lo..=hi);
            }
            None => {
                // The same bound as a range's: a cpu_set_t cannot name it.
                let cpu = number(part)?;
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
    if quota == "max" || parts.next().is_some() {
        return None;
    }
    // TEXT-STRICT: the kernel writes both as whole microseconds; a float
    // parse took "inf", "NaN" and "1e400" (an infinite quota).
    let (q, p) = (number(quota)?, number(period)?);
    (q > 0 && p > 0).then(|| q as f64 / p as f64)
}

/// A decimal number as the kernel writes it: digits only (`usize`'s own
/// parse also takes a leading `+`, which no kernel text has).
fn number(text: &str) -> Option<usize> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
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
    use super::{cgroup_ancestors, parse_cpu_list_below, parse_cpu_max};

    #[test]
    fn malformed_kernel_texts_read_as_none() {
        // A red team (2026-12-04): each of these parsed before.
        for text in [
            "inf 100000",
            "inf inf",
            "1e400 1",
            "100000 1e-320",
            "150000 100000 junk",
        ] {
            assert_eq!(parse_cpu_max(text), None, "{text:?}");
        }
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(1.5));
        for list in ["+1", "1-+2", "-1", "1-", ""] {
            assert_eq!(parse_cpu_list_below(list, 1024), None, "{list:?}");
        }
        assert_eq!(
            parse_cpu_list_below("0-2,5\n", 1024),
            Some(vec![0, 1, 2, 5])
        );
    }

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
