//! ENDPOINT-OWN-LOOP (`runtime/src/metrics/endpoint.rs`): the `/metrics`
//! endpoint answers only `/metrics`, closes a client that stalls inside
//! its request head, and does not spin when out of file descriptors. With
//! `metrics-exporter-prometheus`'s listener (before), every path and
//! method got the metrics, a stalled head was held for as long as the
//! client stayed (41 s and counting), and an accept failing with `EMFILE`
//! was retried at once (0.6-0.8 s of CPU a second): a red team of the
//! metrics. Alone in its binary: the recorder is process-wide.
#![cfg(not(loom))]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use support::{metrics_server, with_watchdog};

/// Sends `request` and reads until the server closes (or `limit` passes):
/// what came back, and whether the connection was closed.
fn exchange(addr: SocketAddr, request: &[u8], limit: Duration) -> (String, bool) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    stream.set_read_timeout(Some(limit)).unwrap();
    stream.write_all(request).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

/// The whole answer to `request_head` (a request line and any headers,
/// without the blank line), sent with `Connection: close`.
fn answer(addr: SocketAddr, request_head: &str) -> String {
    let request = format!("{request_head}\r\nHost: x\r\nConnection: close\r\n\r\n");
    exchange(addr, request.as_bytes(), Duration::from_secs(10)).0
}

fn status_line(addr: SocketAddr, request_head: &str) -> String {
    answer(addr, request_head)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[test]
fn the_endpoint_answers_get_and_head_of_metrics_and_refuses_the_rest() {
    let addr = metrics_server();
    with_watchdog("requests to the endpoint", move || {
        assert_eq!(
            status_line(addr, "GET /not-metrics HTTP/1.1"),
            "HTTP/1.1 404 Not Found"
        );
        assert_eq!(
            status_line(addr, "GET / HTTP/1.1"),
            "HTTP/1.1 404 Not Found"
        );
        let post = answer(addr, "POST /metrics HTTP/1.1\r\nContent-Length: 0");
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        assert!(
            post.to_ascii_lowercase().contains("allow: get, head"),
            "{post}"
        );
        let get = answer(addr, "GET /metrics HTTP/1.1");
        assert!(get.starts_with("HTTP/1.1 200"), "{get}");
        assert!(get.contains("text/plain; version=0.0.4"), "{get}");
        let head = answer(addr, "HEAD /metrics HTTP/1.1");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "HEAD sent a body: {head}");
    });
}

#[test]
fn the_endpoint_closes_a_client_that_stalls_inside_its_request_head() {
    let addr = metrics_server();
    with_watchdog("a stalled request head", move || {
        let start = Instant::now();
        let limit = unplug::metrics::HEADER_READ_TIMEOUT + Duration::from_secs(20);
        let (_, closed) = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n", limit);
        assert!(
            closed,
            "a stalled request head was still open after {:?}",
            start.elapsed()
        );
    });
}

const CHILD_ENV: &str = "UNPLUG_METRICS_ENDPOINT_CHILD";

/// The stat file of this process's thread named `name`, opened (before
/// descriptors run out).
fn thread_stat(name: &str) -> Option<std::fs::File> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        if comm.trim() == name {
            return std::fs::File::open(dir.join("stat")).ok();
        }
    }
    None
}

/// CPU ticks (user + system) in a thread's stat file.
fn ticks(stat: &mut std::fs::File) -> u64 {
    use std::io::Seek;
    stat.rewind().unwrap();
    let mut text = String::new();
    stat.read_to_string(&mut text).unwrap();
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// In a child process: descriptors limited, idle clients holding them,
/// the endpoint's accept failing with `EMFILE`; prints the endpoint
/// thread's CPU over 2 s.
fn out_of_descriptors_child() {
    let server = unplug::metrics::serve_prometheus("127.0.0.1:0").unwrap();
    let addr = server.addr();
    support::http_get(addr, "/metrics").unwrap();
    // The thread's name, as the kernel keeps it (15 bytes).
    let mut stat = thread_stat("unplug-metrics-").expect("the endpoint thread");
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    // SAFETY: getrlimit and setrlimit of this process, with a valid struct.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = open + 16;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    let mut clients = Vec::new();
    while let Ok(client) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        clients.push(client);
        if clients.len() > 64 {
            break;
        }
    }
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let before = ticks(&mut stat);
    let window = Duration::from_secs(2);
    let start = Instant::now();
    while start.elapsed() < window {
        std::thread::park_timeout(window - start.elapsed());
    }
    let after = ticks(&mut stat);
    let cpu = (after - before) as f64 / per_second;
    println!(
        "ENDPOINT-CPU {cpu:.3} s in {window:?} with {} idle clients",
        clients.len()
    );
}

#[test]
fn the_endpoint_backs_off_when_out_of_file_descriptors() {
    if std::env::var(CHILD_ENV).is_ok() {
        return out_of_descriptors_child();
    }
    let (_, report) = support::rerun_in_child(
        "the_endpoint_backs_off_when_out_of_file_descriptors",
        CHILD_ENV,
    );
    let cpu: f64 = report
        .lines()
        .find_map(|l| l.split_once("ENDPOINT-CPU ").map(|(_, rest)| rest))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("the child did not report:\n{report}"));
    // Spinning on EMFILE took 0.6-0.8 s of the 2 s; backing off, ~0.
    assert!(
        cpu < 0.2,
        "the endpoint used {cpu} s of CPU in 2 s:\n{report}"
    );
}
