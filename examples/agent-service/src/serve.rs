//! The HTTP/1.1 accept loop: `axum::serve` plus the one thing it lacks, a
//! timer.
//!
//! `axum::serve` gives hyper no timer, so hyper's header-read timeout never
//! applies: a client that trickles its headers (or opens a connection and
//! sends nothing) holds a socket and a task for as long as it likes. This
//! loop serves each connection with
//! `http1::Builder::timer(TokioTimer).header_read_timeout(..)`, and gives up
//! on a client that stops reading its response ([`SendTimeout`]). Each
//! request carries its connection's peer address as axum's
//! `ConnectInfo<SocketAddr>`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::{Extension, Router};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::time::Sleep;
use tower_layer::Layer;

/// The code logged for a request hyper's parser refused, if it was one.
fn parser_refusal(e: &hyper::Error) -> Option<&'static str> {
    if e.is_parse_too_large() {
        Some("REQUEST_HEAD_TOO_LARGE")
    } else if e.is_parse() || e.is_parse_status() {
        Some("REQUEST_HEAD_INVALID")
    } else {
        None
    }
}

use crate::limits::Limits;

/// Serves `app` on `listener` until `stop` fires (or its sender is
/// dropped), then lets the open connections finish, for at most the
/// longest of the timeouts.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    mut stop: oneshot::Receiver<()>,
) -> io::Result<()> {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        // Small JSON responses: do not wait for Nagle.
        let _ = stream.set_nodelay(true);
        // The peer, as `axum::serve` gives it with `ConnectInfo`: the
        // host source trusts `X-Forwarded-Host` only from a proxy's address.
        let service = TowerToHyperService::new(Extension(ConnectInfo(peer)).layer(app.clone()));
        let io = TokioIo::new(SendTimeout::new(stream, limits.send_timeout));
        let connection = graceful.watch(http.serve_connection(io, service));
        tokio::spawn(async move {
            // A request hyper's parser refused (`431`, `414`, `400`) never
            // reaches the router: logged here, once, like the refusals the
            // router answers. A client that went away, or an idle
            // connection closed by the header-read timeout, is not a
            // refused request.
            if let Err(e) = connection.await {
                if let Some(code) = parser_refusal(&e) {
                    tracing::info!(code, peer = %peer, error = %e, "request refused");
                }
            }
        });
    }
    drop(listener);
    let bound = limits
        .header_read_timeout
        .max(limits.request_timeout)
        .max(limits.send_timeout)
        + Duration::from_secs(1);
    let _ = tokio::time::timeout(bound, graceful.shutdown()).await;
    Ok(())
}

/// As `axum::serve` does: a connection's own error is the client's; any
/// other (out of file descriptors, ...) is logged, then the loop waits a
/// second for connections to close.
async fn accept_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// A socket whose writes fail once they have made no progress for
/// `timeout`: a client that stops reading its response (a "slow read")
/// cannot hold the connection. Like nginx's `send_timeout`, the clock is
/// for each stall, not for the whole response.
struct SendTimeout {
    io: TcpStream,
    timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl SendTimeout {
    fn new(io: TcpStream, timeout: Duration) -> Self {
        SendTimeout {
            io,
            timeout,
            stalled: None,
        }
    }

    /// `write`'s result, or a `TimedOut` error once the socket has not
    /// taken a byte for `timeout`.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        write: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if write.is_ready() {
            self.stalled = None;
            return write;
        }
        let timeout = self.timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading the response",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for SendTimeout {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendTimeout {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let write = Pin::new(&mut this.io).poll_write(cx, buf);
        this.watch(cx, write)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let write = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.watch(cx, write)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flush = Pin::new(&mut this.io).poll_flush(cx);
        this.watch(cx, flush)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
