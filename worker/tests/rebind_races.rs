//! A re-bind (`unpark_on`, `repin`) racing the calls that release or end a
//! worker without the handle's control lock: a timed-out park withdrawing
//! its own request, and a stop. Found by a red team (2026-12-04), each
//! failing before its fix:
//! - UNPARK-ON-UNDONE: `unpark_on` read a park pending, re-pinned, and its
//!   unpark then found the worker released by the timeout: it returned
//!   `Ok(false)` ("nothing changes") with the worker moved (1-32 of about
//!   10,500 calls, 10 of 10 runs). Then the pin was put back, but a second
//!   red team saw the worker run its body on the new CPU before that (5 of
//!   about 100 such calls, 3 of 8 runs): now a `Worker`'s timed-out park
//!   withdraws, and its stop is requested, under the lock `unpark_on`
//!   holds, so neither lands between the re-pin and the unpark.
//! - REPIN-EXITED: `repin` racing the body's exit got the kernel's ESRCH as
//!   `UnparkError::Affinity` (6-39 of 3,000 runs) where the docs promise
//!   `Stopped` for a worker that has stopped.
#![cfg(not(loom))]

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use support::{idle_body, idle_body_then, with_watchdog};
use unplug_worker::{affinity, UnparkError, Worker};

/// A thread parking `worker` with timeouts of 0 to `max_us` microseconds
/// (each timed-out park withdraws its own request) until the flag is set.
fn timed_out_parks<T: Send + 'static>(
    worker: &Arc<Worker<T>>,
    max_us: u64,
) -> (Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let done = Arc::new(AtomicBool::new(false));
    let (w, d) = (worker.clone(), done.clone());
    let parker = std::thread::spawn(move || {
        let mut i = 0u64;
        while !d.load(SeqCst) {
            i += 1;
            let _ = w.park_timeout(Duration::from_micros(i % max_us));
        }
    });
    (done, parker)
}

#[test]
fn unpark_on_racing_a_timed_out_park_changes_nothing_when_it_releases_nothing() {
    let cpus = support::allowed();
    if !unplug_worker::affinity::AFFINITY_SUPPORTED || cpus.len() < 2 {
        return;
    }
    let (calls, bad) = with_watchdog("race", move || {
        let worker = Arc::new(Worker::builder().cpu(cpus[0]).spawn(idle_body).unwrap());
        // Another controller parks with short timeouts; a timeout withdraws
        // the request itself.
        let (done, parker) = timed_out_parks(&worker, 40);
        let (mut calls, mut bad) = (0u64, 0u64);
        for i in 0..20_000usize {
            let before = worker.cpu().unwrap();
            let target = cpus[(i + 1) % 2];
            if target == before {
                continue;
            }
            calls += 1;
            if let Ok(false) = worker.unpark_on(target) {
                // "nothing changes": the label and the kernel's mask.
                let mask = unplug_worker::affinity::cpus_of(worker.os_tid()).unwrap();
                if worker.cpu() != Some(before) || mask != vec![before] {
                    bad += 1;
                    // put the label back in step with the kernel for the next round
                    let _ = worker.repin(before);
                }
            }
        }
        done.store(true, SeqCst);
        parker.join().unwrap();
        let _ = worker.stop();
        (calls, bad)
    });
    assert_eq!(
        bad, 0,
        "{bad} of {calls} unpark_on calls returned Ok(false) (no park pending) yet re-pinned the worker"
    );
}

/// repin() documents UnparkError::Stopped for an exited worker. Racing the
/// body's exit (stop requested by another thread), repin can instead hit the
/// vanished thread id: UnparkError::Affinity(ESRCH) (or, with tid reuse,
/// pin an unrelated thread).
#[test]
fn repin_racing_the_exit_reports_stopped() {
    if !affinity::AFFINITY_SUPPORTED {
        return; // the portable build refuses every re-pin as Unsupported
    }
    let cpus = support::allowed();
    let runs = 1000;
    let r = with_watchdog("repin race", move || {
        let mut esrch = 0;
        let mut others = Vec::new();
        for _ in 0..runs {
            let w = Arc::new(
                Worker::builder()
                    .spawn(|ctx| {
                        while !ctx.should_stop() {
                            std::hint::spin_loop()
                        }
                    })
                    .unwrap(),
            );
            let w2 = w.clone();
            let stopper = std::thread::spawn(move || {
                let _ = w2.stop();
            });
            loop {
                match w.repin(cpus[0]) {
                    Ok(()) => continue,
                    Err(UnparkError::Stopped) => break,
                    Err(UnparkError::Affinity { source, .. })
                        if source.raw_os_error() == Some(3) =>
                    {
                        esrch += 1;
                        break;
                    }
                    Err(e) => {
                        others.push(e.to_string());
                        break;
                    }
                }
            }
            stopper.join().unwrap();
        }
        (esrch, others)
    });
    assert!(
        r.0 == 0 && r.1.is_empty(),
        "repin racing exit: {} of {runs} runs got Affinity(ESRCH) instead of Stopped; others: {:?}",
        r.0,
        r.1
    );
}

/// The CPU this code runs on.
#[cfg(target_os = "linux")]
fn cpu_now() -> usize {
    // SAFETY: `sched_getcpu` takes nothing and touches no memory of ours.
    unsafe { libc::sched_getcpu() as usize }
}

#[cfg(target_os = "linux")]
#[test]
fn an_unpark_on_that_releases_nothing_never_runs_the_body_on_its_target() {
    if !affinity::AFFINITY_SUPPORTED {
        return; // nothing to re-pin in the portable build
    }
    let cpus = affinity::allowed_cpus().unwrap();
    if cpus.len() < 2 {
        return;
    }
    const CALLS: usize = 20_000;
    let (calls, noops, bad) = with_watchdog("unpark_on transient", move || {
        // call id being made, and per call: the body resumed on its target
        let call = Arc::new(AtomicUsize::new(usize::MAX));
        let target_of: Arc<Vec<AtomicUsize>> =
            Arc::new((0..CALLS).map(|_| AtomicUsize::new(usize::MAX)).collect());
        let ran_on_target: Arc<Vec<AtomicBool>> =
            Arc::new((0..CALLS).map(|_| AtomicBool::new(false)).collect());
        let (c, t, r) = (call.clone(), target_of.clone(), ran_on_target.clone());
        let worker = Arc::new(
            Worker::builder()
                .cpu(cpus[0])
                .spawn(move |ctx| {
                    idle_body_then(ctx, || {
                        // The body runs again: where? The CPU read between
                        // two reads of one call id was read while that call
                        // was under way.
                        let i = c.load(SeqCst);
                        let here = cpu_now();
                        let again = c.load(SeqCst);
                        if i == again && i < CALLS && t[i].load(SeqCst) == here {
                            r[i].store(true, SeqCst);
                        }
                    })
                })
                .unwrap(),
        );
        let (done, parker) = timed_out_parks(&worker, 200);
        let (mut calls, mut noops, mut bad) = (0, 0, Vec::new());
        for i in 0..CALLS {
            let before = worker.cpu().unwrap();
            let target = *cpus.iter().find(|&&c| c != before).unwrap();
            // only when a park is pending: the window exists only then
            let t0 = std::time::Instant::now();
            while !matches!(
                worker.state(),
                unplug_worker::WorkerState::Parking | unplug_worker::WorkerState::Parked
            ) {
                assert!(t0.elapsed() < Duration::from_secs(5), "never parking");
                std::hint::spin_loop();
            }
            target_of[i].store(target, SeqCst);
            call.store(i, SeqCst);
            calls += 1;
            let r = worker.unpark_on(target);
            if let Ok(false) = r {
                noops += 1;
                if ran_on_target[i].load(SeqCst) {
                    bad.push(i);
                }
            }
        }
        done.store(true, SeqCst);
        parker.join().unwrap();
        let _ = worker.stop();
        (calls, noops, bad)
    });
    eprintln!(
        "calls {calls}, Ok(false) {noops}, ran on target {}",
        bad.len()
    );
    assert!(
        bad.is_empty(),
        "{} of {noops} unpark_on calls that returned Ok(false) (of {calls}) ran the body on their target CPU meanwhile",
        bad.len()
    );
}
