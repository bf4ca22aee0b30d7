//! Red team of the CPU follower with `pin_workers(false)`: an unpinned
//! worker runs on "the CPUs the process may use that are also in the main
//! thread's mask" (AFFINITY-INHERIT, set once, when it starts). The
//! follower parked the worker homed on a CPU that left, and left the other
//! workers' masks alone: after `taskset -p` dropped CPU 1, the running
//! workers could still run there; after the cgroup gave CPU 1 back, the
//! workers started while it was gone stayed confined to CPU 0 (their mask
//! was set to it explicitly, and the kernel restores an explicit mask).
//! Alone in its binary: it changes the main thread's mask and cgroups.
#![cfg(not(loom))]

mod follow_support;
mod support;

use follow_support::{on_both_cpus, pid, serial, two_cpus, RestoreMask};
use std::time::Duration;
use support::{wait_for, wait_until};
use unplug::worker::{affinity, WorkerState};
use unplug::Runtime;

fn unpinned_follower() -> Runtime {
    Runtime::builder()
        .workers(2)
        .pin_workers(false)
        .follow_cpus(true)
        .follow_interval(Duration::from_millis(10))
        .build()
        .unwrap()
}

/// The kernel masks of the workers not parked.
fn masks(rt: &Runtime) -> Vec<Vec<usize>> {
    rt.workers()
        .iter()
        .filter(|w| !matches!(w.state, WorkerState::Parked | WorkerState::Parking))
        .map(|w| affinity::cpus_of(w.os_tid).unwrap())
        .collect()
}

#[test]
fn unpinned_workers_leave_the_cpu_the_main_thread_mask_dropped() {
    let _serial = serial();
    let Some((keep, gone)) = two_cpus() else {
        return;
    };
    let _restore = RestoreMask::new();
    let rt = unpinned_follower();
    affinity::pin_to(pid(), &[keep]).unwrap();
    wait_for("the follower to park the worker homed on the CPU", || {
        rt.workers()
            .iter()
            .any(|w| w.cpu == Some(gone) && w.state == WorkerState::Parked)
    });
    let left = wait_until(Duration::from_secs(2), || {
        masks(&rt).iter().all(|m| m == &vec![keep])
    });
    assert!(
        left,
        "`taskset -p` dropped CPU {gone}; the running workers' masks: {:?}",
        masks(&rt)
    );
}

#[test]
fn unpinned_workers_started_while_the_cgroup_was_narrow_use_the_cpu_it_gives_back() {
    let Some((_turn, keep, back, group)) = on_both_cpus() else {
        return;
    };
    let rt = unpinned_follower();
    group.set_cpus(&[keep]);
    wait_for("the follower to park the worker homed on the CPU", || {
        rt.workers()
            .iter()
            .any(|w| w.cpu == Some(back) && w.state == WorkerState::Parked)
    });
    wait_for("the allowed set to drop the CPU", || {
        affinity::allowed_cpus().unwrap() == vec![keep]
    });
    rt.set_workers(3).unwrap();
    group.set_cpus(&[keep, back]);
    // FOLLOW-KEEPS-COUNT and FOLLOW-SPREADS: the three asked for run on,
    // one of them on the CPU that came back.
    wait_for("the follower to plug the CPU back", || {
        rt.stats().follow_changes >= 2
            && follow_support::running(&rt) == 3
            && follow_support::running_cpus(&rt).contains(&back)
    });
    let spread = wait_until(Duration::from_secs(2), || {
        masks(&rt).iter().all(|m| m.contains(&back))
    });
    assert!(
        spread,
        "the cgroup gave CPU {back} back; the running workers' masks: {:?}",
        masks(&rt)
    );
    drop(rt);
    drop(group);
}
