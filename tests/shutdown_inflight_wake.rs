//! A wake-up in flight through the whole shutdown: a foreign thread holds
//! a lock L while it wakes a task whose future's `Drop` takes L. The
//! foreign thread is stalled at random moments (a signal handler that
//! spins), and the runtime is dropped during the stall, so its wake-up can
//! still be inside `wake()` when shutdown has finished. The future must
//! never be dropped on that thread inside `wake()` (that would deadlock on
//! L); it must still be dropped exactly once, and the handle must resolve.
#![cfg(not(loom))]

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use support::{block_on_timeout, scaled, wait_until, with_watchdog_for};
use unplug::Runtime;

/// How long the signal handler holds the foreign thread, in microseconds.
const STALL_US: u64 = 3_000;

extern "C" fn stall(_: libc::c_int) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_micros(STALL_US) {
        std::hint::spin_loop();
    }
}

fn install_stall_handler() {
    support::install_sigusr2(stall);
}

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

struct Shared {
    lock: Mutex<()>,
    waker: Mutex<Option<Waker>>,
    waker_tid: AtomicI32,
    drops: AtomicUsize,
    /// Drops on the foreign thread while it held `lock` (a blocking lock
    /// there would have deadlocked).
    drops_under_lock: AtomicUsize,
}

/// Pending forever; stores its waker; takes `lock` when dropped (as a
/// waiter list that deregisters on drop would).
struct Waiter(Arc<Shared>);

impl Future for Waiter {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        *self.0.waker.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let s = &self.0;
        match s.lock.try_lock() {
            Ok(_deregister) => {}
            Err(_) if gettid() == s.waker_tid.load(SeqCst) => {
                s.drops_under_lock.fetch_add(1, SeqCst);
            }
            Err(_) => drop(s.lock.lock().unwrap()),
        }
        s.drops.fetch_add(1, SeqCst);
    }
}

#[test]
fn a_wake_in_flight_through_shutdown_never_drops_inside_wake() {
    install_stall_handler();
    let rounds = scaled(200);
    let line = with_watchdog_for("in-flight wakes", Duration::from_secs(120), move || {
        let (mut dropped, mut under_lock, mut wakes) = (0, 0, 0u64);
        for round in 0..rounds {
            let rt = Runtime::builder().workers(2).build().unwrap();
            let shared = Arc::new(Shared {
                lock: Mutex::new(()),
                waker: Mutex::new(None),
                waker_tid: AtomicI32::new(0),
                drops: AtomicUsize::new(0),
                drops_under_lock: AtomicUsize::new(0),
            });
            let handle = rt.spawn(Waiter(shared.clone()));
            let go = Arc::new(AtomicBool::new(true));
            let waker_thread = {
                let (s, go) = (shared.clone(), go.clone());
                std::thread::spawn(move || {
                    s.waker_tid.store(gettid(), SeqCst);
                    let mut n = 0u64;
                    while go.load(SeqCst) {
                        let _held = s.lock.lock().unwrap();
                        let w = s.waker.lock().unwrap().clone();
                        if let Some(w) = w {
                            w.wake_by_ref();
                            n += 1;
                        }
                    }
                    n
                })
            };
            assert!(wait_until(Duration::from_secs(10), || shared
                .waker_tid
                .load(SeqCst)
                != 0));
            // Pacing, not synchronisation: let the wake-ups run a moment,
            // then stall the waker wherever it is and shut down meanwhile.
            let pace = Instant::now();
            while pace.elapsed() < Duration::from_micros(100 + (round as u64 % 7) * 50) {
                std::hint::spin_loop();
            }
            // SAFETY: signals our own live thread, whose handler is set.
            unsafe {
                libc::syscall(
                    libc::SYS_tgkill,
                    libc::getpid(),
                    shared.waker_tid.load(SeqCst),
                    libc::SIGUSR2,
                );
            }
            drop(rt);
            go.store(false, SeqCst);
            wakes += waker_thread.join().expect("waker thread");
            let resolved = block_on_timeout(handle, Duration::from_secs(10));
            assert!(
                resolved.is_some(),
                "round {round}: the handle never resolved"
            );
            // A late wake's task is dropped by a short-lived thread.
            assert!(
                wait_until(Duration::from_secs(10), || shared.drops.load(SeqCst) == 1),
                "round {round}: the future was not dropped exactly once: {}",
                shared.drops.load(SeqCst)
            );
            dropped += shared.drops.load(SeqCst);
            under_lock += shared.drops_under_lock.load(SeqCst);
        }
        format!(
            "in-flight wakes: rounds={rounds} wakes={wakes} dropped={dropped} \
             dropped_inside_wake_under_lock={under_lock}"
        )
    });
    eprintln!("{line}");
    assert!(line.ends_with("dropped_inside_wake_under_lock=0"), "{line}");
}
