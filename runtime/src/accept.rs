//! Accepting connections, shared by `unplug::http::serve` (feature
//! `hyper`) and the `/metrics` endpoint: what an accept error means for the
//! loop, and FIRST-BYTES, the deadline for a new connection's first bytes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// How long the accept loop waits after an accept error that is not about
/// one connection (out of file descriptors, memory, buffers) before trying
/// again. Retrying at once would spin on the same error.
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// How long a new connection may take to send the bytes that tell HTTP/1
/// from HTTP/2 (the 24 of HTTP/2's preface, or fewer that already differ
/// from it) before it is closed: the same as hyper's HTTP/1 header read
/// timeout. The protocol detection has no timer of its own, so a client
/// that connected and sent nothing held its connection, its task and a
/// file descriptor for good (FIRST-BYTES).
pub const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(30);

/// The next connection on `listener`, for an accept loop (`who` names it
/// in the log): an error about one pending connection is skipped, one
/// about a resource (`EMFILE`, ...) is logged and retried after
/// [`ACCEPT_ERROR_BACKOFF`] (retrying at once spun a CPU); only a broken
/// listener is returned. Cancel-safe: dropping it between attempts loses
/// no connection.
pub(crate) async fn accept(listener: &TcpListener, who: &str) -> io::Result<TcpStream> {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => return Ok(stream),
            Err(e) => match classify(&e) {
                AcceptError::Connection => log::debug!("{who}: accept: {e}"),
                AcceptError::Resource => {
                    log::warn!("{who}: accept: {e}; retrying in {ACCEPT_ERROR_BACKOFF:?}");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
                AcceptError::Listener => return Err(e),
            },
        }
    }
}

/// What an accept error means for the loop.
enum AcceptError {
    /// One pending connection failed; the next accept may succeed.
    Connection,
    /// Out of some resource: back off, then retry.
    Resource,
    /// The listening socket itself is broken: retrying cannot help.
    Listener,
}

fn classify(e: &io::Error) -> AcceptError {
    use io::ErrorKind::*;
    match e.kind() {
        // accept(2) also reports network errors already pending on the new
        // socket; they belong to that connection.
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
        | TimedOut | HostUnreachable | NetworkUnreachable | NetworkDown => {
            return AcceptError::Connection
        }
        InvalidInput => return AcceptError::Listener,
        _ => {}
    }
    #[cfg(unix)]
    match e.raw_os_error() {
        Some(libc::EBADF | libc::ENOTSOCK | libc::EOPNOTSUPP) => return AcceptError::Listener,
        Some(libc::EPROTO | libc::ENOPROTOOPT | libc::EHOSTDOWN) => return AcceptError::Connection,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Some(libc::ENONET) => return AcceptError::Connection,
        _ => {}
    }
    AcceptError::Resource
}

/// FIRST-BYTES: a connection that must deliver its first
/// [`DETECTION_BYTES`] bytes before a deadline, or reads fail with
/// `TimedOut` (hyper then closes it). After them it is the stream itself.
pub(crate) struct FirstBytes {
    stream: TcpStream,
    /// Armed until the first bytes are in.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    read: usize,
}

/// HTTP/2's connection preface: what hyper-util's detection compares the
/// first bytes with.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What hyper-util's detection needs at most.
const DETECTION_BYTES: usize = H2_PREFACE.len();

impl FirstBytes {
    pub(crate) fn new(stream: TcpStream, timeout: Duration) -> Self {
        FirstBytes {
            stream,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            read: 0,
        }
    }
}

impl AsyncRead for FirstBytes {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if this.deadline.is_none() {
            return polled;
        }
        let new = &buf.filled()[before..];
        let got = new.len();
        // Detection is done once a byte differs from HTTP/2's preface
        // (HTTP/1: hyper's header read timeout takes over) or the whole
        // preface is in (HTTP/2: its keep-alive pings take over); a read
        // that ended the stream (0 bytes) ends the wait too.
        let differs = new
            .iter()
            .zip(&H2_PREFACE[this.read.min(DETECTION_BYTES)..])
            .any(|(a, b)| a != b);
        this.read += got;
        if differs || this.read >= DETECTION_BYTES || (polled.is_ready() && got == 0) {
            this.deadline = None;
            return polled;
        }
        if polled.is_pending() {
            if let Some(deadline) = this.deadline.as_mut() {
                if deadline.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no HTTP request within the first-bytes timeout",
                    )));
                }
            }
        }
        polled
    }
}

impl AsyncWrite for FirstBytes {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn accept_errors_are_classified() {
        let os = io::Error::from_raw_os_error;
        assert!(matches!(classify(&os(libc::EMFILE)), AcceptError::Resource));
        assert!(matches!(classify(&os(libc::ENFILE)), AcceptError::Resource));
        assert!(matches!(
            classify(&os(libc::ENOBUFS)),
            AcceptError::Resource
        ));
        assert!(matches!(classify(&os(libc::ENOMEM)), AcceptError::Resource));
        assert!(matches!(
            classify(&os(libc::ECONNABORTED)),
            AcceptError::Connection
        ));
        assert!(matches!(
            classify(&os(libc::EPROTO)),
            AcceptError::Connection
        ));
        assert!(matches!(classify(&os(libc::EBADF)), AcceptError::Listener));
        assert!(matches!(classify(&os(libc::EINVAL)), AcceptError::Listener));
    }
}
