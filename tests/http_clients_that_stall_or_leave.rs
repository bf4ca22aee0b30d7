//! `unplug::http::serve` against clients that stall, and a dropped `serve`
//! (found by a red team on 2026-12-04):
//! - FIRST-BYTES: a client that connected and sent nothing, or part of
//!   HTTP/2's preface, held its connection, its task and a descriptor for
//!   good (5 of 5 still open after 32.5 s);
//! - dropping `serve` signals its connections (the docs said otherwise;
//!   this holds the code to what the docs now say).
#![cfg(all(not(loom), feature = "hyper"))]

mod support;

use axum::routing::get;
use axum::Router;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use support::{wait_for, with_watchdog_for};
use tokio::sync::oneshot;

struct Server {
    rt: unplug::Runtime,
    addr: SocketAddr,
    /// Kept: dropping it is the shutdown signal.
    _stop: oneshot::Sender<()>,
    served: unplug::JoinHandle<std::io::Result<()>>,
}

/// A server whose `/` answers at once.
fn start() -> Server {
    let app = Router::new().route("/", get(|| async { "ok" }));
    let rt = unplug::Runtime::builder().workers(2).build().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = rt.spawn(unplug::http::serve(listener, app, async move {
        let _ = stopped.await;
    }));
    Server {
        rt,
        addr,
        _stop: stop,
        served,
    }
}

/// Reads until the server closes the connection (or `within` passes:
/// `None`).
fn closed_within(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(start.elapsed())
            }
            Err(_) => return None,
        }
    }
}

#[test]
fn a_client_that_sends_nothing_or_part_of_the_h2_preface_is_closed() {
    with_watchdog_for("silent clients", Duration::from_secs(120), || {
        let server = start();
        let limit = unplug::http::FIRST_BYTES_TIMEOUT + Duration::from_secs(10);
        let mut silent = TcpStream::connect(server.addr).unwrap();
        let mut partial = TcpStream::connect(server.addr).unwrap();
        partial.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
        for (what, s) in [("silent", &mut silent), ("partial preface", &mut partial)] {
            let took = closed_within(s, limit);
            assert!(
                took.is_some(),
                "the {what} client still open after {limit:?}"
            );
        }
        // Only the accept loop is left.
        wait_for("the connections' tasks gone", || {
            server.rt.handle().live_tasks() == 1
        });
        // Others are served meanwhile and after.
        let mut ok = TcpStream::connect(server.addr).unwrap();
        ok.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        ok.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    });
}

#[test]
fn dropping_serve_signals_its_connections_to_shut_down() {
    with_watchdog_for("serve dropped", Duration::from_secs(60), || {
        let server = start();
        let mut keep_alive = TcpStream::connect(server.addr).unwrap();
        keep_alive
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = keep_alive.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        server.served.abort();
        // The idle keep-alive connection is closed, and no task is left.
        assert!(closed_within(&mut keep_alive, Duration::from_secs(10)).is_some());
        wait_for("no task left", || server.rt.handle().live_tasks() == 0);
    });
}
