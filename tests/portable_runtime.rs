//! The runtime on a platform without CPU affinity, as every non-Linux
//! target builds it: selected here with `--cfg unplug_portable`
//! (`.ci/portable`). Tasks run, workers park and unpark, the pool resizes;
//! unplugging or plugging a CPU and re-pinning are a typed `Unsupported`
//! that changes nothing.
#![cfg(all(not(loom), unplug_portable))]

mod support;

use support::with_watchdog;
use unplug::worker::affinity::AFFINITY_SUPPORTED;
use unplug::worker::WorkerState;
use unplug::{BuildError, ControlError, Runtime};

#[test]
fn without_affinity_workers_park_and_cpus_are_unsupported() {
    assert!(!AFFINITY_SUPPORTED);
    let rt = Runtime::builder().workers(2).build().unwrap();
    assert_eq!(rt.block_on(rt.spawn(async { 6 * 7 })).unwrap(), 42);
    let h = rt.handle().clone();
    let report = with_watchdog("park without affinity", move || h.park_worker(1)).unwrap();
    assert_eq!(report.parked, vec![1]);
    // The portable build has only the worker's own marker as evidence.
    assert_eq!(
        report.park_latencies[0].inactive_by,
        unplug::worker::InactiveEvidence::Marker
    );
    assert_eq!(rt.workers()[1].state, WorkerState::Parked);
    assert!(matches!(rt.unplug_cpu(0), Err(ControlError::Unsupported)));
    assert!(matches!(rt.plug_cpu(0), Err(ControlError::Unsupported)));
    assert!(matches!(
        rt.unpark_worker(1, Some(0)),
        Err(ControlError::Unsupported)
    ));
    assert_eq!(
        rt.workers()[1].state,
        WorkerState::Parked,
        "changed nothing"
    );
    assert_eq!(rt.unpark_worker(1, None).unwrap().unparked, vec![1]);
    let grown = rt.set_workers(3).unwrap();
    assert_eq!(grown.started.len(), 1);
    assert_eq!(rt.block_on(rt.spawn(async { 1 })).unwrap(), 1);
    // Pinning is refused at build time, with the reason.
    let pinned = Runtime::builder().workers(1).pin_workers(true).build();
    assert!(
        matches!(
            pinned,
            Err(BuildError::Worker(unplug::worker::SpawnError::Unsupported))
        ),
        "{pinned:?}"
    );
}
