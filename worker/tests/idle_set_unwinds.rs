//! SLEEP-UNWINDS: a panic in the caller's code inside an idle-set sleep
//! (its `has_work`, or its `IdleBlock`) leaves no ghost sleeper behind.
//! Found by a red team (2026-12-04), failing on every run before the fix:
//! the worker stayed registered and counted as a watcher, a producer's
//! `pop` handed the ghost the wake-up (searching 1 for good) and every
//! later `pop` woke nobody, so a real sleeper was never woken for work;
//! and a second `register` of one index panicked.
#![cfg(not(loom))]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};
use unplug_worker::{IdleSet, Notifier, Protocol};

/// Runs `f` on a thread; panics if it does not return within `secs`.
fn within<R: Send + 'static>(what: &str, secs: u64, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(catch_unwind(AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(Ok(r)) => r,
        Ok(Err(p)) => std::panic::resume_unwind(p),
        Err(_) => panic!("{what}: no return within {secs} s (hang)"),
    }
}

/// A `has_work` that panics (user code) unwinds out of `IdleSet::sleep_until`:
/// the sleeper must not stay registered (nor counted as a watcher).
#[test]
fn a_panicking_has_work_leaves_no_ghost_sleeper() {
    within("sleep_until with panicking has_work", 10, || {
        let idle = IdleSet::new();
        let p = Protocol::new();
        let ctx = p.context();
        let mut searching = false;
        let r = catch_unwind(AssertUnwindSafe(|| {
            idle.sleep_until(
                &ctx,
                7,
                &mut searching,
                || panic!("user has_work panicked"),
                || {},
                Some(Instant::now() + Duration::from_secs(1)),
            )
        }));
        assert!(r.is_err());
        assert_eq!(
            (idle.len(), idle.is_registered(7), idle.watchers()),
            (0, false, 0),
            "ghost left after unwind (len, registered, watchers)"
        );
    });
}

/// Consequence of the ghost: a producer's pop() takes the ghost (counted as
/// searching, for ever), and every later pop() wakes nobody: a real sleeper
/// is never woken for published work.
#[test]
fn a_ghost_sleeper_strands_work_for_real_sleepers() {
    within("ghost strands work", 20, || {
        let idle = Arc::new(IdleSet::new());
        let work = Arc::new(AtomicUsize::new(0));
        // Worker 1: a real pool sleeper on its own protocol.
        let p1 = Arc::new(Protocol::new());
        let registered = Arc::new(Barrier::new(2));
        let (i1, w1, p1c, reg) = (idle.clone(), work.clone(), p1.clone(), registered.clone());
        let t1 = std::thread::spawn(move || {
            let ctx = p1c.context();
            let mut searching = false;
            let mut first = true;
            i1.sleep(
                &ctx,
                1,
                &mut searching,
                || {
                    if first {
                        first = false;
                        reg.wait(); // registered: let worker 0 go next
                    }
                    w1.load(SeqCst) > 0
                },
                || {},
            )
        });
        registered.wait();
        // Worker 0: its has_work panics, the body catches the panic.
        let p0 = Protocol::new();
        let ctx0 = p0.context();
        let mut s0 = false;
        let _ = catch_unwind(AssertUnwindSafe(|| {
            idle.sleep(&ctx0, 0, &mut s0, || panic!("boom"), || {})
        }));
        // Producer: publish, pop, notify the worker it got.
        work.store(1, SeqCst);
        let n1 = Notifier::new(p1.clone());
        let got = idle.pop();
        if got == Some(1) {
            n1.notify();
        }
        // Worker 1 must be woken for the work within 5 s.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !t1.is_finished() && Instant::now() < deadline {
            std::thread::yield_now();
        }
        let woken = t1.is_finished();
        if !woken {
            p1.request_stop(); // release it
        }
        let _ = t1.join();
        assert!(
            woken,
            "published work stranded: pop() returned {got:?} (searching {}), worker 1 never woken",
            idle.searching()
        );
    });
}

/// Registering the same index twice (bad input) panics instead of a typed
/// answer (error.rs: "No operation of this crate panics on bad input").
#[test]
fn registering_one_index_twice_counts_it_once() {
    let idle = IdleSet::new();
    idle.register(3);
    let r = catch_unwind(AssertUnwindSafe(|| idle.register(3)));
    assert!(r.is_ok(), "IdleSet::register(3) twice panicked");
    assert_eq!(idle.len(), 1);
    assert!(idle.unregister(3));
    assert_eq!(idle.len(), 0);
}
