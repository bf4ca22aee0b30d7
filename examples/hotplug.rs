//! The main job: a mixed load (CPU-bound tasks and tokio loopback TCP
//! traffic) on an unplug runtime while CPUs are unplugged and plugged back
//! on a schedule. Prints one live line per second and a summary; finishes
//! by itself. The last line is machine-readable:
//!
//! `summary: completed=N lost=0 double_polled=0 unplugs=U plugs=P park_p50_us=X park_p99_us=Y`
//!
//! Run: `cargo run --release --example hotplug [-- --seconds N] [--metrics-addr ADDR]`

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use unplug::worker::WorkerState;
use unplug::{Handle, Runtime};

/// Counts every load task: spawned, completed, polled by two threads at once.
#[derive(Default)]
struct Ledger {
    spawned: AtomicU64,
    completed: AtomicU64,
    double_polled: AtomicU64,
    echoes: AtomicU64,
}

/// A load task with a per-task guard against concurrent polls.
struct Tracked<F> {
    inner: Pin<Box<F>>,
    in_poll: AtomicBool,
    ledger: Arc<Ledger>,
}

impl<F: Future<Output = ()>> Future for Tracked<F> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.in_poll.swap(true, SeqCst) {
            self.ledger.double_polled.fetch_add(1, SeqCst);
        }
        let out = self.inner.as_mut().poll(cx);
        self.in_poll.store(false, SeqCst);
        if out.is_ready() {
            self.ledger.completed.fetch_add(1, Relaxed);
        }
        out
    }
}

// `#[track_caller]`: a long poll is reported at the caller's line, not here.
#[track_caller]
fn spawn_tracked(h: &Handle, ledger: &Arc<Ledger>, f: impl Future<Output = ()> + Send + 'static) {
    ledger.spawned.fetch_add(1, Relaxed);
    h.spawn(Tracked {
        inner: Box::pin(f),
        in_poll: AtomicBool::new(false),
        ledger: ledger.clone(),
    });
}

fn crunch(rounds: u64) -> u64 {
    (0..rounds).fold(0x9E37_79B9u64, |a, i| {
        a.rotate_left(5) ^ std::hint::black_box(i)
    })
}

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

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let seconds: u64 = arg("--seconds").unwrap_or(15);
    let metrics_addr: Option<String> = arg("--metrics-addr");
    // `--long-polls`: before every other unplug, one task per worker
    // computes for ~25 ms inside a single poll (past the 10 ms long-poll
    // threshold): the park it slows names it, and the long-poll metrics
    // have something to show.
    let long_polls = std::env::args().any(|a| a == "--long-polls");
    let cpus = unplug::worker::affinity::allowed_cpus().expect("allowed CPUs");
    let workers = 2 * cpus.len();
    // The endpoint first: a runtime built afterwards records its metrics.
    if let Some(addr) = &metrics_addr {
        match unplug::metrics::serve_prometheus(addr) {
            Ok(server) => println!("hotplug: metrics on http://{}/metrics", server.addr()),
            Err(e) => {
                eprintln!("hotplug: --metrics-addr {addr}: {e}");
                std::process::exit(2);
            }
        }
    }
    let rt = Runtime::builder()
        .workers(workers)
        .pin_workers(true)
        .thread_name("hotplug")
        .build()
        .expect("build the runtime");
    let h = rt.handle().clone();
    let ledger = Arc::new(Ledger::default());
    let running = Arc::new(AtomicBool::new(true));
    println!("hotplug: {workers} workers pinned over CPUs {cpus:?}, {seconds}s of load");

    // CPU-bound load: a generator keeps a bounded number of crunch tasks in
    // flight.
    {
        let (h2, ledger, running) = (h.clone(), ledger.clone(), running.clone());
        spawn_tracked(&h, &ledger.clone(), async move {
            while running.load(Relaxed) {
                // Keep about a thousand CPU-bound tasks in flight.
                while ledger.spawned.load(Relaxed) - ledger.completed.load(Relaxed) < 1024 {
                    spawn_tracked(&h2, &ledger, async {
                        crunch(20_000);
                        unplug::yield_now().await;
                        crunch(20_000);
                    });
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });
    }

    // TCP load: an echo server and clients over loopback, all unplug tasks.
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind loopback");
    let addr = listener.local_addr().unwrap();
    {
        let (h2, ledger2, running2) = (h.clone(), ledger.clone(), running.clone());
        spawn_tracked(&h, &ledger, async move {
            while running2.load(Relaxed) {
                let accepted =
                    tokio::time::timeout(Duration::from_millis(100), listener.accept()).await;
                let Ok(Ok((mut socket, _))) = accepted else {
                    continue;
                };
                spawn_tracked(&h2, &ledger2, async move {
                    let mut buf = [0u8; 256];
                    while let Ok(n) = socket.read(&mut buf).await {
                        if n == 0 || socket.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
    }
    for c in 0..8 {
        let (ledger2, running2) = (ledger.clone(), running.clone());
        spawn_tracked(&h, &ledger, async move {
            let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
                return;
            };
            let msg = format!("client {c} says hello");
            let mut back = vec![0u8; msg.len()];
            while running2.load(Relaxed) {
                if stream.write_all(msg.as_bytes()).await.is_err()
                    || stream.read_exact(&mut back).await.is_err()
                {
                    break;
                }
                assert_eq!(back, msg.as_bytes(), "echo corrupted");
                ledger2.echoes.fetch_add(1, Relaxed);
            }
        });
    }

    // The schedule: unplug the next CPU for 400 ms, then plug it back for
    // 300 ms (a period that drifts against the once-a-second live line).
    let park_us = Arc::new(Mutex::new(Vec::<u64>::new()));
    let (unplugs, plugs) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let scheduler = {
        let ledger = ledger.clone();
        let (h, running, park_us, unplugs, plugs, cpus) = (
            h.clone(),
            running.clone(),
            park_us.clone(),
            unplugs.clone(),
            plugs.clone(),
            cpus.clone(),
        );
        std::thread::spawn(move || {
            let mut k = 0;
            // Out of phase with the once-a-second live line.
            std::thread::sleep(Duration::from_millis(120));
            while running.load(Relaxed) {
                let cpu = cpus[k % cpus.len()];
                k += 1;
                if long_polls && k % 2 == 0 {
                    // One 25 ms poll per worker, just before this unplug:
                    // the park waits for one of them and names it.
                    for _ in 0..workers {
                        spawn_tracked(&h, &ledger, async {
                            let t = Instant::now();
                            while t.elapsed() < Duration::from_millis(25) {
                                std::hint::black_box(crunch(1_000));
                            }
                        });
                    }
                }
                if let Ok(report) = h.unplug_cpu(cpu) {
                    unplugs.fetch_add(1, Relaxed);
                    // A park held past the long-poll threshold names the
                    // poll it waited on.
                    for culprit in &report.slow_polls {
                        println!("hotplug: slow park of CPU {cpu}: waited on {culprit}");
                    }
                    let mut lat = park_us.lock().unwrap();
                    lat.extend(
                        report
                            .park_latencies
                            .iter()
                            .map(|t| t.to_inactive.as_micros() as u64),
                    );
                }
                std::thread::sleep(Duration::from_millis(400));
                if h.plug_cpu(cpu).is_ok() {
                    plugs.fetch_add(1, Relaxed);
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };

    // Live lines.
    let start = Instant::now();
    let mut last_completed = 0;
    for second in 1..=seconds {
        std::thread::sleep(
            Duration::from_secs(1).saturating_sub(
                start
                    .elapsed()
                    .saturating_sub(Duration::from_secs(second - 1)),
            ),
        );
        let completed = ledger.completed.load(Relaxed);
        let ws = h.workers();
        let count = |s: WorkerState| ws.iter().filter(|w| w.state == s).count();
        let last_park = park_us.lock().unwrap().last().copied().unwrap_or(0);
        println!(
            "t={second:>3}s tasks/s={:>8} echoes={:>8} workers running={} idle={} parking={} parked={} last_park_us={last_park}",
            completed - last_completed,
            ledger.echoes.load(Relaxed),
            count(WorkerState::Running),
            count(WorkerState::Idle),
            count(WorkerState::Parking),
            count(WorkerState::Parked),
        );
        last_completed = completed;
    }

    // Wind down: stop the load and the schedule, plug everything back, let
    // every task finish, and count.
    running.store(false, Relaxed);
    scheduler.join().unwrap();
    for &cpu in &cpus {
        let _ = h.plug_cpu(cpu);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while h.stats().live_tasks > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let spawned = ledger.spawned.load(SeqCst);
    let completed = ledger.completed.load(SeqCst);
    let lost = spawned - completed;
    let double_polled = ledger.double_polled.load(SeqCst);
    let mut lat = park_us.lock().unwrap().clone();
    lat.sort_unstable();
    println!(
        "hotplug: {spawned} tasks spawned, {} echoes, {} tasks migrated by unplugs, {} parks measured",
        ledger.echoes.load(Relaxed),
        h.stats().tasks_migrated,
        lat.len()
    );
    println!(
        "summary: completed={completed} lost={lost} double_polled={double_polled} unplugs={} plugs={} park_p50_us={} park_p99_us={}",
        unplugs.load(Relaxed),
        plugs.load(Relaxed),
        percentile(&lat, 0.50),
        percentile(&lat, 0.99)
    );
    drop(rt);
    if lost != 0 || double_polled != 0 {
        std::process::exit(1);
    }
}
