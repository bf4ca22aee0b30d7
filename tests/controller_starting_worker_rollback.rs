//! STARTING-ROLLBACK: a park withdrawn from a worker whose start hook has
//! not returned yet puts it back to `Starting`, which the last-running rule
//! does not count. Before, the rollback of a timed-out `unplug_cpu_timeout`
//! (and the unpark of `plug_cpu` / `unpark_worker`) set it to `Running`:
//! the only worker whose hook had returned could then be parked, leaving
//! no worker to run tasks while the other sat in its hook, and none at all
//! once that hook failed (a red team).
#![cfg(not(loom))]

mod control_support;
mod support;

use control_support::{describe, live_count, task_runs_within, two_cpus, watchdog, worker_id_here};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;
use unplug::{ControlError, Handle, Runtime};

const LIMIT: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(10);

#[test]
fn a_timed_out_unplug_of_a_starting_worker_leaves_the_started_one_the_last() {
    let Some((c0, c1)) = two_cpus() else {
        return;
    };
    // The second start's hook waits for `gate` (then fails if told to).
    let (gate_tx, gate_rx) = mpsc::channel::<bool>();
    let gate = Arc::new(Mutex::new(gate_rx));
    let starts = Arc::new(AtomicUsize::new(0));
    let rt = Runtime::builder()
        .workers(1)
        .cpus([c0, c1])
        .on_thread_start(move || {
            if starts.fetch_add(1, SeqCst) == 0 {
                return;
            }
            let fail = gate.lock().unwrap().recv_timeout(LIMIT).unwrap_or(false);
            assert!(!fail, "start hook fails (test)");
        })
        .build()
        .unwrap();
    let h = rt.handle().clone();
    let (parked_last, ran_meanwhile, live_after, workers) = watchdog(
        "a starting worker's rollback",
        LIMIT,
        &h.clone(),
        move || {
            let hs = h.clone();
            let grow = control_support::on_thread(move || hs.set_workers(2));
            assert!(
                control_support::wait_until(WAIT, || h.workers().len() == 2),
                "[{}]",
                describe(&h)
            );
            let ws = h.workers();
            let started = ws.iter().find(|w| w.id == 0).unwrap().cpu.unwrap();
            let starting = ws.iter().find(|w| w.id != 0).unwrap().cpu.unwrap();
            // Times out: the starting worker's park completes only after
            // its hook returned.
            let r = h.unplug_cpu_timeout(starting, Duration::from_millis(200));
            assert!(matches!(r, Err(ControlError::Timeout { .. })), "{r:?}");
            // The worker whose hook returned is still the last one.
            let parked_last = h.unplug_cpu_timeout(started, Duration::from_secs(2));
            let ran_meanwhile = task_runs_within(&h, Duration::from_secs(2));
            // The hook fails: the start is undone.
            gate_tx.send(true).unwrap();
            let _ = grow.recv_timeout(WAIT).unwrap();
            let live_after = live_count(&h.workers());
            if parked_last.is_ok() {
                let _ = h.plug_cpu(started);
            }
            (parked_last, ran_meanwhile, live_after, describe(&h))
        },
    );
    assert!(
        matches!(parked_last, Err(ControlError::LastWorker)),
        "unplugging the only worker whose start hook returned gave {parked_last:?}: [{workers}]"
    );
    assert!(
        ran_meanwhile,
        "no worker ran a task while the other sat in its hook"
    );
    assert!(
        live_after >= 1,
        "no worker left once the start failed: [{workers}]"
    );
    drop(rt);
}

/// REUSE-STARTED (a red team, 2026-12-04): a second growing `set_workers`
/// brought back, as running, a worker whose own start hook had parked it
/// (a deferred park, owned by nobody) while the first call still waited for
/// that hook; `park_worker(0)` then parked the only started worker, a task
/// found no worker for 2 s, and once the hook failed none ran at all (5 of
/// 5 runs).
#[test]
fn a_growing_resize_never_counts_a_worker_still_in_its_start_hook_as_running() {
    let Some((c0, c1)) = two_cpus() else { return };
    let (gate_tx, gate_rx) = mpsc::channel::<bool>();
    let gate = Arc::new(Mutex::new(gate_rx));
    let (deferred_tx, deferred_rx) = mpsc::channel::<String>();
    let deferred_tx = Arc::new(Mutex::new(deferred_tx));
    let starts = Arc::new(AtomicUsize::new(0));
    let handle: Arc<OnceLock<Handle>> = Arc::new(OnceLock::new());
    let hh = handle.clone();
    let rt = Runtime::builder()
        .workers(1)
        .cpus([c0, c1])
        .on_thread_start(move || {
            if starts.fetch_add(1, SeqCst) != 1 {
                return;
            }
            // The second start only: its hook parks its own worker
            // (deferred: DEADLOCK-FREE), then waits for the gate.
            let me = worker_id_here().unwrap();
            let r = hh.get().unwrap().park_worker(me);
            let _ = deferred_tx.lock().unwrap().send(format!("{r:?}"));
            let fail = gate.lock().unwrap().recv_timeout(LIMIT).unwrap_or(false);
            assert!(!fail, "start hook fails (test)");
        })
        .build()
        .unwrap();
    let h = rt.handle().clone();
    handle.set(h.clone()).unwrap();
    let (self_park, reuse, park0, ran, live_after, ws) =
        watchdog("reuse of a starting worker", LIMIT, &h.clone(), move || {
            let hs = h.clone();
            let grow = control_support::on_thread(move || hs.set_workers(2));
            let self_park = deferred_rx.recv_timeout(WAIT).expect("hook did not run");
            // The first grow still waits in its confirmation; a second grow
            // from another thread.
            let reuse = h.set_workers(2);
            let park0 = h.park_worker(0);
            let ran = task_runs_within(&h, Duration::from_secs(2));
            gate_tx.send(true).unwrap();
            let _ = grow.recv_timeout(WAIT).expect("first set_workers hung");
            let live_after = live_count(&h.workers());
            let ws = describe(&h);
            if park0.is_ok() {
                let _ = h.unpark_worker(0, None);
            }
            (self_park, reuse, park0, ran, live_after, ws)
        });
    eprintln!("self park: {self_park}; reuse: {reuse:?}; park0: {park0:?}; ran: {ran}; live after: {live_after}; [{ws}]");
    // Either the second resize started a worker of its own (then worker
    // 0 may be parked, and that worker runs the task), or worker 0 is the
    // last one whose hook returned and may not be parked.
    assert!(reuse.is_ok(), "the second set_workers(2): {reuse:?}");
    assert!(
        matches!(park0, Err(ControlError::LastWorker)) || (park0.is_ok() && ran),
        "parking worker 0 gave {park0:?} (reuse: {reuse:?}) and a task ran meanwhile: {ran}; \
         live after the hook failed: {live_after} [{ws}]"
    );
    assert!(
        live_after >= 1,
        "no worker left running after the hook failed [{ws}]"
    );
    drop(rt);
}
