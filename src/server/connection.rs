//! Connection timeouts (issue 15, probe 6): a connection that opens and sends nothing, or
//! a partial HTTP/2 preface, no longer holds a descriptor for ever.
//!
//! [`GuardedIo`] wraps each accepted TCP stream (below TLS, if any):
//! - **Handshake**: the first [`HANDSHAKE_BYTES`] bytes (the length of the HTTP/2 client
//!   preface) must arrive within `server.handshake_timeout_secs`.
//! - **Idle**: after that, a connection from which nothing is read for
//!   `server.connection_idle_secs` is closed. A live client is never idle that long: the
//!   server's HTTP/2 keepalive pings (`server.keepalive_interval_secs`, sent also when no
//!   call is open) are answered, and reading a response sends window updates.
//!
//! The read side times out with `TimedOut`; hyper then drops the connection.

use std::{
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    time::{Instant, Sleep},
};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Bytes a new connection must send within the handshake timeout: the HTTP/2 client
/// preface `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n` (RFC 9113 §3.4).
pub const HANDSHAKE_BYTES: usize = 24;

/// The timeouts of a connection.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionTimeouts {
    pub handshake: Duration,
    pub idle: Duration,
}

/// An accepted TCP stream with the handshake and idle timeouts.
pub struct GuardedIo {
    io: TcpStream,
    timer: Pin<Box<Sleep>>,
    timeouts: ConnectionTimeouts,
    /// Bytes read so far, up to [`HANDSHAKE_BYTES`].
    read: usize,
}

impl GuardedIo {
    /// Wraps a freshly accepted stream; the handshake clock starts now.
    pub fn new(io: TcpStream, timeouts: ConnectionTimeouts) -> Self {
        GuardedIo {
            io,
            timer: Box::pin(tokio::time::sleep(timeouts.handshake)),
            timeouts,
            read: 0,
        }
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len() - before;
                if n > 0 {
                    let was = self.read;
                    self.read = (was + n).min(HANDSHAKE_BYTES);
                    // During the handshake the deadline stands; after it, each read
                    // restarts the idle clock.
                    if self.read >= HANDSHAKE_BYTES {
                        let at = Instant::now() + self.timeouts.idle;
                        self.timer.as_mut().reset(at);
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let (what, secs) = if self.read < HANDSHAKE_BYTES {
                        ("handshake", self.timeouts.handshake)
                    } else {
                        ("idle", self.timeouts.idle)
                    };
                    tracing::debug!(what, "closing a connection past its {what} timeout");
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("connection {what} timeout of {} s", secs.as_secs()),
                    )))
                }
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl Connected for GuardedIo {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}
