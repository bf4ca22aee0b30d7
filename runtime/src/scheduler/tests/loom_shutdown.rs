//! Defect 2: a spawn that passed the closing check landed in the injector
//! after shutdown had emptied it: the future was never dropped and its
//! handle never resolved (the same window, reached through a foreign
//! `wake()`, hung a `block_on` awaiting such a task). CLOSE-DRAIN closes it.

use super::*;

/// A thread spawns while the main thread shuts the runtime down.
fn spawn_races_shutdown() {
    let pool = Pool::start(1);
    let dropped = Arc::new(AtomicUsize::new(0));
    let scheduler = pool.scheduler.clone();
    let d = dropped.clone();
    let spawner =
        loom::thread::spawn(move || Scheduler::spawn(&scheduler, pending_forever(DropCount(d))));
    pool.shutdown();
    let handle = spawner.join().unwrap();
    let result = block_on(handle);
    assert!(
        result.unwrap_err().is_cancelled(),
        "the task ends cancelled"
    );
    assert_eq!(
        dropped.load(SeqCst),
        1,
        "the future is dropped exactly once"
    );
}

#[test]
fn spawn_racing_shutdown_never_leaks_the_task() {
    model(spawn_races_shutdown);
}

#[test]
fn control_push_ignoring_closing_is_caught() {
    let report = model_must_fail(
        "scheduler::tests::loom_shutdown::control_push_ignoring_closing_is_caught",
        Regression::PushIgnoresClosing,
        spawn_races_shutdown,
    );
    assert!(
        report.contains("deadlock") || report.contains("leak"),
        "expected a deadlock or a leak:\n{report}"
    );
}
