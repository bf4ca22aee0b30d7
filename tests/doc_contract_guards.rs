//! Documented promises that held when checked through the public API as a
//! user would rely on them, and that no other test file pins directly.
#![cfg(not(loom))]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{wait_until, with_watchdog};
use unplug::worker::WorkerState;
use unplug::{ControlError, Runtime};

const WAIT: Duration = Duration::from_secs(10);

fn allowed() -> Vec<usize> {
    unplug::worker::affinity::allowed_cpus().unwrap()
}

fn two_pinned(cpus: &[usize]) -> Runtime {
    Runtime::builder()
        .workers(2)
        .cpus([cpus[0], cpus[1]])
        .pin_workers(true)
        .build()
        .unwrap()
}

/// `ControlError::WorkerGone`: "the worker is being stopped by a resize".
/// Worker 1 is held in a poll, so the shrink that stops it waits; meanwhile
/// parking or unparking it is refused with `WorkerGone`, not waited for.
#[test]
fn a_worker_a_resize_is_stopping_is_reported_gone() {
    with_watchdog("worker gone", || {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let held = Arc::new(Mutex::new(held));
        let inside = Arc::new(AtomicUsize::new(0));
        for _ in 0..2 {
            let (held, inside) = (held.clone(), inside.clone());
            rt.spawn(async move {
                inside.fetch_add(1, SeqCst);
                // One task waits for the release, the other for the lock:
                // both workers are inside a poll until `release` drops.
                let _ = held.lock().unwrap().recv_timeout(WAIT);
            });
        }
        assert!(wait_until(WAIT, || inside.load(SeqCst) == 2));
        let h = rt.handle().clone();
        let shrink = std::thread::spawn(move || h.set_workers(1));
        assert!(wait_until(WAIT, || rt.workers()[1].state == WorkerState::Stopping));
        assert!(matches!(
            rt.park_worker(1),
            Err(ControlError::WorkerGone(1))
        ));
        assert!(matches!(
            rt.unpark_worker(1, None),
            Err(ControlError::WorkerGone(1))
        ));
        drop(release);
        let report = shrink.join().unwrap().unwrap();
        assert_eq!((report.before, report.after), (2, 1));
        assert_eq!(report.stopped, vec![1]);
        assert_eq!(rt.workers().len(), 1);
    });
}

/// `ResizeReport`: `before`/`after` count running workers, and a parked
/// worker (on a CPU not unplugged) is brought back before any is started.
#[test]
fn a_growing_resize_unparks_a_parked_worker_instead_of_starting_one() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    assert_eq!(rt.park_worker(1).unwrap().parked, vec![1]);
    assert_eq!(rt.workers()[1].state, WorkerState::Parked);
    let report = rt.set_workers(2).unwrap();
    assert_eq!((report.before, report.after), (1, 2));
    assert_eq!(report.unparked, vec![1]);
    assert!(report.started.is_empty(), "{report:?}");
    assert_eq!(rt.workers().len(), 2);
}

/// `yield_now`: "the task goes to the back of its worker's queue, behind
/// the tasks already waiting there" (one worker: a total order).
#[test]
fn yield_now_runs_the_tasks_already_waiting_first() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = order.clone();
    rt.block_on(rt.spawn(async move {
        let waiting: Vec<_> = (0..3)
            .map(|i| {
                let o = o.clone();
                unplug::spawn(async move { o.lock().unwrap().push(i) })
            })
            .collect();
        unplug::yield_now().await;
        o.lock().unwrap().push(99);
        for t in waiting {
            t.await.unwrap();
        }
    }))
    .unwrap();
    let order = order.lock().unwrap().clone();
    assert_eq!(order.len(), 4);
    assert_eq!(order.last(), Some(&99), "the yielder ran first: {order:?}");
}

/// `Builder::new` defaults: one worker per CPU the process may use, not
/// pinned, threads named `unplug-worker-N`; tokio's blocking pool threads
/// are `<name>-io`.
#[test]
fn builder_defaults_and_thread_names_are_as_documented() {
    let rt = Runtime::new().unwrap();
    let workers = rt.workers();
    assert_eq!(workers.len(), allowed().len());
    assert!(workers.iter().all(|w| !w.pinned));
    let name = rt
        .block_on(rt.spawn(async { std::thread::current().name().map(str::to_owned) }))
        .unwrap()
        .unwrap();
    let id: usize = name
        .strip_prefix("unplug-worker-")
        .unwrap()
        .parse()
        .unwrap();
    assert!(workers.iter().any(|w| w.id == id));
    let blocking = rt
        .block_on(rt.spawn(async {
            tokio::task::spawn_blocking(|| std::thread::current().name().map(str::to_owned))
                .await
                .unwrap()
        }))
        .unwrap();
    assert_eq!(blocking.as_deref(), Some("unplug-worker-io"));
}

/// `unpark_worker`: "a running worker is left as it is" (not re-pinned),
/// a parked one is re-pinned to the CPU given; `unplug_cpu` returns with
/// the worker parked, and unplugging it again "changes nothing".
#[test]
fn unpark_and_unplug_change_only_what_the_docs_say() {
    let cpus = allowed();
    if cpus.len() < 2 {
        eprintln!("skipped: needs two CPUs");
        return;
    }
    let rt = two_pinned(&cpus);
    let mask = |w: &unplug::WorkerInfo| unplug::worker::affinity::cpus_of(w.os_tid).unwrap();
    assert_eq!(
        rt.unpark_worker(1, Some(cpus[0])).unwrap(),
        unplug::PlugReport::default()
    );
    assert_eq!(rt.workers()[1].cpu, Some(cpus[1]));
    assert_eq!(mask(&rt.workers()[1]), vec![cpus[1]]);

    assert_eq!(rt.unplug_cpu(cpus[1]).unwrap().parked, vec![1]);
    assert_eq!(rt.workers()[1].state, WorkerState::Parked);
    let again = rt.unplug_cpu(cpus[1]).unwrap();
    assert!(
        again.parked.is_empty() && again.deferred.is_empty(),
        "{again:?}"
    );
    assert_eq!(rt.workers()[1].state, WorkerState::Parked);

    assert_eq!(
        rt.unpark_worker(1, Some(cpus[0])).unwrap().unparked,
        vec![1]
    );
    let w = rt.workers()[1].clone();
    assert_eq!((w.cpu, w.pinned), (Some(cpus[0]), true));
    assert_eq!(mask(&w), vec![cpus[0]]);
    assert!(wait_until(WAIT, || rt.workers()[1].resumes == 1));
    assert!(rt.workers()[1].last_unpark_latency > Duration::ZERO);
}

/// `Handle::live_tasks` and `RuntimeStats::live_tasks`: "spawned and not
/// yet completed or dropped".
#[test]
fn live_tasks_counts_pending_tasks_until_they_end() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    assert_eq!(rt.handle().live_tasks(), 0);
    let tasks: Vec<_> = (0..5)
        .map(|_| rt.spawn(std::future::pending::<()>()))
        .collect();
    assert_eq!(rt.handle().live_tasks(), 5);
    assert_eq!(rt.stats().live_tasks, 5);
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        assert!(rt.block_on(t).unwrap_err().is_cancelled());
    }
    assert_eq!(rt.handle().live_tasks(), 0);
    assert_eq!(rt.stats().live_tasks, 0);
}

/// `PollCulprit::spawned_at`: the spawn APIs are `#[track_caller]`, so a
/// timed-out unplug names the user's line whichever API spawned the task
/// (`JoinSet::spawn` and `spawn_on` included).
#[test]
fn a_timed_out_unplug_names_the_spawning_line_for_every_spawn_api() {
    let cpus = allowed();
    if cpus.len() < 2 {
        eprintln!("skipped: needs two CPUs");
        return;
    }
    for via in 0..5 {
        let rt = two_pinned(&cpus);
        let (started_tx, started) = std::sync::mpsc::channel();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let body = async move {
            started_tx
                .send(unplug::worker::affinity::current_tid())
                .unwrap();
            let _ = held.recv_timeout(WAIT); // a long poll
        };
        let mut set = unplug::JoinSet::new();
        let _guard = rt.enter();
        let line = line!() + 2;
        match via {
            0 => drop(unplug::spawn(body)),
            1 => drop(rt.handle().spawn(body)),
            2 => drop(rt.spawn(body)),
            3 => drop(set.spawn(body)),
            _ => drop(set.spawn_on(body, rt.handle())),
        }
        let tid = started.recv_timeout(WAIT).unwrap();
        let busy = rt.workers().into_iter().find(|w| w.os_tid == tid).unwrap();
        let err = rt
            .unplug_cpu_timeout(busy.cpu.unwrap(), Duration::from_millis(50))
            .unwrap_err();
        let ControlError::Timeout { blocked_by } = err else {
            panic!("{err:?}")
        };
        assert_eq!(blocked_by.len(), 1, "{blocked_by:?}");
        let at = blocked_by[0].spawned_at.expect("a spawn site");
        assert_eq!((at.file(), at.line()), (file!(), line + via), "API {via}");
        assert_eq!(blocked_by[0].worker, busy.id);
        assert_eq!(
            rt.workers()[busy.id].state,
            WorkerState::Running,
            "withdrawn"
        );
        drop(release);
        set.detach_all();
    }
}

/// `JoinHandle::id`: a task refused at spawn (shutdown had begun) "has an
/// id of its own too, with the top bit set".
#[test]
fn tasks_refused_at_shutdown_get_distinct_ids_with_the_top_bit_set() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let h = rt.handle().clone();
    let live = rt.spawn(async {});
    drop(rt);
    let (a, b) = (h.spawn(async {}), h.spawn(async {}));
    assert_ne!(a.id(), b.id());
    assert_eq!(a.id().as_u64() >> 63, 1);
    assert_eq!(b.id().as_u64() >> 63, 1);
    assert_eq!(live.id().as_u64() >> 63, 0);
}
