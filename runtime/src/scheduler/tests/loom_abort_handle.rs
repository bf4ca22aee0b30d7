//! REGISTER-ON-PENDING: a task enters the registry at its first `Pending`,
//! or when an abort handle is made for it. The handle's registration races
//! the task's end (the future's drop marks the tag gone with one swap, and
//! a registration that loses leaves nothing behind). (The first `Pending`'s
//! registration racing an abort, ABORT-REGISTER, is `loom_abort`'s model.)

use super::*;

/// One worker runs a task that completes at once while the main thread
/// makes an abort handle for it: once the task is joined, the handle must
/// see it finished (an entry left behind would name a freed task).
fn abort_handle_races_the_end() {
    let pool = Pool::start(1);
    let handle = Scheduler::spawn(&pool.scheduler, async {});
    let abort = handle.abort_handle();
    block_on(handle).expect("the task completes");
    assert!(
        abort.is_finished(),
        "a joined task's abort handle sees it finished"
    );
    abort.abort();
    pool.shutdown();
}

#[test]
fn an_abort_handle_racing_the_end_of_its_task_leaves_no_entry() {
    model(abort_handle_races_the_end);
}

#[test]
fn control_drop_tag_in_two_steps_is_caught() {
    let report = model_must_fail(
        "scheduler::tests::loom_abort_handle::control_drop_tag_in_two_steps_is_caught",
        Regression::DropTagInTwoSteps,
        abort_handle_races_the_end,
    );
    assert!(
        report.contains("finished"),
        "expected the handle to see a live task:\n{report}"
    );
}
