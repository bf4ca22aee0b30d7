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

use control_support::{
    describe, hold_workers, on_thread, pair_runtime, state_of, two_cpus, wait_until, watchdog,
};
use std::time::Duration;
use unplug::worker::WorkerState;
use unplug::{ControlError, Handle, ParkReport};

const LIMIT: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(10);

/// What `second` returned, the worker's state then, and every worker's.
type Outcome = (
    Result<ParkReport, ControlError>,
    Option<WorkerState>,
    String,
);

/// B, an `unplug_cpu_timeout` of the second CPU, requests the park of its
/// worker (held inside a poll) and times out while `second` (called with
/// the handle, the CPU and the worker, after B's request) shares it. The
/// poll ends after B gave up or, with `second_timeout_left`, once `second`
/// returned. `None` without two CPUs.
fn after_the_owner_timed_out(
    second: impl FnOnce(Handle, usize, usize) -> Result<ParkReport, ControlError> + Send + 'static,
    second_timeout_left: Option<Duration>,
) -> Option<Outcome> {
    let (c0, c1) = two_cpus()?;
    let rt = pair_runtime(c0, c1);
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
    Some(out)
}

#[test]
fn an_unplug_sharing_a_timed_out_unplugs_park_still_parks_the_worker() {
    let Some((ra, state, workers)) = after_the_owner_timed_out(
        |h, cpu, _| h.unplug_cpu_timeout(cpu, Duration::from_secs(30)),
        None,
    ) else {
        return;
    };
    assert!(
        matches!(&ra, Ok(r) if r.superseded.is_empty()) && state == Some(WorkerState::Parked),
        "unplug_cpu shared the park of an unplug_cpu_timeout that timed out: it returned \
         {ra:?}, the worker is {state:?}: [{workers}]"
    );
}

#[test]
fn a_park_worker_sharing_a_timed_out_unplugs_park_still_parks_the_worker() {
    let Some((ra, state, workers)) = after_the_owner_timed_out(|h, _, id| h.park_worker(id), None)
    else {
        return;
    };
    assert!(
        matches!(&ra, Ok(r) if r.parked.len() == 1 && r.superseded.is_empty())
            && state == Some(WorkerState::Parked),
        "park_worker shared the park of an unplug_cpu_timeout that timed out: it returned \
         {ra:?}, the worker is {state:?}: [{workers}]"
    );
}

#[test]
fn the_sharer_that_took_a_park_over_withdraws_it_when_it_times_out_too() {
    let Some((ra, state, workers)) = after_the_owner_timed_out(
        |h, cpu, _| h.unplug_cpu_timeout(cpu, Duration::from_millis(600)),
        Some(Duration::from_millis(600)),
    ) else {
        return;
    };
    assert!(
        matches!(ra, Err(ControlError::Timeout { .. })),
        "the second unplug_cpu_timeout: {ra:?}: [{workers}]"
    );
    assert!(
        matches!(state, Some(WorkerState::Running | WorkerState::Idle)),
        "both unplugs timed out, yet the worker is {state:?}: [{workers}]"
    );
}

/// DEFERRED-STANDS: a task on the worker itself calls `unplug_cpu` of its
/// CPU while an `unplug_cpu_timeout` from a plain thread waits on the
/// park: the task's call may not wait for its own worker, so it returns
/// `Ok` with the worker deferred, a promise that the park completes when
/// the poll returns. The timed-out owner must not withdraw it afterwards
/// (before, it did: the worker ran on the CPU again).
#[test]
fn a_park_deferred_by_the_workers_own_task_stands_when_its_owner_times_out() {
    let Some((c0, c1)) = two_cpus() else {
        return;
    };
    let rt = pair_runtime(c0, c1);
    let h = rt.handle().clone();
    let (deferred, state, workers) = watchdog("a deferred sharer", LIMIT, &h.clone(), move || {
        let w1 = h.workers().iter().find(|w| w.cpu == Some(c1)).unwrap().id;
        let mut held = hold_workers(&h, 2, WAIT).unwrap();
        let hb = h.clone();
        let b = on_thread(move || hb.unplug_cpu_timeout(c1, Duration::from_millis(300)));
        assert!(wait_until(WAIT, || state_of(&h, w1) == Some(WorkerState::Parking)));
        let hd = h.clone();
        let on_w1 = held.iter().find(|x| x.worker == w1).unwrap();
        let deferred = on_w1
            .run(move || hd.unplug_cpu(c1))
            .recv_timeout(WAIT)
            .unwrap();
        let rb = b.recv_timeout(Duration::from_secs(20)).unwrap();
        assert!(matches!(rb, Err(ControlError::Timeout { .. })), "B: {rb:?}");
        for holder in &mut held {
            holder.release();
        }
        wait_until(WAIT, || state_of(&h, w1) == Some(WorkerState::Parked));
        (deferred, state_of(&h, w1), describe(&h))
    });
    assert!(
        matches!(&deferred, Ok(r) if r.deferred.len() == 1),
        "the worker's own unplug_cpu: {deferred:?}"
    );
    assert_eq!(
        state,
        Some(WorkerState::Parked),
        "unplug_cpu from the worker's own task returned {deferred:?}, then the owner timed \
         out: [{workers}]"
    );
    drop(rt);
}
