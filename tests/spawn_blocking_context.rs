//! Inside a `tokio::task::spawn_blocking` closure started from an unplug
//! task, the unplug runtime is current (BLOCKING-CONTEXT, `start.rs`), as
//! tokio's is: `unplug::spawn` and `Handle::current()` work there and the
//! task they spawn runs on an unplug worker; the context holds the runtime
//! weakly, so dropping the runtime afterwards, or while a closure still
//! runs, completes and leaves nothing current.
//!
//! The defect it caught (red team): the reactor's blocking-pool threads
//! never entered unplug's context, so inside a closure `unplug::spawn`
//! panicked ("there is no unplug runtime here") and
//! `Handle::try_current()` was `None` while `tokio::spawn` and tokio's
//! `Handle::try_current()` worked.
#![cfg(not(loom))]

mod support;

use std::sync::mpsc;
use std::time::Duration;
use support::with_watchdog;
use unplug::{Handle, Runtime};

const DEADLINE: Duration = Duration::from_secs(20);

/// The name of the thread this runs on.
fn thread_name() -> String {
    std::thread::current().name().unwrap_or("?").to_owned()
}

#[test]
fn unplug_spawn_inside_spawn_blocking_runs_the_task_on_a_worker() {
    with_watchdog("spawn inside spawn_blocking", || {
        let rt = Runtime::builder()
            .workers(2)
            .thread_name("sbc")
            .build()
            .unwrap();
        let (closure_thread, task_thread) = rt.block_on(async {
            let task = tokio::task::spawn_blocking(|| {
                let closure_thread = thread_name();
                let caught = std::panic::catch_unwind(|| unplug::spawn(async { thread_name() }));
                (closure_thread, caught.ok())
            })
            .await
            .unwrap();
            let (closure_thread, spawned) = task;
            let spawned = spawned.expect("unplug::spawn panicked inside spawn_blocking");
            (closure_thread, spawned.await.unwrap())
        });
        assert_eq!(
            closure_thread, "sbc-io",
            "the closure ran on the blocking pool"
        );
        assert!(
            task_thread.starts_with("sbc-") && task_thread != "sbc-io",
            "the task ran on {task_thread:?}, not on a worker"
        );
        drop(rt);
    });
}

#[test]
fn the_current_handle_inside_spawn_blocking_is_the_runtime_that_started_it() {
    with_watchdog("Handle::current inside spawn_blocking", || {
        let ours = Runtime::builder()
            .workers(1)
            .thread_name("ours")
            .build()
            .unwrap();
        let other = Runtime::builder()
            .workers(1)
            .thread_name("other")
            .build()
            .unwrap();
        let ran_on = ours.block_on(async {
            tokio::task::spawn_blocking(|| {
                assert!(tokio::runtime::Handle::try_current().is_ok());
                let handle =
                    Handle::try_current().expect("no unplug runtime inside spawn_blocking");
                // Its tasks run on this runtime's workers.
                handle.spawn(async { thread_name() })
            })
            .await
            .unwrap()
            .await
            .unwrap()
        });
        assert!(
            ran_on.starts_with("ours-"),
            "spawned through the handle ran on {ran_on:?}"
        );
        // Another runtime entered inside the closure takes precedence while
        // its guard lives, and ours is current again after.
        let (inside, after) = ours.block_on({
            let other = other.handle().clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    let inside = {
                        let _guard = other.enter();
                        Handle::current().spawn(async { thread_name() })
                    };
                    (inside, Handle::current().spawn(async { thread_name() }))
                })
                .await
                .unwrap()
            }
        });
        assert!(ours.block_on(inside).unwrap().starts_with("other-"));
        assert!(ours.block_on(after).unwrap().starts_with("ours-"));
    });
}

#[test]
fn dropping_the_runtime_after_spawn_blocking_used_it_completes() {
    with_watchdog("drop after spawn_blocking", || {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let sum = rt.block_on(async {
            let mut sum = 0;
            for i in 0..8u64 {
                let spawned = tokio::task::spawn_blocking(move || unplug::spawn(async move { i }))
                    .await
                    .unwrap();
                sum += spawned.await.unwrap();
            }
            sum
        });
        assert_eq!(sum, 28);
        // The blocking pool's threads (alive for tokio's keep-alive) hold
        // the runtime weakly: this drop ends everything.
        drop(rt);
    });
}

#[test]
fn a_closure_running_past_the_drop_of_its_runtime_keeps_nothing_current() {
    with_watchdog("drop while a closure runs", || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (seen_tx, seen_rx) = mpsc::channel();
        let (started_tx, started_rx) = mpsc::channel();
        rt.spawn(async move {
            let _ = tokio::task::spawn_blocking(move || {
                started_tx.send(Handle::try_current().is_some()).unwrap();
                go_rx.recv().unwrap();
                seen_tx.send(Handle::try_current().is_some()).unwrap();
            })
            .await;
        });
        assert!(
            started_rx.recv_timeout(DEADLINE).unwrap(),
            "current while the runtime lives"
        );
        // The closure is detached by the drop (tokio's shutdown_background)
        // and runs on: it must not keep the runtime alive.
        drop(rt);
        go_tx.send(()).unwrap();
        assert!(
            !seen_rx.recv_timeout(DEADLINE).unwrap(),
            "the dropped runtime is still current inside the closure"
        );
    });
}
