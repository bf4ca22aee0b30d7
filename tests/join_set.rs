//! `JoinSet`: completion order, abort_all, drop aborts, panics, try/len,
//! detach, shutdown, spawning outside a runtime.
#![cfg(not(loom))]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use support::DropCounter;
use tokio::sync::oneshot;
use unplug::{JoinSet, Runtime};

/// `n` tasks in `set`, task `i` returning `i` once its sender fires; each
/// holds a drop counter on `dropped`. Returns the senders and abort handles.
fn gated(
    set: &mut JoinSet<usize>,
    handle: &unplug::Handle,
    n: usize,
    dropped: &Arc<AtomicUsize>,
) -> (Vec<oneshot::Sender<()>>, Vec<unplug::AbortHandle>) {
    (0..n)
        .map(|i| {
            let (tx, rx) = oneshot::channel::<()>();
            let counter = DropCounter(dropped.clone());
            let abort = set.spawn_on(
                async move {
                    let _c = counter;
                    rx.await.unwrap();
                    i
                },
                handle,
            );
            (tx, abort)
        })
        .unzip()
}

#[test]
fn join_next_returns_results_in_completion_order_not_spawn_order() {
    // One worker: a task's whole run, completion and wake-up included, ends
    // before the next task starts, so the completion order is the release
    // order.
    let rt = Runtime::builder().workers(1).build().unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    let (mut senders, aborts) = gated(&mut set, rt.handle(), 40, &dropped);
    // A fixed shuffle of 0..40.
    let order: Vec<usize> = (0..40).map(|i| (i * 17 + 5) % 40).collect();
    for &i in &order {
        let tx = std::mem::replace(&mut senders[i], oneshot::channel().0);
        tx.send(()).unwrap();
        support::wait_for("the released task to finish", || aborts[i].is_finished());
    }
    let got = support::with_watchdog("joining the set", move || {
        rt.block_on(async move {
            let mut got = Vec::new();
            while let Some(result) = set.join_next().await {
                got.push(result.unwrap());
            }
            got
        })
    });
    assert_eq!(got, order);
}

#[test]
fn abort_all_then_join_next_yields_cancelled_errors_for_unfinished_tasks() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    let (mut senders, aborts) = gated(&mut set, rt.handle(), 5, &dropped);
    // Tasks 0 and 1 complete; 2, 3 and 4 stay pending.
    for abort in &aborts[..2] {
        senders.remove(0).send(()).unwrap();
        support::wait_for("a released task to finish", || abort.is_finished());
    }
    set.abort_all();
    assert_eq!(set.len(), 5, "abort_all keeps the tasks in the set");
    let (mut ok, mut cancelled) = (Vec::new(), 0);
    support::with_watchdog("joining the aborted set", move || {
        rt.block_on(async {
            while let Some(result) = set.join_next().await {
                match result {
                    Ok(i) => ok.push(i),
                    Err(e) if e.is_cancelled() => cancelled += 1,
                    Err(e) => panic!("unexpected {e:?}"),
                }
            }
        });
        ok.sort();
        assert_eq!(ok, [0, 1]);
        assert_eq!(cancelled, 3);
        drop(senders);
    });
    assert_eq!(dropped.load(SeqCst), 5);
}

#[test]
fn dropping_a_join_set_aborts_its_tasks() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    // Senders kept alive: only an abort can end these tasks.
    let (_senders, aborts) = gated(&mut set, rt.handle(), 8, &dropped);
    assert_eq!(dropped.load(SeqCst), 0);
    drop(set);
    assert!(
        support::wait_until(Duration::from_secs(20), || dropped.load(SeqCst) == 8),
        "dropping the set left {} of 8 tasks running",
        8 - dropped.load(SeqCst)
    );
    assert!(aborts.iter().all(|a| a.is_finished()));
}

#[test]
fn a_panicking_task_comes_out_of_join_next_as_a_panic_error() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let result = rt.block_on(async {
        let mut set = JoinSet::new();
        set.spawn(async { panic!("boom in a set") });
        set.join_next().await
    });
    let err = result.expect("one result").unwrap_err();
    assert!(err.is_panic(), "{err:?}");
    assert_eq!(err.panic_message().as_deref(), Some("boom in a set"));
}

#[test]
fn try_join_next_gives_a_result_only_once_a_task_completed() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    assert!(set.try_join_next().is_none(), "empty set");
    let (mut senders, aborts) = gated(&mut set, rt.handle(), 2, &dropped);
    assert!(set.try_join_next().is_none(), "nothing completed yet");
    senders.remove(1).send(()).unwrap();
    let mut got = None;
    support::wait_for("try_join_next to give the completed task", || {
        got = set.try_join_next();
        got.is_some()
    });
    assert_eq!(got.unwrap().unwrap(), 1);
    assert_eq!(set.len(), 1);
    assert!(!aborts[0].is_finished());
    assert!(set.try_join_next().is_none());
}

#[test]
fn len_and_is_empty_count_tasks_until_joined() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    rt.block_on(async {
        let mut set = JoinSet::new();
        assert!(set.is_empty());
        for i in 0..3 {
            set.spawn(async move { i });
        }
        assert_eq!(set.len(), 3);
        assert!(!set.is_empty());
        let mut left = 3;
        while set.join_next().await.is_some() {
            left -= 1;
            assert_eq!(set.len(), left);
        }
        assert!(set.is_empty());
        assert!(set.join_next().await.is_none());
    });
}

#[test]
fn detach_all_empties_the_set_and_lets_the_tasks_run_on() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    let (senders, aborts) = gated(&mut set, rt.handle(), 4, &dropped);
    set.detach_all();
    assert!(set.is_empty());
    // A new member after the detach is not confused with the old ones.
    let late = set.spawn_on(async { 99 }, rt.handle());
    drop(set);
    assert_eq!(dropped.load(SeqCst), 0, "detached tasks were not aborted");
    for tx in senders {
        tx.send(()).unwrap();
    }
    support::wait_for("the detached tasks to complete", || {
        aborts.iter().all(|a| a.is_finished()) && late.is_finished()
    });
    assert_eq!(dropped.load(SeqCst), 4);
}

#[test]
fn shutdown_aborts_every_task_and_waits_until_each_is_gone() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let dropped = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    let (_senders, _aborts) = gated(&mut set, rt.handle(), 6, &dropped);
    let dropped_seen = dropped.clone();
    support::with_watchdog("JoinSet::shutdown", move || {
        rt.block_on(async {
            set.shutdown().await;
            assert!(set.is_empty());
            // Every future is dropped by the time its result came in.
            assert_eq!(dropped_seen.load(SeqCst), 6);
        });
    });
}

#[test]
fn join_next_wakes_a_waiting_task_on_each_completion() {
    // The set lives in a task on a worker; its tasks complete on the other
    // worker while it waits.
    let rt = Runtime::builder().workers(2).build().unwrap();
    let (gate_tx, gate_rx) = tokio::sync::watch::channel(false);
    let joiner = rt.spawn(async move {
        let mut set = JoinSet::new();
        for i in 0..100usize {
            let mut gate = gate_rx.clone();
            set.spawn(async move {
                gate.wait_for(|open| *open).await.unwrap();
                i
            });
        }
        let mut sum = 0;
        while let Some(result) = set.join_next().await {
            sum += result.unwrap();
        }
        sum
    });
    gate_tx.send(true).unwrap();
    let sum = support::with_watchdog("the joining task", move || rt.block_on(joiner));
    assert_eq!(sum.unwrap(), (0..100).sum::<usize>());
}

#[test]
fn every_result_comes_out_exactly_once_under_concurrent_completion() {
    let rt = Runtime::builder().workers(4).build().unwrap();
    let n = support::scaled(20_000);
    let seen = support::with_watchdog("joining many tasks", move || {
        rt.block_on(async move {
            let mut set = JoinSet::new();
            for i in 0..n {
                set.spawn(async move {
                    if i % 3 == 0 {
                        unplug::yield_now().await;
                    }
                    i
                });
            }
            let mut seen = vec![false; n];
            while let Some(result) = set.join_next().await {
                let i = result.unwrap();
                assert!(!seen[i], "result {i} came out twice");
                seen[i] = true;
            }
            seen
        })
    });
    assert!(seen.iter().all(|s| *s), "a result never came out");
}

#[test]
fn spawn_on_a_shut_down_runtime_yields_a_cancelled_error() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let handle = rt.handle().clone();
    drop(rt);
    let mut set = JoinSet::new();
    let abort = set.spawn_on(async { 1 }, &handle);
    assert!(abort.is_finished());
    assert_eq!(set.len(), 1);
    let err = set.try_join_next().expect("ready at once").unwrap_err();
    assert!(err.is_cancelled(), "{err:?}");
    assert!(set.is_empty());
}

#[test]
fn spawn_outside_a_runtime_panics_like_unplug_spawn() {
    let message = |payload: Box<dyn std::any::Any + Send>| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    };
    let set_panic = std::panic::catch_unwind(|| {
        JoinSet::<()>::new().spawn(async {});
    })
    .map(|_| ())
    .expect_err("JoinSet::spawn outside a runtime must panic");
    let spawn_panic = std::panic::catch_unwind(|| {
        unplug::spawn(async {});
    })
    .map(|_| ())
    .expect_err("unplug::spawn outside a runtime panics");
    assert_eq!(message(set_panic), message(spawn_panic));
}

/// An output whose `Drop` panics (the set drops results it holds).
struct PanicsOnDrop;

/// Its panic message, which the test's panic hook keeps quiet (thousands of
/// them, most on worker threads).
const BOMB: &str = "a JoinSet member's output panicked in Drop on purpose";

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("{BOMB}");
    }
}

#[test]
fn dropping_a_set_whose_held_outputs_panic_on_drop_never_unwinds_into_the_caller() {
    support::with_watchdog("JoinSet drops of panicking outputs", || {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let _in_rt = rt.enter();
        let before = unplug::unobserved_panics();
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<String>().map(String::as_str) != Some(BOMB) {
                report(info);
            }
        }));
        // The set holds a result as it is when the task completed before the
        // set first polled it, a race a spinning worker wins about once in
        // a thousand spawns here: many sets, each dropped unjoined.
        let mut sets = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while sets < 20_000 && std::time::Instant::now() < deadline {
            let mut set = JoinSet::new();
            set.spawn(async { PanicsOnDrop });
            support::wait_for("the task to complete", || rt.handle().live_tasks() == 0);
            let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(set)));
            assert!(
                dropped.is_ok(),
                "a panic of an output's Drop unwound out of JoinSet's drop (set {sets})"
            );
            sets += 1;
        }
        // Every output's panic was caught and counted, none lost.
        support::wait_for("every panic counted", || {
            unplug::unobserved_panics() >= before + sets
        });
    });
}

fn shared_across_threads<S: Sync + Send>(_: &S) {}

/// A `JoinSet` is `Sync` whenever its output is `Send`, as tokio's is: a
/// set of outputs that are not `Sync` (a `Cell`) can sit in an `Arc` that
/// a task holds. Before, the set needed `T: Sync` (a red team: an
/// `Arc<JoinSet<Cell<u32>>>` could not be moved into `unplug::spawn`).
#[test]
fn a_join_set_of_outputs_that_are_not_sync_may_be_shared() {
    let rt = unplug::Runtime::builder().workers(1).build().unwrap();
    let set = std::sync::Arc::new(JoinSet::<std::cell::Cell<u32>>::new());
    shared_across_threads(&set);
    let held = set.clone();
    let len = rt.block_on(rt.spawn(async move { held.len() })).unwrap();
    assert_eq!(len, 0);
}
