//! Defect 1: an abort landing between the worker taking a task and the
//! task being marked running was lost; the handle never resolved and the
//! future was never dropped. ABORT-AT-POLL closes the window. The same
//! race with the task's first `Pending`, which registers it
//! (REGISTER-ON-PENDING), is ABORT-REGISTER: an abort that found the task
//! unregistered must be seen by the registrant.

use super::*;

/// One worker; the main thread spawns a task that stays pending without
/// waking itself and aborts it at once, racing the worker's pick-up.
fn abort_races_the_pick_up() {
    let pool = Pool::start(1);
    let dropped = Arc::new(AtomicUsize::new(0));
    let handle = Scheduler::spawn(&pool.scheduler, pending_forever(DropCount(dropped.clone())));
    handle.abort();
    let result = block_on(handle);
    assert!(
        result.unwrap_err().is_cancelled(),
        "an aborted task ends cancelled"
    );
    // Read after the workers are joined: the handle learns of the drop
    // through async-task's std atomics, which loom does not see, and an
    // abort of a task that has not waited yet takes no lock the worker
    // also takes (REGISTER-ON-PENDING), so the join is the edge loom sees.
    pool.shutdown();
    assert_eq!(
        dropped.load(SeqCst),
        1,
        "the future is dropped exactly once"
    );
}

#[test]
fn abort_racing_the_start_of_a_poll_is_never_lost() {
    model(abort_races_the_pick_up);
}

#[test]
fn control_abort_checked_before_run_is_caught() {
    let report = model_must_fail(
        "scheduler::tests::loom_abort::control_abort_checked_before_run_is_caught",
        Regression::AbortCheckedBeforeRun,
        abort_races_the_pick_up,
    );
    assert!(
        report.contains("deadlock"),
        "expected a deadlock:\n{report}"
    );
}

#[test]
fn control_register_without_abort_check_is_caught() {
    let report = model_must_fail(
        "scheduler::tests::loom_abort::control_register_without_abort_check_is_caught",
        Regression::RegisterWithoutAbortCheck,
        abort_races_the_pick_up,
    );
    assert!(
        report.contains("deadlock"),
        "expected a deadlock:\n{report}"
    );
}
