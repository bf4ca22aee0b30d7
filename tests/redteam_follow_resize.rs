//! Red team of the CPU follower's neighbours: a growing `set_workers` right
//! after the cgroup dropped a CPU chose the CPU to start on from the cached
//! allowed set (50 ms): pinned, the start failed (`sched_setaffinity`
//! EINVAL) and the whole call with it; unpinned, the new worker's home CPU
//! was the dropped one (a running worker "on" a CPU the process may not
//! use, which a follower that already applied the drop never unplugs).
//! Alone in its binary: it moves the whole process between cgroups.
#![cfg(not(loom))]

mod follow_support;

use follow_support::on_both_cpus;
use unplug::worker::{affinity, WorkerState};
use unplug::Runtime;

/// Two workers, on `keep` and `gone`, pinned or not.
fn pair(keep: usize, gone: usize, pin: bool) -> Runtime {
    Runtime::builder()
        .workers(2)
        .cpus([keep, gone])
        .pin_workers(pin)
        .build()
        .unwrap()
}

fn grows_on_the_cpu_left(pin: bool) {
    let Some((_turn, keep, gone, group)) = on_both_cpus() else {
        return;
    };
    let rt = pair(keep, gone, pin);
    // The cached allowed set is fresh and still has both CPUs.
    assert_eq!(affinity::allowed_cpus().unwrap(), vec![keep, gone]);
    group.set_cpus(&[keep]);
    let report = rt.set_workers(4);
    assert!(
        report.is_ok(),
        "set_workers(4) right after the cgroup dropped CPU {gone}: {report:?}"
    );
    let started = report.unwrap().started;
    let homes: Vec<_> = rt
        .workers()
        .into_iter()
        .filter(|w| started.contains(&w.id))
        .map(|w| w.cpu)
        .collect();
    assert_eq!(
        homes,
        vec![Some(keep); started.len()],
        "workers started after the cgroup dropped CPU {gone}"
    );
    drop(rt);
    drop(group);
}

#[test]
fn set_workers_right_after_a_cgroup_shrink_starts_pinned_workers_on_the_cpus_left() {
    grows_on_the_cpu_left(true);
}

#[test]
fn set_workers_right_after_a_cgroup_shrink_gives_unpinned_workers_a_cpu_left() {
    grows_on_the_cpu_left(false);
}

/// REUSE-ALLOWED: the parked worker of a CPU the cgroup dropped since is
/// not what a growing `set_workers` brings back (it would count as running
/// "on" a CPU the process may not use); a worker is started on a CPU left,
/// and the parked one stays the CPU's for when it comes back.
fn grows_beside_a_parked_worker_of_the_cpu_gone(pin: bool) {
    let Some((_turn, keep, gone, group)) = on_both_cpus() else {
        return;
    };
    let rt = pair(keep, gone, pin);
    let parked = rt
        .workers()
        .iter()
        .find(|w| w.cpu == Some(gone))
        .map(|w| w.id)
        .unwrap();
    rt.park_worker(parked).unwrap();
    group.set_cpus(&[keep]);
    let report = rt.set_workers(2).unwrap();
    let on_gone: Vec<_> = rt
        .workers()
        .into_iter()
        .filter(|w| {
            w.cpu == Some(gone) && matches!(w.state, WorkerState::Running | WorkerState::Idle)
        })
        .map(|w| w.id)
        .collect();
    assert!(
        on_gone.is_empty() && !report.unparked.contains(&parked),
        "set_workers(2) after the cgroup dropped CPU {gone} brought back its parked worker: {report:?}"
    );
    assert_eq!(report.started.len(), 1, "{report:?}");
    drop(rt);
    drop(group);
}

#[test]
fn set_workers_leaves_the_pinned_parked_worker_of_a_cpu_the_cgroup_dropped() {
    grows_beside_a_parked_worker_of_the_cpu_gone(true);
}

#[test]
fn set_workers_leaves_the_unpinned_parked_worker_of_a_cpu_the_cgroup_dropped() {
    grows_beside_a_parked_worker_of_the_cpu_gone(false);
}
