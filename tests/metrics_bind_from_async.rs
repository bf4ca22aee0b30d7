//! EXPORTER-THREAD (`runtime/src/metrics/mod.rs`): `serve_prometheus`
//! called from async code (a tokio task, an unplug task, `block_on`)
//! returns a typed error for a port in use, and leaves nothing installed.
//! It panicked inside tasks ("Cannot drop a runtime in a context where
//! blocking is not allowed") and refused every later call with
//! `AlreadyInstalled` (found by a red team, 2026-12-04). One test: the
//! recorder is process-wide, and the last step installs it.
#![cfg(not(loom))]

use std::panic::{catch_unwind, AssertUnwindSafe};
use unplug::metrics::{serve_prometheus, MetricsError, MetricsServer};

/// What the call gave: `Ok`, its error, or its panic's message.
fn outcome(call: impl FnOnce() -> Result<MetricsServer, MetricsError>) -> String {
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(Ok(_)) => "Ok".into(),
        Ok(Err(e)) => format!("{e:?}"),
        Err(p) => format!(
            "panic: {}",
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        ),
    }
}

#[test]
fn a_port_in_use_is_a_bind_error_from_async_code_and_installs_nothing() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let tokio_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rt = unplug::Runtime::builder()
        .workers(1)
        .metrics(false)
        .build()
        .unwrap();
    let a = addr.clone();
    let from_tokio_task = tokio_rt.block_on(async move { outcome(|| serve_prometheus(&a)) });
    let a = addr.clone();
    let from_unplug_task = rt
        .block_on(rt.spawn(async move { outcome(|| serve_prometheus(&a)) }))
        .unwrap();
    let a = addr.clone();
    let from_block_on = rt.block_on(async move { outcome(|| serve_prometheus(&a)) });
    for (place, got) in [
        ("a tokio task", &from_tokio_task),
        ("an unplug task", &from_unplug_task),
        ("unplug's block_on", &from_block_on),
    ] {
        assert!(got.starts_with("Bind"), "from {place}: {got}");
    }
    assert!(!unplug::metrics::installed());
    // Nothing was left installed: a free port now works, from a task too.
    let retry = rt
        .block_on(rt.spawn(async { outcome(|| serve_prometheus("127.0.0.1:0")) }))
        .unwrap();
    assert_eq!(retry, "Ok");
    assert!(unplug::metrics::installed());
}
