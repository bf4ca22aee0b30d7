//! Red team of the CPU follower: `Builder::cpus` is "the CPUs the runtime
//! uses", yet the follower plugged every CPU of the process's mask that
//! joined: a runtime built on CPU 0 alone got a worker started on CPU 1
//! once the main thread's mask (`taskset -p`) dropped CPU 1 and gave it
//! back. Alone in its binary: it changes the main thread's mask.
#![cfg(not(loom))]

mod follow_support;
mod support;

use follow_support::{pid, serial, two_cpus, RestoreMask};
use std::time::Duration;
use support::{wait_for, wait_until};
use unplug::worker::affinity;
use unplug::Runtime;

#[test]
fn the_follower_starts_no_worker_outside_the_cpus_the_runtime_was_built_for() {
    let _serial = serial();
    let Some((home, other)) = two_cpus() else {
        return;
    };
    let _restore = RestoreMask::new();
    let rt = Runtime::builder()
        .workers(1)
        .cpus([home])
        .pin_workers(true)
        .follow_cpus(true)
        .follow_interval(Duration::from_millis(10))
        .build()
        .unwrap();
    // A runtime on every CPU, following too: it shows when the change was
    // read (the runtime under test, if right, has nothing to count).
    let probe = Runtime::builder()
        .workers(2)
        .pin_workers(true)
        .follow_cpus(true)
        .follow_interval(Duration::from_millis(10))
        .build()
        .unwrap();
    affinity::pin_to(pid(), &[home]).unwrap();
    wait_for("the follower to see the narrowed mask", || {
        probe.stats().follow_changes >= 1
    });
    affinity::pin_to(pid(), &[home, other]).unwrap();
    wait_for("the follower to see the mask given back", || {
        probe.stats().follow_changes >= 2
    });
    // Counted before it is applied: hold the state a while.
    let strayed = wait_until(Duration::from_millis(500), || {
        rt.workers().iter().any(|w| w.cpu != Some(home))
    });
    let workers = rt.workers();
    assert!(!strayed, "a runtime built for CPU {home} only: {workers:?}");
    assert_eq!(workers.len(), 1, "{workers:?}");
}
