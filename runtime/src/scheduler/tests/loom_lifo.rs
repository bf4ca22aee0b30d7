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
    let flag = child_ran.clone();
    let scheduler = pool.scheduler.clone();
    let parent = Scheduler::spawn(&pool.scheduler, async move {
        let f = flag.clone();
        let child = Scheduler::spawn(&scheduler, async move { f.set() });
        flag.wait(); // the long poll: blocks this worker
        drop(child);
    });
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
