//! Red-team sequences against the controller (runtime/CONTROLLER.md), public
//! API only. Every scenario runs under a watchdog; a finding names the rule
//! it breaks and the workers' states. A runtime left wedged by a finding is
//! leaked (`mem::forget`), never dropped, so a hang fails the test instead
//! of stalling it.
//!
//! Each of these failed on 5b95612 (a break) and passes since the fixes
//! (shared waits never withdraw, start waits marked `waiting`, the unplugged
//! mark checked against a later plug, parks of starting workers, parked
//! workers reused by a growing resize, the follower's first reading):
//! - `a_timed_out_sharing_unplug_withdraws_the_owners_park`,
//!   `a_timed_out_sharing_unplug_withdraws_a_deferred_park`: a call that only
//!   shares a pending park withdraws it at the worker level when it times
//!   out (rule 5); the plan is left `Parking` while the worker runs (rule 4),
//!   later parks of it return Ok at once.
//! - `a_start_hook_parking_the_worker_that_waits_for_it_deadlocks`,
//!   `a_start_hook_shrinking_the_pool_joins_the_worker_that_waits_for_it`:
//!   START-CONFIRMED waits are not marked `waiting` (DEADLOCK-FREE, rule 2;
//!   the second also hangs `drop(rt)`, rule 8).
//! - `an_unplug_superseded_by_a_plug_still_marks_the_cpu_unplugged`,
//!   `unparking_on_an_unplugged_cpu_leaves_it_marked_unplugged` (minor).
//! - `parking_a_starting_worker_parks_it_once_started` (was: Ok, nothing
//!   parked).
//! - `ids_grow_without_bound_when_parked_workers_accumulate` (rule 7).
//! - `the_followers_first_reading_unparks_a_manually_parked_worker`.
//!
//! The short sleeps below open a window for a wrong move to happen (a
//! check that something does *not* change); none synchronises.
//!
//! Held up from the start: the ring of three, two shrinking tasks, odd
//! inputs, start hooks resizing, tiny-timeout races, drop with calls in
//! flight.
#![cfg(not(loom))]

mod control_support;
mod support;

use control_support::{
    cpus, describe, hold_workers, on_thread, two_cpus, worker_id_here, Findings,
};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use unplug::worker::WorkerState;
use unplug::{ControlError, Handle, Runtime};

const LIMIT: Duration = Duration::from_secs(30);
const NONE: usize = usize::MAX;

fn state(h: &Handle, id: usize) -> Option<WorkerState> {
    h.workers()
        .into_iter()
        .find(|w| w.id == id)
        .map(|w| w.state)
}

/// Drops `rt` if nothing was found (checking the drop returns within 10 s);
/// otherwise leaks it (it may be wedged) and fails with the findings.
fn finish(test: &str, rt: Runtime, f: Findings) {
    if f.0.is_empty() {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            drop(rt);
            let _ = tx.send(());
        });
        assert!(
            rx.recv_timeout(Duration::from_secs(10)).is_ok(),
            "{test}: drop(rt) did not return within 10 s"
        );
    } else {
        std::mem::forget(rt);
    }
    f.assert_none(test);
}

/// After a found cycle: does `drop(rt)` (from a plain thread) still return
/// within 10 s (rule 8)? Records the outcome as a finding either way, so
/// the report says whether shutdown breaks the cycle.
fn drop_after_deadlock(f: &mut Findings, rt: Runtime, h: &Handle) {
    let t0 = Instant::now();
    let dropped = on_thread(move || drop(rt));
    match dropped.recv_timeout(Duration::from_secs(10)) {
        Ok(()) => f.0.push(format!(
            "(drop(rt) afterwards broke the cycle and returned in {:?})",
            t0.elapsed()
        )),
        Err(_) => f.check(false, || {
            format!(
                "rule 8: drop(rt) afterwards did not return within 10 s either; workers [{}]",
                describe(h)
            )
        }),
    }
}

// ---------------------------------------------------------------------------
// 1. OWNED-ROLLBACK / SHARED-PARK: a timed-out *sharing* call withdraws the
//    owner's park.
// ---------------------------------------------------------------------------

/// A: `park_worker(1)` (no timeout) owns the park of worker 1, which is
/// inside a held poll. B: `unplug_cpu_timeout(cpu of 1, 200 ms)` finds the
/// park pending, shares it (SHARED-PARK) and times out. B's timeout must
/// withdraw nothing of A's (OWNED-ROLLBACK, rule 5); A must return with
/// worker 1 parked once the poll is released.
#[test]
fn a_timed_out_sharing_unplug_withdraws_the_owners_park() {
    let Some((c0, c1)) = two_cpus() else { return };
    let rt = Runtime::builder()
        .workers(2)
        .cpus([c0, c1])
        .build()
        .unwrap();
    let h = rt.handle().clone();
    let hh = h.clone();
    let f = control_support::watchdog("shared timeout", LIMIT, &h, move || {
        let h = hh;
        let mut f = Findings::default();
        let mut held = hold_workers(&h, 2, Duration::from_secs(10)).unwrap();
        held[0].release(); // worker 0 runs; worker 1 (on c1) stays in its poll
        let x = held[1].worker;
        assert_eq!(x, 1);
        let ha = h.clone();
        let a = on_thread(move || ha.park_worker(1));
        assert!(support::wait_until(Duration::from_secs(5), || state(&h, x)
            == Some(WorkerState::Parking)));
        let t0 = Instant::now();
        let b = h.unplug_cpu_timeout(c1, Duration::from_millis(200));
        f.check(matches!(b, Err(ControlError::Timeout { .. })), || {
            format!("B: expected Timeout, got {b:?}")
        });
        f.check(t0.elapsed() < Duration::from_millis(1200), || {
            format!("B took {:?}", t0.elapsed())
        });
        let after_b = state(&h, x);
        f.check(after_b == Some(WorkerState::Parking), || {
            format!(
                "rule 5 (OWNED-ROLLBACK): after B (a call that only shared A's park) timed out, \
                 worker {x} is {after_b:?}, not Parking: B's timeout withdrew A's park request \
                 [{}]",
                describe(&h)
            )
        });
        held[1].release();
        let ra = a.recv_timeout(Duration::from_secs(10));
        match &ra {
            Ok(Ok(r)) => f.check(r.parked == vec![x], || {
                format!(
                    "rule 5: A's park_worker({x}) returned Ok with parked={:?} superseded={:?}: \
                     its park was undone by B's timeout",
                    r.parked, r.superseded
                )
            }),
            other => f.check(false, || format!("A: {other:?}")),
        }
        std::thread::sleep(Duration::from_millis(200));
        let now = state(&h, x);
        f.check(now == Some(WorkerState::Parked), || {
            format!(
                "rule 4: worker {x} is {now:?} although the controller still plans it parked \
                 (A's call reported no rollback); workers [{}]",
                describe(&h)
            )
        });
        // The stale plan: a fresh park_worker must park the worker (or fail),
        // never return Ok at once while it runs (SHARED-PARK).
        let again = h.park_worker(x);
        std::thread::sleep(Duration::from_millis(100));
        let now = state(&h, x);
        f.check(again.is_err() || now == Some(WorkerState::Parked), || {
            format!(
                "SHARED-PARK: a later park_worker({x}) returned {:?} but worker {x} is {now:?}: \
                     it waited on the stale, withdrawn ticket and the worker can no longer be \
                     parked by park_worker",
                again.as_ref().map(|r| (&r.parked, &r.superseded))
            )
        });
        // A set_workers sees one running worker although two run.
        let resize = h.set_workers(2);
        f.check(
            resize.as_ref().map_or(true, |r| r.started.is_empty()),
            || {
                format!(
                    "LAST-RUNNING bookkeeping: set_workers(2) with two workers running started \
                     {:?} (before={:?}): the withdrawn worker is not counted; workers [{}]",
                    resize.as_ref().unwrap().started,
                    resize.as_ref().unwrap().before,
                    describe(&h)
                )
            },
        );
        f
    });
    finish(
        "a_timed_out_sharing_unplug_withdraws_the_owners_park",
        rt,
        f,
    );
}

/// Same root cause with a deferred park: a task parks its own worker
/// (deferred: it completes when the poll returns). A plain thread's
/// `unplug_cpu_timeout` on that worker's CPU shares it and times out while
/// the poll is still running: the deferred park must survive.
#[test]
fn a_timed_out_sharing_unplug_withdraws_a_deferred_park() {
    let Some((c0, c1)) = two_cpus() else { return };
    let rt = Runtime::builder()
        .workers(2)
        .cpus([c0, c1])
        .build()
        .unwrap();
    let h = rt.handle().clone();
    let hh = h.clone();
    let f = control_support::watchdog("deferred shared timeout", LIMIT, &h, move || {
        let h = hh;
        let mut f = Findings::default();
        let mut held = hold_workers(&h, 2, Duration::from_secs(10)).unwrap();
        held[0].release();
        let x = held[1].worker;
        let deferred = held[1]
            .run(move || Handle::current().park_worker(x).map(|r| r.deferred))
            .recv_timeout(Duration::from_secs(5));
        f.check(matches!(&deferred, Ok(Ok(d)) if d == &vec![x]), || {
            format!("deferred park: {deferred:?}")
        });
        let b = h.unplug_cpu_timeout(c1, Duration::from_millis(100));
        f.check(matches!(b, Err(ControlError::Timeout { .. })), || {
            format!("B: {b:?}")
        });
        held[1].release();
        std::thread::sleep(Duration::from_millis(300));
        let now = state(&h, x);
        f.check(now == Some(WorkerState::Parked), || {
            format!(
                "rule 5: the task's deferred park of worker {x} was withdrawn by another call's \
                 timeout: worker {x} is {now:?} after its poll returned; workers [{}]",
                describe(&h)
            )
        });
        f
    });
    finish(
        "a_timed_out_sharing_unplug_withdraws_a_deferred_park",
        rt,
        f,
    );
}

// ---------------------------------------------------------------------------
// 2. DEADLOCK-FREE: a start hook waiting for the worker that waits for the
//    start hook.
// ---------------------------------------------------------------------------

/// A task on worker A grows the pool (`set_workers(3)`): A blocks until the
/// new worker C's start hook returns (START-CONFIRMED). C's start hook parks
/// worker A — A is not marked `waiting`, so C waits for A's poll, which
/// waits for C. A cycle of controller calls inside worker threads.
#[test]
fn a_start_hook_parking_the_worker_that_waits_for_it_deadlocks() {
    let target = Arc::new(AtomicUsize::new(NONE));
    let hook_result = Arc::new(Mutex::new(None::<String>));
    let (t, hr) = (target.clone(), hook_result.clone());
    let rt = Runtime::builder()
        .workers(2)
        .on_thread_start(move || {
            let id = t.swap(NONE, SeqCst);
            if id != NONE {
                let r = Handle::current().park_worker(id);
                *hr.lock().unwrap() = Some(format!("{:?}", r.map(|r| (r.parked, r.deferred))));
            }
        })
        .build()
        .unwrap();
    let h = rt.handle().clone();
    let mut f = Findings::default();
    let (tx, rx) = mpsc::channel();
    let t = target.clone();
    drop(h.spawn(async move {
        let me = worker_id_here().unwrap();
        t.store(me, SeqCst);
        let r = Handle::current().set_workers(3);
        let _ = tx.send((me, format!("{:?}", r.map(|r| r.started))));
    }));
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok((me, r)) => eprintln!(
            "task on {me}: set_workers(3) = {r}; hook: {:?}",
            hook_result.lock().unwrap()
        ),
        Err(_) => f.check(false, || {
            format!(
                "DEADLOCK-FREE (rule 2): a task's set_workers(3) and the new worker's start hook \
                 calling park_worker(<that task's worker>) wait for each other; neither returned \
                 within 10 s; hook result: {:?}; workers [{}]",
                hook_result.lock().unwrap(),
                describe(&h)
            )
        }),
    }
    if f.0.is_empty() {
        f.check(
            control_support::task_runs_within(&h, Duration::from_secs(5)),
            || "no task ran".into(),
        );
    } else {
        f.check(
            control_support::task_runs_within(&h, Duration::from_secs(5)),
            || "rule 1: besides the cycle, no worker runs a new task".into(),
        );
        drop_after_deadlock(&mut f, rt, &h);
        f.assert_none("a_start_hook_parking_the_worker_that_waits_for_it_deadlocks");
        return;
    }
    finish(
        "a_start_hook_parking_the_worker_that_waits_for_it_deadlocks",
        rt,
        f,
    );
}

/// Same cycle through `plug_cpu` and a shrinking `set_workers` in the start
/// hook: a task on worker 1 (the newest) plugs a CPU with no worker on it,
/// or grows the pool; the new worker's start hook shrinks the pool, which
/// picks worker 1 (running, not marked waiting) and joins it — while worker
/// 1's poll waits for that start hook.
#[test]
fn a_start_hook_shrinking_the_pool_joins_the_worker_that_waits_for_it() {
    let armed = Arc::new(AtomicBool::new(false));
    let hook_result = Arc::new(Mutex::new(None::<String>));
    let (a, hr) = (armed.clone(), hook_result.clone());
    let rt = Runtime::builder()
        .workers(2)
        .on_thread_start(move || {
            if a.swap(false, SeqCst) {
                let r = Handle::current().set_workers(1);
                *hr.lock().unwrap() = Some(format!("{:?}", r.map(|r| r.stopped)));
            }
        })
        .build()
        .unwrap();
    let h = rt.handle().clone();
    let mut f = Findings::default();
    // Run the task on worker 1: hold worker 0 until the task has started.
    let mut held = hold_workers(&h, 2, Duration::from_secs(10)).unwrap();
    held[1].release();
    let (tx, rx) = mpsc::channel();
    let (up_tx, up_rx) = mpsc::channel();
    let a = armed.clone();
    drop(h.spawn(async move {
        let me = worker_id_here().unwrap();
        let _ = up_tx.send(me);
        a.store(true, SeqCst);
        let r = Handle::current().set_workers(3);
        let _ = tx.send((me, format!("{:?}", r.map(|r| r.started))));
    }));
    let me = up_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    held[0].release();
    assert_eq!(me, 1, "the task should run on worker 1");
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok((me, r)) => eprintln!(
            "task on {me}: set_workers(3) = {r}; hook: {:?}",
            hook_result.lock().unwrap()
        ),
        Err(_) => f.check(false, || {
            format!(
                "DEADLOCK-FREE (rule 2): task on worker 1 in set_workers(3) waits for worker 2's \
                 start hook; the hook's set_workers(1) chose worker 1 and joins it; neither \
                 returned within 10 s; hook result: {:?}; workers [{}]",
                hook_result.lock().unwrap(),
                describe(&h)
            )
        }),
    }
    if !f.0.is_empty() {
        drop_after_deadlock(&mut f, rt, &h);
        f.assert_none("a_start_hook_shrinking_the_pool_joins_the_worker_that_waits_for_it");
        return;
    }
    finish(
        "a_start_hook_shrinking_the_pool_joins_the_worker_that_waits_for_it",
        rt,
        f,
    );
}

// ---------------------------------------------------------------------------
// 3. An unplug that lost to a plug still marks its CPU unplugged.
// ---------------------------------------------------------------------------

/// A: `unplug_cpu(c1)` waits for worker 1's held poll. B: `plug_cpu(c1)`
/// withdraws the park (A is superseded) and clears c1's unplugged mark. A
/// then returns Ok and marks c1 unplugged *after* B's plug: the later
/// decision (plug) is undone, and a growing `set_workers` shuns c1 although
/// it is plugged and a worker runs there.
#[test]
fn an_unplug_superseded_by_a_plug_still_marks_the_cpu_unplugged() {
    let Some((c0, c1)) = two_cpus() else { return };
    let rt = Runtime::builder()
        .workers(2)
        .cpus([c0, c1])
        .build()
        .unwrap();
    let h = rt.handle().clone();
    let hh = h.clone();
    let f = control_support::watchdog("unplug vs plug", LIMIT, &h, move || {
        let h = hh;
        let mut f = Findings::default();
        let mut held = hold_workers(&h, 2, Duration::from_secs(10)).unwrap();
        held[0].release();
        let ha = h.clone();
        let a = on_thread(move || ha.unplug_cpu(c1));
        assert!(support::wait_until(Duration::from_secs(5), || state(&h, 1)
            == Some(WorkerState::Parking)));
        let b = h.plug_cpu(c1);
        f.check(matches!(&b, Ok(r) if r.unparked == vec![1]), || {
            format!("B: {b:?}")
        });
        held[1].release();
        let ra = a.recv_timeout(Duration::from_secs(10)).unwrap();
        eprintln!("A: {:?}", ra.as_ref().map(|r| (&r.parked, &r.superseded)));
        // c0 and c1 have one running worker each: two more go one on each.
        let grown = h.set_workers(4).unwrap();
        let ws = h.workers();
        let on_c1 = ws
            .iter()
            .filter(|w| grown.started.contains(&w.id) && w.cpu == Some(c1))
            .count();
        f.check(on_c1 == 1, || {
            format!(
                "rule 5/4: plug_cpu({c1}) came last, yet set_workers(4) started {on_c1} of its \
                 workers on c{c1}: the superseded unplug_cpu({c1}) marked the CPU unplugged \
                 after the plug; workers [{}]",
                describe(&h)
            )
        });
        f
    });
    finish(
        "an_unplug_superseded_by_a_plug_still_marks_the_cpu_unplugged",
        rt,
        f,
    );
}

// ---------------------------------------------------------------------------
// 4. park_worker / unplug_cpu of a Starting worker: Ok, and nothing parked.
// ---------------------------------------------------------------------------

#[test]
fn parking_a_starting_worker_parks_it_once_started() {
    let Some((c0, c1)) = two_cpus() else { return };
    let gate = Arc::new(Mutex::new(()));
    let starts = Arc::new(AtomicUsize::new(0));
    let (g, s) = (gate.clone(), starts.clone());
    let rt = Runtime::builder()
        .workers(1)
        .cpus([c0, c1])
        .on_thread_start(move || {
            if s.fetch_add(1, SeqCst) >= 1 {
                drop(g.lock().unwrap());
            }
        })
        .build()
        .unwrap();
    let h = rt.handle().clone();
    let hh = h.clone();
    let f = control_support::watchdog("park starting", LIMIT, &h, move || {
        let h = hh;
        let mut f = Findings::default();
        let closed = gate.lock().unwrap();
        let hs = h.clone();
        let grow = on_thread(move || hs.set_workers(2));
        assert!(support::wait_until(Duration::from_secs(5), || h
            .workers()
            .len()
            == 2));
        let listed = state(&h, 1);
        let park0 = h.park_worker(0);
        // A worker whose start hook has not returned is not counted as
        // running (START-CONFIRMED): parking the only confirmed one is
        // refused whatever state workers() shows for the starting one.
        eprintln!("worker 1 listed {listed:?} while starting; park_worker(0): {park0:?}");
        if park0.is_ok() {
            let _ = h.unpark_worker(0, None);
        }
        // The park of a starting worker waits for its start (held here by
        // the test's gate), then completes: run both on threads.
        let hp = h.clone();
        let p = on_thread(move || hp.park_worker(1));
        let hu = h.clone();
        let u = on_thread(move || hu.unplug_cpu(c1));
        drop(closed);
        let p = p.recv_timeout(Duration::from_secs(10)).unwrap();
        let u = u.recv_timeout(Duration::from_secs(10)).unwrap();
        let g = grow.recv_timeout(Duration::from_secs(10)).unwrap();
        eprintln!("grow: {:?}", g.map(|r| r.started));
        let now = state(&h, 1);
        f.check(p.is_err() || now == Some(WorkerState::Parked), || {
            format!(
                "park_worker(1) of a Starting worker returned Ok (parked={:?}, deferred={:?}) \
                 and worker 1 is {now:?}: a silent no-op",
                p.as_ref().unwrap().parked,
                p.as_ref().unwrap().deferred
            )
        });
        f.check(u.is_err() || now == Some(WorkerState::Parked), || {
            format!(
                "unplug_cpu({c1}) whose only worker was Starting returned Ok (parked={:?}) and \
                 worker 1 now runs on the 'unplugged' CPU {c1} ({now:?})",
                u.as_ref().unwrap().parked
            )
        });
        f
    });
    finish("parking_a_starting_worker_parks_it_once_started", rt, f);
}

// ---------------------------------------------------------------------------
// 5. IDS-REUSED: parked workers are never reclaimed by set_workers.
// ---------------------------------------------------------------------------

/// Park the newest running worker, `set_workers(2)`, repeat. At most two
/// workers ever run at once, yet each round starts a worker and keeps the
/// parked one: threads and ids grow with the number of resizes.
#[test]
fn ids_grow_without_bound_when_parked_workers_accumulate() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let h = rt.handle().clone();
    let hh = h.clone();
    let f = control_support::watchdog("id growth", LIMIT, &h, move || {
        let h = hh;
        let mut f = Findings::default();
        let mut max_running = 0;
        for _ in 0..20 {
            let ws = h.workers();
            let running: Vec<usize> = ws
                .iter()
                .filter(|w| matches!(w.state, WorkerState::Running | WorkerState::Idle))
                .map(|w| w.id)
                .collect();
            max_running = max_running.max(running.len());
            let newest = *running.iter().max().unwrap();
            h.park_worker(newest).unwrap();
            h.set_workers(2).unwrap();
        }
        let ws = h.workers();
        let max_id = ws.iter().map(|w| w.id).max().unwrap();
        f.check(max_id < 4, || {
            format!(
                "IDS-REUSED (rule 7): after 20 park+set_workers(2) rounds (never more than \
                 {max_running} running at once) the pool has {} worker threads, ids up to \
                 {max_id}; parked workers are never reclaimed",
                ws.len()
            )
        });
        f
    });
    finish(
        "ids_grow_without_bound_when_parked_workers_accumulate",
        rt,
        f,
    );
}

// ---------------------------------------------------------------------------
// 6. The follower's first reading undoes manual calls.
// ---------------------------------------------------------------------------

#[test]
fn the_followers_first_reading_unparks_a_manually_parked_worker() {
    let rt = Runtime::builder()
        .workers(2)
        .follow_cpus(true)
        .follow_interval(Duration::from_millis(20))
        .build()
        .unwrap();
    let h = rt.handle().clone();
    let hh = h.clone();
    let f =
        control_support::watchdog("follower", LIMIT, &h, move || {
            let h = hh;
            let mut f = Findings::default();
            let desired_before = h.workers();
            let p = h.park_worker(1);
            f.check(p.is_ok(), || format!("park_worker(1): {p:?}"));
            std::thread::sleep(Duration::from_millis(400));
            let now = state(&h, 1);
            f.check(now == Some(WorkerState::Parked), || {
                format!(
                "follower: no CPU was added or removed, yet worker 1 (parked by hand) is {now:?} \
                 after 400 ms; follow_changes={}; workers before [{:?}] after [{}]",
                h.stats().follow_changes,
                desired_before.iter().map(|w| (w.id, w.cpu)).collect::<Vec<_>>(),
                describe(&h)
            )
            });
            f
        });
    finish(
        "the_followers_first_reading_unparks_a_manually_parked_worker",
        rt,
        f,
    );
}

// ---------------------------------------------------------------------------
// Held-up checks (expected to pass).
// ---------------------------------------------------------------------------

/// Three tasks, each parking the next one's worker (a ring): no cycle, no
/// hang, and a worker keeps running.
#[test]
fn a_ring_of_three_tasks_parking_each_other_returns() {
    let rt = Runtime::builder().workers(3).build().unwrap();
    let h = rt.handle().clone();
    let mut f = Findings::default();
    let mut held = hold_workers(&h, 3, Duration::from_secs(10)).unwrap();
    let ids: Vec<usize> = held.iter().map(|x| x.worker).collect();
    let mut rxs = Vec::new();
    for (k, x) in held.iter().enumerate() {
        let next = ids[(k + 1) % 3];
        rxs.push(x.run(move || {
            Handle::current()
                .park_worker(next)
                .map(|r| (r.parked, r.deferred))
        }));
        std::thread::sleep(Duration::from_millis(50));
    }
    for x in held.iter_mut() {
        x.release();
    }
    for (k, rx) in rxs.iter().enumerate() {
        let r = rx.recv_timeout(Duration::from_secs(10));
        eprintln!("task {k}: {r:?}");
        f.check(r.is_ok(), || format!("task {k} hung: [{}]", describe(&h)));
    }
    f.check(
        control_support::task_runs_within(&h, Duration::from_secs(5)),
        || format!("no worker runs: [{}]", describe(&h)),
    );
    finish("a_ring_of_three_tasks_parking_each_other_returns", rt, f);
}

/// Two tasks shrinking the pool at once: one wins, the other is refused;
/// nothing hangs, a worker runs.
#[test]
fn two_tasks_shrinking_at_once_return() {
    let rt = Runtime::builder().workers(3).build().unwrap();
    let h = rt.handle().clone();
    let mut f = Findings::default();
    let mut held = hold_workers(&h, 3, Duration::from_secs(10)).unwrap();
    let a = held[0].run(|| Handle::current().set_workers(1).map(|r| r.stopped));
    let b = held[1].run(|| Handle::current().set_workers(1).map(|r| r.stopped));
    std::thread::sleep(Duration::from_millis(100));
    for x in held.iter_mut() {
        x.release();
    }
    for (n, rx) in [("a", a), ("b", b)] {
        let r = rx.recv_timeout(Duration::from_secs(10));
        eprintln!("{n}: {r:?}");
        f.check(r.is_ok(), || format!("{n} hung: [{}]", describe(&h)));
    }
    f.check(
        control_support::task_runs_within(&h, Duration::from_secs(5)),
        || format!("no worker runs: [{}]", describe(&h)),
    );
    finish("two_tasks_shrinking_at_once_return", rt, f);
}

/// Bad input: nothing panics.
#[test]
fn odd_inputs_never_panic() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let h = rt.handle().clone();
    let hh = h.clone();
    let f = control_support::watchdog("inputs", LIMIT, &h, move || {
        let h = hh;
        let mut f = Findings::default();
        let mut run = |what: &str, g: &mut dyn FnMut() -> String| {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(g));
            match r {
                Ok(s) => eprintln!("{what}: {s}"),
                Err(p) => f.check(false, || {
                    format!("{what} panicked: {}", control_support::panic_message(&*p))
                }),
            }
        };
        run("unplug_cpu(MAX)", &mut || {
            format!("{:?}", h.unplug_cpu(usize::MAX).map(drop))
        });
        run("plug_cpu(MAX)", &mut || {
            format!("{:?}", h.plug_cpu(usize::MAX))
        });
        run("unplug_cpu_timeout(0, MAX)", &mut || {
            format!(
                "{:?}",
                h.unplug_cpu_timeout(cpus()[0], Duration::MAX)
                    .map(|r| r.parked)
            )
        });
        run("unplug_cpu_timeout(1, 0)", &mut || {
            format!(
                "{:?}",
                h.unplug_cpu_timeout(cpus()[cpus().len() - 1], Duration::ZERO)
                    .map(|r| r.parked)
            )
        });
        run("park_worker(MAX)", &mut || {
            format!("{:?}", h.park_worker(usize::MAX).map(drop))
        });
        run("unpark_worker(MAX, Some(MAX))", &mut || {
            format!("{:?}", h.unpark_worker(usize::MAX, Some(usize::MAX)))
        });
        run("unpark_worker(0, Some(MAX))", &mut || {
            format!("{:?}", h.unpark_worker(0, Some(usize::MAX)))
        });
        run("unpark_worker(0, Some(1<<20))", &mut || {
            format!("{:?}", h.unpark_worker(0, Some(1 << 20)))
        });
        run("set_workers(MAX)", &mut || {
            format!("{:?}", h.set_workers(usize::MAX).map(drop))
        });
        run("set_workers(MAX_WORKERS+1)", &mut || {
            format!("{:?}", h.set_workers(unplug::MAX_WORKERS + 1).map(drop))
        });
        f.check(
            control_support::task_runs_within(&h, Duration::from_secs(5)),
            || "no task ran".into(),
        );
        f
    });
    finish("odd_inputs_never_panic", rt, f);
}

/// drop(rt) while threads and tasks issue controller calls: the drop and
/// every call return promptly, and every counted task either completed or
/// was dropped.
#[test]
fn drop_while_calls_are_in_flight_returns_and_loses_nothing() {
    let cs = cpus();
    for round in 0..8 {
        let rt = Runtime::builder().workers(3).build().unwrap();
        let h = rt.handle().clone();
        let stop = Arc::new(AtomicBool::new(false));
        let settled = Arc::new(AtomicUsize::new(0)); // completed or dropped
        const TASKS: usize = 200;
        struct Settle(Arc<AtomicUsize>);
        impl Drop for Settle {
            fn drop(&mut self) {
                self.0.fetch_add(1, SeqCst);
            }
        }
        for i in 0..TASKS {
            let s = Settle(settled.clone());
            drop(h.spawn(async move {
                let _s = s;
                for _ in 0..(i % 5) {
                    unplug::yield_now().await;
                }
            }));
        }
        let call = |h: &Handle, k: usize, cs: &[usize]| {
            let cpu = cs[k % cs.len()];
            match k % 6 {
                0 => drop(h.park_worker(k % 4)),
                1 => drop(h.unpark_worker(k % 4, None)),
                2 => drop(h.set_workers(1 + k % 4)),
                3 => drop(h.unplug_cpu_timeout(cpu, Duration::from_millis(k as u64 % 3))),
                4 => drop(h.plug_cpu(cpu)),
                _ => drop(h.unpark_worker(k % 4, Some(cpu))),
            }
        };
        let mut threads = Vec::new();
        for t in 0..2 {
            let (h, stop, cs) = (h.clone(), stop.clone(), cs.clone());
            threads.push(on_thread(move || {
                let mut k = t * 7 + round;
                while !stop.load(SeqCst) {
                    call(&h, k, &cs);
                    k += 5;
                }
            }));
        }
        let mut tasks = Vec::new();
        for t in 0..2 {
            let (tx, rx) = mpsc::channel();
            let (stop, cs) = (stop.clone(), cs.clone());
            drop(h.spawn(async move {
                let h = Handle::current();
                let mut k = t * 11 + round;
                for _ in 0..50 {
                    if stop.load(SeqCst) {
                        break;
                    }
                    call(&h, k, &cs);
                    k += 3;
                    unplug::yield_now().await;
                }
                let _ = tx.send(());
            }));
            tasks.push(rx);
        }
        std::thread::sleep(Duration::from_millis(30));
        let t0 = Instant::now();
        let dropped = on_thread(move || drop(rt));
        let ok = dropped.recv_timeout(Duration::from_secs(10)).is_ok();
        stop.store(true, SeqCst);
        assert!(
            ok,
            "round {round}: drop(rt) did not return within 10 s: [{}]",
            describe(&h)
        );
        eprintln!("round {round}: drop took {:?}", t0.elapsed());
        for (i, t) in threads.iter().enumerate() {
            assert!(
                t.recv_timeout(Duration::from_secs(10)).is_ok(),
                "round {round}: caller thread {i} hung after drop"
            );
        }
        assert!(
            support::wait_until(Duration::from_secs(5), || settled.load(SeqCst) >= TASKS),
            "round {round}: {} of {TASKS} tasks neither completed nor dropped",
            settled.load(SeqCst)
        );
    }
}

/// Minor sibling of the unplug/plug finding: `unpark_worker` brings a
/// worker back on an unplugged CPU without clearing the CPU's unplugged
/// mark, so growth keeps shunning a CPU the runtime runs on.
#[test]
fn unparking_on_an_unplugged_cpu_leaves_it_marked_unplugged() {
    let Some((c0, c1)) = two_cpus() else { return };
    let rt = Runtime::builder()
        .workers(2)
        .cpus([c0, c1])
        .build()
        .unwrap();
    let h = rt.handle().clone();
    let hh = h.clone();
    let f = control_support::watchdog("unpark on unplugged", LIMIT, &h, move || {
        let h = hh;
        let mut f = Findings::default();
        let r = h.unplug_cpu(c1).unwrap();
        assert_eq!(r.parked, vec![1]);
        h.unpark_worker(1, Some(c1)).unwrap();
        let grown = h.set_workers(4).unwrap();
        let ws = h.workers();
        let on_c1 = ws
            .iter()
            .filter(|w| grown.started.contains(&w.id) && w.cpu == Some(c1))
            .count();
        f.check(on_c1 == 1, || {
            format!(
                "(minor) worker 1 was unparked onto c{c1} with unpark_worker(1, Some({c1})), yet \
                 set_workers(4) put {on_c1} of its new workers on c{c1}: the CPU stays marked \
                 unplugged; workers [{}]",
                describe(&h)
            )
        });
        f
    });
    finish(
        "unparking_on_an_unplugged_cpu_leaves_it_marked_unplugged",
        rt,
        f,
    );
}

/// Start hooks that call set_workers: during build (every worker Starting)
/// and during a resize from a plain thread. Expected to hold.
#[test]
fn start_hooks_resizing_from_build_and_plain_threads_return() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let built = on_thread(move || {
        Runtime::builder()
            .workers(2)
            .on_thread_start(move || {
                let k = c.fetch_add(1, SeqCst);
                if k < 6 {
                    let _ = Handle::current().set_workers(if k % 2 == 0 { 4 } else { 1 });
                }
            })
            .build()
    });
    let rt = match built.recv_timeout(Duration::from_secs(10)) {
        Ok(r) => r.unwrap(),
        Err(_) => panic!("build() with start hooks calling set_workers hung for 10 s"),
    };
    let h = rt.handle().clone();
    let hh = h.clone();
    let f = control_support::watchdog("hook resizes", LIMIT, &h, move || {
        let h = hh;
        let mut f = Findings::default();
        for n in [3, 1, 4, 2] {
            let r = h.set_workers(n);
            eprintln!(
                "set_workers({n}): {:?} [{}]",
                r.map(|r| (r.started, r.stopped)),
                describe(&h)
            );
        }
        f.check(
            control_support::task_runs_within(&h, Duration::from_secs(5)),
            || format!("no task ran: [{}]", describe(&h)),
        );
        f
    });
    finish(
        "start_hooks_resizing_from_build_and_plain_threads_return",
        rt,
        f,
    );
}

/// Tiny-timeout unplugs racing plugs, re-pinning unparks and resizes under
/// load; a monitor checks a task always runs. Afterwards every worker must
/// be controllable again: once everything is plugged back, each worker
/// runs, and a park_worker of it parks it.
#[test]
fn tiny_timeout_unplugs_racing_plugs_leave_a_controllable_pool() {
    let Some((c0, c1)) = two_cpus() else { return };
    let rt = Runtime::builder()
        .workers(3)
        .cpus([c0, c1])
        .build()
        .unwrap();
    let h = rt.handle().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let mut f = Findings::default();
    // Load: short busy polls, so parks take a little while. At most 16
    // waiting at once: 1.2 ms of polls a millisecond outruns a runtime
    // that a loaded machine gives less than that, and rule 1's probe then
    // waited behind a backlog that only grew (no task within 3 s, with four
    // busy loops beside the test).
    {
        let (h, stop) = (h.clone(), stop.clone());
        let outstanding = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            while !stop.load(SeqCst) {
                for _ in 0..4 {
                    if outstanding.load(SeqCst) >= 16 {
                        break;
                    }
                    outstanding.fetch_add(1, SeqCst);
                    let done = outstanding.clone();
                    drop(h.spawn(async move {
                        let t = Instant::now();
                        while t.elapsed() < Duration::from_micros(300) {}
                        done.fetch_sub(1, SeqCst);
                    }));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
    }
    let mut threads = Vec::new();
    for t in 0..3usize {
        let (h, stop) = (h.clone(), stop.clone());
        threads.push(on_thread(move || {
            let mut k = t;
            let mut slow = Vec::new();
            while !stop.load(SeqCst) {
                let t0 = Instant::now();
                let timeout = Duration::from_micros((k as u64 * 397) % 2500);
                let bound = match t {
                    0 => {
                        let _ = h.unplug_cpu_timeout(c1, timeout);
                        timeout + Duration::from_secs(1)
                    }
                    1 => {
                        match k % 3 {
                            0 => drop(h.plug_cpu(c1)),
                            1 => {
                                drop(h.unpark_worker(k % 4, Some(if k % 2 == 0 { c0 } else { c1 })))
                            }
                            _ => drop(h.unplug_cpu_timeout(c0, timeout)),
                        }
                        Duration::from_secs(10)
                    }
                    _ => {
                        drop(h.set_workers(2 + k % 3));
                        Duration::from_secs(10)
                    }
                };
                if t0.elapsed() > bound {
                    slow.push(format!("thread {t} call {k}: {:?}", t0.elapsed()));
                }
                k += 3;
            }
            slow
        }));
    }
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        if !control_support::task_runs_within(&h, Duration::from_secs(3)) {
            f.check(false, || {
                format!("rule 1: no task ran within 3 s: [{}]", describe(&h))
            });
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, SeqCst);
    for (i, t) in threads.iter().enumerate() {
        match t.recv_timeout(Duration::from_secs(15)) {
            Ok(slow) => f.check(slow.is_empty(), || format!("rule 2: slow calls: {slow:?}")),
            Err(_) => f.check(false, || {
                format!("rule 2: caller {i} hung: [{}]", describe(&h))
            }),
        }
    }
    // Plug everything back; unpark every listed worker.
    let _ = h.plug_cpu(c0);
    let _ = h.plug_cpu(c1);
    for w in h.workers() {
        let _ = h.unpark_worker(w.id, None);
    }
    std::thread::sleep(Duration::from_millis(200));
    let ws = h.workers();
    f.check(
        ws.iter()
            .all(|w| matches!(w.state, WorkerState::Running | WorkerState::Idle)),
        || {
            format!(
                "after plugging all back, not every worker runs: [{}]",
                describe(&h)
            )
        },
    );
    // Each worker but one must be parkable again.
    let ids: Vec<usize> = ws.iter().map(|w| w.id).collect();
    for &id in &ids[1..] {
        let r = h.park_worker(id);
        let now = state(&h, id);
        f.check(matches!(now, Some(WorkerState::Parked)), || {
            format!(
                "after the race, park_worker({id}) returned {:?} and worker {id} is {now:?}: \
                 the controller's plan for it is stale; workers [{}]",
                r.map(|r| (r.parked, r.superseded)),
                describe(&h)
            )
        });
        let _ = h.unpark_worker(id, None);
    }
    finish(
        "tiny_timeout_unplugs_racing_plugs_leave_a_controllable_pool",
        rt,
        f,
    );
}
