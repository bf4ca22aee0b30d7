//! Defect 5: a task in the LIFO slot of a worker stuck in a long poll
//! waited for that poll while the other worker slept: filling the slot
//! woke nobody. REACHABLE + LIFO-GRACE: the fill offers the task to a
//! sleeper, which takes it once the owner stays in that poll.

use super::*;

/// Two workers. A task spawns a child (into its worker's LIFO slot) and
/// then blocks its worker until the child has run: only the other worker
/// can run the child.
fn long_poll_behind_a_lifo_task() {
    let pool = Pool::start(2);
    let child_ran = Arc::new(Flag::default());
    let parent = spawn_long_poll_behind_a_lifo_task(&pool, &child_ran);
    block_on(parent).unwrap();
    assert!(child_ran.is_set());
    pool.shutdown();
}

#[test]
fn a_lifo_task_behind_a_long_poll_is_taken_by_an_idle_worker() {
    model(long_poll_behind_a_lifo_task);
}

#[test]
fn control_lifo_fill_waking_nobody_is_caught() {
    let report = model_must_fail(
        "scheduler::tests::loom_lifo::control_lifo_fill_waking_nobody_is_caught",
        Regression::LifoFillWakesNobody,
        long_poll_behind_a_lifo_task,
    );
    assert!(
        report.contains("deadlock"),
        "expected a deadlock:\n{report}"
    );
}

/// WATCH: the first child's LIFO fill may set the other worker watching;
/// the owner then runs that child itself (nothing is queued any more, so
/// the watcher stops watching) and the child fills the slot again and
/// blocks its worker. The second fill races the watcher's exit: either the
/// filler sees the watcher, or the exiting watcher's re-check sees the
/// task.
fn second_fill_races_a_watcher_leaving() {
    let pool = Pool::start(2);
    let done = Arc::new(Flag::default());
    let flag = done.clone();
    let scheduler = pool.scheduler.clone();
    let parent = Scheduler::spawn(&pool.scheduler, async move {
        let s = scheduler.clone();
        drop(Scheduler::spawn(&scheduler, async move {
            let f = flag.clone();
            let grandchild = Scheduler::spawn(&s, async move { f.set() });
            flag.wait(); // the long poll
            drop(grandchild);
        }));
    });
    done.wait();
    drop(parent);
    pool.shutdown();
}

/// Preemption bound 1: the watcher's loop (a timed sleep returns at once
/// under loom) multiplies the interleavings; at bound 2 the model runs for
/// hours. The control below is caught at this bound.
const WATCH_BOUND: usize = 1;

#[test]
fn a_fill_racing_a_watcher_leaving_is_never_stranded() {
    model_bounded(WATCH_BOUND, second_fill_races_a_watcher_leaving);
}

#[test]
fn control_watch_exit_without_recheck_is_caught() {
    let report = model_must_fail_bounded(
        "scheduler::tests::loom_lifo::control_watch_exit_without_recheck_is_caught",
        Regression::WatchExitWithoutRecheck,
        WATCH_BOUND,
        second_fill_races_a_watcher_leaving,
    );
    assert!(
        report.contains("deadlock"),
        "expected a deadlock:\n{report}"
    );
}
