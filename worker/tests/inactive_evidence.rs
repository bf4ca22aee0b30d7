//! What `park()` takes as proof that the worker is inactive, and that an
//! unreadable procfs weakens the proof instead of hanging the park.
#![cfg(not(loom))]

mod support;

use std::sync::mpsc;
use std::time::Duration;
use support::{spawn_busy, wait_for};
use unplug_worker::{InactiveEvidence, ParkTimings, Protocol, Worker};

/// What a normal park reports here: the kernel's word on Linux, the marker
/// in the portable build.
const PLATFORM_EVIDENCE: InactiveEvidence = if cfg!(all(target_os = "linux", not(unplug_portable)))
{
    InactiveEvidence::Kernel
} else {
    InactiveEvidence::Marker
};

/// A park that hangs fails the test after this long instead of stalling it.
const WATCHDOG: Duration = Duration::from_secs(10);

/// Parks `worker` on another thread; the timings, or a panic if the park
/// does not return within [`WATCHDOG`].
fn park_with_watchdog(worker: &std::sync::Arc<Worker<u64>>) -> ParkTimings {
    let (tx, rx) = mpsc::channel();
    let w = worker.clone();
    std::thread::spawn(move || {
        let _ = tx.send(w.park());
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(result) => result.expect("park of a live worker"),
        Err(_) => panic!(
            "park() did not return within {WATCHDOG:?}: {}",
            worker.protocol().describe()
        ),
    }
}

#[test]
fn a_missing_procfs_falls_back_to_the_marker_instead_of_hanging() {
    let busy = std::sync::Arc::new(support::Busy::default());
    let b = busy.clone();
    let worker = std::sync::Arc::new(
        Worker::builder()
            .name("no-procfs")
            .procfs_task_dir("/nonexistent/unplug/task")
            .spawn(move |ctx| support::busy_body(ctx, &b))
            .unwrap(),
    );
    wait_for("first units", || {
        busy.units.load(std::sync::atomic::Ordering::SeqCst) > 0
    });
    for _ in 0..3 {
        let timings = park_with_watchdog(&worker);
        assert_eq!(timings.inactive_by, InactiveEvidence::Marker);
        assert!(worker.protocol().is_inactive());
        assert!(worker.unpark().unwrap());
    }
    worker.stop().unwrap();
}

#[test]
fn a_normal_worker_is_proven_inactive_by_the_platform_probe() {
    let (worker, _busy) = spawn_busy(None).unwrap();
    let worker = std::sync::Arc::new(worker);
    for _ in 0..3 {
        let timings = park_with_watchdog(&worker);
        assert_eq!(timings.inactive_by, PLATFORM_EVIDENCE);
        assert!(worker.unpark().unwrap());
    }
    worker.stop().unwrap();
}

#[test]
fn protocol_park_without_a_platform_probe_reports_the_marker() {
    let protocol = std::sync::Arc::new(Protocol::new());
    let p = protocol.clone();
    let thread = std::thread::spawn(move || support::idle_body(&p.context()));
    let timings = protocol.park().unwrap();
    assert_eq!(timings.inactive_by, InactiveEvidence::Marker);
    assert!(protocol.unpark().unwrap());
    let timings = protocol.park_with(None, &mut || true).unwrap();
    assert_eq!(timings.inactive_by, InactiveEvidence::Marker);
    protocol.request_stop();
    thread.join().unwrap();
}

/// Set in the child process of the fd-limit test.
#[cfg(all(target_os = "linux", not(unplug_portable)))]
const FD_LIMIT_CHILD: &str = "UNPLUG_TEST_FD_LIMIT_CHILD";

/// The fd table full (`EMFILE`): the stat file cannot be opened, so the
/// park ends on the marker (and the next one, with fds free again, on the
/// kernel's word). Run in a child process under `ulimit -n 64`, so this
/// test binary's own fds are not exhausted; the child is killed at the
/// watchdog.
#[cfg(all(target_os = "linux", not(unplug_portable)))]
#[test]
fn at_the_fd_limit_a_park_falls_back_to_the_marker() {
    const NAME: &str = "at_the_fd_limit_a_park_falls_back_to_the_marker";
    if std::env::var_os(FD_LIMIT_CHILD).is_some() {
        return fd_limit_child();
    }
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new("sh")
        .args(["-c", r#"ulimit -n 64 && exec "$0" "$@""#])
        .arg(exe)
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env(FD_LIMIT_CHILD, "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > WATCHDOG * 3 {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the child at the fd limit did not finish within {:?}",
                WATCHDOG * 3
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert!(status.success(), "child failed: {status}\n{out}");
    assert!(
        out.contains("fd-limit evidence: kernel marker kernel"),
        "{out}"
    );
}

/// The child's side: park with fds free, with none left, and free again.
#[cfg(all(target_os = "linux", not(unplug_portable)))]
fn fd_limit_child() {
    let (worker, _busy) = spawn_busy(None).unwrap();
    let worker = std::sync::Arc::new(worker);
    let mut seen = Vec::new();
    let mut park = |worker: &std::sync::Arc<Worker<u64>>| {
        let timings = park_with_watchdog(worker);
        seen.push(timings.inactive_by.as_str());
        assert!(worker.unpark().unwrap());
    };
    park(&worker);
    let mut hog = Vec::new();
    let err = loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => hog.push(f),
            Err(e) => break e,
        }
        assert!(hog.len() < 4096, "ulimit -n did not take");
    };
    assert_eq!(err.raw_os_error(), Some(24), "expected EMFILE, got {err}");
    park(&worker);
    drop(hog);
    park(&worker);
    worker.stop().unwrap();
    println!("fd-limit evidence: {}", seen.join(" "));
}
