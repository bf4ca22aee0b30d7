//! tokio's I/O, timers and blocking pool work from unplug tasks: a real
//! loopback TCP echo server with many clients, all unplug tasks.
#![cfg(not(loom))]

mod support;

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use unplug::Runtime;

#[test]
fn echo_server_and_many_clients_over_loopback() {
    const CLIENTS: usize = 64;
    const ROUNDS: usize = 20;
    let rt = Runtime::builder().workers(2).build().unwrap();
    let echoed = support::with_watchdog("echo test", move || {
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = unplug::spawn(async move {
                for _ in 0..CLIENTS {
                    let (mut socket, _) = listener.accept().await.unwrap();
                    unplug::spawn(async move {
                        let mut buf = [0u8; 1024];
                        loop {
                            let n = socket.read(&mut buf).await.unwrap();
                            if n == 0 {
                                return;
                            }
                            socket.write_all(&buf[..n]).await.unwrap();
                        }
                    });
                }
            });
            let clients: Vec<_> = (0..CLIENTS)
                .map(|c| {
                    unplug::spawn(async move {
                        let mut stream = TcpStream::connect(addr).await.unwrap();
                        let mut total = 0;
                        for r in 0..ROUNDS {
                            let msg = format!("client {c} round {r}");
                            stream.write_all(msg.as_bytes()).await.unwrap();
                            let mut back = vec![0u8; msg.len()];
                            stream.read_exact(&mut back).await.unwrap();
                            assert_eq!(back, msg.as_bytes());
                            total += back.len();
                        }
                        total
                    })
                })
                .collect();
            let mut bytes = 0;
            for c in clients {
                bytes += c.await.unwrap();
            }
            server.await.unwrap();
            bytes
        })
    });
    let expected: usize = (0..CLIENTS)
        .flat_map(|c| (0..ROUNDS).map(move |r| format!("client {c} round {r}").len()))
        .sum();
    assert_eq!(echoed, expected);
}

#[test]
fn tokio_timers_fire_in_order_inside_tasks() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let order = rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for ms in [30u64, 10, 20] {
            let tx = tx.clone();
            unplug::spawn(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                tx.send(ms).unwrap();
            });
        }
        drop(tx);
        let mut order = Vec::new();
        while let Some(ms) = rx.recv().await {
            order.push(ms);
        }
        order
    });
    assert_eq!(order, vec![10, 20, 30]);
}

#[test]
fn a_timer_really_waits() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let waited = rt.block_on(rt.spawn(async {
        let start = Instant::now();
        tokio::time::sleep(Duration::from_millis(20)).await;
        start.elapsed()
    }));
    assert!(waited.unwrap() >= Duration::from_millis(20));
}

#[test]
fn spawn_blocking_and_timeouts_work_from_tasks() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let (blocking, timed_out) = rt
        .block_on(rt.spawn(async {
            let blocking =
                tokio::task::spawn_blocking(|| std::thread::current().name().map(str::to_owned))
                    .await
                    .unwrap();
            let timed_out =
                tokio::time::timeout(Duration::from_millis(5), std::future::pending::<()>())
                    .await
                    .is_err();
            (blocking, timed_out)
        }))
        .unwrap();
    // Ran on tokio's blocking pool (named `<prefix>-io`), not on a worker
    // (`<prefix>-<n>`).
    assert_eq!(blocking.as_deref(), Some("unplug-worker-io"));
    assert!(timed_out);
}
