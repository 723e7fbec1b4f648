//! Serving HTTP/1.1 with the bounds a public endpoint needs: a deadline for request
//! headers (no slowloris), a cap on the header buffer and on connections, keep-alive, and
//! graceful shutdown that lets in-flight requests finish. The identity provider and the
//! gateway both listen through here; it must never know what they serve.

use std::error::Error as StdError;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

pub use hyper_util::service::TowerToHyperService;

/// Time a client has to send its request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest buffer for a request's head (request line and headers).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 10_000;
/// Time in-flight requests get to finish on shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Binds `count` listening sockets to `addr` with `SO_REUSEPORT`, so that `count` threads can
/// each accept on their own socket (the kernel spreads new connections between them). With
/// port 0, the others take the port the first one got. Call inside a Tokio runtime; the
/// sockets come back deregistered, for [`TcpListener::from_std`] on the thread that serves.
pub fn bind_reuseport(addr: SocketAddr, count: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    if addr.port() != 0 {
        // Sockets with SO_REUSEPORT of the same user share a port silently: make sure no one
        // (a second `portcullis up`, say) listens there already.
        let probe = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        probe.set_reuseaddr(true)?;
        probe.bind(addr)?;
        drop(probe.listen(1)?);
    }
    let mut out = Vec::with_capacity(count);
    let mut addr = addr;
    for _ in 0..count.max(1) {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.set_reuseport(true)?;
        socket.set_nodelay(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(LISTEN_BACKLOG)?;
        addr = listener.local_addr()?;
        out.push(listener.into_std()?);
    }
    Ok(out)
}

/// Pending connections the kernel queues per listening socket.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Serves `listener` until `shutdown` resolves; `service_for` makes the service of one
/// connection from the peer's address.
pub async fn serve<M, S, B>(listener: TcpListener, service_for: M, shutdown: impl Future<Output = ()>)
where
    M: Fn(SocketAddr) -> S,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        // At the cap, stop accepting (new connections wait in the kernel's backlog) rather
        // than run out of memory or file descriptors.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let service = service_for(peer);
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .max_buf_size(MAX_HEAD_BYTES)
                    .max_header_size(MAX_HEAD_BYTES / 2)
                    .serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                    drop(slot);
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within the shutdown grace period");
    }
}
