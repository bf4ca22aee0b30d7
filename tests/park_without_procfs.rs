//! A park where procfs cannot be read (no /proc in the container, a tmpfs
//! over it, the fd table full) completes on the worker's own marker
//! instead of hanging, and says so: in the `ParkReport` and in the
//! `park_inactive_evidence_total` metric. The worker crate's
//! `tests/inactive_evidence.rs` checks the same at its level (and at the
//! fd limit); this is the runtime's face of it.
#![cfg(not(loom))]

mod support;

use std::time::Duration;
use support::with_watchdog;
use unplug::worker::InactiveEvidence;
use unplug::Runtime;

fn park_and_report(rt: &Runtime) -> unplug::ParkReport {
    let h = rt.handle().clone();
    let report = with_watchdog("park with the procfs reader redirected", move || {
        let r = h.park_worker(1);
        let _ = h.unpark_worker(1, None);
        r
    });
    report.expect("the park completes")
}

#[test]
fn an_unreadable_procfs_parks_on_the_marker_and_reports_it() {
    let rt = Runtime::builder()
        .workers(2)
        .procfs_task_dir_for_tests("/nonexistent/unplug-test/task")
        .build()
        .unwrap();
    let report = park_and_report(&rt);
    assert_eq!(report.parked, vec![1]);
    assert_eq!(
        report.park_latencies[0].inactive_by,
        InactiveEvidence::Marker
    );
}

#[test]
fn a_readable_procfs_parks_on_the_kernels_word() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let report = park_and_report(&rt);
    assert_eq!(report.parked, vec![1]);
    let expected = if unplug::worker::affinity::AFFINITY_SUPPORTED {
        InactiveEvidence::Kernel
    } else {
        InactiveEvidence::Marker
    };
    assert_eq!(report.park_latencies[0].inactive_by, expected);
    // Timeouts too long for the clock mean no deadline.
    let h = rt.handle();
    assert!(h.unplug_cpu_timeout(usize::MAX, Duration::MAX).is_err());
}
