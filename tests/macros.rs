//! `#[unplug::test]` (and through it the expansion `#[unplug::main]`
//! shares): the body runs inside a worker-backed unplug runtime built with
//! the arguments given, panics and `Result`s reach the harness, the runtime
//! is gone when the test returns. Compile errors: `runtime/macros/tests/ui/`.
#![cfg(not(loom))]

use std::time::Duration;
use unplug::Handle;

/// The name of the thread a spawned task runs on.
async fn task_thread_name() -> String {
    unplug::spawn(async {
        std::thread::current()
            .name()
            .unwrap_or("<unnamed>")
            .to_owned()
    })
    .await
    .unwrap()
}

#[unplug::test]
async fn defaults_to_two_workers() {
    let handle = Handle::current();
    assert_eq!(handle.workers().len(), 2);
    // Tasks run on the workers, not on the test thread that block_ons.
    let name = task_thread_name().await;
    assert!(name.starts_with("unplug-worker-"), "{name}");
    assert_ne!(
        std::thread::current().name(),
        Some(name.as_str()),
        "the body is driven by the test thread, its tasks by the workers"
    );
}

#[unplug::test(workers = 1)]
async fn one_worker() {
    assert_eq!(Handle::current().workers().len(), 1);
    let sum: u64 = {
        let tasks: Vec<_> = (0..100u64)
            .map(|i| unplug::spawn(async move { i }))
            .collect();
        let mut sum = 0;
        for t in tasks {
            sum += t.await.unwrap();
        }
        sum
    };
    assert_eq!(sum, 4950);
}

#[unplug::test(workers = 3)]
async fn more_workers_than_default() {
    assert_eq!(Handle::current().workers().len(), 3);
    assert!(Handle::current().workers().iter().all(|w| w.os_tid > 0));
}

#[unplug::test(workers = 2, thread_name = "macro-test")]
async fn thread_name_is_applied() {
    let name = task_thread_name().await;
    assert!(name.starts_with("macro-test-"), "{name}");
}

#[unplug::test(pin_workers = false, workers = 2, thread_name = "all-args")]
async fn all_arguments_any_order_trailing_comma() {
    assert_eq!(Handle::current().workers().len(), 2);
    assert!(task_thread_name().await.starts_with("all-args-"));
}

// The portable platform seam (every non-Linux target) refuses pinning at
// build time.
#[cfg(all(target_os = "linux", not(unplug_portable)))]
#[unplug::test(workers = 2, pin_workers = true)]
async fn pinned_workers_run_tasks() {
    assert_eq!(Handle::current().workers().len(), 2);
    assert_eq!(unplug::spawn(async { 7 }).await.unwrap(), 7);
}

#[unplug::test(workers = 2usize)]
async fn usize_suffix_is_accepted() {
    assert_eq!(Handle::current().workers().len(), 2);
}

#[unplug::test]
async fn tokio_io_and_timers_work_inside() {
    let started = std::time::Instant::now();
    let slept = unplug::spawn(async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        "slept"
    });
    assert_eq!(slept.await.unwrap(), "slept");
    assert!(started.elapsed() >= Duration::from_millis(5));
}

#[unplug::test]
#[should_panic(expected = "the body panicked")]
async fn should_panic_in_body() {
    unplug::yield_now().await;
    panic!("the body panicked");
}

#[unplug::test(workers = 1)]
#[should_panic(expected = "a task panicked")]
async fn should_panic_after_a_task_panicked() {
    let err = unplug::spawn(async { panic!("inner") }).await.unwrap_err();
    assert!(err.is_panic());
    panic!("a task panicked");
}

#[derive(Debug)]
struct Failure;

impl From<std::num::ParseIntError> for Failure {
    fn from(_: std::num::ParseIntError) -> Self {
        Failure
    }
}

#[unplug::test]
async fn result_ok_with_question_mark() -> Result<(), Failure> {
    let n: usize = "2".parse()?;
    assert_eq!(Handle::current().workers().len(), n);
    Ok(())
}

// A test returning `Err` fails; `#[should_panic]` cannot say so (rustc
// wants `()` from such tests), so this one is ignored by the harness and
// called by hand below. (It also shows `#[ignore]` is kept.)
#[unplug::test]
#[ignore = "returns Err on purpose; run by `result_err_is_returned`"]
async fn result_err_fails_the_test() -> Result<(), Failure> {
    let _: u32 = "not a number".parse()?;
    Ok(())
}

#[test]
fn result_err_is_returned() {
    assert!(matches!(result_err_fails_the_test(), Err(Failure)));
}

#[unplug::test]
async fn early_return_in_body() -> Result<(), String> {
    if Handle::current().workers().len() == 2 {
        return Ok(());
    }
    Err("not two workers".to_owned())
}

thread_local! {
    static LEFT_BEHIND: std::cell::RefCell<Option<Handle>> = const { std::cell::RefCell::new(None) };
}

// The body runs on the calling thread (`block_on`), so the thread-local is
// the caller's.
#[unplug::test]
async fn leaves_a_handle_behind() {
    LEFT_BEHIND.with(|h| *h.borrow_mut() = Some(Handle::current()));
}

/// The runtime is dropped when the test returns: the handle the body left
/// behind belongs to a runtime that is shut down, so a task spawned on it
/// is cancelled rather than run.
#[test]
fn the_runtime_is_dropped_when_the_test_returns() {
    // After expansion the test is a plain fn: run it by hand.
    leaves_a_handle_behind();
    let handle = LEFT_BEHIND.with(|h| h.borrow_mut().take()).unwrap();
    assert_eq!(handle.live_tasks(), 0);
    let other = unplug::Runtime::builder().workers(1).build().unwrap();
    let result = other.block_on(handle.spawn(async { 1 }));
    assert!(
        result.as_ref().is_err_and(|e| e.is_cancelled()),
        "a task spawned on the test's runtime after the test ran: {result:?}"
    );
}

/// `#[unplug::main]` shares the expansion; on a function not named `main`
/// it can be called like any other.
#[unplug::main(workers = 1, thread_name = "macro-main-fn")]
async fn main_on_another_fn() -> (usize, String, Handle) {
    (
        Handle::current().workers().len(),
        task_thread_name().await,
        Handle::current(),
    )
}

#[test]
fn main_macro_builds_runs_and_drops_its_runtime() {
    let (workers, thread, handle) = main_on_another_fn();
    assert_eq!(workers, 1);
    assert!(thread.starts_with("macro-main-fn-"), "{thread}");
    let other = unplug::Runtime::builder().workers(1).build().unwrap();
    let result = other.block_on(handle.spawn(async { 1 }));
    assert!(result.is_err_and(|e| e.is_cancelled()));
}

/// The runtime is current inside the body only (and on its workers), not
/// on other threads.
#[unplug::test]
async fn runtime_is_current_in_the_body_only() {
    assert!(Handle::try_current().is_some());
    let outside = std::thread::spawn(Handle::try_current).join().unwrap();
    assert!(outside.is_none());
}
