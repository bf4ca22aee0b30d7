//! The runtime follows the CPUs the process may use, for real: the test
//! restricts the process's affinity mask (its main thread's, what
//! `taskset -p` changes) to one CPU, waits for the pool to unplug the
//! other, then restores the mask and waits for the pool to plug it back.
//! Alone in its binary: it changes process-wide state.
#![cfg(not(loom))]

mod support;

use support::{running_on, wait_for};
use unplug::worker::affinity;
use unplug::Runtime;

#[test]
fn the_pool_follows_the_process_affinity_mask_down_and_back_up() {
    let cpus = affinity::allowed_cpus().unwrap();
    if cpus.len() < 2 {
        eprintln!("skipped: needs two CPUs");
        return;
    }
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let original = affinity::cpus_of(pid).unwrap();
    let (keep, drop_cpu) = (cpus[0], cpus[1]);
    let rt = Runtime::builder()
        .workers(2)
        .cpus([keep, drop_cpu])
        .pin_workers(true)
        .follow_cpus(true)
        .follow_interval(std::time::Duration::from_millis(10))
        .build()
        .unwrap();
    assert!(running_on(&rt, drop_cpu));

    affinity::pin_to(pid, &[keep]).unwrap();
    wait_for("the pool to unplug the dropped CPU", || {
        !running_on(&rt, drop_cpu)
    });
    assert!(running_on(&rt, keep));
    // Work still runs.
    assert_eq!(rt.block_on(rt.spawn(async { 1 })).unwrap(), 1);

    affinity::pin_to(pid, &original).unwrap();
    wait_for("the pool to plug the CPU back", || {
        running_on(&rt, drop_cpu)
    });
    assert!(rt.stats().follow_changes >= 2);
}
