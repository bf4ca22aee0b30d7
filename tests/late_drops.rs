//! LATE-ON-WORKER (`runtime/SCHEDULER.md`): a task whose poll outlived the
//! whole shutdown (its worker held past `shutdown_timeout`'s deadline, or
//! the task that dropped its own runtime) has its future dropped on its
//! worker, inside the runtime's context, as `Runtime::shutdown_timeout`
//! promises. A red team found both dropped on an `unplug-late-drop` thread
//! where no runtime was current (a `Drop` that spawns or asks for
//! `Handle::current` panicked there), 2026-12-04.
#![cfg(not(loom))]

mod support;

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{wait_for, with_watchdog};
use unplug::{Handle, Runtime};

/// Where a future was dropped: the thread's name, and whether unplug's
/// runtime was current there.
type Site = (String, bool);

/// Records where it is dropped.
struct DropSite(Arc<Mutex<Option<Site>>>);

impl Drop for DropSite {
    fn drop(&mut self) {
        let name = std::thread::current().name().unwrap_or("?").to_owned();
        *self.0.lock().unwrap() = Some((name, Handle::try_current().is_some()));
    }
}

fn spin(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

fn dropped_at(site: &Arc<Mutex<Option<Site>>>) -> Site {
    wait_for("the future dropped", || site.lock().unwrap().is_some());
    site.lock().unwrap().clone().unwrap()
}

#[test]
fn a_future_whose_poll_outlives_shutdown_timeout_is_dropped_on_its_worker_in_context() {
    let (name, current) = with_watchdog("stuck past the deadline", || {
        let rt = Runtime::builder()
            .workers(2)
            .thread_name("late-w")
            .build()
            .unwrap();
        let site = Arc::new(Mutex::new(None));
        let started = Arc::new(AtomicBool::new(false));
        let (d, s) = (DropSite(site.clone()), started.clone());
        drop(rt.spawn(async move {
            let _d = d;
            // Waits once (registered), then holds its worker past the
            // shutdown's deadline, then waits again.
            tokio::time::sleep(Duration::from_millis(1)).await;
            s.store(true, SeqCst);
            spin(Duration::from_millis(600));
            std::future::pending::<()>().await
        }));
        wait_for("the long poll", || started.load(SeqCst));
        rt.shutdown_timeout(Duration::from_millis(50));
        dropped_at(&site)
    });
    assert!(
        name.starts_with("late-w"),
        "dropped on thread {name:?}, not its worker"
    );
    assert!(current, "no runtime current where the future was dropped");
}

#[test]
fn the_task_that_drops_its_own_runtime_is_dropped_on_its_worker_in_context() {
    let (name, current) = with_watchdog("self-drop", || {
        let rt = Runtime::builder()
            .workers(2)
            .thread_name("self-w")
            .build()
            .unwrap();
        let handle = rt.handle().clone();
        let slot = Arc::new(Mutex::new(Some(rt)));
        let site = Arc::new(Mutex::new(None));
        let (d, s) = (DropSite(site.clone()), slot.clone());
        drop(handle.spawn(async move {
            let _d = d;
            drop(s.lock().unwrap().take());
            std::future::pending::<()>().await
        }));
        dropped_at(&site)
    });
    assert!(
        name.starts_with("self-w"),
        "dropped on thread {name:?}, not its worker"
    );
    assert!(current, "no runtime current where the future was dropped");
}
