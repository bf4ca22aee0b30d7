//! Panics nobody can receive: in a future's `Drop` when the task is torn
//! down at shutdown, in an output's `Drop` when nobody awaits it, in the
//! waker of whoever awaits a join handle. They are caught (async-task would
//! abort the process), counted and logged; the worker lives on.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

static UNOBSERVED: AtomicU64 = AtomicU64::new(0);

/// Panics caught in this process that no [`JoinHandle`](crate::JoinHandle)
/// could receive (a detached task's output `Drop`, a future's `Drop` at
/// shutdown, a panicking waker of a join handle's awaiter). Each one is
/// also logged through the `log` facade at error level.
///
/// ```
/// let before = unplug::unobserved_panics();
/// // ... run tasks ...
/// assert!(unplug::unobserved_panics() >= before);
/// ```
pub fn unobserved_panics() -> u64 {
    UNOBSERVED.load(Relaxed)
}

/// Counts and logs a caught panic that nobody could receive, then drops
/// its payload (see [`drop_payload`]).
pub(crate) fn unobserved_panic(site: &str, payload: Box<dyn std::any::Any + Send>) {
    UNOBSERVED.fetch_add(1, Relaxed);
    let message = panic_message(&*payload);
    log::error!("unplug: panic in {site} caught (nobody could receive it): {message}");
    // Under loom a caught panic is most likely loom's own report (a
    // deadlock or causality violation inside a task): let it be seen.
    #[cfg(loom)]
    panic!("unobserved panic in {site} under loom: {message}");
    #[cfg(not(loom))]
    drop_payload(payload);
}

/// A panic payload's message, if it is a string.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("<non-string payload>")
        .to_owned()
}

/// Drops a panic payload whose own `Drop` may panic (`panic_any` with such
/// a value): that second panic is caught and its payload leaked, since
/// unwinding out of here would reach async-task, which aborts the process.
pub(crate) fn drop_payload(payload: Box<dyn std::any::Any + Send>) {
    if let Err(second) =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(payload)))
    {
        std::mem::forget(second);
    }
}
