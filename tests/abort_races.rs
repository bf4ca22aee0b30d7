//! `JoinHandle::abort` racing the worker: an abort never gets lost (the
//! handle always resolves, Ok or cancelled), every future is dropped
//! exactly once, no task stays unfinished; and aborts on bad input (a
//! finished task, twice, from inside the task itself, after the handle is
//! gone) do what the docs say.
//!
//! The race the stress test hunts: the worker reads the task's `aborted`
//! flag and only then marks the task running; an abort whose flag store and
//! wake-up both land in between finds the task "already scheduled", so its
//! wake-up does nothing, and the poll that follows leaves a task that does
//! not wake itself pending forever with its handle never resolving.
#![cfg(not(loom))]

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use support::{poll_once, scaled, DropCounter};
use unplug::{JoinHandle, Runtime};

/// The watchdog for the stress test.
const WATCHDOG: Duration = Duration::from_secs(120);

/// Full size: 500,000 tasks, each aborted at least once by the driver (one
/// to four times, ~2.3 on average), plus the chasers' and the tasks' own
/// aborts: over 1,000,000 aborts. `UNPLUG_STRESS_SCALE=1` runs that
/// (`UNPLUG_STRESS_SCALE=x` runs x times that); without the variable the
/// test runs `DEFAULT_TASKS` (under ~30 s in a debug build on 2 CPUs). The
/// summary line says what ran.
const FULL_TASKS: usize = 500_000;
const DEFAULT_TASKS: usize = 120_000;

/// At most this many tasks spawned ahead of the worker.
const IN_FLIGHT: usize = 256;

fn task_count() -> usize {
    match std::env::var("UNPLUG_STRESS_SCALE") {
        Ok(_) => scaled(FULL_TASKS),
        Err(_) => DEFAULT_TASKS,
    }
}

/// Everything the stress test's threads and tasks share.
struct Book {
    handles: Vec<OnceLock<JoinHandle<()>>>,
    /// Per task: times its future was dropped.
    drops: Vec<AtomicU8>,
    /// Per task: its kind (for the report).
    kinds: Vec<AtomicU8>,
    /// The highest task the worker has dealt with: polled for the first
    /// time, or dropped. The task after it is the one the worker is about
    /// to take (one worker, FIFO), the one the sweeper and chasers aim at.
    frontier: AtomicUsize,
    aborts: AtomicU64,
    aborts_foreign_chaser: AtomicU64,
    aborts_task_chaser: AtomicU64,
    aborts_in_task: AtomicU64,
    /// Wakers of tasks that wait for the foreign waker thread.
    parked_wakers: std::sync::mpsc::Sender<Waker>,
    stop: AtomicBool,
}

impl Book {
    fn new(n: usize, parked_wakers: std::sync::mpsc::Sender<Waker>) -> Self {
        Book {
            handles: (0..n).map(|_| OnceLock::new()).collect(),
            drops: (0..n).map(|_| AtomicU8::new(0)).collect(),
            kinds: (0..n).map(|_| AtomicU8::new(0)).collect(),
            frontier: AtomicUsize::new(0),
            aborts: AtomicU64::new(0),
            aborts_foreign_chaser: AtomicU64::new(0),
            aborts_task_chaser: AtomicU64::new(0),
            aborts_in_task: AtomicU64::new(0),
            parked_wakers,
            stop: AtomicBool::new(false),
        }
    }

    fn abort(&self, i: usize, by: &AtomicU64) -> bool {
        match self.handles.get(i).and_then(|h| h.get()) {
            Some(h) => {
                h.abort();
                self.aborts.fetch_add(1, SeqCst);
                by.fetch_add(1, SeqCst);
                true
            }
            None => false,
        }
    }
}

/// Counts the drop of task `i`'s future.
struct Dropped {
    book: Arc<Book>,
    i: usize,
}

impl Drop for Dropped {
    fn drop(&mut self) {
        self.book.drops[self.i].fetch_add(1, SeqCst);
        self.book.frontier.fetch_max(self.i, SeqCst);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    /// Pending after its first poll, nothing ever wakes it.
    Pending = 0,
    /// Pending, woken a few times by a foreign thread, then never again.
    ForeignWoken = 1,
    /// Yields (and spins inside each poll) a few times, then completes.
    Yielder = 2,
    /// Aborts an earlier task, then completes at once.
    Quick = 3,
    /// Spins inside its first poll, then pending forever.
    SpinThenPending = 4,
}

const KINDS: [Kind; 5] = [
    Kind::Pending,
    Kind::ForeignWoken,
    Kind::Yielder,
    Kind::Quick,
    Kind::SpinThenPending,
];

/// Busy-waits `n` spin-loop hints (~0.1-0.2 us each on the 2-CPU test
/// machine).
fn spin(n: u32) {
    for _ in 0..n {
        std::hint::spin_loop();
    }
}

/// One stress task: moves the frontier on its first poll, then does what
/// its kind says. Holds `Dropped`.
struct Victim {
    i: usize,
    kind: Kind,
    polls: u32,
    seed: u64,
    book: Arc<Book>,
    _dropped: Dropped,
}

impl Future for Victim {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        this.polls += 1;
        if this.polls == 1 {
            this.book.frontier.fetch_max(this.i, SeqCst);
        }
        let mut rng = fastrand::Rng::with_seed(this.seed ^ u64::from(this.polls));
        match this.kind {
            Kind::Pending => Poll::Pending,
            Kind::ForeignWoken => {
                if this.polls <= 3 {
                    let _ = this.book.parked_wakers.send(cx.waker().clone());
                }
                Poll::Pending
            }
            Kind::Yielder => {
                spin(rng.u32(0..4));
                if this.polls > 12 {
                    return Poll::Ready(());
                }
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Kind::Quick => {
                // An abort from inside a task, of a recent (maybe running,
                // maybe queued, maybe finished) task.
                let back = rng.usize(1..24);
                if let Some(j) = this.i.checked_sub(back) {
                    this.book.abort(j, &this.book.aborts_in_task);
                }
                Poll::Ready(())
            }
            Kind::SpinThenPending => {
                if this.polls == 1 {
                    spin(rng.u32(0..20));
                }
                Poll::Pending
            }
        }
    }
}

/// A foreign thread: aborts the task just past the frontier (the one the
/// worker takes next), a few microseconds apart, at random.
fn foreign_chaser(book: Arc<Book>, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    while !book.stop.load(SeqCst) {
        let f = book.frontier.load(SeqCst);
        spin(rng.u32(0..20));
        book.abort(f + rng.usize(1..=2), &book.aborts_foreign_chaser);
        // A rate limit (not synchronisation): leave the CPUs to the
        // worker and the sweeper most of the time.
        std::thread::park_timeout(Duration::from_micros(rng.u64(20..200)));
    }
}

/// Stalls for the signal handler below, in microseconds.
static STALL_MICROS: AtomicU64 = AtomicU64::new(0);
/// Set by the handler while it stalls the worker.
static STALLING: AtomicBool = AtomicBool::new(false);

/// Runs on the worker thread when the staller signals it: busy-waits a few
/// microseconds wherever the worker happened to be, like a preemption or an
/// interrupt would. (Only async-signal-safe work: atomics and
/// `clock_gettime`.)
extern "C" fn stall_handler(_: libc::c_int) {
    let micros = STALL_MICROS.load(SeqCst);
    STALLING.store(true, SeqCst);
    let start = Instant::now();
    while start.elapsed() < Duration::from_micros(micros) {
        std::hint::spin_loop();
    }
    STALLING.store(false, SeqCst);
}

fn install_stall_handler() {
    support::install_sigusr2(stall_handler);
}

/// Signals the worker thread `tid`: it stalls for `micros` wherever it is
/// (see `stall_handler`).
fn stall(tid: i32, micros: u64) {
    STALL_MICROS.store(micros, SeqCst);
    // SAFETY: getpid has no preconditions; tgkill targets a thread of this
    // process with a signal whose handler is installed.
    let rc = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, libc::SIGUSR2) };
    assert_eq!(rc, 0, "tgkill to worker {tid}");
}

/// Wakes what the ForeignWoken tasks left, from a foreign thread.
fn foreign_waker(book: Arc<Book>, wakers: std::sync::mpsc::Receiver<Waker>) {
    while !book.stop.load(SeqCst) {
        if let Ok(w) = wakers.recv_timeout(Duration::from_millis(10)) {
            w.wake();
        }
    }
}

#[test]
fn abort_racing_a_poll_is_never_lost() {
    let n = task_count();
    let started = Instant::now();
    let report = support::with_watchdog_for("abort stress", WATCHDOG, move || run_abort_stress(n));
    eprintln!("{report} elapsed={:?}", started.elapsed());
    assert!(
        !report.contains("FAIL"),
        "abort stress failed:\n{report}\n(see above for details)"
    );
}

fn run_abort_stress(n: usize) -> String {
    // The victims run on one worker (so "the task after the one polled
    // last" is a good guess); a second runtime hosts the chaser task, whose
    // aborts come from inside a task on another thread.
    let rt = Runtime::builder().workers(1).build().unwrap();
    let chaser_rt = Runtime::builder().workers(1).build().unwrap();
    let (waker_tx, waker_rx) = std::sync::mpsc::channel();
    let book = Arc::new(Book::new(n, waker_tx));
    let h = rt.handle().clone();

    let mut threads = Vec::new();
    {
        let book = book.clone();
        threads.push(std::thread::spawn(move || foreign_chaser(book, 1)));
    }
    {
        let book = book.clone();
        threads.push(std::thread::spawn(move || foreign_waker(book, waker_rx)));
    }
    install_stall_handler();
    let worker_tid = rt.workers()[0].os_tid;
    // The chaser task: aborts around the worker's position from inside a
    // task of another runtime, in short bursts, until told to stop.
    let chaser_task = {
        let book = book.clone();
        chaser_rt.spawn(async move {
            let mut rng = fastrand::Rng::with_seed(3);
            while !book.stop.load(SeqCst) {
                for _ in 0..rng.usize(1..8) {
                    let f = book.frontier.load(SeqCst);
                    spin(rng.u32(0..20));
                    book.abort(f + rng.usize(1..=3), &book.aborts_task_chaser);
                    unplug::yield_now().await;
                }
                tokio::time::sleep(Duration::from_micros(rng.u64(100..1000))).await;
            }
        })
    };

    // The driver (this thread) spawns, keeping the worker's queue fed, and
    // aborts every task once:
    // - shots: it signals the worker, which stalls for a few microseconds
    //   at whatever point of its loop it reached (as a preemption would),
    //   and during the stall aborts the task just past the frontier: the
    //   one the worker was about to take, or had just taken. A stall that
    //   landed between the worker's aborted-flag check and the task's start
    //   makes that abort the lost one;
    // - the sweep: every other task is aborted at a random lag behind the
    //   frontier (pending, running, queued or finished by then).
    let mut rng = fastrand::Rng::with_seed(5);
    let driver_aborts = AtomicU64::new(0);
    let mut aborted = vec![false; n];
    let mut stalls = 0u64;
    let mut spawned = 0;
    let mut swept = 0;
    while swept < n {
        let frontier = book.frontier.load(SeqCst);
        let batch_end = spawned + 4;
        while spawned < n && spawned < batch_end && spawned < frontier + IN_FLIGHT {
            let i = spawned;
            let kind = KINDS[rng.usize(..KINDS.len())];
            book.kinds[i].store(kind as u8, SeqCst);
            let victim = Victim {
                i,
                kind,
                polls: 0,
                seed: rng.u64(..),
                book: book.clone(),
                _dropped: Dropped {
                    book: book.clone(),
                    i,
                },
            };
            let handle = h.spawn(victim);
            assert!(book.handles[i].set(handle).is_ok());
            spawned += 1;
        }
        if spawned < n || swept + IN_FLIGHT / 2 < n {
            // A shot.
            stall(worker_tid, rng.u64(4..16));
            stalls += 1;
            let deadline = Instant::now() + Duration::from_millis(2);
            while !STALLING.load(SeqCst) && Instant::now() < deadline {
                std::hint::spin_loop();
            }
            let target = book.frontier.load(SeqCst) + 1;
            if target < spawned && !aborted[target] {
                assert!(book.abort(target, &driver_aborts));
                aborted[target] = true;
            }
            let deadline = Instant::now() + Duration::from_millis(2);
            while STALLING.load(SeqCst) && Instant::now() < deadline {
                std::hint::spin_loop();
            }
        }
        // The sweep.
        let lag = rng.usize(0..32);
        let upto = if spawned == n && swept + IN_FLIGHT / 2 >= n {
            n
        } else {
            book.frontier.load(SeqCst).saturating_sub(lag).min(spawned)
        };
        while swept < upto {
            if !aborted[swept] {
                // One to four aborts each (never after a shot: a second
                // abort would rescue a lost one).
                for _ in 0..rng.usize(1..=4) {
                    if rng.u8(..8) == 0 {
                        spin(rng.u32(0..20));
                    }
                    assert!(book.abort(swept, &driver_aborts));
                }
                aborted[swept] = true;
            }
            swept += 1;
        }
    }
    assert!(
        aborted.iter().all(|&a| a),
        "every task was aborted by the driver"
    );
    let sweeper_aborts = driver_aborts.load(SeqCst);

    // Every handle must resolve. Wait until all are finished, or until
    // nothing has finished for 2 s (what is left then is lost: nothing
    // will ever wake it but shutdown).
    let mut unfinished: Vec<usize> = (0..n).collect();
    let mut last_progress = Instant::now();
    loop {
        let before = unfinished.len();
        unfinished.retain(|&i| !book.handles[i].get().unwrap().is_finished());
        if unfinished.is_empty() {
            break;
        }
        if unfinished.len() != before {
            last_progress = Instant::now();
        } else if last_progress.elapsed() > Duration::from_secs(2) {
            break;
        }
        std::thread::yield_now();
    }
    book.stop.store(true, SeqCst);
    for t in threads {
        t.join().expect("helper thread");
    }
    support::block_on_timeout(chaser_task, Duration::from_secs(10))
        .expect("chaser task ends")
        .expect("chaser task ok");

    let lost = unfinished.len();
    let mut is_lost = vec![false; n];
    let mut lost_by_kind = [0usize; 5];
    for &i in &unfinished {
        is_lost[i] = true;
        lost_by_kind[book.kinds[i].load(SeqCst) as usize] += 1;
    }
    // Everything that finished was dropped exactly once (waited for: the
    // drop happens just after the task is marked closed).
    let finished_dropped_once = support::wait_until(Duration::from_secs(10), || {
        (0..n).all(|i| is_lost[i] || book.drops[i].load(SeqCst) == 1)
    });
    let live_before_drop = rt.handle().live_tasks();
    // Shutdown cancels what is left (the lost tasks), which also releases
    // their references to the book.
    drop(rt);
    drop(chaser_rt);
    let Ok(book) = Arc::try_unwrap(book) else {
        panic!("the book is still shared after shutdown");
    };
    let mut ok = 0usize;
    let mut cancelled = 0usize;
    let mut panicked = 0usize;
    let mut ok_but_never_completes = 0usize;
    for (i, cell) in book.handles.into_iter().enumerate() {
        let mut handle = cell.into_inner().unwrap();
        match poll_once(&mut handle) {
            _ if is_lost[i] => {}
            Poll::Ready(Ok(())) => {
                ok += 1;
                let kind = book.kinds[i].load(SeqCst);
                if kind == Kind::Pending as u8
                    || kind == Kind::ForeignWoken as u8
                    || kind == Kind::SpinThenPending as u8
                {
                    ok_but_never_completes += 1;
                }
            }
            Poll::Ready(Err(e)) if e.is_cancelled() => cancelled += 1,
            Poll::Ready(Err(_)) => panicked += 1,
            Poll::Pending => panic!("task {i} finished but its handle is pending"),
        }
    }
    let count = |f: &dyn Fn(u8) -> bool| book.drops.iter().filter(|d| f(d.load(SeqCst))).count();
    let dropped_once = count(&|d| d == 1);
    let never_dropped = count(&|d| d == 0);
    let dropped_twice = count(&|d| d > 1);
    let fail = lost > 0
        || panicked > 0
        || ok_but_never_completes > 0
        || !finished_dropped_once
        || dropped_once != n
        || live_before_drop != lost;
    format!(
        "aborts: {} (driver {sweeper_aborts}, foreign chaser {}, task chaser {}, in-task {}) tasks={n} \
         worker_stalls={stalls} lost={lost} (pending {}, foreign-woken {}, yielder {}, quick {}, spin-then-pending {}) \
         ok={ok} cancelled={cancelled} panicked={panicked} \
         ok_but_never_completes={ok_but_never_completes} live_before_drop={live_before_drop} \
         finished_dropped_once={finished_dropped_once} after_drop: dropped_once={dropped_once} \
         never_dropped={never_dropped} dropped_twice={dropped_twice}{}",
        book.aborts.load(SeqCst),
        book.aborts_foreign_chaser.load(SeqCst),
        book.aborts_task_chaser.load(SeqCst),
        book.aborts_in_task.load(SeqCst),
        lost_by_kind[0],
        lost_by_kind[1],
        lost_by_kind[2],
        lost_by_kind[3],
        lost_by_kind[4],
        if fail { " FAIL" } else { "" },
    )
}

// ---------------------------------------------------------------------------
// Bad input.

#[test]
fn abort_of_a_finished_task_changes_nothing() {
    support::with_watchdog("abort of a finished task", || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let c = DropCounter(drops.clone());
        let mut done = rt.spawn(async move {
            let _c = c;
            7
        });
        support::wait_for("the task finishes", || done.is_finished());
        done.abort();
        done.abort();
        assert!(done.is_finished());
        assert_eq!(rt.block_on(&mut done).unwrap(), 7, "completion wins");
        // Its registry key may be reused by a new task: the stale abort must
        // not cancel the newcomer.
        let (tx, rx) = tokio::sync::oneshot::channel::<u8>();
        let c = DropCounter(drops.clone());
        let newcomer = rt.spawn(async move {
            let _c = c;
            rx.await.unwrap()
        });
        done.abort();
        tx.send(9).unwrap();
        assert_eq!(rt.block_on(newcomer).unwrap(), 9);
        support::wait_for("both futures dropped", || drops.load(SeqCst) == 2);
        assert_eq!(rt.handle().live_tasks(), 0);
        eprintln!(
            "abort-finished: ok=7 newcomer=9 drops={}",
            drops.load(SeqCst)
        );
    });
}

#[test]
fn double_abort_cancels_once() {
    support::with_watchdog("double abort", || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let mut results = Vec::new();
        for round in 0..200 {
            let c = DropCounter(drops.clone());
            let task = Arc::new(Mutex::new(Some(rt.spawn(async move {
                let _c = c;
                std::future::pending::<()>().await
            }))));
            // Twice from this thread, and once more from another, at once.
            let other = {
                let task = task.clone();
                std::thread::spawn(move || task.lock().unwrap().as_ref().unwrap().abort())
            };
            task.lock().unwrap().as_ref().unwrap().abort();
            if round % 2 == 0 {
                task.lock().unwrap().as_ref().unwrap().abort();
            }
            other.join().unwrap();
            let handle = task.lock().unwrap().take().unwrap();
            let result = support::block_on_timeout(handle, Duration::from_secs(10))
                .unwrap_or_else(|| panic!("round {round}: a double-aborted handle never resolved"));
            results.push(result.unwrap_err().is_cancelled());
        }
        support::wait_for("every future dropped", || drops.load(SeqCst) == 200);
        assert!(results.iter().all(|&c| c), "every result is cancelled");
        std::thread::yield_now();
        assert_eq!(drops.load(SeqCst), 200, "dropped exactly once each");
        assert_eq!(rt.handle().live_tasks(), 0);
        eprintln!(
            "double-abort: rounds=200 cancelled=200 drops={}",
            drops.load(SeqCst)
        );
    });
}

/// The task aborts itself through its own handle, then awaits something
/// that never comes (or yields): it ends cancelled, future dropped once.
#[test]
fn a_task_aborting_itself_ends_cancelled() {
    support::with_watchdog("self abort", || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        for then_yield in [false, true] {
            let own: Arc<Mutex<Option<JoinHandle<()>>>> = Arc::default();
            let (never_tx, never_rx) = tokio::sync::oneshot::channel::<()>();
            let reached_after_abort = Arc::new(AtomicBool::new(false));
            let c = DropCounter(drops.clone());
            let task = {
                let own = own.clone();
                let reached = reached_after_abort.clone();
                rt.spawn(async move {
                    let _c = c;
                    // Wait for the handle to be handed over.
                    loop {
                        if let Some(h) = own.lock().unwrap().as_ref() {
                            h.abort();
                            break;
                        }
                        unplug::yield_now().await;
                    }
                    if then_yield {
                        unplug::yield_now().await;
                    } else {
                        let _ = never_rx.await;
                    }
                    reached.store(true, SeqCst);
                })
            };
            *own.lock().unwrap() = Some(task);
            support::wait_for("the self-aborted task finishes", || {
                own.lock().unwrap().as_ref().unwrap().is_finished()
            });
            let handle = own.lock().unwrap().take().unwrap();
            let result = support::block_on_timeout(handle, Duration::from_secs(10))
                .expect("a finished handle resolves");
            assert!(
                result.as_ref().unwrap_err().is_cancelled(),
                "then_yield={then_yield}: expected cancelled, got {result:?}"
            );
            assert!(
                !reached_after_abort.load(SeqCst),
                "then_yield={then_yield}: the task ran past its own abort"
            );
            drop(never_tx);
        }
        support::wait_for("both futures dropped", || drops.load(SeqCst) == 2);
        assert_eq!(rt.handle().live_tasks(), 0);
        eprintln!(
            "self-abort: cases=2 cancelled=2 drops={}",
            drops.load(SeqCst)
        );
    });
}

/// Dropping the handle detaches: the task still runs to completion, its
/// future is dropped once, and nothing is left live.
#[test]
fn dropping_the_join_handle_before_completion_detaches_the_task() {
    support::with_watchdog("detach", || {
        let rt = Runtime::builder().workers(1).build().unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let completed = Arc::new(AtomicUsize::new(0));
        const N: usize = 1000;
        let mut senders = Vec::new();
        for i in 0..N {
            let (tx, rx) = tokio::sync::oneshot::channel::<usize>();
            senders.push(tx);
            let c = DropCounter(drops.clone());
            let completed = completed.clone();
            drop(rt.spawn(async move {
                let _c = c;
                let v = rx.await.unwrap();
                assert_eq!(v, i);
                completed.fetch_add(1, SeqCst);
            }));
        }
        for (i, tx) in senders.into_iter().enumerate() {
            tx.send(i).unwrap();
        }
        support::wait_for("every detached task completes", || {
            completed.load(SeqCst) == N && drops.load(SeqCst) == N
        });
        support::wait_for("nothing live", || rt.handle().live_tasks() == 0);
        drop(rt);
        assert_eq!(drops.load(SeqCst), N, "dropped exactly once each");
        eprintln!(
            "detach: tasks={N} completed={} drops={}",
            completed.load(SeqCst),
            drops.load(SeqCst)
        );
    });
}
