//! What a tokio user reaches for on a `JoinError` and across
//! `catch_unwind` (a red team of the task API found these missing): the
//! error names its task (`id`, also in `Display`), `into_panic` hands the
//! payload back (and panics on a cancelled task, saying so), and `Handle`
//! and `Runtime` may be used inside `catch_unwind`. Also the documented
//! nesting of `block_on` on a plain thread.
#![cfg(not(loom))]

use std::panic::{catch_unwind, AssertUnwindSafe, RefUnwindSafe, UnwindSafe};
use unplug::Runtime;

fn runtime() -> Runtime {
    Runtime::builder().workers(2).build().unwrap()
}

#[test]
fn a_join_error_names_the_task_that_gave_no_output() {
    let rt = runtime();
    let panicked = rt.spawn(async { panic!("boom") });
    let panicked_id = panicked.id();
    let err = rt.block_on(panicked).unwrap_err();
    assert_eq!(err.id(), panicked_id);
    assert_eq!(
        err.to_string(),
        format!("task {panicked_id} panicked: boom")
    );

    let pending = rt.spawn(std::future::pending::<()>());
    let pending_id = pending.id();
    pending.abort();
    let err = rt.block_on(pending).unwrap_err();
    assert!(err.is_cancelled());
    assert_eq!(err.id(), pending_id);
    assert_eq!(err.to_string(), format!("task {pending_id} was cancelled"));
}

#[test]
fn into_panic_gives_the_payload_back_and_refuses_a_cancelled_task() {
    let rt = runtime();
    let err = rt
        .block_on(rt.spawn(async { std::panic::panic_any(41_u64) }))
        .unwrap_err();
    assert_eq!(err.into_panic().downcast_ref::<u64>(), Some(&41));

    let pending = rt.spawn(std::future::pending::<()>());
    pending.abort();
    let cancelled = rt.block_on(pending).unwrap_err();
    let refused = catch_unwind(AssertUnwindSafe(|| cancelled.into_panic()));
    let message = refused
        .err()
        .and_then(|p| p.downcast_ref::<String>().cloned());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("did not panic") && m.contains("cancelled")),
        "{message:?}"
    );
}

fn unwind_safe<T: UnwindSafe + RefUnwindSafe>(_: &T) {}

#[test]
fn the_runtime_and_its_handle_may_be_used_inside_catch_unwind() {
    let rt = runtime();
    unwind_safe(&rt);
    unwind_safe(rt.handle());
    let h = rt.handle();
    // A panic inside `catch_unwind` next to runtime calls leaves it usable.
    let caught = catch_unwind(|| {
        let task = h.spawn(async { 2 });
        assert_eq!(h.block_on(task).unwrap(), 2);
        panic!("after using the handle");
    });
    assert!(caught.is_err());
    assert_eq!(rt.block_on(rt.spawn(async { 3 })).unwrap(), 3);
}

#[test]
fn block_on_nested_on_a_plain_thread_runs_the_inner_future_to_completion() {
    let rt = runtime();
    let h = rt.handle().clone();
    let out = rt.block_on(async move {
        let inner = h.spawn(async { 20 });
        h.block_on(inner).unwrap() + 1
    });
    assert_eq!(out, 21);
}
