//! FOLLOW-GIVES-UP, the CPU back before the park: the cgroup drops a CPU
//! whose worker is inside a long poll (the follower's park of it waits for
//! that poll), then gives the CPU back before the poll ends. The follower
//! gives its wait up and, when it applies the give-back, the CPU must end
//! with a running worker again once the poll is over, on a runtime built
//! for one worker per CPU. (A red team suspected the CPU stayed marked
//! unplugged with its worker parked for good.)
#![cfg(not(loom))]

mod control_support;
mod follow_support;
mod support;

use control_support::{describe, hold_workers, state_of};
use follow_support::{on_both_cpus, running_cpus};
use std::time::Duration;
use support::{wait_for, wait_until};
use unplug::worker::WorkerState;
use unplug::Runtime;

fn gives_back_during_the_poll(pin: bool) {
    let Some((_turn, keep, back, group)) = on_both_cpus() else {
        return;
    };
    let rt = Runtime::builder()
        .cpus([keep, back])
        .pin_workers(pin)
        .follow_cpus(true)
        .follow_interval(Duration::from_millis(10))
        .build()
        .unwrap();
    let h = rt.handle().clone();
    let mut held = hold_workers(&h, 2, Duration::from_secs(20)).unwrap();
    let on_back = h.workers().iter().find(|w| w.cpu == Some(back)).unwrap().id;
    group.set_cpus(&[keep]);
    wait_for("the follower to ask the worker on the CPU to park", || {
        state_of(&h, on_back) == Some(WorkerState::Parking)
    });
    group.set_cpus(&[keep, back]);
    wait_for("the follower to apply the give-back", || {
        rt.stats().follow_changes >= 2
    });
    for holder in &mut held {
        holder.release();
    }
    let both = wait_until(Duration::from_secs(5), || {
        running_cpus(&rt) == vec![keep, back]
    });
    assert!(
        both,
        "the cgroup gave CPU {back} back during the poll: running on {:?}: [{}]",
        running_cpus(&rt),
        describe(&h)
    );
    drop(rt);
    drop(group);
}

#[test]
fn a_cpu_given_back_during_its_workers_long_poll_runs_a_pinned_worker_again() {
    gives_back_during_the_poll(true);
}

#[test]
fn a_cpu_given_back_during_its_workers_long_poll_runs_an_unpinned_worker_again() {
    gives_back_during_the_poll(false);
}
