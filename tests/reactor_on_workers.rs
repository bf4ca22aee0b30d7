//! REACTOR-ON-WORKERS (runtime/IO.md): tokio's I/O and time drivers are
//! turned by unplug's workers, never by a thread of their own, and what
//! tokio schedules (readiness, timers, `tokio::spawn`) runs on the workers,
//! through parks, with every worker busy, and with CPUs unplugged.
#![cfg(not(loom))]

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;
use support::{wait_for, with_watchdog};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn runtime(workers: usize) -> unplug::Runtime {
    unplug::Runtime::builder()
        .workers(workers)
        .thread_name("rw")
        .build()
        .unwrap()
}

/// Names of this process's threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect()
}

fn is_worker(name: Option<&str>) -> bool {
    name.and_then(|n| n.strip_prefix("rw-"))
        .is_some_and(|id| id.parse::<usize>().is_ok())
}

/// A loopback echo of `rounds` round trips, client and server both unplug
/// tasks.
async fn echo(rounds: usize) -> usize {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = unplug::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 32];
        while sock.read_exact(&mut buf).await.is_ok() {
            sock.write_all(&buf).await.unwrap();
        }
    });
    let mut sock = TcpStream::connect(addr).await.unwrap();
    let mut buf = [7u8; 32];
    for _ in 0..rounds {
        sock.write_all(&buf).await.unwrap();
        sock.read_exact(&mut buf).await.unwrap();
    }
    drop(sock);
    server.await.unwrap();
    rounds
}

#[test]
fn no_thread_of_its_own_runs_the_reactor() {
    let rt = runtime(2);
    assert_eq!(rt.block_on(rt.spawn(echo(100))).unwrap(), 100);
    let names = thread_names();
    // Before: a 1-worker tokio runtime's thread, `rw-io`, ran the drivers.
    assert!(
        names.iter().all(|n| n != "rw-io"),
        "a reactor thread exists: {names:?}"
    );
}

#[test]
fn tokio_spawn_inside_a_task_runs_on_a_worker() {
    let rt = runtime(2);
    let names = rt
        .block_on(rt.spawn(async {
            let mut names = Vec::new();
            for _ in 0..20 {
                let name = tokio::spawn(async {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    std::thread::current().name().map(str::to_string)
                })
                .await
                .unwrap();
                names.push(name);
            }
            names
        }))
        .unwrap();
    assert!(
        names.iter().all(|n| is_worker(n.as_deref())),
        "tokio::spawn ran off the workers: {names:?}"
    );
}

#[test]
fn io_and_timers_progress_while_every_worker_is_busy() {
    with_watchdog("busy reactor", || {
        let rt = runtime(2);
        let stop = Arc::new(AtomicBool::new(false));
        let spins = Arc::new(AtomicU64::new(0));
        // Four CPU-bound tasks that yield every 50 us: no worker is ever
        // idle, so only busy turns serve the reactor.
        for _ in 0..4 {
            let (stop, spins) = (stop.clone(), spins.clone());
            rt.spawn(async move {
                while !stop.load(SeqCst) {
                    let t = std::time::Instant::now();
                    while t.elapsed() < Duration::from_micros(50) {
                        std::hint::spin_loop();
                    }
                    spins.fetch_add(1, SeqCst);
                    unplug::yield_now().await;
                }
            });
        }
        wait_for("the load to run", || spins.load(SeqCst) > 100);
        let rounds = rt.block_on(rt.spawn(async {
            let n = echo(200).await;
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            n
        }));
        stop.store(true, SeqCst);
        assert_eq!(rounds.unwrap(), 200);
    });
}

#[test]
fn io_continues_while_the_workers_park_and_unpark() {
    with_watchdog("reactor across parks", || {
        let rt = runtime(2);
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        let h = rt.handle().clone();
        // Park each worker in turn, the one that may hold the reactor
        // included, while the echo runs: its wait ends, it hands the
        // reactor on, and the other worker turns it.
        let parker = std::thread::spawn(move || {
            let mut parks = 0u32;
            while !d.load(SeqCst) {
                for id in 0..2 {
                    if h.park_worker(id).is_ok() {
                        parks += 1;
                    }
                    h.unpark_worker(id, None).unwrap();
                }
            }
            parks
        });
        let rounds = rt.block_on(rt.spawn(echo(2_000))).unwrap();
        done.store(true, SeqCst);
        let parks = parker.join().unwrap();
        assert_eq!(rounds, 2_000);
        assert!(parks > 0, "no park happened during the echo");
    });
}

#[test]
fn readiness_is_handled_on_the_cpus_left_after_an_unplug() {
    let Ok(cpus) = unplug::worker::affinity::allowed_cpus() else {
        return;
    };
    if cpus.len() < 2 || !unplug::worker::affinity::AFFINITY_SUPPORTED {
        eprintln!("skipped: needs two CPUs and affinity");
        return;
    }
    with_watchdog("reactor follows the CPUs", move || {
        let rt = unplug::Runtime::builder()
            .cpus(cpus[..2].iter().copied())
            .pin_workers(true)
            .thread_name("rw")
            .build()
            .unwrap();
        rt.unplug_cpu(cpus[1]).unwrap();
        // With its CPU unplugged the parked worker turns nothing: every
        // tokio task (which runs where the reactor is turned) runs on the
        // worker left, on the CPU left.
        let seen = rt
            .block_on(rt.spawn(async {
                let mut seen = Vec::new();
                for _ in 0..20 {
                    seen.push(
                        tokio::spawn(async {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                            // SAFETY: sched_getcpu has no preconditions.
                            (
                                unsafe { libc::sched_getcpu() },
                                std::thread::current().name().map(str::to_string),
                            )
                        })
                        .await
                        .unwrap(),
                    );
                }
                seen
            }))
            .unwrap();
        assert!(
            seen.iter().all(|(c, _)| *c as usize == cpus[0]),
            "tokio work ran on CPUs {seen:?}, only {} is plugged; workers {:?}",
            cpus[0],
            rt.workers()
        );
        rt.plug_cpu(cpus[1]).unwrap();
    });
}
