//! HTTP with hyper on unplug's workers (feature `hyper`).
//!
//! - [`Executor`]: hyper's [`Executor`](hyper::rt::Executor) on an unplug
//!   runtime, so the background tasks hyper starts (HTTP/2 streams and
//!   connection drivers) run as unplug tasks, in parallel on the workers.
//! - [`serve`]: an accept loop that serves every connection of a
//!   [`TcpListener`] as an unplug task (HTTP/1.1 and HTTP/2, detected per
//!   connection, through `hyper_util`'s auto builder), with graceful
//!   shutdown. Any tower [`Service`] fits, an axum `Router` among them.
//!
//! Why not `tokio::spawn`: inside an unplug runtime a tokio task runs on
//! whichever worker holds tokio's core, one at a time (`runtime/IO.md`),
//! so connections spawned that way would share a single worker at a time
//! and would not be moved off an unplugged CPU by unplug's scheduler.
//! Everything here spawns with unplug. The sockets, timers and readiness
//! events are tokio's, turned by the workers themselves.
//!
//! ```
//! use axum::{routing::get, Router};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let app = Router::new().route("/", get(|| async { "hello from a worker" }));
//!
//! let rt = unplug::Runtime::builder().workers(2).build().unwrap();
//! let response = rt.block_on(async {
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//!     let addr = listener.local_addr().unwrap();
//!     let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//!     // The accept loop as a task of its own, on the workers too.
//!     let server = unplug::spawn(unplug::http::serve(listener, app, async {
//!         let _ = stopped.await;
//!     }));
//!
//!     let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
//!     client
//!         .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
//!         .await
//!         .unwrap();
//!     let mut response = String::new();
//!     client.read_to_string(&mut response).await.unwrap();
//!
//!     // Graceful shutdown: `serve` returns once every connection is done.
//!     stop.send(()).unwrap();
//!     server.await.unwrap().unwrap();
//!     response
//! });
//! assert!(response.starts_with("HTTP/1.1 200 OK"));
//! assert!(response.ends_with("hello from a worker"));
//! ```

use crate::accept::{accept, FirstBytes};
pub use crate::accept::{ACCEPT_ERROR_BACKOFF, FIRST_BYTES_TIMEOUT};
use crate::Handle;
use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use std::error::Error as StdError;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::Poll;
use tokio::net::TcpListener;
use tower_service::Service;

/// hyper's [`Executor`](hyper::rt::Executor) for unplug: every future hyper
/// hands it becomes an unplug task (detached: it runs to completion or
/// until the runtime shuts down) on the runtime of the stored [`Handle`].
///
/// Give it to hyper's or hyper-util's connection builders (HTTP/2 needs an
/// executor for its stream tasks); [`serve`] does so itself.
///
/// ```
/// use hyper_util::server::conn::auto;
///
/// let rt = unplug::Runtime::builder().workers(2).build().unwrap();
/// let builder = auto::Builder::new(unplug::http::Executor::new(rt.handle().clone()));
/// # drop(builder);
/// // Inside the runtime, `Executor::current()` does the same.
/// rt.block_on(async { drop(unplug::http::Executor::current()) });
/// ```
#[derive(Clone, Debug)]
pub struct Executor {
    handle: Handle,
}

impl Executor {
    /// An executor that spawns on `handle`'s runtime.
    pub fn new(handle: Handle) -> Executor {
        Executor { handle }
    }

    /// An executor for the runtime this thread runs in (a worker, or
    /// inside `block_on`).
    ///
    /// # Panics
    ///
    /// Outside any unplug runtime.
    #[track_caller]
    pub fn current() -> Executor {
        Executor::new(Handle::current())
    }

    /// The runtime this executor spawns on.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl From<Handle> for Executor {
    fn from(handle: Handle) -> Executor {
        Executor::new(handle)
    }
}

impl<F> hyper::rt::Executor<F> for Executor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        // Dropping the `JoinHandle` detaches the task.
        drop(self.handle.spawn(future));
    }
}

/// How often an HTTP/2 connection pings an idle peer, and how long it waits
/// for the answer before closing: bounds what a peer that stops answering
/// holds (a connection, or a graceful shutdown) to about twice this.
pub const HTTP2_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves HTTP/1.1 and HTTP/2 (prior knowledge, `h2c`) on `listener` with
/// `service` until `shutdown` completes, then shuts down gracefully.
///
/// - Each accepted connection is served by its own unplug task (spawned
///   with [`Handle::spawn`] on the current runtime, never `tokio::spawn`),
///   through `hyper_util`'s auto builder with an [`Executor`] on the same
///   runtime (HTTP/2 stream tasks are unplug tasks too) and tokio's timer
///   (HTTP/1 header read timeout, 30 s by default). `TCP_NODELAY` is set
///   on every connection. HTTP upgrades (e.g. WebSocket) are supported.
/// - `service` is cloned for each connection and called through
///   [`TowerToHyperService`]; an axum `Router` fits as it is.
/// - This future runs the accept loop itself: to have the accepts on the
///   workers too, spawn it with [`crate::spawn`] rather than awaiting it in
///   `Runtime::block_on` (where it runs on the calling thread; connections
///   are on the workers either way).
/// - Accept errors: one connection's failure (reset or aborted before it
///   was accepted) is skipped; running out of a resource (`EMFILE`,
///   `ENFILE`, `ENOBUFS`, `ENOMEM`, and any error not listed here) is
///   logged at `warn` through `log` and retried after
///   [`ACCEPT_ERROR_BACKOFF`]; the listener itself being unusable
///   (`EBADF`, `EINVAL`, `ENOTSOCK`, `EOPNOTSUPP`) ends the loop and, after
///   the graceful shutdown below, is returned as the error.
///
/// **Graceful shutdown.** When `shutdown` completes: the listener is
/// closed at once (new connections are refused), every open connection is
/// told to shut down gracefully (hyper's `graceful_shutdown`: an idle
/// HTTP/1 connection closes, one with a request in flight closes after
/// sending its response; HTTP/2 sends GOAWAY and finishes the streams it
/// has), and the returned future completes once every connection task has
/// ended. It waits as long as they take: a request still being read or
/// handled, a client trickling a request head (up to hyper's 30 s header
/// read timeout), an HTTP/2 peer that stopped answering (up to about twice
/// [`HTTP2_KEEP_ALIVE`]). To bound it, wrap the call in
/// [`tokio::time::timeout`]. Dropping this future (before or during that
/// wait) is a shutdown signal too: the connection tasks already spawned
/// are told to shut down gracefully, and end on their own.
///
/// **Clients that stall or leave.** A connection that sends nothing, or
/// not enough to tell HTTP/1 from HTTP/2, is closed after
/// [`FIRST_BYTES_TIMEOUT`]; an HTTP/1 client that does not finish its
/// request head, after hyper's header read timeout (30 s). HTTP/1
/// clients that half-close after sending a request still get the
/// response. A handler under way is not cancelled when its client goes
/// away (hyper does not read the connection while a handler runs): it runs
/// to its end, and a graceful shutdown waits for it. Give slow handlers a
/// deadline of their own (`tokio::time::timeout`, tower's `Timeout`).
///
/// # Panics
///
/// When polled outside an unplug runtime (it spawns on the current one).
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let runtime = Handle::current();
    let mut builder = auto::Builder::new(Executor::new(runtime.clone()));
    // A client that half-closes after its request still gets the answer.
    // (Turning this off does not cancel the handler of a client that has
    // left either: hyper does not read while a handler runs. Measured on
    // 2026-12-04; see the docs above.)
    builder.http1().timer(TokioTimer::new()).half_close(true);
    // An HTTP/2 peer that stops answering cannot hold a graceful shutdown
    // (GOAWAY waits for a PING's answer) or a connection forever.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(HTTP2_KEEP_ALIVE)
        .keep_alive_timeout(HTTP2_KEEP_ALIVE);
    let builder = Arc::new(builder);

    // Every connection task holds a receiver: the sender signals them all
    // and `closed()` waits until the last one has dropped its receiver.
    let (stop, _) = tokio::sync::watch::channel(false);
    let mut shutdown = pin!(shutdown);
    let mut fatal = None;

    loop {
        // A resource error's backoff runs inside `accept`, so a shutdown
        // during it is seen at once too.
        let stream = match until(shutdown.as_mut(), accept(&listener, "unplug::http::serve")).await
        {
            None => break,
            Some(Ok(stream)) => stream,
            Some(Err(e)) => {
                log::error!("unplug::http::serve: the listener failed: {e}");
                fatal = Some(e);
                break;
            }
        };
        // Latency over coalescing: a response is written as one buffer.
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        let service = TowerToHyperService::new(service.clone());
        let mut stopped = stop.subscribe();
        runtime.spawn(async move {
            let stream = FirstBytes::new(stream, FIRST_BYTES_TIMEOUT);
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            let mut connection = pin!(connection);
            let mut signal = pin!(stopped.changed());
            let mut signalled = false;
            let result = poll_fn(|cx| {
                // A closed channel (the sender dropped with `serve`'s future)
                // is a shutdown signal too.
                if !signalled && signal.as_mut().poll(cx).is_ready() {
                    signalled = true;
                    connection.as_mut().graceful_shutdown();
                }
                connection.as_mut().poll(cx)
            })
            .await;
            if let Err(e) = result {
                log::debug!("unplug::http::serve: connection: {e}");
            }
            // `stopped` drops here, after the connection: `serve` is waiting
            // on it.
        });
    }

    // Stop accepting before anything else: connections arriving from here
    // on are refused.
    drop(listener);
    stop.send_replace(true);
    stop.closed().await;
    match fatal {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `future`'s output, or `None` if `shutdown` completes first. `shutdown`
/// must not be polled again after it returned `None`.
async fn until<F: Future>(
    mut shutdown: Pin<&mut impl Future<Output = ()>>,
    future: F,
) -> Option<F::Output> {
    let mut future = pin!(future);
    poll_fn(|cx| {
        if shutdown.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        future.as_mut().poll(cx).map(Some)
    })
    .await
}
