//! `unplug::http`: an axum app served with `unplug::http::serve` on a
//! 2-worker runtime, driven by hyper clients on a tokio runtime of their
//! own. Every request is answered correctly, on the workers' threads, over
//! HTTP/1.1 keep-alive and HTTP/2; graceful shutdown finishes the requests
//! in flight, closes idle connections, refuses new ones and then returns.
#![cfg(all(not(loom), feature = "hyper"))]

mod support;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{wait_for, with_watchdog, with_watchdog_for};
use tokio::sync::{oneshot, watch};

/// What the handlers saw: the threads they ran on, the requests in flight.
#[derive(Default)]
struct Seen {
    /// (OS thread id, thread name) of every handler run.
    threads: Mutex<HashSet<(i32, String)>>,
    /// `/slow` requests that have entered the handler.
    entered: AtomicUsize,
}

#[derive(Clone)]
struct App {
    seen: Arc<Seen>,
    /// `/slow` answers once this is `true`.
    gate: watch::Receiver<bool>,
}

impl App {
    fn record(&self) {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("<unnamed>").to_owned();
        let tid = unplug::worker::affinity::current_tid();
        self.seen.threads.lock().unwrap().insert((tid, name));
    }
}

fn router(app: App) -> Router {
    Router::new()
        .route(
            "/hit/{client}/{seq}",
            get(
                |State(app): State<App>, Path((client, seq)): Path<(u32, u32)>| async move {
                    app.record();
                    format!("client {client} request {seq}")
                },
            ),
        )
        .route(
            "/slow/{n}",
            get(|State(app): State<App>, Path(n): Path<u32>| async move {
                app.record();
                app.seen.entered.fetch_add(1, SeqCst);
                let mut gate = app.gate.clone();
                gate.wait_for(|open| *open)
                    .await
                    .expect("gate sender alive");
                format!("slow {n} done")
            }),
        )
        .with_state(app)
}

struct Server {
    rt: unplug::Runtime,
    addr: SocketAddr,
    seen: Arc<Seen>,
    open_gate: watch::Sender<bool>,
    stop: Option<oneshot::Sender<()>>,
    served: unplug::JoinHandle<std::io::Result<()>>,
}

/// The app on a 2-worker unplug runtime, its accept loop a task too.
fn start_server() -> Server {
    let rt = unplug::Runtime::builder().workers(2).build().unwrap();
    let seen = Arc::new(Seen::default());
    let (open_gate, gate) = watch::channel(false);
    let app = router(App {
        seen: seen.clone(),
        gate,
    });
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
        seen,
        open_gate,
        stop: Some(stop),
        served,
    }
}

impl Server {
    /// Every handler ran on one of this runtime's worker threads (by OS
    /// thread id), named as workers are (not the `-io` blocking pool).
    fn assert_handlers_ran_on_workers(&self) {
        let workers: HashSet<i32> = self.rt.workers().iter().map(|w| w.os_tid).collect();
        let seen = self.seen.threads.lock().unwrap();
        assert!(!seen.is_empty(), "no handler ran");
        for (tid, name) in seen.iter() {
            assert!(
                workers.contains(tid),
                "a handler ran on thread {tid} ({name}), not a worker of {workers:?}"
            );
            assert!(
                name.starts_with("unplug-worker-") && name != "unplug-worker-io",
                "a handler ran on thread {name:?}"
            );
        }
    }
}

/// The clients' own tokio runtime: they share no thread with the server.
fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("test-client")
        .enable_all()
        .build()
        .unwrap()
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// An HTTP/1.1 keep-alive connection; its driver runs on the client
/// runtime and reports when the connection has ended.
async fn connect_http1(addr: SocketAddr) -> (Sender, tokio::task::JoinHandle<()>) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    (sender, driver)
}

async fn get_text(sender: &mut Sender, addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let (status, body, _) = get_full(sender, addr, path).await;
    (status, body)
}

/// Status, body, and whether the response says `Connection: close`.
async fn get_full(sender: &mut Sender, addr: SocketAddr, path: &str) -> (StatusCode, String, bool) {
    sender.ready().await.unwrap();
    let request = Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    let closing = response
        .headers()
        .get_all(hyper::header::CONNECTION)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap(), closing)
}

const CLIENTS: u32 = 32;
const REQUESTS_PER_CLIENT: u32 = 50;

#[test]
fn keep_alive_clients_are_answered_on_the_workers() {
    with_watchdog("32 keep-alive clients against serve", || {
        let mut server = start_server();
        let addr = server.addr;
        let clients = client_runtime();
        let connections = clients.block_on(async move {
            let mut tasks = Vec::new();
            for client in 0..CLIENTS {
                tasks.push(tokio::spawn(async move {
                    let (mut sender, driver) = connect_http1(addr).await;
                    for seq in 0..REQUESTS_PER_CLIENT {
                        let path = format!("/hit/{client}/{seq}");
                        let (status, body) = get_text(&mut sender, addr, &path).await;
                        assert_eq!(status, StatusCode::OK);
                        assert_eq!(body, format!("client {client} request {seq}"));
                    }
                    (sender, driver)
                }));
            }
            let mut connections = Vec::new();
            for task in tasks {
                connections.push(task.await.unwrap());
            }
            connections
        });
        assert_eq!(connections.len(), CLIENTS as usize);
        server.assert_handlers_ran_on_workers();
        // Each open connection is an unplug task (`tokio::spawn` ones are
        // not counted), beside the accept loop.
        assert_eq!(server.rt.handle().live_tasks(), CLIENTS as usize + 1);
        // Closed by the clients, the connection tasks end.
        clients.block_on(async move {
            for (sender, driver) in connections {
                drop(sender);
                driver.await.unwrap();
            }
        });
        wait_for("the connection tasks to end", || {
            server.rt.handle().live_tasks() == 1
        });

        server.stop.take().unwrap().send(()).unwrap();
        let served = server.rt.block_on(&mut server.served);
        served.unwrap().unwrap();
    });
}

#[test]
fn http2_streams_are_answered_on_the_workers() {
    with_watchdog("HTTP/2 streams against serve", || {
        let mut server = start_server();
        let addr = server.addr;
        let clients = client_runtime();
        clients.block_on(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(connection);
            // Concurrent streams on one connection: hyper's server runs
            // them through `unplug::http::Executor`.
            let mut streams = Vec::new();
            for seq in 0..64u32 {
                let mut sender = sender.clone();
                streams.push(tokio::spawn(async move {
                    let request = Request::get(format!("http://{addr}/hit/99/{seq}"))
                        .body(Empty::<Bytes>::new())
                        .unwrap();
                    let response = sender.send_request(request).await.unwrap();
                    assert_eq!(response.version(), hyper::Version::HTTP_2);
                    assert_eq!(response.status(), StatusCode::OK);
                    let body = response.into_body().collect().await.unwrap().to_bytes();
                    assert_eq!(body, format!("client 99 request {seq}").as_bytes());
                }));
            }
            for stream in streams {
                stream.await.unwrap();
            }
        });
        server.assert_handlers_ran_on_workers();
        server.stop.take().unwrap().send(()).unwrap();
        server.rt.block_on(&mut server.served).unwrap().unwrap();
    });
}

#[test]
fn graceful_shutdown_finishes_in_flight_requests_and_refuses_new_connections() {
    // A deadline under 30 s: hyper closes an idle keep-alive connection by
    // itself after its 30 s header read timeout, which must not pass for
    // the graceful shutdown's doing.
    with_watchdog_for(
        "graceful shutdown of serve",
        Duration::from_secs(20),
        || {
            const IN_FLIGHT: usize = 8;
            const IDLE: usize = 4;
            let mut server = start_server();
            let addr = server.addr;
            let clients = client_runtime();

            // Idle keep-alive connections: one request answered, then quiet.
            let idle = clients.block_on(async move {
                let mut idle = Vec::new();
                for i in 0..IDLE {
                    let (mut sender, driver) = connect_http1(addr).await;
                    let (status, body) = get_text(&mut sender, addr, &format!("/hit/{i}/0")).await;
                    assert_eq!(
                        (status, body),
                        (StatusCode::OK, format!("client {i} request 0"))
                    );
                    idle.push((sender, driver));
                }
                idle
            });

            // Requests in flight: each is inside its handler, waiting on the gate.
            let in_flight: Vec<_> = (0..IN_FLIGHT)
                .map(|n| {
                    clients.spawn(async move {
                        let (mut sender, driver) = connect_http1(addr).await;
                        let answer = get_full(&mut sender, addr, &format!("/slow/{n}")).await;
                        (answer, sender, driver)
                    })
                })
                .collect();
            wait_for("every slow request inside its handler", || {
                server.seen.entered.load(SeqCst) == IN_FLIGHT
            });

            server.stop.take().unwrap().send(()).unwrap();
            // The listener closes first: new connections are refused while
            // the requests in flight are still held by the gate.
            wait_for("the listener to close", || {
                std::net::TcpStream::connect(addr).is_err()
            });
            let refused = std::net::TcpStream::connect(addr).unwrap_err();
            assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
            // The idle connections are closed by the server at once, with the
            // requests in flight still held.
            clients.block_on(async move {
                for (sender, driver) in idle {
                    driver.await.unwrap();
                    assert!(sender.is_closed());
                }
            });
            assert!(
                !server.served.is_finished(),
                "serve returned with requests still in flight"
            );

            // Release the handlers: every request in flight is answered in full,
            // marked as the connection's last.
            server.open_gate.send_replace(true);
            clients.block_on(async move {
                for (n, task) in in_flight.into_iter().enumerate() {
                    let ((status, body, closing), sender, driver) = task.await.unwrap();
                    assert_eq!(status, StatusCode::OK);
                    assert_eq!(body, format!("slow {n} done"));
                    assert!(closing, "no `Connection: close` on an in-flight response");
                    // The server closed the connection after that response.
                    driver.await.unwrap();
                    assert!(sender.is_closed());
                }
            });

            // And serve has returned, cleanly.
            server.rt.block_on(&mut server.served).unwrap().unwrap();
            let refused = std::net::TcpStream::connect(addr).unwrap_err();
            assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
            server.assert_handlers_ran_on_workers();
        },
    );
}

#[test]
fn the_executor_spawns_unplug_tasks() {
    with_watchdog("Executor::execute", || {
        use hyper::rt::Executor as _;
        let rt = unplug::Runtime::builder().workers(2).build().unwrap();
        let workers: HashSet<i32> = rt.workers().iter().map(|w| w.os_tid).collect();
        let (tx, rx) = oneshot::channel();
        unplug::http::Executor::new(rt.handle().clone()).execute(async move {
            let _ = tx.send(unplug::worker::affinity::current_tid());
        });
        let tid = rt.block_on(rx).unwrap();
        assert!(workers.contains(&tid), "ran on {tid}, workers {workers:?}");
        // `current()` inside the runtime is the same runtime.
        let live = rt.block_on(async { unplug::http::Executor::current().handle().live_tasks() });
        assert_eq!(live, rt.handle().live_tasks());
    });
}
