//! Defect 4: a searching worker that found nothing and then saw a park
//! request left without passing on the wake-up producers had skipped while
//! it searched; their task stayed queued while the other worker slept.
//! SEARCH-HANDOFF closes the window.

use super::*;

/// Two workers. The main thread makes a searcher (spawns a task and takes
/// it back out of the injector itself, so the woken worker finds nothing),
/// asks worker 0 to park, then spawns the task that must run.
fn park_races_a_search() {
    let pool = Pool::start(2);
    let decoy = Scheduler::spawn(&pool.scheduler, async {});
    if let crate::loom::deque::Steal::Success(task) = pool.scheduler.injector.steal() {
        task.run();
    }
    let _ = pool.protocols[0].request_park();
    // Waited on through a loom flag: the join handle's hand-off goes
    // through async-task's atomics, which loom cannot see.
    let ran = Arc::new(Flag::default());
    let r = ran.clone();
    let task = Scheduler::spawn(&pool.scheduler, async move { r.set() });
    ran.wait();
    drop((decoy, task));
    pool.shutdown();
}

#[test]
fn park_racing_a_search_never_strands_a_task() {
    model(park_races_a_search);
}

#[test]
fn control_leave_without_handoff_is_caught() {
    let report = model_must_fail(
        "scheduler::tests::loom_search_handoff::control_leave_without_handoff_is_caught",
        Regression::LeaveWithoutHandoff,
        park_races_a_search,
    );
    assert!(
        report.contains("deadlock"),
        "expected a deadlock:\n{report}"
    );
}
