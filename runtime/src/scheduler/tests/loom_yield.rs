//! YIELD-LAST + REACHABLE: a yielded task waits behind its worker's run
//! queue and the injector, but never behind a long poll while another
//! worker is idle: the yielded queue is stealable, and queueing a yield
//! offers it to a sleeper.

use super::*;

/// Two workers. A task spawns a child (into its worker's LIFO slot), then
/// yields (into its worker's yielded queue); the child blocks that worker
/// until the yielded task has run again: only the other worker can run it.
fn long_poll_ahead_of_a_yielded_task() {
    let pool = Pool::start(2);
    let resumed = Arc::new(Flag::default());
    let flag = resumed.clone();
    let scheduler = pool.scheduler.clone();
    let parent = Scheduler::spawn(&pool.scheduler, async move {
        let f = flag.clone();
        let child = Scheduler::spawn(&scheduler, async move { f.wait() });
        crate::yield_now().await;
        flag.set();
        drop(child);
    });
    block_on(parent).unwrap();
    assert!(resumed.is_set());
    pool.shutdown();
}

#[test]
fn a_yielded_task_behind_a_long_poll_is_taken_by_an_idle_worker() {
    model(long_poll_ahead_of_a_yielded_task);
}

#[test]
fn control_yielded_tasks_kept_private_are_caught() {
    let report = model_must_fail(
        "scheduler::tests::loom_yield::control_yielded_tasks_kept_private_are_caught",
        Regression::YieldedKeptPrivate,
        long_poll_ahead_of_a_yielded_task,
    );
    assert!(
        report.contains("deadlock"),
        "expected a deadlock:\n{report}"
    );
}
