//! Who blocks a park: a task that computes inside one poll is named — by
//! the error of a timed-out unplug, by the report of a slow park, by one
//! log line and by the long-poll metrics — with its task id and the line
//! that spawned it.
#![cfg(not(loom))]

mod support;

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use support::{http_get, logs, wait_for, Exposition};
use unplug::{ControlError, PollCulprit, Runtime};

/// The tests of this binary share the captured log and the spawn line:
/// they run one at a time, each on a cleared log.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    logs().clear();
    guard
}

/// Spawns a task that spins inside one poll until `release` is set;
/// returns the line of the spawn call and the OS tid of the worker it
/// runs on.
fn spin_in_one_poll(rt: &Runtime, release: Arc<AtomicBool>) -> (u32, i32) {
    let (tx, rx) = mpsc::channel();
    #[rustfmt::skip]
    let (line, _task) = (line!(), rt.spawn(async move { tx.send(unplug::worker::affinity::current_tid()).unwrap(); while !release.load(SeqCst) { std::hint::spin_loop(); } }));
    let tid = rx.recv_timeout(support::DEADLINE).expect("the task runs");
    (line, tid)
}

fn names_the_spinner(c: &PollCulprit, line: u32) -> bool {
    c.spawned_at
        .is_some_and(|at| at.file() == file!() && at.line() == line)
}

fn two_pinned_workers(threshold: Duration) -> Option<Runtime> {
    let cpus = unplug::worker::affinity::allowed_cpus().unwrap();
    if cpus.len() < 2 {
        eprintln!("skipped: needs two CPUs");
        return None;
    }
    Some(
        Runtime::builder()
            .workers(2)
            .cpus([cpus[0], cpus[1]])
            .pin_workers(true)
            .long_poll_threshold(threshold)
            .build()
            .unwrap(),
    )
}

#[test]
fn a_timed_out_unplug_names_the_task_spinning_in_its_poll() {
    let _serial = one_at_a_time();
    let Some(rt) = two_pinned_workers(Duration::from_millis(10)) else {
        return;
    };
    let release = Arc::new(AtomicBool::new(false));
    let (line, tid) = spin_in_one_poll(&rt, release.clone());
    let busy = rt.workers().into_iter().find(|w| w.os_tid == tid).unwrap();
    let result = rt.unplug_cpu_timeout(busy.cpu.unwrap(), Duration::from_millis(100));
    release.store(true, SeqCst);
    let Err(ControlError::Timeout { blocked_by }) = result else {
        panic!("expected a timeout, got {result:?}");
    };
    assert_eq!(blocked_by.len(), 1, "{blocked_by:?}");
    let culprit = &blocked_by[0];
    assert!(names_the_spinner(culprit, line), "{culprit}");
    assert_eq!(culprit.worker, busy.id);
    assert!(
        culprit.running_for >= Duration::from_millis(100),
        "{culprit}"
    );
    // The error's message names it too.
    let message = ControlError::Timeout { blocked_by }.to_string();
    assert!(
        message.contains(&format!("{}:{line}", file!())),
        "{message}"
    );
}

#[test]
fn a_slow_park_reports_the_poll_it_waited_on() {
    let _serial = one_at_a_time();
    let Some(rt) = two_pinned_workers(Duration::from_millis(10)) else {
        return;
    };
    let release = Arc::new(AtomicBool::new(false));
    let (line, tid) = spin_in_one_poll(&rt, release.clone());
    let busy = rt.workers().into_iter().find(|w| w.os_tid == tid).unwrap();
    let parker = std::thread::spawn({
        let h = rt.handle().clone();
        move || h.park_worker(busy.id)
    });
    wait_for("the park requested", || {
        rt.workers()[busy.id].state == unplug::worker::WorkerState::Parking
    });
    let held_from = Instant::now();
    wait_for("the poll held past the threshold", || {
        held_from.elapsed() >= Duration::from_millis(50)
    });
    release.store(true, SeqCst);
    let report = parker.join().unwrap().unwrap();
    assert_eq!(report.parked, vec![busy.id]);
    assert_eq!(report.slow_polls.len(), 1, "{report:?}");
    assert!(names_the_spinner(&report.slow_polls[0], line));
    assert!(report.slow_polls[0].running_for >= Duration::from_millis(50));
}

#[test]
fn a_long_poll_is_counted_shown_and_logged_once() {
    let _serial = one_at_a_time();
    let logs = logs();
    let server = unplug::metrics::serve_prometheus("127.0.0.1:0").unwrap();
    let Some(rt) = two_pinned_workers(Duration::from_millis(20)) else {
        return;
    };
    let release = Arc::new(AtomicBool::new(false));
    let (line, tid) = spin_in_one_poll(&rt, release.clone());
    let worker = rt
        .workers()
        .into_iter()
        .find(|w| w.os_tid == tid)
        .unwrap()
        .id
        .to_string();
    let at = format!("{}:{line}", file!());
    let logged = || {
        logs.lines()
            .iter()
            .filter(|m| m.contains("long poll") && m.contains(&at))
            .count()
    };
    wait_for("the long poll logged", || logged() > 0);
    // While it lasts, the scrape shows it running, and counted once.
    wait_for("the scrape showing the long poll", || {
        let e = Exposition::parse(&http_get(server.addr(), "/metrics").unwrap());
        e.sum("unplug_long_poll_running_seconds", &[("worker", &worker)]) >= 0.02
            && e.sum("unplug_long_polls_total", &[("worker", &worker)]) == 1.0
    });
    // Still one log line, however long it runs.
    let until = Instant::now() + Duration::from_millis(200);
    wait_for("more monitor rounds", || Instant::now() >= until);
    assert_eq!(logged(), 1);
    release.store(true, SeqCst);
    wait_for("the gauge back to zero once the poll ended", || {
        let e = Exposition::parse(&http_get(server.addr(), "/metrics").unwrap());
        e.sum("unplug_long_poll_running_seconds", &[("worker", &worker)]) == 0.0
    });
    let e = Exposition::parse(&http_get(server.addr(), "/metrics").unwrap());
    assert_eq!(
        e.sum("unplug_long_polls_total", &[("worker", &worker)]),
        1.0
    );
}

#[test]
fn a_zero_or_huge_threshold_turns_the_detection_off_without_panicking() {
    let _serial = one_at_a_time();
    let logs = logs();
    for threshold in [Duration::ZERO, Duration::MAX] {
        let Some(rt) = two_pinned_workers(threshold) else {
            return;
        };
        let release = Arc::new(AtomicBool::new(false));
        let (line, tid) = spin_in_one_poll(&rt, release.clone());
        let busy = rt.workers().into_iter().find(|w| w.os_tid == tid).unwrap();
        // A timed-out park still names the poll it waited on.
        let r = rt.unplug_cpu_timeout(busy.cpu.unwrap(), Duration::from_millis(50));
        release.store(true, SeqCst);
        let Err(ControlError::Timeout { blocked_by }) = r else {
            panic!("expected a timeout, got {r:?}");
        };
        assert!(names_the_spinner(&blocked_by[0], line));
        let at = format!("{}:{line}", file!());
        assert!(
            !logs.lines().iter().any(|m| m.contains(&at)),
            "threshold {threshold:?}: a long poll was logged"
        );
    }
}
