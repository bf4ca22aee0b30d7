//! Park / unpark and unplug / plug racing spawns, on a 2-worker pinned
//! runtime: controller threads change the pool at random while foreign
//! threads spawn and tasks spawn children. Once the spawners stop, every
//! task completes within 2 s (even if the controllers left a worker
//! parked), each exactly once, and no task is polled by two workers at once.
#![cfg(not(loom))]

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use support::{block_on_timeout, scaled, with_watchdog_for};

use unplug::{ControlError, Handle, JoinHandle, Runtime};

const WATCHDOG: Duration = Duration::from_secs(120);

struct Book {
    completions: Vec<AtomicU8>,
    next: AtomicUsize,
    completed: AtomicUsize,
    double_polls: AtomicUsize,
    handles: Mutex<Vec<JoinHandle<()>>>,
}

/// Counts completions per task and catches concurrent polls.
struct Tracked<F> {
    inner: Pin<Box<F>>,
    id: usize,
    in_poll: AtomicBool,
    book: Arc<Book>,
}

impl<F: Future<Output = ()>> Future for Tracked<F> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.in_poll.swap(true, SeqCst) {
            self.book.double_polls.fetch_add(1, SeqCst);
        }
        let out = self.inner.as_mut().poll(cx);
        self.in_poll.store(false, SeqCst);
        if out.is_ready() {
            self.book.completions[self.id].fetch_add(1, SeqCst);
            self.book.completed.fetch_add(1, SeqCst);
        }
        out
    }
}

/// Spawns a tracked task (None once the book is full).
fn spawn_tracked(
    h: &Handle,
    book: &Arc<Book>,
    f: impl Future<Output = ()> + Send + 'static,
) -> Option<usize> {
    let id = book.next.fetch_add(1, SeqCst);
    if id >= book.completions.len() {
        return None;
    }
    let handle = h.spawn(Tracked {
        inner: Box::pin(f),
        id,
        in_poll: AtomicBool::new(false),
        book: book.clone(),
    });
    // Every 16th handle is kept and checked; the rest are detached (the
    // completion counts cover every task).
    if id % 16 == 0 {
        book.handles.lock().unwrap().push(handle);
    }
    Some(id)
}

/// A parent: yields, spawns children from inside, waits for one of them.
async fn parent(h: Handle, book: Arc<Book>, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    for _ in 0..rng.usize(1..4) {
        unplug::yield_now().await;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let spawned = spawn_tracked(&h, &book, async move {
            unplug::yield_now().await;
            let _ = tx.send(());
        });
        if spawned.is_some() {
            let _ = rx.await;
        }
    }
}

#[test]
fn park_and_unplug_racing_spawns_strand_no_task() {
    // The spawners run for `run_for` (default 8 s; UNPLUG_STRESS_SCALE=x
    // runs x times 30 s) or until `capacity` tasks.
    let (run_for, capacity) = match std::env::var("UNPLUG_STRESS_SCALE") {
        Ok(_) => (
            Duration::from_secs_f64(30.0 * support::stress_scale()),
            scaled(15_000_000),
        ),
        Err(_) => (Duration::from_secs(8), 4_000_000),
    };
    let started = Instant::now();
    let line = with_watchdog_for("park races", WATCHDOG, move || {
        let cpus = unplug::worker::affinity::allowed_cpus().unwrap();
        let rt = Runtime::builder()
            .workers(2)
            .pin_workers(true)
            .build()
            .unwrap();
        let h = rt.handle().clone();
        let book = Arc::new(Book {
            completions: (0..capacity).map(|_| AtomicU8::new(0)).collect(),
            next: AtomicUsize::new(0),
            completed: AtomicUsize::new(0),
            double_polls: AtomicUsize::new(0),
            handles: Mutex::new(Vec::new()),
        });
        let stop_control = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicUsize::new(0));
        let controllers: Vec<_> = (0..2)
            .map(|c| {
                let (h, cpus, stop, ops) =
                    (h.clone(), cpus.clone(), stop_control.clone(), ops.clone());
                std::thread::spawn(move || {
                    let mut rng = fastrand::Rng::with_seed(c + 100);
                    while !stop.load(SeqCst) {
                        let cpu = cpus[rng.usize(..cpus.len())];
                        let id = rng.usize(..2);
                        let r = match rng.u8(..4) {
                            0 => h.park_worker(id).map(drop),
                            1 => h.unpark_worker(id, None).map(drop),
                            2 => h.unplug_cpu(cpu).map(drop),
                            _ => h.plug_cpu(cpu).map(drop),
                        };
                        match r {
                            Ok(())
                            | Err(ControlError::LastWorker)
                            | Err(ControlError::NoWorkerOnCpu(_)) => {}
                            Err(e) => panic!("unexpected controller error: {e}"),
                        }
                        ops.fetch_add(1, SeqCst);
                        if rng.u8(..4) == 0 {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        let spawners: Vec<_> = (0..2)
            .map(|s| {
                let (h, book) = (h.clone(), book.clone());
                std::thread::spawn(move || {
                    let mut seed = s * 1_000_000;
                    let until = Instant::now() + run_for;
                    while Instant::now() < until {
                        seed += 1;
                        let f = parent(h.clone(), book.clone(), seed);
                        if spawn_tracked(&h, &book, f).is_none() {
                            break;
                        }
                        // Keep the backlog bounded (bounded wait).
                        let deadline = Instant::now() + Duration::from_secs(5);
                        while h.live_tasks() > 2_000 && Instant::now() < deadline {
                            std::thread::yield_now();
                        }
                    }
                })
            })
            .collect();
        for s in spawners {
            s.join().expect("spawner");
        }
        let spawned_at_stop = book.next.load(SeqCst).min(capacity);
        // The spawners stopped (tasks may still spawn children, up to the
        // capacity). Stop the controllers too, leaving the pool as it is.
        stop_control.store(true, SeqCst);
        for c in controllers {
            c.join().expect("controller");
        }
        let t0 = Instant::now();
        let all_done = support::wait_until(Duration::from_secs(2), || {
            book.completed.load(SeqCst) == book.next.load(SeqCst).min(capacity)
        });
        let settle = t0.elapsed();
        let total = book.next.load(SeqCst).min(capacity);
        let completed = book.completed.load(SeqCst);
        let workers = rt.workers();
        let states: Vec<String> = workers
            .iter()
            .map(|w| format!("{}:{:?}", w.id, w.state))
            .collect();
        let live = rt.handle().live_tasks();
        // Handles: each resolves Ok (a plain check; the runtime is alive).
        let handles = std::mem::take(&mut *book.handles.lock().unwrap());
        let mut unresolved = 0;
        let mut not_ok = 0;
        for handle in handles {
            match block_on_timeout(
                handle,
                Duration::from_millis(if all_done { 500 } else { 0 }),
            ) {
                Some(Ok(())) => {}
                Some(Err(_)) => not_ok += 1,
                None => unresolved += 1,
            }
        }
        let twice = book
            .completions
            .iter()
            .take(total)
            .filter(|c| c.load(SeqCst) > 1)
            .count();
        let never = book
            .completions
            .iter()
            .take(total)
            .filter(|c| c.load(SeqCst) == 0)
            .count();
        let line = format!(
            "park races: tasks={total} (spawned by threads and tasks, {spawned_at_stop} when \
             the spawners stopped) controller_ops={} completed={completed} \
             unfinished={} completed_twice={twice} double_polls={} live_tasks={live} \
             handles_unresolved={unresolved} handles_not_ok={not_ok} settle={settle:?} \
             workers=[{}]",
            ops.load(SeqCst),
            never,
            book.double_polls.load(SeqCst),
            states.join(" "),
        );
        drop(rt);
        line
    });
    eprintln!("{line} elapsed={:?}", started.elapsed());
    for key in [
        "unfinished=0 ",
        "completed_twice=0 ",
        "double_polls=0 ",
        "live_tasks=0 ",
        "handles_unresolved=0 ",
        "handles_not_ok=0 ",
    ] {
        assert!(line.contains(key), "expected {key}: {line}");
    }
}
