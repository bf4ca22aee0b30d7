//! Lifecycle red team (2026-12-04), the attacks the runtime held, kept as
//! guards: a `Handle` used after its runtime is gone (every call a typed
//! error or a clean result), runtimes made and dropped in a loop from
//! several threads (no thread or descriptor left behind), controller calls
//! racing the drop (no worker thread left behind), `JoinHandle`s awaited on
//! a tokio runtime and on a second unplug runtime while the first drops
//! (each resolves cancelled), and tokio timers of tasks whose worker is
//! parked or stopped mid-wait (they fire on time). The one defect found is
//! in `redteam_shutdown_block_on.rs`.
#![cfg(not(loom))]

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use support::{block_on_timeout, wait_until, with_watchdog_for};
use unplug::{ControlError, Runtime};

/// Thread and descriptor counts are process-wide: one test at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .collect()
}

#[test]
fn a_handle_outliving_its_runtime_gives_typed_errors_and_clean_results() {
    let _serial = serial();
    let rt = Runtime::builder().workers(2).build().unwrap();
    let h = rt.handle().clone();
    drop(rt);
    let spawned = block_on_timeout(h.spawn(async { 1 }), Duration::from_secs(5));
    assert!(matches!(spawned, Some(Err(e)) if e.is_cancelled()));
    assert_eq!(h.block_on(async { 2 }), 2);
    assert!(h.block_on(h.spawn(async { 3 })).unwrap_err().is_cancelled());
    {
        let _guard = h.enter();
        let mut set = unplug::JoinSet::new();
        set.spawn(async { 4 });
        assert!(h
            .block_on(set.join_next())
            .unwrap()
            .unwrap_err()
            .is_cancelled());
    }
    let shutting_down = |r: Result<(), ControlError>| matches!(r, Err(ControlError::ShuttingDown));
    assert!(shutting_down(h.unplug_cpu(0).map(drop)));
    assert!(shutting_down(
        h.unplug_cpu_timeout(0, Duration::from_millis(1)).map(drop)
    ));
    assert!(shutting_down(h.plug_cpu(0).map(drop)));
    assert!(shutting_down(h.park_worker(0).map(drop)));
    assert!(shutting_down(h.unpark_worker(0, None).map(drop)));
    assert!(shutting_down(h.set_workers(3).map(drop)));
    assert!(h.workers().is_empty());
    assert_eq!(h.live_tasks(), 0);
}

#[test]
fn runtimes_made_and_dropped_from_four_threads_leave_no_thread_or_descriptor() {
    let _serial = serial();
    // Warm up what lives for the process (tokio's globals, the allocator).
    drop(
        Runtime::builder()
            .workers(1)
            .thread_name("rtl-warm")
            .build()
            .unwrap(),
    );
    assert!(wait_until(Duration::from_secs(5), || {
        !thread_names().iter().any(|n| n.starts_with("rtl-warm"))
    }));
    let (threads_before, fds_before) = (threads(), fds());
    let makers: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                for j in 0..25 {
                    let rt = Runtime::builder()
                        .workers(1 + j % 3)
                        .thread_name(format!("rtl{i}"))
                        .follow_cpus(j % 2 == 0)
                        .build()
                        .unwrap();
                    rt.block_on(async {
                        let timer = unplug::spawn(async {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        });
                        let blocking = tokio::task::spawn_blocking(|| 1);
                        tokio::spawn(async {}).await.unwrap();
                        timer.await.unwrap();
                        blocking.await.unwrap();
                    });
                    for _ in 0..8 {
                        rt.spawn(std::future::pending::<()>());
                    }
                    if (i + j) % 3 == 0 {
                        rt.shutdown_timeout(Duration::from_millis(100));
                    } else {
                        drop(rt);
                    }
                }
            })
        })
        .collect();
    for m in makers {
        m.join().unwrap();
    }
    // tokio's blocking-pool threads leave on their own once told to.
    let settled = wait_until(Duration::from_secs(15), || {
        threads() <= threads_before && fds() <= fds_before
    });
    assert!(
        settled,
        "after 100 runtimes: {} threads (before {threads_before}), {} fds (before \
         {fds_before}); threads: {:?}",
        threads(),
        fds(),
        thread_names()
    );
}

#[test]
fn controller_calls_racing_the_drop_leave_no_worker_thread() {
    let _serial = serial();
    let cpus = unplug::worker::affinity::allowed_cpus().unwrap();
    for round in 0..10u64 {
        let rt = Runtime::builder()
            .workers(2)
            .pin_workers(round % 2 == 0)
            .thread_name("rtl-race")
            .build()
            .unwrap();
        let h = rt.handle().clone();
        let stop = Arc::new(AtomicBool::new(false));
        let callers: Vec<_> = (0..4)
            .map(|k| {
                let (h, stop, cpus) = (h.clone(), stop.clone(), cpus.clone());
                std::thread::spawn(move || {
                    let mut i = 0usize;
                    while !stop.load(SeqCst) {
                        i += 1;
                        let cpu = cpus[i % cpus.len()];
                        let _ = match (i + k) % 5 {
                            0 => h.set_workers(1 + i % 6).map(drop),
                            1 => h.plug_cpu(cpu).map(drop),
                            2 => h
                                .unplug_cpu_timeout(cpu, Duration::from_millis(5))
                                .map(drop),
                            3 => h.park_worker(i % 4).map(drop),
                            _ => h.unpark_worker(i % 4, Some(cpu)).map(drop),
                        };
                    }
                })
            })
            .collect();
        // Load shaping: let the callers get going before the drop.
        std::thread::sleep(Duration::from_millis(20 + round * 7 % 30));
        with_watchdog_for("drop racing controller calls", Duration::from_secs(10), {
            move || drop(rt)
        });
        stop.store(true, SeqCst);
        for c in callers {
            c.join().unwrap();
        }
        let gone = wait_until(Duration::from_secs(5), || {
            !thread_names().iter().any(|n| n.starts_with("rtl-race"))
        });
        assert!(gone, "round {round}: threads left: {:?}", thread_names());
        assert!(h.workers().is_empty());
    }
}

#[test]
fn join_handles_awaited_on_other_runtimes_resolve_cancelled_when_theirs_drops() {
    let _serial = serial();
    let first = Runtime::builder().workers(2).build().unwrap();
    let second = Runtime::builder().workers(1).build().unwrap();
    let tokio_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let awaiting = Arc::new(AtomicUsize::new(0));
    let mut on_second = Vec::new();
    let mut on_tokio = Vec::new();
    for i in 0..40 {
        let pending = first.spawn(std::future::pending::<u8>());
        let a = awaiting.clone();
        let wait = async move {
            a.fetch_add(1, SeqCst);
            pending.await.map_err(|e| e.is_cancelled())
        };
        if i % 2 == 0 {
            on_second.push(second.spawn(wait));
        } else {
            on_tokio.push(tokio_rt.spawn(wait));
        }
    }
    assert!(wait_until(Duration::from_secs(10), || awaiting
        .load(SeqCst)
        == 40));
    drop(first);
    for j in on_second {
        let r = block_on_timeout(j, Duration::from_secs(5));
        assert!(matches!(r, Some(Ok(Err(true)))), "on unplug: {r:?}");
    }
    for j in on_tokio {
        let r = block_on_timeout(j, Duration::from_secs(5)).map(|r| r.ok());
        assert!(matches!(r, Some(Some(Err(true)))), "on tokio: {r:?}");
    }
}

#[test]
fn timers_of_tasks_whose_worker_parks_or_stops_mid_wait_fire_on_time() {
    let _serial = serial();
    let cpus = unplug::worker::affinity::allowed_cpus().unwrap();
    if cpus.len() < 2 {
        eprintln!("skipped: needs 2 CPUs");
        return;
    }
    const SLEEP: Duration = Duration::from_millis(200);
    let rt = Runtime::builder()
        .workers(2)
        .pin_workers(true)
        .build()
        .unwrap();
    for round in 0..6 {
        let n = 64;
        let started = Arc::new(AtomicUsize::new(0));
        let waits = Arc::new(Mutex::new(Vec::new()));
        for _ in 0..n {
            let (s, w) = (started.clone(), waits.clone());
            rt.spawn(async move {
                let t = Instant::now();
                s.fetch_add(1, SeqCst);
                tokio::time::sleep(SLEEP).await;
                w.lock().unwrap().push(t.elapsed());
            });
        }
        assert!(wait_until(Duration::from_secs(5), || started.load(SeqCst) == n));
        match round % 3 {
            0 => assert!(!rt.unplug_cpu(cpus[1]).unwrap().parked.is_empty()),
            1 => assert_eq!(rt.set_workers(1).unwrap().stopped.len(), 1),
            _ => assert!(!rt
                .park_worker(rt.workers()[0].id)
                .unwrap()
                .parked
                .is_empty()),
        }
        assert!(
            wait_until(Duration::from_secs(5), || waits.lock().unwrap().len() == n),
            "round {round}: {} of {n} timers fired within 5 s",
            waits.lock().unwrap().len()
        );
        let latest = waits.lock().unwrap().iter().max().copied().unwrap();
        // Generous: a shared 2-CPU machine.
        assert!(
            latest < SLEEP + Duration::from_secs(1),
            "round {round}: {latest:?}"
        );
        let _ = rt.plug_cpu(cpus[1]);
        let _ = rt.set_workers(2);
        for w in rt.workers() {
            let _ = rt.unpark_worker(w.id, None);
        }
    }
}
