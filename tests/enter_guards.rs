//! `Runtime::enter` / `Handle::enter`: a plain thread inside a runtime
//! (unplug's spawn and current handle, tokio's timers and sockets), nesting
//! and restoring, and out-of-order drops.
#![cfg(not(loom))]

mod support;

use std::sync::mpsc;
use std::time::Duration;
use unplug::{Handle, Runtime};

/// A runtime whose worker threads are called `name`; two workers, so a
/// test may block one (`spawned_on` inside a task) while the other runs.
fn named(name: &str) -> Runtime {
    Runtime::builder()
        .workers(2)
        .thread_name(name)
        .build()
        .unwrap()
}

/// The name of the worker thread `unplug::spawn` runs a task on here.
fn spawned_on() -> String {
    let (tx, rx) = mpsc::channel();
    unplug::spawn(async move {
        let _ = tx.send(std::thread::current().name().unwrap_or("").to_owned());
    });
    rx.recv_timeout(support::DEADLINE)
        .expect("the spawned task ran")
}

/// The id of the tokio runtime a task of `rt` sees.
fn tokio_id_of(rt: &Runtime) -> tokio::runtime::Id {
    rt.block_on(async { tokio::runtime::Handle::current().id() })
}

fn tokio_id_here() -> Option<tokio::runtime::Id> {
    tokio::runtime::Handle::try_current().ok().map(|h| h.id())
}

#[test]
fn enter_guard_allows_unplug_spawn_and_tokio_sleep_from_a_plain_thread() {
    let rt = named("enter-plain");
    let tokio_id = tokio_id_of(&rt);
    std::thread::scope(|s| {
        s.spawn(|| {
            assert!(Handle::try_current().is_none());
            assert!(tokio_id_here().is_none());
            let guard = rt.enter();
            assert!(Handle::try_current().is_some());
            assert_eq!(tokio_id_here(), Some(tokio_id));
            assert!(spawned_on().starts_with("enter-plain"));
            // tokio constructors that need a reactor: a timer and a socket.
            let sleep = tokio::time::sleep(Duration::from_millis(1));
            let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            std_listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            let task = unplug::spawn(async move {
                sleep.await;
                listener.local_addr().unwrap().port()
            });
            drop(guard);
            assert!(Handle::try_current().is_none());
            assert!(tokio_id_here().is_none());
            let port = support::block_on_timeout(task, support::DEADLINE)
                .expect("the task finished")
                .unwrap();
            assert_ne!(port, 0);
        });
    });
}

#[test]
fn handle_enter_works_like_runtime_enter() {
    let rt = named("enter-handle");
    let handle = rt.handle().clone();
    std::thread::spawn(move || {
        let _guard = handle.enter();
        assert!(spawned_on().starts_with("enter-handle"));
        let _sleep = tokio::time::sleep(Duration::from_millis(1));
    })
    .join()
    .unwrap();
}

#[test]
fn nested_guards_of_two_runtimes_restore_correctly() {
    let one = named("enter-one");
    let two = named("enter-two");
    let (id_one, id_two) = (tokio_id_of(&one), tokio_id_of(&two));
    assert_ne!(id_one, id_two);
    std::thread::scope(|s| {
        s.spawn(|| {
            let outer = one.enter();
            assert!(spawned_on().starts_with("enter-one"));
            assert_eq!(tokio_id_here(), Some(id_one));
            {
                let _inner = two.enter();
                assert!(spawned_on().starts_with("enter-two"));
                assert_eq!(tokio_id_here(), Some(id_two));
                {
                    // The same runtime again, nested in itself.
                    let _again = one.enter();
                    assert!(spawned_on().starts_with("enter-one"));
                    assert_eq!(tokio_id_here(), Some(id_one));
                }
                assert!(spawned_on().starts_with("enter-two"));
                assert_eq!(tokio_id_here(), Some(id_two));
            }
            assert!(spawned_on().starts_with("enter-one"));
            assert_eq!(tokio_id_here(), Some(id_one));
            drop(outer);
            assert!(Handle::try_current().is_none());
            assert!(tokio_id_here().is_none());
        });
    });
}

#[test]
fn block_on_inside_a_guard_restores_the_guards_runtime() {
    let one = named("enter-bo-one");
    let two = named("enter-bo-two");
    let id_one = tokio_id_of(&one);
    let _guard = one.enter();
    let inside = two.block_on(async { std::thread::current().name().map(str::to_owned) });
    assert_eq!(inside, std::thread::current().name().map(str::to_owned));
    assert!(spawned_on().starts_with("enter-bo-one"));
    assert_eq!(tokio_id_here(), Some(id_one));
}

#[test]
fn a_guard_inside_a_task_restores_the_workers_runtime() {
    let one = named("enter-task-one");
    let two = named("enter-task-two");
    let two_handle = two.handle().clone();
    let id_two = tokio_id_of(&two);
    let id_one = tokio_id_of(&one);
    let seen = one.block_on(one.spawn(async move {
        let during = {
            let _guard = two_handle.enter();
            (spawned_on(), tokio_id_here())
        };
        (during, spawned_on(), tokio_id_here())
    }));
    let ((during_name, during_id), after_name, after_id) = seen.unwrap();
    assert!(during_name.starts_with("enter-task-two"), "{during_name}");
    assert_eq!(during_id, Some(id_two));
    assert!(after_name.starts_with("enter-task-one"), "{after_name}");
    assert_eq!(after_id, Some(id_one));
}

#[test]
fn dropping_guards_out_of_order_panics() {
    let one = named("enter-ooo-one");
    let two = named("enter-ooo-two");
    let message = std::thread::scope(|s| {
        s.spawn(|| {
            let first = one.enter();
            let second = two.enter();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(first)));
            // This thread's runtime context is now broken (as tokio leaves
            // its own): do not drop the second guard here.
            std::mem::forget(second);
            let payload = result.expect_err("an out-of-order drop must panic");
            payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default()
        })
        .join()
        .unwrap()
    });
    // Ours, not only tokio's (its guard inside panics on this too).
    assert!(
        message.contains("out of order") && message.contains("Runtime::enter"),
        "{message}"
    );
}
