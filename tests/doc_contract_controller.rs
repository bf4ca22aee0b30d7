//! Documented controller promises, checked through the public API: what a
//! growing `set_workers` pins, and what `WorkerInfo`'s counters count once
//! a stopped worker's id is reused.
#![cfg(not(loom))]

mod support;

use std::time::Duration;
use support::wait_until;
use unplug::Runtime;

/// `Handle::set_workers`: a grown worker is pinned only if the runtime
/// pins its workers (`Builder::pin_workers`); it always gets a home CPU,
/// the runtime's least-used one.
#[test]
fn a_growing_resize_pins_new_workers_only_when_the_runtime_pins() {
    let cpus = unplug::worker::affinity::allowed_cpus().unwrap();
    for pin in [false, true] {
        let rt = Runtime::builder()
            .workers(1)
            .cpus(cpus.clone())
            .pin_workers(pin)
            .build()
            .unwrap();
        let grown = rt.set_workers(2).unwrap();
        assert_eq!(grown.started.len(), 1);
        let w = rt
            .workers()
            .into_iter()
            .find(|w| w.id == grown.started[0])
            .unwrap();
        assert_eq!(w.pinned, pin, "pin_workers({pin}): {w:?}");
        // Least used: the CPU worker 0 is not on, when there is one.
        let expected = cpus[1 % cpus.len()];
        assert_eq!(w.cpu, Some(expected), "{w:?}");
        let mask = unplug::worker::affinity::cpus_of(w.os_tid).unwrap();
        if pin {
            assert_eq!(mask, vec![expected]);
        } else {
            assert_eq!(mask, cpus, "an unpinned worker may run on every CPU");
        }
    }
}

/// `WorkerInfo::tasks_polled` and `resumes` count per worker id: a worker
/// started under the id of a stopped one continues its counts (they never
/// go down), while `last_unpark_latency` is the new thread's own.
#[test]
fn worker_counters_carry_over_to_a_worker_that_reuses_a_stopped_ones_id() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    rt.park_worker(1).unwrap();
    rt.unpark_worker(1, None).unwrap();
    assert!(wait_until(Duration::from_secs(10), || rt.workers()[1]
        .resumes
        == 1));
    let old = rt.workers()[1].clone();
    assert!(old.last_unpark_latency > Duration::ZERO);
    let total_before = rt.stats().tasks_polled;

    assert_eq!(rt.set_workers(1).unwrap().stopped, vec![1]);
    assert_eq!(rt.workers().len(), 1, "a stopped worker is not listed");
    let grown = rt.set_workers(2).unwrap();
    assert_eq!(grown.started, vec![1], "the lowest free id is reused");

    let new = rt.workers().into_iter().find(|w| w.id == 1).unwrap();
    assert_ne!(new.os_tid, old.os_tid, "a new thread");
    assert_eq!(new.resumes, old.resumes, "resumes carried over");
    assert!(new.tasks_polled >= old.tasks_polled, "polls carried over");
    assert_eq!(new.last_unpark_latency, Duration::ZERO, "never unparked");
    assert!(rt.stats().tasks_polled >= total_before);
}
