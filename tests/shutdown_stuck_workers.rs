//! STUCK-DRAIN: tasks queued on a worker that is still inside one poll
//! when `shutdown_timeout` (or a drop inside tokio, whose joins are bounded)
//! gives up on it are cancelled by the shutdown itself: their `JoinHandle`s
//! resolve cancelled at once, and each future is dropped exactly once.
//! Found by a red team (2026-12-04): the child a stuck task had spawned
//! stayed unresolved until the stuck poll returned (5 of 5 trials after
//! `shutdown_timeout`, 3 of 3 after a drop inside tokio); tokio's own
//! runtime does the same when every worker is stuck, so this is where
//! unplug does better.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use unplug::Runtime;

struct Counted(Arc<AtomicUsize>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn watchdog<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(v)) => v,
        Ok(Err(p)) => std::panic::resume_unwind(p),
        Err(_) => panic!("watchdog"),
    }
}

/// Returns how long the child's JoinHandle took to resolve after
/// `shutdown_timeout` returned (None: not within 2 s), and whether the
/// child's future had been dropped by then.
fn once(workers: usize, via_drop_in_tokio: bool) -> (Option<Duration>, bool) {
    let rt = Runtime::builder().workers(workers).build().unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let (child_tx, child_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (stuck_tx, stuck_rx) = mpsc::channel::<()>();
    let release_rx = Arc::new(std::sync::Mutex::new(release_rx));
    for _ in 0..workers {
        let (d, ctx, rrx, stx) = (
            drops.clone(),
            child_tx.clone(),
            release_rx.clone(),
            stuck_tx.clone(),
        );
        drop(rt.spawn(async move {
            let c = Counted(d);
            let child = unplug::spawn(async move {
                let _c = c;
                std::future::pending::<()>().await
            });
            ctx.send(child).unwrap();
            stx.send(()).unwrap();
            // Stuck in one poll until the test releases it.
            let _ = rrx.lock().unwrap().recv();
        }));
    }
    let children: Vec<_> = (0..workers).map(|_| child_rx.recv().unwrap()).collect();
    for _ in 0..workers {
        stuck_rx.recv().unwrap();
    }
    if via_drop_in_tokio {
        let tok = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        tok.block_on(async move { drop(rt) }); // bounded to SELF_DROP_JOIN_LIMIT
    } else {
        rt.shutdown_timeout(Duration::from_millis(100));
    }
    let t0 = Instant::now();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for c in children {
            let r = futures_lite::future::block_on(c);
            assert!(r.unwrap_err().is_cancelled());
        }
        let _ = done_tx.send(());
    });
    let resolved = done_rx
        .recv_timeout(Duration::from_secs(2))
        .ok()
        .map(|_| t0.elapsed());
    let dropped = drops.load(SeqCst) == workers;
    for _ in 0..workers {
        let _ = release_tx.send(());
    }
    done_rx.recv_timeout(Duration::from_secs(10)).ok();
    let end = Instant::now() + Duration::from_secs(10);
    while drops.load(SeqCst) < workers {
        assert!(
            Instant::now() < end,
            "child never dropped even after release"
        );
        std::thread::yield_now();
    }
    assert_eq!(drops.load(SeqCst), workers, "dropped more than once?");
    (resolved, dropped)
}

#[test]
fn a_child_queued_behind_a_stuck_poll_resolves_when_shutdown_timeout_returns() {
    watchdog(|| {
        let mut bad = 0;
        let m = 5;
        for i in 0..m {
            let (r, d) = once(1 + i % 2, false);
            eprintln!("trial {i}: resolved {r:?}, dropped by then {d}");
            if r.is_none() || !d {
                bad += 1;
            }
        }
        assert_eq!(
            bad, 0,
            "{bad} of {m} trials: JoinHandle unresolved 2 s after shutdown_timeout returned"
        );
    });
}

#[test]
fn a_child_queued_behind_a_stuck_poll_resolves_after_a_drop_inside_tokio() {
    watchdog(|| {
        let mut bad = 0;
        let m = 3;
        for i in 0..m {
            let (r, d) = once(1, true);
            eprintln!("trial {i}: resolved {r:?}, dropped by then {d}");
            if r.is_none() || !d {
                bad += 1;
            }
        }
        assert_eq!(bad, 0, "{bad} of {m} trials unresolved");
    });
}

/// 2 workers, only one stuck (this passed before too: the other worker
/// often takes the child first). Shutdown begins right as the child is
/// spawned.
fn once_one_stuck(spin_before_block: bool) -> bool {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let (child_tx, child_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let d = drops.clone();
    drop(rt.spawn(async move {
        let c = Counted(d);
        let child = unplug::spawn(async move {
            let _c = c;
            std::future::pending::<()>().await
        });
        child_tx.send(child).unwrap();
        if spin_before_block {
            let t = Instant::now();
            while t.elapsed() < Duration::from_micros(2) {}
        }
        let _ = release_rx.recv();
    }));
    let child = child_rx.recv().unwrap();
    rt.shutdown_timeout(Duration::from_millis(100));
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = futures_lite::future::block_on(child);
        let _ = done_tx.send(r.unwrap_err().is_cancelled());
    });
    let ok = done_rx.recv_timeout(Duration::from_secs(1)).is_ok();
    let _ = release_tx.send(());
    let end = Instant::now() + Duration::from_secs(10);
    while drops.load(SeqCst) < 1 {
        assert!(Instant::now() < end, "child never dropped");
        std::thread::yield_now();
    }
    ok
}

#[test]
fn with_one_of_two_workers_stuck_a_child_it_queued_resolves_after_shutdown_timeout() {
    watchdog(|| {
        let m = 20;
        let bad = (0..m).filter(|i| !once_one_stuck(i % 2 == 0)).count();
        assert_eq!(bad, 0, "{bad} of {m} trials: child's JoinHandle unresolved 1 s after shutdown_timeout returned");
    });
}
