//! Nothing lost under load: tasks that spawn, yield, sleep on tokio timers
//! and wake each other across workers through channels, while controller
//! threads perform 10,000+ random unplug / plug / park / unpark / resize
//! operations. Afterwards every task completed exactly once, none was
//! polled by two workers at once, and the runtime's own poll counter agrees
//! with the tasks' own count. A watchdog fails the test instead of hanging.
#![cfg(not(loom))]

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use unplug::{ControlError, Handle, Runtime};

const CONTROLLERS: usize = 3;
const OPERATIONS: usize = 10_200;
const WATCHDOG: Duration = Duration::from_secs(120);

#[derive(Default)]
struct Book {
    spawned: AtomicUsize,
    completions: Mutex<Vec<u32>>, // per task id: times completed
    polls: AtomicU64,
    double_polls: AtomicUsize,
}

struct Guarded<F> {
    inner: Pin<Box<F>>,
    in_poll: AtomicBool,
    book: Arc<Book>,
    id: usize,
}

impl<F: Future<Output = ()>> Future for Guarded<F> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.in_poll.swap(true, SeqCst) {
            self.book.double_polls.fetch_add(1, SeqCst);
        }
        self.book.polls.fetch_add(1, SeqCst);
        let out = self.inner.as_mut().poll(cx);
        self.in_poll.store(false, SeqCst);
        if out.is_ready() {
            self.book.completions.lock().unwrap()[self.id] += 1;
        }
        out
    }
}

fn spawn_guarded(h: &Handle, book: &Arc<Book>, f: impl Future<Output = ()> + Send + 'static) {
    let id = book.spawned.fetch_add(1, SeqCst);
    book.completions.lock().unwrap().push(0);
    h.spawn(Guarded {
        inner: Box::pin(f),
        in_poll: AtomicBool::new(false),
        book: book.clone(),
        id,
    });
}

/// One unit of load: a pair of tasks ping-ponging through channels, one of
/// which sleeps on a tokio timer and spawns a child that yields.
fn spawn_unit(h: &Handle, book: &Arc<Book>, seed: u64) {
    let (to_b, mut b_rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
    let (to_a, mut a_rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
    let (h2, book2) = (h.clone(), book.clone());
    spawn_guarded(h, book, async move {
        to_b.send(0).unwrap();
        while let Some(n) = a_rx.recv().await {
            if n >= 6 {
                break;
            }
            if n == 2 {
                tokio::time::sleep(Duration::from_micros(200 + seed % 500)).await;
                let h3 = h2.clone();
                spawn_guarded(&h2, &book2, async move {
                    for _ in 0..3 {
                        unplug::yield_now().await;
                    }
                    drop(h3);
                });
            }
            to_b.send(n + 1).unwrap();
        }
    });
    spawn_guarded(h, book, async move {
        while let Some(n) = b_rx.recv().await {
            let _ = to_a.send(n + 1);
            if n >= 5 {
                break;
            }
            unplug::yield_now().await;
        }
    });
}

/// What the controllers actually changed.
#[derive(Default)]
struct Effects {
    parked: AtomicUsize,
    unparked: AtomicUsize,
    started: AtomicUsize,
    stopped: AtomicUsize,
}

fn controller(
    h: Handle,
    cpus: Vec<usize>,
    seed: u64,
    ops: usize,
    done: Arc<AtomicUsize>,
    fx: Arc<Effects>,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let parked = |r: unplug::ParkReport| {
        fx.parked
            .fetch_add(r.parked.len() + r.deferred.len(), SeqCst);
    };
    let plugged = |r: unplug::PlugReport| {
        fx.unparked.fetch_add(r.unparked.len(), SeqCst);
        fx.started.fetch_add(r.started.len(), SeqCst);
    };
    for _ in 0..ops {
        let cpu = cpus[rng.usize(..cpus.len())];
        let workers = h.workers();
        let id = workers[rng.usize(..workers.len())].id;
        let result = match rng.u32(..100) {
            0..=29 => h.unplug_cpu(cpu).map(parked),
            30..=59 => h.plug_cpu(cpu).map(plugged),
            60..=74 => h.park_worker(id).map(parked),
            75..=96 => h.unpark_worker(id, rng.bool().then_some(cpu)).map(plugged),
            _ => h.set_workers(1 + rng.usize(..4)).map(|r| {
                fx.started.fetch_add(r.started.len(), SeqCst);
                fx.stopped.fetch_add(r.stopped.len(), SeqCst);
            }),
        };
        match result {
            Ok(())
            | Err(ControlError::LastWorker)
            | Err(ControlError::UnknownWorker(_))
            // A worker a concurrent resize is stopping.
            | Err(ControlError::WorkerGone(_))
            | Err(ControlError::NoWorkerOnCpu(_)) => {}
            Err(e) => panic!("unexpected controller error: {e}"),
        }
        done.fetch_add(1, SeqCst);
    }
}

#[test]
fn random_hotplug_under_load_loses_nothing() {
    let cpus = unplug::worker::affinity::allowed_cpus().unwrap();
    let rt = Runtime::builder()
        .workers(4)
        .pin_workers(true)
        .build()
        .unwrap();
    let h = rt.handle().clone();
    let book = Arc::new(Book::default());
    let started = Instant::now();
    let ops_done = Arc::new(AtomicUsize::new(0));
    let stop_load = Arc::new(AtomicBool::new(false));
    let fx = Arc::new(Effects::default());

    // Load: a producer keeps spawning units until the controllers finish.
    let producer = {
        let (h, book, stop) = (h.clone(), book.clone(), stop_load.clone());
        std::thread::spawn(move || {
            let mut seed = 0;
            while !stop.load(SeqCst) {
                for _ in 0..20 {
                    spawn_unit(&h, &book, seed);
                    seed += 1;
                }
                // Keep the backlog bounded: wait (not sleep) for it to drain.
                let deadline = Instant::now() + support::DEADLINE;
                while h.stats().live_tasks > 400 && Instant::now() < deadline && !stop.load(SeqCst)
                {
                    std::thread::yield_now();
                }
            }
        })
    };
    let (tx, rx) = mpsc::channel();
    for c in 0..CONTROLLERS {
        let (h, cpus, done, tx, fx) = (
            h.clone(),
            cpus.clone(),
            ops_done.clone(),
            tx.clone(),
            fx.clone(),
        );
        std::thread::spawn(move || {
            controller(h, cpus, c as u64 + 7, OPERATIONS / CONTROLLERS, done, fx);
            let _ = tx.send(());
        });
    }
    drop(tx);
    // Watchdog on the controllers' progress.
    let mut finished = 0;
    let mut last = (0, Instant::now());
    while finished < CONTROLLERS {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(()) => finished += 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("a controller thread panicked"),
        }
        let now = ops_done.load(SeqCst);
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > WATCHDOG {
            panic!(
                "watchdog: controllers stuck after {now} operations; workers: {:?}",
                h.workers()
            );
        }
    }
    stop_load.store(true, SeqCst);
    producer.join().unwrap();
    // Bring every CPU back so the load can drain, then wait for it.
    for &cpu in &cpus {
        let _ = h.plug_cpu(cpu);
    }
    for w in h.workers() {
        let _ = h.unpark_worker(w.id, None);
    }
    let deadline = Instant::now() + WATCHDOG;
    while h.stats().live_tasks > 0 {
        assert!(
            Instant::now() < deadline,
            "watchdog: {} tasks never completed; workers: {:?}",
            h.stats().live_tasks,
            h.workers()
        );
        std::thread::yield_now();
    }
    let elapsed = started.elapsed();
    let completions = book.completions.lock().unwrap().clone();
    let spawned = book.spawned.load(SeqCst);
    let lost = completions.iter().filter(|&&c| c == 0).count();
    let twice = completions.iter().filter(|&&c| c > 1).count();
    let stats = h.stats();
    println!(
        "hotplug stress: effects: {} parks, {} unparks, {} workers started, {} stopped",
        fx.parked.load(SeqCst),
        fx.unparked.load(SeqCst),
        fx.started.load(SeqCst),
        fx.stopped.load(SeqCst)
    );
    println!(
        "hotplug stress: {} controller ops, {spawned} tasks, {} polls, {} migrated, in {elapsed:.1?}: lost={lost} twice={twice} double_polled={}",
        ops_done.load(SeqCst),
        book.polls.load(SeqCst),
        stats.tasks_migrated,
        book.double_polls.load(SeqCst)
    );
    assert_eq!(ops_done.load(SeqCst), OPERATIONS);
    assert_eq!(lost, 0, "tasks never completed");
    assert_eq!(twice, 0, "tasks completed twice");
    assert_eq!(
        book.double_polls.load(SeqCst),
        0,
        "a task polled by two workers at once"
    );
    assert_eq!(
        stats.tasks_polled,
        book.polls.load(SeqCst),
        "runtime's poll counter disagrees"
    );
    assert!(spawned > 1_000, "too little load to mean anything");
    assert!(
        fx.parked.load(SeqCst) > 1_000,
        "too few parks to mean anything"
    );
}
