//! An axum app served by `unplug::http::serve` while CPU 1 is unplugged and
//! plugged back every 500 ms, against the same app on tokio's multi-thread
//! runtime. Its own load client (keep-alive HTTP/1.1 connections, each
//! sending sequential GETs, half `/`, half `/work`) runs on a tokio
//! runtime of its own, so it shares no thread with either server.
//!
//! Three rows, each `--seconds` long (default 5, about 15 s in all):
//! `unplug+hotplug` (the CPU churn above; skipped on a machine with fewer
//! than 2 allowed CPUs), `unplug` (no churn) and `tokio`. Each prints
//! requests/s, p50/p99 latency and the server's CPU per request: the
//! on-CPU time of the server's own threads (its workers, and for unplug
//! its long-poll monitor), read from `/proc/self/task/<tid>/schedstat`;
//! the client's threads are not counted.
//!
//! Run: `cargo run --release --features hyper --example http [-- --seconds N] [--conns N] [--workers N]`

use axum::routing::get;
use axum::Router;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

/// `/work` does about this much CPU.
const WORK: Duration = Duration::from_micros(20);
/// The hotplug thread unplugs or plugs CPU 1 this often.
const HOTPLUG_PERIOD: Duration = Duration::from_millis(500);

fn arg<T: std::str::FromStr>(name: &str) -> Option<T> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    match args.get(i + 1).map(|v| v.parse()) {
        Some(Ok(v)) => Some(v),
        _ => {
            eprintln!("{name} needs a value");
            std::process::exit(2);
        }
    }
}

fn crunch(rounds: u64) -> u64 {
    (0..rounds).fold(0x9E37_79B9u64, |a, i| {
        a.rotate_left(5) ^ std::hint::black_box(i)
    })
}

/// Rounds of `crunch` that take about [`WORK`] on this machine (the
/// fastest of a few timings, so a preemption does not inflate it).
fn work_rounds() -> u64 {
    static ROUNDS: OnceLock<u64> = OnceLock::new();
    *ROUNDS.get_or_init(|| {
        const PROBE: u64 = 200_000;
        let best = (0..5)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(crunch(PROBE));
                start.elapsed()
            })
            .min()
            .unwrap();
        (PROBE as f64 * WORK.as_secs_f64() / best.as_secs_f64().max(1e-9)).max(1.0) as u64
    })
}

fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "hello from the server\n" }))
        .route(
            "/work",
            get(|| async { format!("{:x}\n", crunch(work_rounds())) }),
        )
}

/// The same loop as `unplug::http::serve`, on tokio: every connection a
/// `tokio::spawn`ed task, hyper-util's auto builder with tokio's executor
/// and timer, `TCP_NODELAY`. It runs until its runtime is dropped.
async fn serve_on_tokio(listener: tokio::net::TcpListener, app: Router) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                eprintln!("tokio accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _ = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// On-CPU nanoseconds of every thread of this process whose name starts
/// with one of `prefixes`, by thread id.
fn thread_cpu(prefixes: &[&str]) -> HashMap<u32, u64> {
    let mut out = HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let Ok(tid) = task.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !prefixes.iter().any(|p| comm.trim_end().starts_with(p)) {
            continue;
        }
        let schedstat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        if let Some(ns) = schedstat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
        {
            out.insert(tid, ns);
        }
    }
    out
}

/// CPU used between two readings: threads that appeared count from zero.
fn cpu_between(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>) -> Duration {
    let ns = after
        .iter()
        .map(|(tid, ns)| ns.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum();
    Duration::from_nanos(ns)
}

/// What one load run measured.
struct Row {
    name: &'static str,
    requests: u64,
    elapsed: Duration,
    latencies_us: Vec<u32>,
    server_cpu: Duration,
    errors: u64,
    note: String,
}

impl Row {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile_us(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * p).round() as usize;
        self.latencies_us[i] as f64
    }
    fn cpu_per_request_us(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.requests.max(1) as f64
    }
}

/// `conns` keep-alive connections to `addr`, each sending sequential GETs
/// (alternating `/` and `/work`) for `seconds`, on a tokio runtime of
/// their own with `threads` threads. Reads the server's thread CPU
/// (`server_threads`) just before and after the load.
fn load(
    name: &'static str,
    addr: SocketAddr,
    conns: usize,
    seconds: f64,
    threads: usize,
    server_threads: &[&str],
) -> Row {
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("http-client")
        .enable_all()
        .build()
        .expect("client runtime");
    let errors = Arc::new(AtomicU64::new(0));
    client.block_on(async {
        // Connect everything first, then start the clock.
        let mut senders = Vec::new();
        for _ in 0..conns {
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let _ = stream.set_nodelay(true);
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .expect("handshake");
            tokio::spawn(connection);
            senders.push(sender);
        }
        let duration = Duration::from_secs_f64(seconds);
        let cpu_before = thread_cpu(server_threads);
        let start = Instant::now();
        let deadline = start + duration;
        let tasks: Vec<_> = senders
            .into_iter()
            .enumerate()
            .map(|(i, mut sender)| {
                let errors = errors.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(16 * 1024);
                    let mut n = i;
                    while Instant::now() < deadline {
                        let path = if n % 2 == 0 { "/" } else { "/work" };
                        n += 1;
                        let request = Request::get(path)
                            .header(hyper::header::HOST, "bench")
                            .body(Empty::<Bytes>::new())
                            .expect("request");
                        let sent = Instant::now();
                        let ok = match sender.send_request(request).await {
                            Ok(response) => {
                                let status = response.status();
                                let body = response.into_body().collect().await;
                                status == StatusCode::OK && body.is_ok()
                            }
                            Err(_) => false,
                        };
                        if !ok {
                            errors.fetch_add(1, Relaxed);
                            break;
                        }
                        latencies.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    }
                    latencies
                })
            })
            .collect();
        let mut latencies_us = Vec::new();
        for task in tasks {
            latencies_us.extend(task.await.expect("client task"));
        }
        let elapsed = start.elapsed();
        let server_cpu = cpu_between(&cpu_before, &thread_cpu(server_threads));
        latencies_us.sort_unstable();
        Row {
            name,
            requests: latencies_us.len() as u64,
            elapsed,
            latencies_us,
            server_cpu,
            errors: errors.load(Relaxed),
            note: String::new(),
        }
    })
}

/// The app on an unplug runtime of `workers` pinned workers; with
/// `hotplug`, a thread unplugs and plugs `hotplug_cpu` every 500 ms during
/// the load.
fn run_unplug(
    workers: usize,
    hotplug_cpu: Option<usize>,
    conns: usize,
    seconds: f64,
    client_threads: usize,
) -> Row {
    let rt = unplug::Runtime::builder()
        .workers(workers)
        .pin_workers(true)
        .thread_name("http-unplug")
        .build()
        .expect("unplug runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(unplug::http::serve(listener, app(), async move {
        let _ = stopped.await;
    }));

    // The hotplug thread: unplug, wait, plug, wait, ... until told to stop.
    let (end_churn, churn_ended) = mpsc::channel::<()>();
    let churn = hotplug_cpu.map(|cpu| {
        let handle = rt.handle().clone();
        std::thread::Builder::new()
            .name("hotplug-ctl".into())
            .spawn(move || {
                let (mut unplugs, mut plugs, mut failed) = (0u32, 0u32, 0u32);
                let mut unplugged = false;
                while let Err(mpsc::RecvTimeoutError::Timeout) =
                    churn_ended.recv_timeout(HOTPLUG_PERIOD)
                {
                    let done = if unplugged {
                        handle.plug_cpu(cpu).map(|_| plugs += 1).is_ok()
                    } else {
                        handle.unplug_cpu(cpu).map(|_| unplugs += 1).is_ok()
                    };
                    if done {
                        unplugged = !unplugged;
                    } else {
                        failed += 1;
                    }
                }
                if unplugged && handle.plug_cpu(cpu).is_ok() {
                    plugs += 1;
                }
                (unplugs, plugs, failed)
            })
            .expect("hotplug thread")
    });

    let name = if churn.is_some() {
        "unplug+hotplug"
    } else {
        "unplug"
    };
    let mut row = load(
        name,
        addr,
        conns,
        seconds,
        client_threads,
        &["http-unplug", "unplug-long-poll"],
    );
    drop(end_churn);
    if let Some(churn) = churn {
        let (unplugs, plugs, failed) = churn.join().expect("hotplug thread");
        row.note = format!(
            "CPU {} unplugged {unplugs}x, plugged {plugs}x",
            hotplug_cpu.unwrap()
        );
        if failed > 0 {
            row.note += &format!(", {failed} calls failed");
        }
    }

    // Graceful shutdown: the client's connections are gone by now.
    let _ = stop.send(());
    let shutdown = Instant::now();
    rt.block_on(server)
        .expect("serve task")
        .expect("serve returned an error");
    if !row.note.is_empty() {
        row.note += "; ";
    }
    row.note += &format!("graceful shutdown {:.1?}", shutdown.elapsed());
    row
}

/// The app on tokio's multi-thread runtime with `workers` workers.
fn run_tokio(workers: usize, conns: usize, seconds: f64, client_threads: usize) -> Row {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("http-tokio")
        .enable_all()
        .build()
        .expect("tokio runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    rt.spawn(serve_on_tokio(listener, app()));
    let row = load(
        "tokio",
        addr,
        conns,
        seconds,
        client_threads,
        &["http-tokio"],
    );
    rt.shutdown_timeout(Duration::from_secs(1));
    row
}

fn main() {
    let seconds: f64 = arg("--seconds").unwrap_or(5.0);
    let conns: usize = arg("--conns").unwrap_or(64);
    let cpus = unplug::worker::affinity::allowed_cpus().expect("allowed CPUs");
    let workers: usize = arg("--workers").unwrap_or(cpus.len()).max(1);
    let client_threads = cpus.len().max(1);
    if seconds <= 0.0 || conns == 0 {
        eprintln!("--seconds and --conns must be positive");
        std::process::exit(2);
    }
    // CPU 1 is the second allowed CPU (the workers are pinned over them
    // in order, so a worker lives there when there are 2 or more).
    let hotplug_cpu = (cpus.len() >= 2 && workers >= 2).then(|| cpus[1]);
    let _ = work_rounds();

    println!(
        "http: axum app (`/` small body, `/work` ~{} us of CPU), {workers} server workers, \
         {conns} keep-alive connections sending sequential GETs (half each route) for {seconds} s per row",
        WORK.as_micros()
    );
    println!(
        "http: the client runs on a tokio runtime of its own ({client_threads} threads), but \
         it shares this machine's {} allowed CPU(s) {cpus:?} with the server: \
         requests/s and latency include that contention; server CPU counts only the server's threads",
        cpus.len()
    );
    match hotplug_cpu {
        Some(cpu) => println!(
            "http: unplug+hotplug: a thread unplugs CPU {cpu} and plugs it back every {} ms \
             (half the time the server has one CPU)",
            HOTPLUG_PERIOD.as_millis()
        ),
        None => println!("http: fewer than 2 allowed CPUs or workers: no hotplug row"),
    }

    let mut rows = Vec::new();
    if let Some(cpu) = hotplug_cpu {
        rows.push(run_unplug(
            workers,
            Some(cpu),
            conns,
            seconds,
            client_threads,
        ));
    }
    rows.push(run_unplug(workers, None, conns, seconds, client_threads));
    rows.push(run_tokio(workers, conns, seconds, client_threads));

    println!();
    println!(
        "{:<16} {:>10} {:>9} {:>9} {:>13} {:>7}",
        "server", "req/s", "p50 us", "p99 us", "CPU/req us", "errors"
    );
    for row in &rows {
        println!(
            "{:<16} {:>10.0} {:>9.0} {:>9.0} {:>13.2} {:>7}",
            row.name,
            row.rps(),
            row.percentile_us(0.50),
            row.percentile_us(0.99),
            row.cpu_per_request_us(),
            row.errors
        );
    }
    let tokio = rows.last().expect("tokio row");
    for row in &rows[..rows.len() - 1] {
        println!(
            "{:<16} {:>9.2}x {:>8.2}x {:>8.2}x {:>12.2}x   ({} / tokio)",
            "ratio",
            row.rps() / tokio.rps(),
            row.percentile_us(0.50) / tokio.percentile_us(0.50),
            row.percentile_us(0.99) / tokio.percentile_us(0.99),
            row.cpu_per_request_us() / tokio.cpu_per_request_us(),
            row.name
        );
    }
    for row in &rows {
        if !row.note.is_empty() {
            println!("{}: {}", row.name, row.note);
        }
    }
    let errors: u64 = rows.iter().map(|r| r.errors).sum();
    if errors > 0 {
        eprintln!("http: {errors} requests failed");
        std::process::exit(1);
    }
}
