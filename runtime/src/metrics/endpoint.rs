//! The `/metrics` endpoint: unplug's own accept loop on the exporter
//! thread, serving the recorder's text over hyper's HTTP/1.
//!
//! ENDPOINT-OWN-LOOP: `metrics-exporter-prometheus`'s listener (used
//! before) served every path and method with the metrics, kept a client
//! that stalled inside its request head for as long as it stayed connected
//! (hyper's header timeout needs a timer it was not given), and retried a
//! failed accept at once, spinning on `EMFILE` (a red team of the metrics:
//! 0.6-0.8 s of CPU a second with the descriptors held by idle clients).
//! Here, as in `unplug::http::serve`'s loop (`accept.rs`):
//! - a connection that sends nothing is closed after `FIRST_BYTES_TIMEOUT`
//!   (30 s), one that does not finish a request head after
//!   [`HEADER_READ_TIMEOUT`];
//! - an accept error about one connection is skipped, one about a resource
//!   is retried after [`ACCEPT_ERROR_BACKOFF`]; a broken listener ends the
//!   endpoint (logged);
//! - `GET` and `HEAD` of `/metrics` get the text; any other path is `404`,
//!   any other method on `/metrics` is `405` (with `Allow`).

use crate::accept::{accept, FirstBytes, FIRST_BYTES_TIMEOUT};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::PrometheusHandle;
use std::convert::Infallible;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long a client may take to send a whole request head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The exposition format's content type.
const EXPOSITION: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves `/metrics` on `listener` from `handle` for good (the exporter
/// thread's whole life), running the recorder's upkeep every `upkeep`.
pub(super) async fn serve(listener: TcpListener, handle: PrometheusHandle, upkeep: Duration) {
    let kept = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(upkeep);
        loop {
            every.tick().await;
            kept.run_upkeep();
        }
    });
    loop {
        let stream = match accept(&listener, "unplug metrics endpoint").await {
            Ok(stream) => stream,
            Err(e) => {
                log::error!("unplug metrics endpoint: the listener failed: {e}");
                return;
            }
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let io = TokioIo::new(FirstBytes::new(stream, FIRST_BYTES_TIMEOUT));
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let response = respond(&request, &handle);
                async move { Ok::<_, Infallible>(response) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(io, service)
                .await;
            if let Err(e) = served {
                log::debug!("unplug metrics endpoint: connection: {e}");
            }
        });
    }
}

/// The answer to one request.
fn respond(request: &Request<Incoming>, handle: &PrometheusHandle) -> Response<String> {
    let status = |code: StatusCode, text: &str| {
        let mut response = Response::new(text.to_owned());
        *response.status_mut() = code;
        response
    };
    if request.uri().path() != "/metrics" {
        return status(
            StatusCode::NOT_FOUND,
            "not found: metrics are at /metrics\n",
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = status(StatusCode::METHOD_NOT_ALLOWED, "use GET or HEAD\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let mut response = Response::new(handle.render());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(EXPOSITION));
    response
}
