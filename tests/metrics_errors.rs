//! Bad input to the metrics endpoint: typed errors, the runtime unaffected;
//! a scrape during shutdown neither panics nor hangs.
//! Alone in its binary: the recorder is process-wide.
#![cfg(not(loom))]

mod support;

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use support::{http_get, with_watchdog};
use unplug::metrics::{serve_prometheus, MetricsError};
use unplug::Runtime;

#[test]
fn bad_addresses_in_use_and_double_installs_are_typed_errors() {
    assert!(matches!(
        serve_prometheus("not an address"),
        Err(MetricsError::InvalidAddress(_))
    ));
    assert!(matches!(
        serve_prometheus("127.0.0.1:99999"),
        Err(MetricsError::InvalidAddress(_))
    ));

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    assert!(matches!(
        serve_prometheus(&addr),
        Err(MetricsError::Bind { .. })
    ));

    // A failed attempt installed nothing: this one works.
    let server = serve_prometheus("127.0.0.1:0").unwrap();
    assert!(matches!(
        serve_prometheus("127.0.0.1:0"),
        Err(MetricsError::AlreadyInstalled)
    ));
    assert!(unplug::metrics::installed());

    // The runtime is unaffected by the failures, and records.
    let rt = Runtime::builder().workers(2).build().unwrap();
    assert_eq!(rt.block_on(rt.spawn(async { 5 })).unwrap(), 5);

    // Scrapes while the runtime shuts down: no panic, no hang.
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = {
        let (stop, addr) = (stop.clone(), server.addr());
        std::thread::spawn(move || {
            let mut ok = 0;
            loop {
                if http_get(addr, "/metrics").is_ok() {
                    ok += 1;
                }
                if stop.load(SeqCst) {
                    return ok;
                }
            }
        })
    };
    for _ in 0..100 {
        rt.spawn(std::future::pending::<()>());
    }
    with_watchdog("shutdown while scraped", move || drop(rt));
    stop.store(true, SeqCst);
    let ok = scraper.join().expect("scraper did not panic");
    assert!(ok >= 1, "no scrape succeeded");
    let text = http_get(server.addr(), "/metrics").unwrap();
    assert!(text.contains("unplug_tasks_spawned_total"));
}
