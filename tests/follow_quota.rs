//! The CPU follower and the cgroup CPU quota (QUOTA-COUNTS and
//! FOLLOW-KEEPS-COUNT in `runtime/CONTROLLER.md`): the quota caps how many
//! CPUs run a worker, never which ones, and a count asked for with
//! `set_workers` is kept when the quota is lifted. A red team found the
//! quota truncating the CPUs followed to the lowest ones (a lone worker on
//! CPU 1 moved to CPU 0 under a quota of 1; a user's move of the one
//! worker undone within a reading) and a `set_workers(2)` made under a
//! quota of 1 growing to 3 workers once the quota was lifted. Alone in its
//! binary: it moves the whole process between cgroups (tests take turns).
#![cfg(not(loom))]

mod follow_support;
mod support;

use follow_support::{on_both_cpus, running, running_cpus, Cgroup};
use std::time::{Duration, Instant};
use support::wait_until;
use unplug::Runtime;

/// How long a state must hold to count as settled (30 readings).
const HOLD: Duration = Duration::from_millis(300);

fn following() -> unplug::Builder {
    Runtime::builder()
        .follow_cpus(true)
        .follow_interval(Duration::from_millis(10))
}

/// Whether `cond` comes to hold within 15 s and then holds for [`HOLD`].
fn settles(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if !wait_until(deadline - Instant::now(), &mut cond) {
            return false;
        }
        let since = Instant::now();
        if !wait_until(HOLD, || !cond()) && since.elapsed() >= HOLD {
            return true;
        }
    }
    false
}

fn describe(rt: &Runtime) -> String {
    rt.workers()
        .iter()
        .map(|w| format!("{}:{:?}@{:?}", w.id, w.state, w.cpu))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sets a quota of 1 and waits for one worker to run.
fn settle_under_a_quota_of_one(quota: &Cgroup, rt: &Runtime) {
    quota.set_quota(Some(1.0));
    assert!(settles(|| running(rt) == 1), "quota 1: [{}]", describe(rt));
}

fn set_workers_beyond_the_quota_keeps_the_count_once_lifted(pin: bool) {
    let Some((_turn, _a, _b, cpuset)) = on_both_cpus() else {
        return;
    };
    let quota = Cgroup::cpu().unwrap();
    let rt = following().pin_workers(pin).build().unwrap();
    settle_under_a_quota_of_one(&quota, &rt);
    rt.set_workers(2).unwrap();
    quota.set_quota(None);
    // Two run (FOLLOW-KEEPS-COUNT), one on each CPU (FOLLOW-SPREADS).
    assert!(
        settles(|| running(&rt) == 2 && running_cpus(&rt).len() == 2),
        "set_workers(2) under a quota of 1, then the quota lifted: [{}]",
        describe(&rt)
    );
    drop(rt);
    drop(quota);
    drop(cpuset);
}

#[test]
fn a_count_set_under_a_quota_is_kept_when_the_quota_is_lifted() {
    set_workers_beyond_the_quota_keeps_the_count_once_lifted(true);
}

#[test]
fn a_count_set_under_a_quota_is_kept_by_unpinned_workers_when_it_is_lifted() {
    set_workers_beyond_the_quota_keeps_the_count_once_lifted(false);
}

#[test]
fn a_quota_of_one_leaves_a_lone_worker_on_its_cpu() {
    let Some((_turn, a, b, cpuset)) = on_both_cpus() else {
        return;
    };
    let quota = Cgroup::cpu().unwrap();
    let rt = following().workers(1).cpus([b, a]).build().unwrap();
    assert_eq!(running_cpus(&rt), vec![b]);
    let changes = rt.stats().follow_changes;
    quota.set_quota(Some(1.0));
    // The reading changed (a quota appeared): three readings, then applied.
    assert!(
        wait_until(Duration::from_secs(15), || rt.stats().follow_changes
            > changes),
        "the follower never applied the quota"
    );
    assert!(
        settles(|| running_cpus(&rt) == vec![b]),
        "a quota of 1 moved the lone worker off CPU {b}: [{}]",
        describe(&rt)
    );
    drop(rt);
    drop(quota);
    drop(cpuset);
}

#[test]
fn a_users_move_of_the_one_worker_a_quota_allows_is_left_alone() {
    let Some((_turn, _a, _b, cpuset)) = on_both_cpus() else {
        return;
    };
    let quota = Cgroup::cpu().unwrap();
    let rt = following().pin_workers(true).build().unwrap();
    settle_under_a_quota_of_one(&quota, &rt);
    let from = running_cpus(&rt)[0];
    let to = rt
        .workers()
        .iter()
        .find_map(|w| w.cpu.filter(|&c| c != from))
        .unwrap();
    let changes = rt.stats().follow_changes;
    rt.plug_cpu(to).unwrap();
    rt.unplug_cpu(from).unwrap();
    assert!(
        settles(|| running_cpus(&rt) == vec![to]),
        "the user moved the worker from CPU {from} to CPU {to}: [{}]",
        describe(&rt)
    );
    assert_eq!(
        rt.stats().follow_changes,
        changes,
        "the follower changed the pool after the user's move: [{}]",
        describe(&rt)
    );
    drop(rt);
    drop(quota);
    drop(cpuset);
}

/// A cpu cgroup `parent` with a child holding this process; both removed
/// (the process moved back to the root) on drop.
struct Nested {
    root: std::path::PathBuf,
    parent: std::path::PathBuf,
    child: std::path::PathBuf,
}

impl Nested {
    fn new() -> Option<Nested> {
        let root = std::path::PathBuf::from("/sys/fs/cgroup/cpu");
        if !root.join("cgroup.procs").exists() {
            eprintln!("skipped: no v1 cpu hierarchy");
            return None;
        }
        let parent = root.join(format!("unplug-quota-parent-{}", std::process::id()));
        let child = parent.join("child");
        std::fs::create_dir_all(&child).ok()?;
        let nested = Nested {
            root,
            parent,
            child,
        };
        std::fs::write(
            nested.child.join("cgroup.procs"),
            std::process::id().to_string(),
        )
        .ok()?;
        Some(nested)
    }

    fn set_parent_quota(&self, cpus: f64) {
        std::fs::write(self.parent.join("cpu.cfs_period_us"), "100000").unwrap();
        let quota = ((cpus * 100_000.0) as i64).to_string();
        std::fs::write(self.parent.join("cpu.cfs_quota_us"), quota).unwrap();
    }
}

impl Drop for Nested {
    fn drop(&mut self) {
        let _ = std::fs::write(
            self.root.join("cgroup.procs"),
            std::process::id().to_string(),
        );
        let _ = std::fs::remove_dir(&self.child);
        let _ = std::fs::remove_dir(&self.parent);
    }
}

/// QUOTA-INHERITED: a quota set on a parent cgroup (a systemd slice, a pod)
/// throttles the process as its own would; it was not read (the quota was
/// looked for in the process's own cgroup alone: `cpu_quota()` said `None`
/// and the follower kept both workers; a red team).
#[test]
fn a_quota_on_a_parent_cgroup_is_followed() {
    let Some((_turn, _a, _b, cpuset)) = on_both_cpus() else {
        return;
    };
    let Some(nested) = Nested::new() else {
        return;
    };
    let rt = following().build().unwrap();
    nested.set_parent_quota(1.0);
    assert_eq!(unplug::worker::affinity::cpu_quota(), Some(1.0));
    assert!(
        settles(|| running(&rt) == 1),
        "a quota of 1 on the parent cgroup: [{}]",
        describe(&rt)
    );
    drop(rt);
    drop(nested);
    drop(cpuset);
}
