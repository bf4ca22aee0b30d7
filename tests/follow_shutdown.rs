//! FOLLOW-GIVES-UP (`runtime/CONTROLLER.md`): the CPU follower's unplug of
//! a CPU whose worker is inside a long poll never holds up a shutdown.
//! It waited for the poll with no bound, and shutdown joins the follower:
//! `shutdown_timeout(200ms)` and a drop from a tokio thread took the whole
//! 6 s poll, and a runtime dropped from the task being waited for
//! deadlocked for good (found by a red team, 2026-12-04). Alone in its
//! binary: it changes the main thread's affinity mask.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use unplug::worker::{affinity, WorkerState};
use unplug::Runtime;

const POLL: Duration = Duration::from_secs(6);

struct Restore(i32, Vec<usize>);
impl Drop for Restore {
    fn drop(&mut self) {
        let _ = affinity::pin_to(self.0, &self.1);
    }
}

/// The tests change the process's mask: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A following runtime on two CPUs with both workers held in a poll of up
/// to `POLL` (until `release`), the mask it will restore, and its CPUs.
struct Held {
    rt: Runtime,
    restore: Restore,
    keep: usize,
    drop_cpu: usize,
}

/// Waits (yielding) until `cond` holds, failing after 20 s.
fn wait(what: &str, cond: impl Fn() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < Duration::from_secs(20), "timed out: {what}");
        std::thread::yield_now();
    }
}

/// The states of the workers on `cpu`.
fn states_on(rt: &Runtime, cpu: usize) -> Vec<WorkerState> {
    rt.workers()
        .iter()
        .filter(|w| w.cpu == Some(cpu))
        .map(|w| w.state)
        .collect()
}

/// Holds both workers of `rt` in a poll of up to `POLL` (until `release`).
fn hold_both(rt: &Runtime, release: &Arc<AtomicBool>) {
    let started = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let (started, release) = (started.clone(), release.clone());
        drop(rt.spawn(async move {
            started.fetch_add(1, SeqCst);
            let t = Instant::now();
            while !release.load(SeqCst) && t.elapsed() < POLL {
                std::hint::spin_loop();
            }
        }));
    }
    wait("both workers held", || started.load(SeqCst) == 2);
}

/// Builds a following runtime and holds both its workers in a poll; `None`
/// with fewer than two CPUs.
fn held_workers(release: &Arc<AtomicBool>) -> Option<Held> {
    let cpus = affinity::allowed_cpus().unwrap();
    if cpus.len() < 2 {
        eprintln!("skipped: needs two CPUs");
        return None;
    }
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let restore = Restore(pid, affinity::cpus_of(pid).unwrap());
    let (keep, drop_cpu) = (cpus[0], cpus[1]);
    let rt = Runtime::builder()
        .workers(2)
        .cpus([keep, drop_cpu])
        .pin_workers(true)
        .follow_cpus(true)
        .follow_interval(Duration::from_millis(10))
        .build()
        .unwrap();
    hold_both(&rt, release);
    Some(Held {
        rt,
        restore,
        keep,
        drop_cpu,
    })
}

/// [`held_workers`], then drops the second CPU from the process mask and
/// waits until the follower's unplug is waiting for the held worker.
fn held_follower(release: Arc<AtomicBool>) -> Option<(Runtime, Restore)> {
    let held = held_workers(&release)?;
    affinity::pin_to(held.restore.0, &[held.keep]).unwrap();
    // The follower counts a change before applying it; then the worker on
    // the dropped CPU shows Parking (its poll holds the park).
    wait("the follower's unplug", || {
        held.rt.stats().follow_changes >= 1
            && states_on(&held.rt, held.drop_cpu).contains(&WorkerState::Parking)
    });
    Some((held.rt, held.restore))
}

#[test]
fn shutdown_timeout_keeps_its_bound_while_the_follower_waits_for_a_long_poll() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let release = Arc::new(AtomicBool::new(false));
    let Some((rt, _restore)) = held_follower(release.clone()) else {
        return;
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let t = Instant::now();
        rt.shutdown_timeout(Duration::from_millis(200));
        let _ = tx.send(t.elapsed());
    });
    // Watchdog: the spinners end on their own after POLL at the latest.
    let took = rx
        .recv_timeout(POLL + Duration::from_secs(20))
        .expect("shutdown_timeout hung");
    release.store(true, SeqCst);
    eprintln!("shutdown_timeout(200ms) took {took:?}");
    assert!(
        took < Duration::from_millis(1500),
        "shutdown_timeout(200ms) took {took:?}: it waited for the follower's unplug"
    );
}

#[test]
fn a_drop_from_a_tokio_thread_keeps_its_bound_while_the_follower_waits_for_a_long_poll() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let release = Arc::new(AtomicBool::new(false));
    let Some((rt, _restore)) = held_follower(release.clone()) else {
        return;
    };
    // Dropped from a thread of tokio's blocking pool (a tokio thread, so
    // SELF_DROP_JOIN_LIMIT bounds the joins).
    let (tx, rx) = mpsc::channel();
    let handle = rt.handle().clone();
    let rt_cell = Arc::new(std::sync::Mutex::new(Some(rt)));
    let cell = rt_cell.clone();
    let _guard = handle.enter();
    let jh = tokio::task::spawn_blocking(move || {
        let rt = cell.lock().unwrap().take().unwrap();
        let t = Instant::now();
        drop(rt);
        let _ = tx.send(t.elapsed());
    });
    drop(jh);
    let took = rx
        .recv_timeout(POLL + Duration::from_secs(20))
        .expect("drop from a tokio thread hung");
    release.store(true, SeqCst);
    eprintln!("drop from a tokio blocking-pool thread took {took:?}");
    assert!(
        took < unplug::SELF_DROP_JOIN_LIMIT * 2 + Duration::from_millis(500),
        "drop from a tokio thread took {took:?} (SELF_DROP_JOIN_LIMIT {:?})",
        unplug::SELF_DROP_JOIN_LIMIT
    );
}

/// Control: the same held workers without a follower: shutdown_timeout
/// keeps its bound (so the delay above is the follower's).
#[test]
fn without_a_follower_shutdown_timeout_keeps_its_bound() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let release = Arc::new(AtomicBool::new(false));
    let rt = Runtime::builder()
        .workers(2)
        .pin_workers(true)
        .build()
        .unwrap();
    hold_both(&rt, &release);
    let t = Instant::now();
    rt.shutdown_timeout(Duration::from_millis(200));
    let took = t.elapsed();
    release.store(true, SeqCst);
    eprintln!("control: shutdown_timeout(200ms) took {took:?}");
    assert!(took < Duration::from_millis(1500));
}

/// A task drops the runtime while the follower's unplug waits for the
/// task's own worker: shutdown joins the follower, the follower waits for
/// the worker running the drop.
#[test]
fn a_drop_from_the_task_whose_cpu_the_follower_unplugs_returns() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let cpus = affinity::allowed_cpus().unwrap();
    if cpus.len() < 2 {
        return;
    }
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let restore = Restore(pid, affinity::cpus_of(pid).unwrap());
    let rt = Runtime::builder()
        .workers(2)
        .cpus([cpus[0], cpus[1]])
        .pin_workers(true)
        .follow_cpus(true)
        .follow_interval(Duration::from_millis(10))
        .build()
        .unwrap();
    let cell = Arc::new(std::sync::Mutex::new(None::<Runtime>));
    let (cpu_tx, cpu_rx) = mpsc::channel::<usize>();
    let (done_tx, done_rx) = mpsc::channel::<Duration>();
    let c2 = cell.clone();
    *cell.lock().unwrap() = None;
    let task = rt.spawn(async move {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let h = unplug::Handle::current();
        let me = h.workers().into_iter().find(|w| w.os_tid == tid).unwrap();
        cpu_tx.send(me.cpu.unwrap()).unwrap();
        // Held in this poll until the follower's park of this worker is
        // pending.
        let t = Instant::now();
        while !h
            .workers()
            .iter()
            .any(|w| w.id == me.id && w.state == WorkerState::Parking)
        {
            assert!(t.elapsed() < Duration::from_secs(5), "no park requested");
            std::thread::yield_now();
        }
        let rt = loop {
            if let Some(rt) = c2.lock().unwrap().take() {
                break rt;
            }
            std::thread::yield_now();
        };
        let t = Instant::now();
        drop(rt);
        let _ = done_tx.send(t.elapsed());
    });
    drop(task);
    let my_cpu = cpu_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let other = if my_cpu == cpus[0] { cpus[1] } else { cpus[0] };
    *cell.lock().unwrap() = Some(rt);
    affinity::pin_to(pid, &[other]).unwrap();
    let got = done_rx.recv_timeout(Duration::from_secs(15));
    if got.is_err() {
        eprintln!("recv: {got:?}");
        for e in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            let stack = std::fs::read_to_string(e.path().join("stack")).unwrap_or_default();
            let top: Vec<&str> = stack.lines().take(3).collect();
            eprintln!(
                "  {} {} {:?}",
                e.file_name().to_string_lossy(),
                comm.trim(),
                top
            );
        }
    }
    drop(restore);
    match got {
        Ok(d) => eprintln!("drop from the task took {d:?}"),
        Err(_) => panic!(
            "drop(rt) inside a task on CPU {my_cpu} did not return in 15 s: the follower waits for this worker's park, the drop joins the follower"
        ),
    }
}

/// Giving up is only for a shutdown (or the CPU coming back): otherwise
/// the follower's park completes when the long poll ends.
#[test]
fn the_follower_unplugs_a_cpu_once_its_long_poll_ends() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let release = Arc::new(AtomicBool::new(false));
    let Some((rt, _restore)) = held_follower(release.clone()) else {
        return;
    };
    let drop_cpu = affinity::allowed_cpus().unwrap()[1];
    release.store(true, SeqCst);
    wait("the worker on the dropped CPU parked", || {
        states_on(&rt, drop_cpu)
            .iter()
            .all(|s| *s == WorkerState::Parked)
    });
}

/// A user's `unplug_cpu_timeout` that times out withdraws the park it owns
/// (OWNED-ROLLBACK), which the follower had joined when the mask dropped
/// the same CPU. The follower asks again: the mask still says the CPU
/// goes. Before, it took "superseded" as done, had already recorded the
/// reading as applied, and the worker ran on the dropped CPU for good
/// (found by a red team, 7 runs of 7).
#[test]
fn a_users_timed_out_unplug_does_not_undo_the_followers() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let release = Arc::new(AtomicBool::new(false));
    let Some(held) = held_workers(&release) else {
        return;
    };
    let (drop_cpu, h) = (held.drop_cpu, held.rt.handle().clone());
    let user =
        std::thread::spawn(move || h.unplug_cpu_timeout(drop_cpu, Duration::from_millis(600)));
    wait("the user's park", || {
        states_on(&held.rt, drop_cpu).contains(&WorkerState::Parking)
    });
    affinity::pin_to(held.restore.0, &[held.keep]).unwrap();
    wait("the follower's change", || {
        held.rt.stats().follow_changes >= 1
    });
    assert!(user.join().unwrap().is_err(), "the user's call timed out");
    release.store(true, SeqCst);
    wait("the worker on the dropped CPU parked", || {
        states_on(&held.rt, drop_cpu)
            .iter()
            .all(|s| *s == WorkerState::Parked)
    });
}
