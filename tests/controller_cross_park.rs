//! Controller calls made from inside tasks that wait for each other's
//! workers (issue 13, defect 2). A task that parks another worker blocks its
//! own worker while it waits; two such waits in a cycle must not deadlock:
//! both calls return (Ok, the park done or deferred, or an error such as the
//! expected `ControlError::WouldDeadlock`) and the runtime keeps running
//! tasks.
#![cfg(not(loom))]

mod control_support;
mod support;

use control_support::{
    describe, hold_workers, live_count, state_of, task_runs_within, wait_until, watchdog, Findings,
    Holder,
};
use std::sync::{Arc, Barrier};
use std::time::Duration;
use unplug::worker::WorkerState;
use unplug::{Handle, Runtime};

const SCENARIO_LIMIT: Duration = Duration::from_secs(60);
/// How long each in-task controller call may take before it counts as hung.
const CALL_LIMIT: Duration = Duration::from_secs(10);

/// Unsticks what a failed scenario left blocked: unpark every worker (which
/// withdraws pending parks) and let every held poll return.
fn unstick(h: &Handle, holders: &mut [Holder]) {
    for w in h.workers() {
        let _ = h.unpark_worker(w.id, None);
    }
    for hd in holders.iter_mut() {
        hd.release();
    }
}

#[test]
fn two_tasks_parking_each_others_worker_both_return() {
    let rt = Runtime::builder().workers(3).build().unwrap();
    let h = rt.handle().clone();
    let findings = watchdog("cross park", SCENARIO_LIMIT, &h.clone(), move || {
        let mut f = Findings::default();
        let mut held = hold_workers(&h, 3, Duration::from_secs(20)).unwrap();
        let (w1, w2) = (held[0].worker, held[1].worker);
        // The third worker is free for other tasks.
        held[2].release();
        let barrier = Arc::new(Barrier::new(2));
        let b1 = barrier.clone();
        let r1 = held[0].run(move || {
            b1.wait();
            Handle::current().park_worker(w2)
        });
        let b2 = barrier;
        let r2 = held[1].run(move || {
            b2.wait();
            Handle::current().park_worker(w1)
        });
        // Each task returns from its poll once its call returned (the
        // commands run in order on the held worker): a real task that calls
        // the controller and goes on. A call may well wait for the *other*
        // poll to end; what must not happen is both waiting for each other.
        held[0].release();
        held[1].release();
        // Err(()) below: the call is still blocked.
        let t1 = r1.recv_timeout(CALL_LIMIT).map_err(drop);
        let t2 = r2.recv_timeout(Duration::from_secs(1)).map_err(drop);
        let hung_states = describe(&h);
        let both = t1.is_ok() && t2.is_ok();
        f.check(both, || {
            format!(
                "deadlock: task on worker {w1} parking {w2} returned {t1:?}, task on {w2} \
                 parking {w1} returned {t2:?} after {CALL_LIMIT:?} (Err(()) = still blocked); workers: [{hung_states}]"
            )
        });
        if !both {
            // Rescue so the runtime can be dropped, and record what the calls
            // then returned.
            unstick(&h, &mut held);
            let t1 = t1.or_else(|_| r1.recv_timeout(Duration::from_secs(5)).map_err(drop));
            let t2 = t2.or_else(|_| r2.recv_timeout(Duration::from_secs(5)).map_err(drop));
            eprintln!("after unparking both from outside: T1={t1:?} T2={t2:?}");
        } else {
            eprintln!("T1={t1:?} T2={t2:?}");
            for (r, target) in [(&t1, w2), (&t2, w1)] {
                if let Ok(Ok(rep)) = r {
                    f.check(
                        rep.parked.contains(&target) || rep.deferred.contains(&target),
                        || format!("Ok report without worker {target} parked or deferred: {rep:?}"),
                    );
                }
            }
        }
        for hd in held.iter_mut() {
            hd.release();
        }
        f.check(task_runs_within(&h, Duration::from_secs(5)), || {
            format!("no task ran within 5 s afterwards: [{}]", describe(&h))
        });
        f.check(live_count(&h.workers()) >= 1, || {
            format!("no worker Running/Idle afterwards: [{}]", describe(&h))
        });
        f
    });
    for w in rt.workers() {
        let _ = rt.unpark_worker(w.id, None);
    }
    findings.assert_none("two_tasks_parking_each_others_worker_both_return");
}

#[test]
fn a_task_resizing_the_pool_races_a_task_parking_its_worker() {
    // Workers 0, 1, 2. T1 on worker 0 calls set_workers(2): the newest
    // running worker that is not its own, 2, is to be parked and stopped,
    // and T1 waits for that park. T2 on worker 2 then parks worker 0 (T1's)
    // and waits for it. Each waits for the other's poll to return.
    let rt = Runtime::builder().workers(3).build().unwrap();
    let h = rt.handle().clone();
    let findings = watchdog("resize vs park", SCENARIO_LIMIT, &h.clone(), move || {
        let mut f = Findings::default();
        let mut held = hold_workers(&h, 3, Duration::from_secs(20)).unwrap();
        assert_eq!(
            held.iter().map(|x| x.worker).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        held[1].release();
        let r1 = held[0].run(|| Handle::current().set_workers(2));
        let requested = wait_until(Duration::from_secs(5), || {
            matches!(
                state_of(&h, 2),
                Some(WorkerState::Parking | WorkerState::Stopping)
            )
        });
        f.check(requested, || {
            format!(
                "set_workers(2) from worker 0 did not request worker 2's park or stop (it \
                 may have refused at once); workers: [{}]",
                describe(&h)
            )
        });
        let r2 = held[2].run(|| Handle::current().park_worker(0));
        // As above: each task's poll returns once its call returned.
        held[0].release();
        held[2].release();
        // Err(()) below: the call is still blocked.
        let t1 = r1.recv_timeout(CALL_LIMIT).map_err(drop);
        let t2 = r2.recv_timeout(Duration::from_secs(1)).map_err(drop);
        let hung_states = describe(&h);
        let both = t1.is_ok() && t2.is_ok();
        f.check(both, || {
            format!(
                "deadlock: set_workers(2) on worker 0 returned {t1:?}, park_worker(0) on worker \
                 2 returned {t2:?} after {CALL_LIMIT:?} (Err(()) = still blocked); workers: [{hung_states}]"
            )
        });
        if !both {
            unstick(&h, &mut held);
            let t1 = t1.or_else(|_| r1.recv_timeout(Duration::from_secs(5)).map_err(drop));
            let t2 = t2.or_else(|_| r2.recv_timeout(Duration::from_secs(5)).map_err(drop));
            eprintln!("after unparking every worker from outside: T1={t1:?} T2={t2:?}");
        } else {
            eprintln!("T1={t1:?} T2={t2:?}");
        }
        for hd in held.iter_mut() {
            hd.release();
        }
        f.check(task_runs_within(&h, Duration::from_secs(5)), || {
            format!("no task ran within 5 s afterwards: [{}]", describe(&h))
        });
        let ws = h.workers();
        f.check(live_count(&ws) >= 1, || {
            format!("no worker Running/Idle afterwards: [{}]", describe(&h))
        });
        f
    });
    for w in rt.workers() {
        let _ = rt.unpark_worker(w.id, None);
    }
    findings.assert_none("a_task_resizing_the_pool_races_a_task_parking_its_worker");
}
