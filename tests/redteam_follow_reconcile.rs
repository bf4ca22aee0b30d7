//! Red team of the CPU follower: a worker left running on a CPU the cgroup
//! dropped. The follower acted only when its *reading* changed from what it
//! last applied, never when the *pool* stopped matching it: a CPU given
//! back for less than three readings, plugged by the user meanwhile
//! (`plug_cpu` is allowed then, CPU-BACK), then dropped again left the
//! follower's reading at what it had applied, and the worker there ran on
//! for good (pinned to a CPU the process may not use; the kernel moved it).
//! Alone in its binary: it moves the whole process between cgroups.
#![cfg(not(loom))]

mod follow_support;
mod support;

use follow_support::on_both_cpus;
use std::time::Duration;
use support::{running_on, wait_for, wait_until};
use unplug::worker::WorkerState;
use unplug::Runtime;

#[test]
fn a_cpu_plugged_during_a_short_give_back_is_unplugged_again_when_the_cgroup_drops_it() {
    let Some((_turn, keep, gone, group)) = on_both_cpus() else {
        return;
    };
    let rt = Runtime::builder()
        .workers(2)
        .cpus([keep, gone])
        .pin_workers(true)
        .follow_cpus(true)
        .follow_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    group.set_cpus(&[keep]);
    wait_for("the follower to park the worker of the dropped CPU", || {
        rt.workers()
            .iter()
            .any(|w| w.cpu == Some(gone) && w.state == WorkerState::Parked)
    });
    // Given back for far less than three readings of 100 ms; the user plugs
    // it meanwhile, then the cgroup drops it again.
    group.set_cpus(&[keep, gone]);
    rt.plug_cpu(gone).unwrap();
    group.set_cpus(&[keep]);
    // The reading is [keep] again, held for many readings: the pool must
    // match it.
    let left = wait_until(Duration::from_secs(3), || !running_on(&rt, gone));
    let workers = rt.workers();
    assert!(
        left,
        "3 s after the cgroup dropped CPU {gone} again, a worker still runs there: {workers:?}"
    );
    assert_eq!(rt.block_on(rt.spawn(async { 7 })).unwrap(), 7);
    drop(rt);
    drop(group);
}
