//! FAIR (runtime/SCHEDULER.md): remote work is served before tasks that
//! yield (YIELD-LAST) and between the links of a spawn chain
//! (CHAIN-YIELDS). One worker, so where a task waits is decided by the
//! scheduler's order alone; the checks count polls, not time.

#![cfg(not(loom))]

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use support::{wait_for, with_watchdog};

fn one_worker() -> unplug::Runtime {
    unplug::Runtime::builder().workers(1).build().unwrap()
}

/// Spawns a task from this (non-worker) thread, which goes through the
/// injector, and returns how many polls `counter` saw between the spawn
/// and the task's first poll.
fn polls_before_a_remote_spawn_runs(rt: &unplug::Runtime, counter: &Arc<AtomicU64>) -> u64 {
    let at_spawn = counter.load(SeqCst);
    let c = counter.clone();
    let seen = rt
        .block_on(rt.spawn(async move { c.load(SeqCst) }))
        .unwrap();
    seen - at_spawn
}

/// How many polls of the load ran while a remote spawn waited, over 201
/// spawns. The median is the scheduler's order; the tail also holds the
/// times this thread was preempted between reading the count and pushing.
#[derive(Debug)]
#[allow(dead_code)] // read through Debug
struct Waits {
    median: u64,
    p90: u64,
    max: u64,
}

fn waits(rt: &unplug::Runtime, counter: &Arc<AtomicU64>) -> Waits {
    let mut v: Vec<u64> = (0..201)
        .map(|_| polls_before_a_remote_spawn_runs(rt, counter))
        .collect();
    v.sort();
    Waits {
        median: v[100],
        p90: v[180],
        max: v[200],
    }
}

#[test]
fn a_remote_spawn_runs_before_yielding_tasks_run_again() {
    with_watchdog("yield-last", || {
        let rt = one_worker();
        let (polls, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        for _ in 0..3 {
            let (polls, stop) = (polls.clone(), stop.clone());
            rt.spawn(async move {
                while !stop.load(SeqCst) {
                    polls.fetch_add(1, SeqCst);
                    unplug::yield_now().await;
                }
            });
        }
        wait_for("the yielding tasks to run", || polls.load(SeqCst) > 1_000);
        let waits = waits(&rt, &polls);
        stop.store(true, SeqCst);
        // At most the round under way (3 yielders) runs first. Before
        // YIELD-LAST a yielded task went to the back of the run queue and
        // the injector was looked at every 61 ticks: ~30 polls typically.
        println!("{waits:?}");
        assert!(
            waits.median <= 4,
            "remote spawns waited for yielding tasks: {waits:?}"
        );
    });
}

#[test]
fn a_remote_spawn_runs_between_the_links_of_a_spawn_chain() {
    with_watchdog("chain-yields", || {
        let rt = one_worker();
        let (links, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        fn link(links: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
            if stop.load(SeqCst) {
                return;
            }
            links.fetch_add(1, SeqCst);
            // Spawned from inside a task: the worker's LIFO slot.
            unplug::spawn(async move { link(links, stop) });
        }
        let (l, s) = (links.clone(), stop.clone());
        rt.spawn(async move { link(l, s) });
        wait_for("the chain to run", || links.load(SeqCst) > 1_000);
        let waits = waits(&rt, &links);
        stop.store(true, SeqCst);
        // One link while remote work waits (three at most otherwise).
        // Before CHAIN-YIELDS the chain ran up to 61 links first.
        println!("{waits:?}");
        assert!(
            waits.median <= 2,
            "remote spawns waited for a spawn chain: {waits:?}"
        );
    });
}

#[test]
fn yielded_tasks_still_run_while_remote_work_keeps_coming() {
    with_watchdog("yield-last bound", || {
        let rt = one_worker();
        let yields = Arc::new(AtomicU64::new(0));
        let y = yields.clone();
        let yielder = rt.spawn(async move {
            for _ in 0..100 {
                y.fetch_add(1, SeqCst);
                unplug::yield_now().await;
            }
        });
        // A flood of remote spawns that never lets the injector stay empty
        // for long: the yielder must still finish (the 61-tick bound).
        let flood = Arc::new(AtomicBool::new(true));
        let f = flood.clone();
        let h = rt.handle().clone();
        let spawner = std::thread::spawn(move || {
            while f.load(SeqCst) {
                let handles: Vec<_> = (0..64).map(|_| h.spawn(async {})).collect();
                drop(handles);
            }
        });
        let done = rt.block_on(async {
            let _ = yielder.await;
            true
        });
        flood.store(false, SeqCst);
        spawner.join().unwrap();
        assert!(done);
        assert_eq!(yields.load(SeqCst), 100);
    });
}
