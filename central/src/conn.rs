//! The centre's connection loop: what a client must do, and how fast, to hold a connection.
//!
//! Three limits, all enforced before a request reaches a handler (the handlers then authenticate
//! before reading a body, see [`crate::server`]):
//! - **per peer**: at most [`ConnLimits::per_peer`] connections open at once from one address;
//!   one more is closed at accept, before any TLS work;
//! - **handshake**: a TLS handshake not finished within [`ConnLimits::handshake`] is dropped, and
//!   handshakes run off the accept path, so a slow van on 3G does not hold up the others;
//! - **request head**: hyper's header read timeout — a client that does not send a whole request
//!   head within [`ConnLimits::header`] of connecting (or of its previous request, on a kept-alive
//!   connection) is cut.
//!
//! Shutdown is graceful: the listener stops accepting, each connection finishes the request it is
//! serving (an ingest in flight commits) and closes.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// How long and how many: see the module docs.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub handshake: Duration,
    pub header: Duration,
    pub per_peer: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            handshake: Duration::from_secs(20),
            header: Duration::from_secs(20),
            per_peer: 64,
        }
    }
}

/// Open connections per peer address.
#[derive(Debug, Default)]
struct Peers(Mutex<HashMap<IpAddr, usize>>);

/// One counted connection; the count goes down when the connection ends.
#[derive(Debug)]
struct PeerSlot {
    peers: Arc<Peers>,
    ip: IpAddr,
}

impl Peers {
    fn take(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<PeerSlot> {
        let mut open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            peers: self.clone(),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self.peers.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// A connection ready for HTTP: the stream, its peer and its slot.
type Ready<Io> = (Io, SocketAddr, PeerSlot);

/// Accept TCP connections, counted per peer; `prepare` turns each into a stream ready for HTTP
/// (the TLS handshake, or nothing) within its own task.
fn accept_loop<Io, F, Fut>(
    listener: TcpListener,
    limits: ConnLimits,
    prepare: F,
) -> mpsc::Receiver<Ready<Io>>
where
    Io: Send + 'static,
    F: Fn(TcpStream, SocketAddr) -> Fut + Send + 'static,
    Fut: Future<Output = Option<Io>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    let peers = Arc::new(Peers::default());
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if tx.is_closed() {
                return;
            }
            let Some(slot) = peers.take(peer.ip(), limits.per_peer) else {
                tracing::info!(%peer, cap = limits.per_peer, "too many connections from this peer: closed");
                continue;
            };
            let ready = prepare(tcp, peer);
            let done = tx.clone();
            tokio::spawn(async move {
                if let Some(io) = ready.await {
                    let _ = done.send((io, peer, slot)).await;
                }
            });
        }
    });
    rx
}

/// Serve `app` on connections from `incoming` until `shutdown` completes, then let every
/// connection finish its request.
async fn serve_incoming<Io>(
    mut incoming: mpsc::Receiver<Ready<Io>>,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a receiver; all gone = all connections closed.
    let (alive_tx, alive_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (io, peer, slot) = tokio::select! {
            next = incoming.recv() => match next {
                Some(c) => c,
                None => break,
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let (mut stop, alive) = (stop_rx.clone(), alive_rx.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let _alive = alive;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header);
            let conn = builder.serve_connection(TokioIo::new(io), service);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                // The one change is the shutdown (sent after the last connection was taken).
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
    drop(incoming);
    let _ = stop_tx.send(true);
    drop(alive_rx);
    alive_tx.closed().await;
    Ok(())
}

/// Serve `app` over TLS until `shutdown` completes.
pub async fn serve_tls(
    listener: TcpListener,
    config: rustls::ServerConfig,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let incoming = accept_loop(listener, limits, move |tcp, peer| {
        let acceptor = acceptor.clone();
        async move {
            match tokio::time::timeout(limits.handshake, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => Some(tls),
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, "TLS handshake refused");
                    None
                }
                Err(_) => {
                    tracing::info!(%peer, "TLS handshake timed out");
                    None
                }
            }
        }
    });
    serve_incoming(incoming, app, limits, shutdown).await
}

/// Serve `app` as plain HTTP until `shutdown` completes (loopback only; the caller checks).
pub async fn serve_plain(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let incoming = accept_loop(listener, limits, |tcp, _peer| async move { Some(tcp) });
    serve_incoming(incoming, app, limits, shutdown).await
}
