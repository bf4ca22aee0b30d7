//! Input the controller and the builder must refuse, or take, without a
//! panic and without a half-done change (issue 13, defect 3): an unbounded
//! unplug timeout, a thread name with a NUL byte, a resize to `usize::MAX`,
//! a resize to zero, and a second unplug of a CPU whose worker is still
//! parking (it must not report success before the park is done).
#![cfg(not(loom))]

mod control_support;
mod support;

use control_support::{
    cpus, describe, hold_workers, panic_message, state_of, task_runs_within, wait_until, watchdog,
    Findings,
};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use unplug::worker::WorkerState;
use unplug::{Handle, Runtime};

const SCENARIO_LIMIT: Duration = Duration::from_secs(60);

fn two_pinned() -> Option<(Runtime, usize, usize)> {
    let cpus = cpus();
    if cpus.len() < 2 {
        eprintln!("skipped: needs two CPUs");
        return None;
    }
    let rt = Runtime::builder()
        .workers(2)
        .cpus([cpus[0], cpus[1]])
        .pin_workers(true)
        .build()
        .unwrap();
    Some((rt, cpus[0], cpus[1]))
}

#[test]
fn an_unplug_with_an_unbounded_timeout_parks_without_panicking() {
    let Some((rt, c0, _)) = two_pinned() else {
        return;
    };
    let h = rt.handle().clone();
    let outcome = watchdog(
        "unplug_cpu_timeout(MAX)",
        SCENARIO_LIMIT,
        &h.clone(),
        move || {
            catch_unwind(AssertUnwindSafe(|| h.unplug_cpu_timeout(c0, Duration::MAX)))
                .map_err(|p| panic_message(&*p))
        },
    );
    match outcome {
        Ok(Ok(rep)) => assert_eq!(rep.parked, vec![0], "{rep:?}"),
        Ok(Err(e)) => panic!("unplug_cpu_timeout({c0}, Duration::MAX) refused: {e:?}"),
        Err(msg) => panic!("unplug_cpu_timeout({c0}, Duration::MAX) panicked: {msg}"),
    }
    assert_eq!(state_of(rt.handle(), 0), Some(WorkerState::Parked));
    assert!(rt.plug_cpu(c0).is_ok());
}

#[test]
fn a_thread_name_with_a_nul_byte_is_refused_by_build() {
    // Expected after the fix: Err(BuildError::<a new variant for a bad
    // thread name>); asserted as is_err() only.
    let outcome = support::with_watchdog_for("build with a NUL name", SCENARIO_LIMIT, || {
        catch_unwind(|| {
            Runtime::builder()
                .workers(1)
                .thread_name("a\0b")
                .build()
                .map(drop)
        })
        .map_err(|p| panic_message(&*p))
    });
    match outcome {
        Ok(Err(e)) => eprintln!("refused: {e:?}"),
        Ok(Ok(())) => panic!("build() with thread_name(\"a\\0b\") returned Ok"),
        Err(msg) => panic!("build() with thread_name(\"a\\0b\") panicked: {msg}"),
    }
}

#[test]
fn resizing_to_zero_is_refused_from_a_thread_and_from_a_task() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let h = rt.handle().clone();
    let before: Vec<_> = rt.workers().iter().map(|w| (w.id, w.os_tid)).collect();
    let (from_thread, from_task) =
        watchdog("set_workers(0)", SCENARIO_LIMIT, &h.clone(), move || {
            let t = h.set_workers(0).map(drop);
            let in_task = support::block_on_timeout(
                h.spawn(async { Handle::current().set_workers(0).map(drop) }),
                Duration::from_secs(10),
            );
            (t, in_task)
        });
    assert!(
        from_thread.is_err(),
        "set_workers(0) from a thread: {from_thread:?}"
    );
    assert!(
        matches!(from_task, Some(Ok(Err(_)))),
        "set_workers(0) from a task: {from_task:?}"
    );
    let after: Vec<_> = rt.workers().iter().map(|w| (w.id, w.os_tid)).collect();
    assert_eq!(before, after);
    assert!(task_runs_within(rt.handle(), Duration::from_secs(5)));
}

#[test]
fn a_second_unplug_of_a_cpu_still_parking_does_not_report_success_early() {
    let Some((rt, _, c1)) = two_pinned() else {
        return;
    };
    let h = rt.handle().clone();
    let findings = watchdog("second unplug", SCENARIO_LIMIT, &h.clone(), move || {
        let mut f = Findings::default();
        // Worker 1 (on c1) is held inside a long poll; worker 0 is free.
        let mut held = hold_workers(&h, 2, Duration::from_secs(20)).unwrap();
        held[0].release();
        let (a_tx, a_rx) = mpsc::channel();
        {
            let h = h.clone();
            std::thread::spawn(move || {
                let _ = a_tx.send(h.unplug_cpu(c1));
            });
        }
        assert!(
            wait_until(Duration::from_secs(5), || state_of(&h, 1)
                == Some(WorkerState::Parking)),
            "first unplug did not request the park: [{}]",
            describe(&h)
        );
        // The second unplug of the same CPU: its result and worker 1's state
        // the moment it returned.
        let (b_tx, b_rx) = mpsc::channel();
        {
            let h = h.clone();
            std::thread::spawn(move || {
                let t0 = Instant::now();
                let r = h.unplug_cpu(c1);
                let state = state_of(&h, 1);
                let _ = b_tx.send((r, state, t0.elapsed()));
            });
        }
        let early = b_rx.recv_timeout(Duration::from_secs(2)).ok();
        held[1].release();
        let a = a_rx.recv_timeout(Duration::from_secs(10));
        let b = early.or_else(|| b_rx.recv_timeout(Duration::from_secs(10)).ok());
        eprintln!("first unplug: {a:?}\nsecond unplug: {b:?}");
        f.check(matches!(&a, Ok(Ok(rep)) if rep.parked == vec![1]), || {
            format!("first unplug: expected Ok with worker 1 parked, got {a:?}")
        });
        match &b {
            None => f.check(false, || {
                "the second unplug did not return within 10 s of the poll's return".into()
            }),
            Some((Ok(rep), state, took)) => f.check(*state == Some(WorkerState::Parked), || {
                format!(
                    "the second unplug_cpu({c1}) returned Ok({rep:?}) after {took:?} while \
                     worker 1 was {state:?}, not Parked (it reported success before the park \
                     completed)"
                )
            }),
            Some((Err(e), _, _)) => eprintln!("second unplug refused: {e:?} (acceptable)"),
        }
        f.check(task_runs_within(&h, Duration::from_secs(5)), || {
            format!("no task ran afterwards: [{}]", describe(&h))
        });
        f
    });
    let _ = rt.plug_cpu(c1);
    findings.assert_none("a_second_unplug_of_a_cpu_still_parking_does_not_report_success_early");
}

/// Set in the child process that runs the `usize::MAX` resize under a
/// thread cap.
const CHILD_ENV: &str = "UNPLUG_TEST_THREAD_CAPPED_CHILD";
const MAX_RESIZE_TEST: &str = "resizing_to_usize_max_is_refused_and_starts_no_worker";

/// Threads (tasks) of every process whose real uid is `uid`.
fn threads_of_uid(uid: u32) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.split_whitespace().next().unwrap_or("").to_owned())
        };
        if field("Uid:").and_then(|u| u.parse::<u32>().ok()) == Some(uid) {
            total += field("Threads:").and_then(|t| t.parse().ok()).unwrap_or(0);
        }
    }
    total
}

/// Caps the threads this process may still create at about `extra` (so a
/// runaway resize fails fast instead of exhausting the machine). root is
/// exempt from RLIMIT_NPROC, so a root process first becomes `nobody`.
fn cap_threads(extra: u64) {
    // SAFETY: plain libc calls with valid arguments; glibc applies
    // setuid/setgid to every thread of the process.
    unsafe {
        if libc::geteuid() == 0 {
            assert_eq!(libc::setgid(65534), 0, "setgid(nobody)");
            assert_eq!(libc::setuid(65534), 0, "setuid(nobody)");
        }
        let limit = threads_of_uid(libc::getuid()) + extra;
        let rl = libc::rlimit {
            rlim_cur: limit as libc::rlim_t,
            rlim_max: limit as libc::rlim_t,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_NPROC, &rl), 0, "setrlimit");
        eprintln!("child: uid {} capped at {limit} threads", libc::getuid());
    }
}

fn resize_to_max_in_capped_child() {
    cap_threads(48);
    let rt = Runtime::builder().workers(2).build().unwrap();
    let h = rt.handle().clone();
    let before = rt.workers().len();
    let outcome = watchdog(
        "set_workers(usize::MAX)",
        SCENARIO_LIMIT,
        &h.clone(),
        move || {
            catch_unwind(AssertUnwindSafe(|| h.set_workers(usize::MAX).map(drop)))
                .map_err(|p| panic_message(&*p))
        },
    );
    let after = rt.workers().len();
    eprintln!("child: set_workers(usize::MAX) -> {outcome:?}; workers {before} -> {after}");
    let mut f = Findings::default();
    // Expected after the fix: Err(ControlError::TooManyWorkers), before any
    // worker is started.
    f.check(matches!(outcome, Ok(Err(_))), || {
        format!("set_workers(usize::MAX) did not return Err: {outcome:?}")
    });
    f.check(after == before, || {
        format!(
            "set_workers(usize::MAX) left {} extra workers started",
            after - before
        )
    });
    f.check(
        task_runs_within(rt.handle(), Duration::from_secs(5)),
        || "no task ran afterwards".into(),
    );
    f.assert_none(MAX_RESIZE_TEST);
}

#[test]
fn resizing_to_usize_max_is_refused_and_starts_no_worker() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return resize_to_max_in_capped_child();
    }
    // Run the scenario alone in a child process whose thread count is
    // capped: today's controller starts workers until spawning fails.
    let log = std::env::temp_dir().join(format!("unplug-max-resize-{}.log", std::process::id()));
    let out = std::fs::File::create(&log).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            MAX_RESIZE_TEST,
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20)); // polling a child's exit
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    eprintln!("--- child output ---\n{text}--- end child output ---");
    match status {
        None => panic!("watchdog: the capped child did not finish within 90 s"),
        Some(s) => assert!(
            s.success(),
            "the capped child failed ({s}); its output is above"
        ),
    }
}
