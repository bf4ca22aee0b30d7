//! TLS-EXIT (`runtime/src/current.rs`): a runtime kept in a
//! `thread_local!` is dropped when its thread exits, as tokio's is. Its
//! shutdown entered tokio's context, which panics once tokio's own
//! thread-local is gone, and a panic in a thread-local's destructor aborts
//! the process (found by a red team, 2026-12-04: exit code 134). Each case
//! runs in a child process (this test binary, run again on one test), so
//! an abort fails the case instead of killing the harness.
#![cfg(not(loom))]

use std::process::Command;
use std::time::Duration;
use unplug::Runtime;

/// Set in the child process: run the scenario instead of spawning it.
const CHILD: &str = "UNPLUG_TLS_EXIT_CHILD";

/// Runs test `name` of this binary in a child process and asserts that it
/// passed; in the child (`CHILD` set) runs `scenario` instead.
fn in_a_child(name: &str, scenario: fn()) {
    if std::env::var_os(CHILD).is_some() {
        scenario();
        return;
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .spawn()
        .unwrap();
    // Watchdog: a hang at thread exit fails too.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{name}: the child hung");
        }
        std::thread::park_timeout(Duration::from_millis(10));
    };
    assert!(
        status.success(),
        "{name}: the child process failed: {status}"
    );
}

thread_local! {
    static LAZY: Runtime = Runtime::builder().workers(1).build().unwrap();
    static SLOT: std::cell::RefCell<Option<Runtime>> = const { std::cell::RefCell::new(None) };
}

#[test]
fn a_lazy_thread_local_runtime_is_dropped_cleanly_at_thread_exit() {
    in_a_child(
        "a_lazy_thread_local_runtime_is_dropped_cleanly_at_thread_exit",
        || {
            std::thread::spawn(|| {
                let v = LAZY.with(|rt| rt.block_on(async { unplug::spawn(async { 1 }).await }));
                assert_eq!(v.unwrap(), 1);
            })
            .join()
            .expect("the thread exits cleanly");
        },
    );
}

#[test]
fn a_thread_local_runtime_with_pending_tasks_is_dropped_cleanly_at_thread_exit() {
    in_a_child(
        "a_thread_local_runtime_with_pending_tasks_is_dropped_cleanly_at_thread_exit",
        || {
            std::thread::spawn(|| {
                SLOT.with(|r| {
                    *r.borrow_mut() = Some(Runtime::builder().workers(2).build().unwrap())
                });
                SLOT.with(|r| {
                    let r = r.borrow();
                    let rt = r.as_ref().unwrap();
                    // Pending tasks for shutdown to cancel, one holding a
                    // tokio timer (its drop touches the reactor).
                    drop(rt.spawn(std::future::pending::<()>()));
                    drop(rt.spawn(async {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }));
                    assert_eq!(
                        rt.block_on(async { unplug::spawn(async { 2 }).await })
                            .unwrap(),
                        2
                    );
                });
            })
            .join()
            .expect("the thread exits cleanly");
        },
    );
}
