//! MONITOR-DORMANT (`runtime/SCHEDULER.md`): the long-poll monitor sleeps
//! while the runtime has nothing to do, and the work that comes back wakes
//! it in time to do its job.
#![cfg(not(loom))]

mod support;

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use support::logs;
use unplug::Runtime;

/// One test at a time: each finds "the" monitor thread by its name.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Context switches (voluntary and not) of this process's long-poll
/// monitor thread, or `None` if it has none.
fn monitor_switches() -> Option<u64> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim_end() != "unplug-long-pol" {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).ok()?;
        let sum = status
            .lines()
            .filter(|l| l.contains("ctxt_switches"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .sum();
        return Some(sum);
    }
    None
}

/// Waits until the monitor wakes at most `most` times in a window of
/// `window`, measuring window after window; panics after `deadline` with
/// the rates seen.
fn wait_until_monitor_quiet(most: u64, window: Duration, deadline: Duration) {
    let end = Instant::now() + deadline;
    let mut seen = Vec::new();
    // The thread names itself once it runs.
    let end_naming = Instant::now() + Duration::from_secs(10);
    while monitor_switches().is_none() {
        assert!(
            Instant::now() < end_naming,
            "the runtime has a long-poll monitor"
        );
        std::thread::yield_now();
    }
    loop {
        let before = monitor_switches().expect("the runtime has a long-poll monitor");
        let start = Instant::now();
        while start.elapsed() < window {
            std::thread::park_timeout(window - start.elapsed());
        }
        let woke = monitor_switches().unwrap() - before;
        if woke <= most {
            return;
        }
        seen.push(woke);
        assert!(
            Instant::now() < end,
            "the monitor of an idle runtime kept waking: {seen:?} times per {window:?}"
        );
    }
}

#[test]
fn an_idle_runtime_leaves_its_monitor_asleep() {
    let _one = one_at_a_time();
    let rt = Runtime::builder().workers(2).build().unwrap();
    rt.block_on(async {});
    // At the default threshold the monitor used to look every 2.5 ms:
    // about 80 wake-ups in 200 ms, whatever the runtime did. Asleep, it
    // wakes once a second at most (its safety net).
    wait_until_monitor_quiet(2, Duration::from_millis(200), Duration::from_secs(10));
    // And it still sleeps after a burst of work has come and gone.
    let sum: u64 = rt.block_on(async {
        let tasks: Vec<_> = (0..1000u64)
            .map(|i| unplug::spawn(async move { i }))
            .collect();
        let mut sum = 0;
        for t in tasks {
            sum += t.await.unwrap();
        }
        sum
    });
    assert_eq!(sum, 999 * 1000 / 2);
    wait_until_monitor_quiet(2, Duration::from_millis(200), Duration::from_secs(10));
}

const THRESHOLD: Duration = Duration::from_millis(20);

/// A runtime whose monitor reports polls longer than [`THRESHOLD`].
fn watched_runtime() -> Runtime {
    Runtime::builder()
        .workers(2)
        .long_poll_threshold(THRESHOLD)
        .build()
        .unwrap()
}

/// Spawns (through `spawn`) a task that, once `wait` completes, spins in
/// one poll until released, and returns how long after the spin began the
/// monitor reported it. The monitor is made to sleep first.
fn report_latency<W>(rt: &Runtime, wait: W) -> Duration
where
    W: std::future::Future<Output = ()> + Send + 'static,
{
    let logs = logs();
    let release = Arc::new(AtomicBool::new(false));
    let (started_tx, started) = mpsc::channel();
    let r = release.clone();
    logs.clear();
    let spinner = rt.spawn(async move {
        wait.await;
        started_tx.send(Instant::now()).unwrap();
        while !r.load(SeqCst) {
            std::hint::spin_loop();
        }
    });
    let t0 = started
        .recv_timeout(Duration::from_secs(10))
        .expect("the task runs");
    let deadline = t0 + Duration::from_secs(10);
    let reported = loop {
        let found = logs.first(|l| l.contains("long poll"));
        if let Some(at) = found {
            break at;
        }
        assert!(Instant::now() < deadline, "never reported");
        std::thread::yield_now();
    };
    release.store(true, SeqCst);
    rt.block_on(spinner).unwrap();
    reported.saturating_duration_since(t0)
}

/// About one threshold and a look after the poll began, not at the
/// sleeping monitor's safety-net look (up to a second later).
fn assert_prompt(latencies: &[Duration]) {
    let worst = latencies.iter().max().unwrap();
    assert!(
        *worst < THRESHOLD + Duration::from_millis(150),
        "a {THRESHOLD:?} long poll was reported this long after it began: {latencies:?}"
    );
}

#[test]
fn a_long_poll_spawned_after_a_quiet_spell_is_reported_promptly() {
    let _one = one_at_a_time();
    let rt = watched_runtime();
    let mut latencies = Vec::new();
    for _ in 0..5 {
        wait_until_monitor_quiet(1, Duration::from_millis(200), Duration::from_secs(10));
        // The spawn from this thread wakes the monitor.
        latencies.push(report_latency(&rt, async {}));
    }
    assert_prompt(&latencies);
}

#[test]
fn a_long_poll_woken_by_a_timer_after_a_quiet_spell_is_reported_promptly() {
    let _one = one_at_a_time();
    let rt = watched_runtime();
    let mut latencies = Vec::new();
    for _ in 0..5 {
        wait_until_monitor_quiet(1, Duration::from_millis(200), Duration::from_secs(10));
        // The task sleeps on a timer first: the monitor falls asleep
        // meanwhile, and the worker that the timer wakes (inside its idle
        // wait, no push from outside) is what wakes the monitor.
        let wait = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        latencies.push(report_latency(&rt, wait));
    }
    assert_prompt(&latencies);
}

#[test]
fn a_shutdown_while_the_monitor_sleeps_is_prompt() {
    let _one = one_at_a_time();
    let rt = Runtime::builder().workers(2).build().unwrap();
    rt.block_on(async {});
    wait_until_monitor_quiet(1, Duration::from_millis(200), Duration::from_secs(10));
    let start = Instant::now();
    drop(rt);
    // The monitor is joined at shutdown: a sleeping one is woken for it,
    // not waited for until its safety-net look.
    let took = start.elapsed();
    assert!(took < Duration::from_millis(500), "shutdown took {took:?}");
    assert_eq!(monitor_switches(), None, "the monitor thread ended");
}

#[test]
fn work_pushed_beside_a_long_tokio_task_after_a_quiet_spell_is_rescued() {
    let _one = one_at_a_time();
    let rt = Runtime::builder().workers(2).build().unwrap();
    let mut waits = Vec::new();
    for _ in 0..10 {
        wait_until_monitor_quiet(1, Duration::from_millis(200), Duration::from_secs(10));
        // A tokio task spinning 300 ms on the worker that waits inside the
        // reactor: that worker stays registered as sleeping, and a push may
        // hand it the wake-up. RESCUE (the monitor) then wakes the other
        // worker, so the monitor must wake for the push.
        let (spinning_tx, spinning) = mpsc::channel();
        rt.block_on(async move {
            drop(tokio::spawn(async move {
                spinning_tx.send(()).unwrap();
                let start = Instant::now();
                while start.elapsed() < Duration::from_millis(300) {
                    std::hint::spin_loop();
                }
            }));
        });
        spinning
            .recv_timeout(Duration::from_secs(10))
            .expect("the tokio task runs");
        let pushed = Instant::now();
        let waited = rt
            .block_on(rt.spawn(async move { pushed.elapsed() }))
            .unwrap();
        waits.push(waited);
    }
    let worst = waits.iter().max().unwrap();
    assert!(
        *worst < Duration::from_millis(100),
        "a task pushed beside a 300 ms tokio task waited {worst:?}: {waits:?}"
    );
}
