//! Loom models of a pool's sleep/wake path (`IdleSet` + the idle wait): a
//! task published while the last awake worker goes idle is never stranded;
//! and a control model with the check in the wrong order that loom must
//! catch.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test -p unplug-worker --release --test loom_idle_set`
#![cfg(loom)]

mod loom_support;

use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::thread;
use loom_support::{model, model_must_fail};
use std::sync::Arc;
use unplug_worker::{IdleSet, Protocol, Wake};

/// A pool of workers sharing one queue of `tasks` (a counter stands in for
/// the injector).
struct Pool {
    workers: Vec<Arc<Protocol>>,
    idle: IdleSet,
    tasks: AtomicUsize,
    taken: Counter,
}

/// Counts taken tasks; `wait_for(n)` blocks until n were taken.
#[derive(Default)]
struct Counter {
    n: AtomicUsize,
    event: event_listener::Event,
}

impl Counter {
    fn add(&self) {
        self.n.fetch_add(1, SeqCst);
        self.event.notify(usize::MAX);
    }

    fn wait_for(&self, n: usize) {
        use event_listener::Listener;
        while self.n.load(SeqCst) < n {
            let l = self.event.listen();
            if self.n.load(SeqCst) >= n {
                return;
            }
            l.wait();
        }
    }
}

impl Pool {
    fn new(workers: usize) -> Arc<Self> {
        Arc::new(Pool {
            workers: (0..workers).map(|_| Arc::new(Protocol::new())).collect(),
            idle: IdleSet::new(),
            tasks: AtomicUsize::new(0),
            taken: Counter::default(),
        })
    }

    fn try_take(&self) -> bool {
        self.tasks
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// The producer: publish, then wake one sleeper if there is one.
    fn publish(&self) {
        self.tasks.fetch_add(1, SeqCst);
        self.wake_one();
    }

    fn wake_one(&self) {
        if let Some(i) = self.idle.pop() {
            self.workers[i].notify_work();
        }
    }

    /// The worker loop, the runtime scheduler's shape (`worker_loop.rs`):
    /// take work, else `IdleSet::sleep` — the same function the runtime
    /// calls.
    fn run_worker(&self, index: usize, register_before_recheck: bool) {
        let ctx = self.workers[index].context();
        let mut searching = false;
        loop {
            if self.try_take() {
                if self.idle.found_work(&mut searching) && self.tasks.load(SeqCst) > 0 {
                    self.wake_one(); // chain: more work, let another help
                }
                self.taken.add();
                continue;
            }
            let wake = if register_before_recheck {
                self.idle.sleep(
                    &ctx,
                    index,
                    &mut searching,
                    || self.tasks.load(SeqCst) > 0,
                    || self.wake_one(),
                )
            } else {
                // BUG: looked for work above, registers afterwards, and the
                // idle wait waits only for a wake-up token.
                self.idle.register(index);
                let wake = ctx.idle_wait(|| !self.idle.is_registered(index));
                if !self.idle.unregister(index) && wake == Wake::Work {
                    searching = true;
                }
                wake
            };
            match wake {
                Wake::Work => {}
                Wake::Stop => break,
                Wake::Park => {
                    ctx.parkme();
                }
            }
        }
        self.workers[index].mark_exited();
    }
}

fn run(workers: usize, tasks: usize, register_before_recheck: bool) {
    let pool = Pool::new(workers);
    let threads: Vec<_> = (0..workers)
        .map(|i| {
            let pool = pool.clone();
            thread::spawn(move || pool.run_worker(i, register_before_recheck))
        })
        .collect();
    for _ in 0..tasks {
        pool.publish();
    }
    // Stranded task: nobody takes it and this wait never ends (deadlock).
    pool.taken.wait_for(tasks);
    for w in &pool.workers {
        w.request_stop();
    }
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn task_published_while_the_only_worker_goes_idle_is_never_stranded() {
    model(|| run(1, 1, true));
}

/// The second publish finds the first wake-up's worker searching and wakes
/// nobody: the searcher must still get both tasks done.
#[test]
fn a_publish_skipped_because_a_worker_searches_is_never_stranded() {
    model(|| run(1, 2, true));
}

#[test]
fn task_published_while_the_last_two_workers_go_idle_is_never_stranded() {
    model(|| run(2, 1, true));
}

/// Control: with the re-check missing, loom finds the stranded task.
#[test]
fn unfixed_check_then_register_strands_a_task_and_loom_catches_it() {
    let report = model_must_fail(
        "unfixed_check_then_register_strands_a_task_and_loom_catches_it",
        || run(1, 1, false),
    );
    assert!(
        report.contains("deadlock"),
        "expected a deadlock report: {report}"
    );
}

/// RESCUE / REACTOR-LOCAL's wake-another rule (runtime/IO.md): worker 0 is
/// registered as sleeping, and may have been handed a wake-up (it is then
/// the searcher), but it is held inside its idle wait (an event loop runs
/// one of its own tasks there) and publishes work it cannot run. The
/// sleeper woken must be another worker, search or not:
/// `pop_other_after_fence(0)`. The control wakes with the ordinary
/// `pop_after_fence`, which may return worker 0 itself or nobody (a search
/// is under way), and loom must catch the stranded task.
fn held_worker_publishes(wake_another: bool) {
    let pool = Pool::new(2);
    let p1 = pool.clone();
    let worker1 = thread::spawn(move || p1.run_worker(1, true));
    // Worker 0 goes idle (registers) and is handed a wake-up by some
    // producer, or worker 1 is, whichever the idle set picks.
    pool.idle.register(0);
    if let Some(i) = pool.idle.pop() {
        if i == 1 {
            pool.workers[1].notify_work();
        }
    }
    // Held inside its wait, worker 0 publishes.
    pool.tasks.fetch_add(1, SeqCst);
    loom::sync::atomic::fence(SeqCst);
    let woken = if wake_another {
        pool.idle.pop_other_after_fence(0)
    } else {
        pool.idle.pop_after_fence()
    };
    if let Some(i) = woken {
        pool.workers[i].notify_work();
    }
    // Worker 0 runs nothing until its event loop's task returns: only
    // worker 1 can take the task.
    pool.taken.wait_for(1);
    pool.idle.unregister(0);
    pool.workers[1].request_stop();
    worker1.join().unwrap();
}

#[test]
fn work_published_by_a_held_sleeper_wakes_another_worker() {
    model(|| held_worker_publishes(true));
}

#[test]
fn control_waking_the_ordinary_way_strands_the_task_and_loom_catches_it() {
    let report = model_must_fail(
        "control_waking_the_ordinary_way_strands_the_task_and_loom_catches_it",
        || held_worker_publishes(false),
    );
    assert!(
        report.contains("deadlock"),
        "expected a deadlock report: {report}"
    );
}
