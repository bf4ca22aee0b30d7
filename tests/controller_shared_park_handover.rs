//! OWNED-HANDOVER: a call that requested a park and timed out withdraws it
//! only if no other call still waits for it. Before, an
//! `unplug_cpu_timeout` that timed out unparked the worker while a later
//! `unplug_cpu` or `park_worker` of it was still waiting on the same park
//! (SHARED-PARK); that call returned `Ok` with the worker "superseded"
//! and the worker running on the CPU it had been asked to leave. The
//! timed-out call changes nothing: the park stands for the call that still
//! wants it, which now owns it (and withdraws it if it times out too).
#![cfg(not(loom))]

mod control_support;
mod support;

use control_support::{cpus, describe, hold_workers, state_of, wait_until, watchdog};
use std::sync::mpsc;
use std::time::Duration;
use unplug::worker::WorkerState;
use unplug::{ControlError, Handle, ParkReport, Runtime};

const LIMIT: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(10);

fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx
}

/// Worker `id`'s state once `a` returned, and what `a` returned: B, an
/// `unplug_cpu_timeout` of the CPU of worker `id`, requests the park and
/// times out while `second` (started after B's request) shares it; the
/// held poll ends only after B gave up.
fn after_the_owner_timed_out(
    second: impl FnOnce(Handle, usize, usize) -> Result<ParkReport, ControlError> + Send + 'static,
    second_timeout_left: Option<Duration>,
) -> (
    Result<ParkReport, ControlError>,
    Option<WorkerState>,
    String,
) {
    let cpus = cpus();
    let (c0, c1) = (cpus[0], cpus[1]);
    let rt = Runtime::builder()
        .workers(2)
        .cpus([c0, c1])
        .build()
        .unwrap();
    let h = rt.handle().clone();
    let out = watchdog(
        "a timed-out owner and a sharer",
        LIMIT,
        &h.clone(),
        move || {
            let w1 = h.workers().iter().find(|w| w.cpu == Some(c1)).unwrap().id;
            let mut held = hold_workers(&h, 2, WAIT).unwrap();
            let hb = h.clone();
            let b = on_thread(move || hb.unplug_cpu_timeout(c1, Duration::from_millis(300)));
            assert!(
                wait_until(WAIT, || state_of(&h, w1) == Some(WorkerState::Parking)),
                "B's park was not requested: [{}]",
                describe(&h)
            );
            let ha = h.clone();
            let a = on_thread(move || second(ha, c1, w1));
            let rb = b.recv_timeout(Duration::from_secs(20)).unwrap();
            assert!(
                matches!(rb, Err(ControlError::Timeout { .. })),
                "B should time out: {rb:?}"
            );
            // A is still waiting (its poll is held): its outcome once released.
            if let Some(left) = second_timeout_left {
                // A's own deadline passes while the poll is still held.
                let ra = a.recv_timeout(left + Duration::from_secs(10)).unwrap();
                for hd in &mut held {
                    hd.release();
                }
                assert!(wait_until(WAIT, || matches!(
                    state_of(&h, w1),
                    Some(WorkerState::Running | WorkerState::Idle)
                )));
                return (ra, state_of(&h, w1), describe(&h));
            }
            for hd in &mut held {
                hd.release();
            }
            let ra = a.recv_timeout(Duration::from_secs(30)).unwrap();
            (ra, state_of(&h, w1), describe(&h))
        },
    );
    drop(rt);
    out
}

fn two_cpus() -> bool {
    if cpus().len() < 2 {
        eprintln!("skipped: needs two CPUs");
        return false;
    }
    true
}

#[test]
fn an_unplug_sharing_a_timed_out_unplugs_park_still_parks_the_worker() {
    if !two_cpus() {
        return;
    }
    let (ra, state, workers) = after_the_owner_timed_out(
        |h, cpu, _| h.unplug_cpu_timeout(cpu, Duration::from_secs(30)),
        None,
    );
    assert!(
        matches!(&ra, Ok(r) if r.superseded.is_empty()) && state == Some(WorkerState::Parked),
        "unplug_cpu shared the park of an unplug_cpu_timeout that timed out: it returned \
         {ra:?}, the worker is {state:?}: [{workers}]"
    );
}

#[test]
fn a_park_worker_sharing_a_timed_out_unplugs_park_still_parks_the_worker() {
    if !two_cpus() {
        return;
    }
    let (ra, state, workers) = after_the_owner_timed_out(|h, _, id| h.park_worker(id), None);
    assert!(
        matches!(&ra, Ok(r) if r.parked.len() == 1 && r.superseded.is_empty())
            && state == Some(WorkerState::Parked),
        "park_worker shared the park of an unplug_cpu_timeout that timed out: it returned \
         {ra:?}, the worker is {state:?}: [{workers}]"
    );
}

#[test]
fn the_sharer_that_took_a_park_over_withdraws_it_when_it_times_out_too() {
    if !two_cpus() {
        return;
    }
    let (ra, state, workers) = after_the_owner_timed_out(
        |h, cpu, _| h.unplug_cpu_timeout(cpu, Duration::from_millis(600)),
        Some(Duration::from_millis(600)),
    );
    assert!(
        matches!(ra, Err(ControlError::Timeout { .. })),
        "the second unplug_cpu_timeout: {ra:?}: [{workers}]"
    );
    assert!(
        matches!(state, Some(WorkerState::Running | WorkerState::Idle)),
        "both unplugs timed out, yet the worker is {state:?}: [{workers}]"
    );
}
