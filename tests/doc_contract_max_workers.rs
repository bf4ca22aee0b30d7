//! `MAX_WORKERS` is "the most workers a runtime may have at once": no
//! controller call may take the pool past it. `plug_cpu` started a worker
//! on a CPU without one whatever the pool's size, and a growing
//! `set_workers` counted only running workers, not those parked on
//! unplugged CPUs: a runtime reached 1025 workers.
#![cfg(not(loom))]

mod support;

use support::with_watchdog;
use unplug::{ControlError, Runtime, MAX_WORKERS};

#[test]
fn no_controller_call_takes_the_pool_past_max_workers() {
    let cpus = unplug::worker::affinity::allowed_cpus().unwrap();
    if cpus.len() < 2 {
        eprintln!("skipped: needs two CPUs");
        return;
    }
    let (c0, c1) = (cpus[0], cpus[1]);
    with_watchdog("a pool of MAX_WORKERS", move || {
        let rt = Runtime::builder()
            .workers(1)
            .cpus([c0])
            .pin_workers(true)
            .build()
            .unwrap();
        rt.set_workers(MAX_WORKERS).unwrap();
        assert_eq!(rt.workers().len(), MAX_WORKERS);

        // A full pool, no worker on `c1`: plugging it would start one more.
        let plugged = rt.plug_cpu(c1);
        assert!(
            matches!(plugged, Err(ControlError::TooManyWorkers { max, .. }) if max == MAX_WORKERS),
            "plug_cpu on a full pool: {plugged:?}"
        );
        assert_eq!(rt.workers().len(), MAX_WORKERS, "plug_cpu started a worker");

        // One worker parked on an unplugged CPU still counts: growing the
        // running workers back to MAX_WORKERS would make MAX_WORKERS + 1.
        rt.set_workers(MAX_WORKERS - 1).unwrap();
        assert_eq!(rt.plug_cpu(c1).unwrap().started.len(), 1);
        assert_eq!(rt.unplug_cpu(c1).unwrap().parked.len(), 1);
        assert_eq!(rt.workers().len(), MAX_WORKERS);
        let grown = rt.set_workers(MAX_WORKERS);
        assert!(
            matches!(grown, Err(ControlError::TooManyWorkers { max, .. }) if max == MAX_WORKERS),
            "set_workers beside a parked worker: {grown:?}"
        );
        assert_eq!(
            rt.workers().len(),
            MAX_WORKERS,
            "set_workers started a worker"
        );

        // Plugging the CPU back unparks its worker: that starts none.
        assert_eq!(rt.plug_cpu(c1).unwrap().started.len(), 0);
        assert_eq!(rt.block_on(rt.spawn(async { 7 })).unwrap(), 7);
    });
}
