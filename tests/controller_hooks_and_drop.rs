//! The stop hook and dropping the runtime from awkward places (issue 13,
//! defect 6): tasks that `on_thread_stop` spawns when `set_workers` removes
//! a worker run (or, at `drop(rt)`, are dropped — never leaked), and
//! dropping the runtime inside a `tokio::task::spawn_blocking` closure that
//! an unplug task started returns promptly without a panic.
#![cfg(not(loom))]

mod control_support;
mod support;

use control_support::{describe, panic_message, wait_until, watchdog, Findings};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use support::DropCounter;
use unplug::{Handle, Runtime};

const SCENARIO_LIMIT: Duration = Duration::from_secs(60);

#[test]
fn tasks_the_stop_hook_spawns_run_or_are_dropped_never_leaked() {
    let spawned = Arc::new(AtomicUsize::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let no_handle = Arc::new(AtomicUsize::new(0));
    let (s, r, d, n) = (
        spawned.clone(),
        ran.clone(),
        dropped.clone(),
        no_handle.clone(),
    );
    let rt = Runtime::builder()
        .workers(4)
        .on_thread_stop(move || match Handle::try_current() {
            Some(h) => {
                s.fetch_add(1, SeqCst);
                let guard = DropCounter(d.clone());
                let ran = r.clone();
                drop(h.spawn(async move {
                    let _guard = guard;
                    ran.fetch_add(1, SeqCst);
                }));
            }
            None => {
                n.fetch_add(1, SeqCst);
            }
        })
        .build()
        .unwrap();
    let h = rt.handle().clone();
    let (spawned2, ran2) = (spawned.clone(), ran.clone());
    let mut f = watchdog("stop-hook tasks", SCENARIO_LIMIT, &h.clone(), move || {
        let mut f = Findings::default();
        let shrunk = h.set_workers(1);
        f.check(matches!(&shrunk, Ok(rep) if rep.stopped.len() == 3), || {
            format!("set_workers(1): {shrunk:?}")
        });
        let all_ran = wait_until(Duration::from_secs(5), || {
            spawned2.load(SeqCst) >= 3 && ran2.load(SeqCst) == spawned2.load(SeqCst)
        });
        f.check(all_ran, || {
            format!(
                "tasks spawned by on_thread_stop during set_workers(1): spawned {}, ran {} \
                 within 5 s; workers: [{}]",
                spawned2.load(SeqCst),
                ran2.load(SeqCst),
                describe(&h)
            )
        });
        f
    });
    // The last worker's stop hook runs inside drop(rt).
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        drop(rt);
        let _ = tx.send(());
    });
    f.check(rx.recv_timeout(Duration::from_secs(10)).is_ok(), || {
        "drop(rt) did not return within 10 s".into()
    });
    let (sp, ra, dr, nh) = (
        spawned.load(SeqCst),
        ran.load(SeqCst),
        dropped.load(SeqCst),
        no_handle.load(SeqCst),
    );
    eprintln!(
        "stop hooks: spawned {sp}, ran {ra}, futures dropped {dr}, hooks without a handle {nh}"
    );
    f.check(nh == 0, || {
        format!("Handle::try_current() was None in {nh} stop hook(s)")
    });
    f.check(sp == 4, || {
        format!("expected 4 stop hooks to spawn, saw {sp}")
    });
    f.check(dr == sp, || {
        format!("{} of {sp} futures spawned by stop hooks were leaked (neither run to completion nor dropped) after drop(rt)", sp - dr)
    });
    f.assert_none("tasks_the_stop_hook_spawns_run_or_are_dropped_never_leaked");
}

#[test]
fn dropping_the_runtime_inside_spawn_blocking_returns_promptly() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let h = rt.handle().clone();
    let slot = Arc::new(Mutex::new(Some(rt)));
    let (tx, rx) = mpsc::channel();
    let (task_tx, task_rx) = mpsc::channel();
    let s = slot.clone();
    drop(h.spawn(async move {
        let joined = tokio::task::spawn_blocking(move || {
            let rt = s.lock().unwrap().take().unwrap();
            let t0 = Instant::now();
            let dropped =
                catch_unwind(AssertUnwindSafe(|| drop(rt))).map_err(|p| panic_message(&*p));
            let _ = tx.send((t0.elapsed(), dropped));
        })
        .await;
        // Only reached if the task outlives the runtime's shutdown.
        let _ = task_tx.send(joined.map_err(|e| format!("{e:?}")));
    }));
    let mut f = Findings::default();
    let result = rx.recv_timeout(Duration::from_secs(30));
    let task = task_rx.recv_timeout(Duration::from_millis(100)).ok();
    eprintln!("drop(rt) inside spawn_blocking: {result:?}; the awaiting task saw: {task:?}");
    match result {
        Err(_) => f.check(false, || {
            "drop(rt) inside spawn_blocking did not return within 30 s".into()
        }),
        Ok((took, dropped)) => {
            f.check(took < Duration::from_secs(5), || {
                format!("drop(rt) inside spawn_blocking took {took:?} (limit 5 s)")
            });
            f.check(dropped.is_ok(), || {
                format!(
                    "drop(rt) inside spawn_blocking panicked after {took:?}: {}",
                    dropped.unwrap_err()
                )
            });
        }
    }
    f.assert_none("dropping_the_runtime_inside_spawn_blocking_returns_promptly");
}

/// Runs `drop(rt)` in a `spawn_blocking` closure started by an unplug task
/// that, if `task_waits`, then blocks its worker until the closure is done
/// (bounded at 20 s); returns how long the drop took and whether it
/// panicked.
fn drop_inside_blocking(task_waits: bool) -> Result<(Duration, Result<(), String>), String> {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let h = rt.handle().clone();
    let slot = Arc::new(Mutex::new(Some(rt)));
    let (tx, rx) = mpsc::channel();
    drop(h.spawn(async move {
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let join = tokio::task::spawn_blocking(move || {
            let rt = slot.lock().unwrap().take().unwrap();
            let t0 = Instant::now();
            let dropped =
                catch_unwind(AssertUnwindSafe(|| drop(rt))).map_err(|p| panic_message(&*p));
            let _ = tx.send((t0.elapsed(), dropped));
            let _ = done_tx.send(());
        });
        if task_waits {
            // A synchronous wait inside the poll (the worker is busy until
            // the closure is done) — bounded, so a hang ends.
            let _ = done_rx.recv_timeout(Duration::from_secs(20));
        } else {
            let _ = join.await;
        }
    }));
    rx.recv_timeout(Duration::from_secs(40))
        .map_err(|_| "drop(rt) did not return within 40 s".to_owned())
}

#[test]
fn dropping_the_runtime_inside_spawn_blocking_while_its_task_blocks_on_it_returns_promptly() {
    // Today: drop(rt) joins every worker with no deadline, and one worker
    // is inside the poll that waits for this very closure: the drop returns
    // only when that poll gives up (20 s here; never, if it waited forever).
    let r = drop_inside_blocking(true);
    eprintln!("drop(rt) inside spawn_blocking, its task blocking on it: {r:?}");
    match r {
        Err(e) => panic!("{e}"),
        Ok((took, dropped)) => {
            assert!(
                dropped.is_ok(),
                "drop(rt) panicked after {took:?}: {dropped:?}"
            );
            assert!(
                took < Duration::from_secs(5),
                "drop(rt) took {took:?} (limit 5 s)"
            );
        }
    }
}

#[test]
fn dropping_the_runtime_while_a_blocking_closure_runs_returns_promptly() {
    // drop(rt) on a plain thread while a spawn_blocking closure an unplug
    // task started is still running (for 15 s). Today the drop waits for
    // tokio's blocking pool up to its fixed 10 s.
    let rt = Runtime::builder().workers(2).build().unwrap();
    let (started_tx, started_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    drop(rt.spawn(async move {
        let _ = tokio::task::spawn_blocking(move || {
            let _ = started_tx.send(());
            let _ = stop_rx.recv_timeout(Duration::from_secs(15));
        })
        .await;
    }));
    started_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the blocking closure did not start");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let t0 = Instant::now();
        drop(rt);
        let _ = tx.send(t0.elapsed());
    });
    let took = rx.recv_timeout(Duration::from_secs(30));
    let _ = stop_tx.send(());
    eprintln!("drop(rt) while a blocking closure runs: {took:?}");
    let took = took.expect("drop(rt) did not return within 30 s");
    assert!(
        took < Duration::from_secs(5),
        "drop(rt) took {took:?} (limit 5 s)"
    );
}
