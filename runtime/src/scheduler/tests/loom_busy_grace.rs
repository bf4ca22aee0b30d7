//! BUSY-GRACE: a task in the LIFO slot of a worker stuck in a long poll is
//! taken by the other worker also while that one is busy with a yielding
//! task of its own (red team: it waited the whole poll).

use super::*;

/// Two workers. A yielder yields until a child has run; a parent spawns
/// that child (into its worker's LIFO slot) and blocks its worker until the
/// child has run. Whenever the yielder and the parent are on different
/// workers, only the yielder's worker, which is never idle, can run the
/// child.
fn long_poll_beside_a_yielder() {
    let pool = Pool::start(2);
    let child_ran = Arc::new(Flag::default());
    let seen = child_ran.clone();
    let yielder = Scheduler::spawn(&pool.scheduler, async move {
        while !seen.is_set() {
            // Time passes between the yielder's polls: the other worker's
            // thread gets to run (no preemption spent on it).
            loom::thread::yield_now();
            crate::yield_now().await;
        }
    });
    let parent = spawn_long_poll_behind_a_lifo_task(&pool, &child_ran);
    block_on(parent).unwrap();
    block_on(yielder).unwrap();
    assert!(child_ran.is_set());
    pool.shutdown();
}

/// Preemption bound 1. Every execution is as long as the yielder's rounds
/// before the child runs: at bound 2 some exceed loom's branch limit even
/// with the fix (long, not endless). At bound 1 each execution of the fixed
/// code ends within it, and the control below yields for ever in some.
const BUSY_BOUND: usize = 1;

#[test]
fn a_lifo_task_behind_a_long_poll_is_taken_by_a_worker_busy_with_a_yielder() {
    model_bounded(BUSY_BOUND, long_poll_beside_a_yielder);
}

#[test]
fn control_busy_workers_taking_only_backlogs_is_caught() {
    let report = model_must_fail_bounded(
        "scheduler::tests::loom_busy_grace::control_busy_workers_taking_only_backlogs_is_caught",
        Regression::BusyTakesOnlyBacklogs,
        BUSY_BOUND,
        long_poll_beside_a_yielder,
    );
    // The yielder yields for ever beside the stranded child.
    assert!(
        report.contains("deadlock") || report.contains("branches"),
        "expected a deadlock or a livelock:\n{report}"
    );
}
