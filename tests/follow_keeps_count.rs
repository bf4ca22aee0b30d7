//! FOLLOW-KEEPS-COUNT: a runtime built with `workers(n)` (or resized with
//! `set_workers(n)`) keeps n running workers while it follows its CPUs:
//! following moves workers off CPUs that go and back onto CPUs that come
//! back, it does not add workers a default-built runtime would have. A
//! `workers(1)` runtime on two CPUs grew to two running workers after the
//! cgroup dropped a CPU and gave it back (the follower plugged the CPU that
//! came back, and a plug starts a worker where none is).
//! Alone in its binary: it moves the whole process between cgroups.
#![cfg(not(loom))]

mod follow_support;
mod support;

use follow_support::{on_both_cpus, running};
use std::time::Duration;
use support::wait_for;
use unplug::Runtime;

/// `workers(1)` following two CPUs, the worker on `home`; the cgroup drops
/// `dropped` and gives it back. Returns the running workers at the end.
fn one_worker_through_a_drop_and_give_back(home_is_dropped: bool) -> usize {
    let Some((_turn, a, b, group)) = on_both_cpus() else {
        return 1;
    };
    // Every CPU the process may use (no `cpus`: that would scope the
    // follower to it), one worker.
    let rt = Runtime::builder()
        .workers(1)
        .follow_cpus(true)
        .follow_interval(Duration::from_millis(10))
        .build()
        .unwrap();
    let home = rt.workers()[0].cpu.unwrap();
    let other = if home == a { b } else { a };
    let kept = if home_is_dropped { other } else { home };
    group.set_cpus(&[kept]);
    wait_for("the follower to apply the drop", || {
        rt.stats().follow_changes >= 1
    });
    wait_for("a worker to run on the CPU left", || {
        rt.workers().iter().any(|w| {
            w.cpu == Some(kept)
                && matches!(
                    w.state,
                    unplug::worker::WorkerState::Running | unplug::worker::WorkerState::Idle
                )
        })
    });
    group.set_cpus(&[a, b]);
    wait_for("the follower to apply the give-back", || {
        rt.stats().follow_changes >= 2
    });
    assert_eq!(rt.block_on(rt.spawn(async { 3 })).unwrap(), 3);
    let n = running(&rt);
    drop(rt);
    drop(group);
    n
}

#[test]
fn one_worker_stays_one_when_a_cpu_without_it_goes_and_comes_back() {
    assert_eq!(one_worker_through_a_drop_and_give_back(false), 1);
}

#[test]
fn one_worker_moves_off_its_dropped_cpu_and_stays_one_when_it_comes_back() {
    assert_eq!(one_worker_through_a_drop_and_give_back(true), 1);
}

/// The other side: a runtime built with the default count (one worker per
/// CPU) runs a worker on the CPU that comes back.
#[test]
fn a_default_built_runtime_runs_a_worker_on_the_cpu_that_comes_back() {
    let Some((_turn, a, b, group)) = on_both_cpus() else {
        return;
    };
    let rt = Runtime::builder()
        .follow_cpus(true)
        .follow_interval(Duration::from_millis(10))
        .build()
        .unwrap();
    assert_eq!(running(&rt), 2);
    group.set_cpus(&[a]);
    wait_for("the follower to unplug the dropped CPU", || {
        running(&rt) == 1
    });
    group.set_cpus(&[a, b]);
    wait_for("the follower to plug the CPU that came back", || {
        running(&rt) == 2
    });
    drop(rt);
    drop(group);
}
