//! The accept loop: TLS handshakes, then hyper serving a tower service on each connection.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use prism_domain::certificate::Serial;
use rustls::pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower_service::Service;
use tracing::{debug, info, warn};

use crate::config::{Alpn, TlsServerConfig};
use crate::revocation::{RevokedSerials, Tracked};
use crate::verifier::serial_of;

/// How long a peer has to complete its TLS handshake before the connection is dropped: a silent or
/// slow peer must not hold a task and a socket forever.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections may run after shutdown begins before they are dropped.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// A failed `accept` (no file descriptors left, most often) is retried after this pause rather than
/// at once, which would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// HTTP/2 pings find peers that vanished without closing (a CVM switched off): their connections,
/// and their registrations in [`RevokedSerials`], end instead of lingering.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The client certificate a connection was made with, in the extensions of every request on it
/// (`request.extensions().get::<PeerCertificate>()`; tonic copies it into `tonic::Request`'s). Absent
/// when the server does not authenticate clients. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PeerCertificate(Arc<Peer>);

#[derive(Debug)]
struct Peer {
    serial: Serial,
    der: CertificateDer<'static>,
}

impl PeerCertificate {
    /// The end entity's serial number.
    pub fn serial(&self) -> &Serial {
        &self.0.serial
    }

    /// The end entity's certificate (DER), verified at the handshake.
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.0.der
    }
}

/// The remote address of the connection, in the extensions of every request on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// A client certificate the server refused: at the handshake (unknown issuer, expired, revoked, none
/// presented), or after it (no usable serial, revoked by the time the connection was registered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The peer that presented it.
    pub remote: SocketAddr,
    /// Why, as rustls or the server says it.
    pub reason: String,
    /// The certificate's serial, when the refusal came after the handshake.
    pub serial: Option<Serial>,
}

/// Told of every [`Refusal`], to record it; it must not block (spawn what takes time).
pub type OnRefusal = Arc<dyn Fn(Refusal) + Send + Sync>;

/// A TLS server on a bound listener. [`serve`] is the short form with the default timeouts.
pub struct Server {
    listener: TcpListener,
    tls: TlsServerConfig,
    handshake_timeout: Duration,
    shutdown_grace: Duration,
    on_refusal: Option<OnRefusal>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("shutdown_grace", &self.shutdown_grace)
            .finish_non_exhaustive()
    }
}

/// Serves `service` over TLS on `listener` until `shutdown` resolves; see [`Server::serve`].
pub async fn serve<S, B>(
    listener: TcpListener,
    tls: TlsServerConfig,
    service: S,
    shutdown: impl Future<Output = ()>,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    Server::new(listener, tls).serve(service, shutdown).await;
}

impl Server {
    /// A server accepting on `listener` with `tls`, the default handshake timeout and shutdown grace.
    pub fn new(listener: TcpListener, tls: TlsServerConfig) -> Self {
        Self {
            listener,
            tls,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            on_refusal: None,
        }
    }

    /// Who is told of each refused client certificate (besides the log).
    pub fn on_refusal(mut self, on_refusal: OnRefusal) -> Self {
        self.on_refusal = Some(on_refusal);
        self
    }

    /// How long a peer has to complete its handshake.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How long open connections may run after shutdown begins.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// The address the listener is bound to (a test binds port 0 and asks).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections until `shutdown` resolves, each in its own task: the TLS handshake (within
    /// the handshake timeout), then hyper serving `service` — HTTP/2 only when ALPN is
    /// [`Alpn::Http2`], HTTP/2 or HTTP/1.1 otherwise. Every request carries [`PeerAddr`] and, under
    /// client authentication, [`PeerCertificate`] in its extensions. A connection made with a
    /// certificate that is later revoked is dropped at once, whatever it is doing.
    ///
    /// A failed handshake (a refused certificate, garbage, a plain-HTTP client, a timeout) is logged
    /// — at `warn` for a refused client certificate, at `debug` otherwise — and ends only its own
    /// connection.
    ///
    /// Shutdown: the listener is closed first, so new connections are refused; handshakes in progress
    /// are abandoned; open connections are asked to finish (HTTP/2 GOAWAY, which lets the streams
    /// already open complete; HTTP/1.1 closes after the response in flight) and dropped when the
    /// grace period ends — a gRPC stream that never ends holds on only that long. Returns when every
    /// connection has ended.
    pub async fn serve<S, B>(self, service: S, shutdown: impl Future<Output = ()>)
    where
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn StdError + Send + Sync>>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let Self {
            listener,
            tls,
            handshake_timeout,
            shutdown_grace,
            on_refusal,
        } = self;
        let acceptor = TlsAcceptor::from(Arc::clone(tls.rustls()));
        let builder = http_builder(tls.alpn());
        // Connections hold a receiver each: `send_replace(true)` tells them to stop, and `closed()`
        // resolves when the last of them has ended.
        let (stop, _) = watch::channel(false);
        tokio::pin!(shutdown);
        loop {
            let (tcp, remote) = tokio::select! {
                biased;
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        warn!(%error, "accepting a TCP connection failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                },
            };
            // Small gRPC messages must not wait for Nagle's algorithm.
            if let Err(error) = tcp.set_nodelay(true) {
                debug!(%remote, %error, "TCP_NODELAY");
            }
            let connection = Connection {
                acceptor: acceptor.clone(),
                builder: builder.clone(),
                revoked: tls.revoked().cloned(),
                handshake_timeout,
                shutdown_grace,
                stop: stop.subscribe(),
                remote,
                on_refusal: on_refusal.clone(),
            };
            tokio::spawn(connection.run(tcp, service.clone()));
        }
        drop(listener);
        stop.send_replace(true);
        stop.closed().await;
    }
}

fn http_builder(alpn: Alpn) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if alpn == Alpn::Http2 {
        builder = builder.http2_only();
    }
    builder.http1().timer(TokioTimer::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT);
    builder
}

/// One accepted connection and what it needs from its server.
struct Connection {
    acceptor: TlsAcceptor,
    builder: auto::Builder<TokioExecutor>,
    revoked: Option<Arc<RevokedSerials>>,
    handshake_timeout: Duration,
    shutdown_grace: Duration,
    stop: watch::Receiver<bool>,
    remote: SocketAddr,
    on_refusal: Option<OnRefusal>,
}

/// Why a connection's serving ended early.
enum Outcome {
    Ended(Result<(), Box<dyn StdError + Send + Sync>>),
    Revoked,
    Stop,
}

impl Connection {
    async fn run<S, B>(mut self, tcp: TcpStream, service: S)
    where
        S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<Box<dyn StdError + Send + Sync>>,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        let remote = self.remote;
        let handshake = tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(tcp));
        let tls = tokio::select! {
            result = handshake => result,
            _ = self.stop.wait_for(|stop| *stop) => return,
        };
        let tls = match tls {
            Ok(Ok(tls)) => tls,
            Ok(Err(error)) => return self.handshake_failed(&error),
            Err(_) => return debug!(%remote, "TLS handshake timed out"),
        };
        let peer = match tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
        {
            None => None,
            Some(leaf) => match serial_of(leaf) {
                Some(serial) => Some(PeerCertificate(Arc::new(Peer {
                    serial,
                    der: leaf.clone().into_owned(),
                }))),
                None => {
                    // Verified, yet without a serial the platform can name: it could never be
                    // revoked, so it is not served.
                    warn!(%remote, "client certificate without a usable serial number refused");
                    return self.refused("client certificate without a usable serial number", None);
                }
            },
        };
        // Registered first, so that a later `revoke` finds the connection; then the set is read
        // again (see `revocation.rs` for why this order leaves no gap).
        let tracked = match (&peer, &self.revoked) {
            (Some(peer), Some(revoked)) => Some(revoked.track(peer.serial().clone())),
            _ => None,
        };
        if let Some(tracked) = tracked.as_ref().filter(|t| t.is_revoked()) {
            // A resumed session (which skips the verifier) or a revocation during the handshake:
            // not one byte of HTTP is served.
            info!(%remote, serial = %tracked.serial(), "client certificate revoked: connection refused");
            return self.refused("client certificate revoked", Some(tracked.serial().clone()));
        }
        let service = TowerToHyperService::new(WithPeer {
            inner: service,
            peer,
            addr: PeerAddr(remote),
        });
        // Not `serve_connection_with_upgrades`: it ignores `http2_only` and would speak HTTP/1.1 on
        // a gRPC listener to a client that sent no ALPN. HTTP/1.1 upgrades (WebSocket) are thus not
        // served; nothing on the platform uses them.
        let connection = self.builder.serve_connection(TokioIo::new(tls), service);
        tokio::pin!(connection);
        let outcome = tokio::select! {
            // Revocation first: a connection with work to do must not delay its own cut.
            biased;
            () = revoked(tracked.as_ref()) => Outcome::Revoked,
            result = connection.as_mut() => Outcome::Ended(result),
            _ = self.stop.wait_for(|stop| *stop) => Outcome::Stop,
        };
        let outcome = match outcome {
            Outcome::Stop => {
                connection.as_mut().graceful_shutdown();
                tokio::select! {
                    result = tokio::time::timeout(self.shutdown_grace, connection.as_mut()) => match result {
                        Ok(result) => Outcome::Ended(result),
                        Err(_) => return debug!(%remote, "connection dropped at the end of the shutdown grace"),
                    },
                    () = revoked(tracked.as_ref()) => Outcome::Revoked,
                }
            }
            outcome => outcome,
        };
        match outcome {
            Outcome::Ended(Ok(())) | Outcome::Stop => {}
            Outcome::Ended(Err(error)) => debug!(%remote, %error, "connection ended with an error"),
            Outcome::Revoked => {
                // Returning drops the connection future: the socket closes, and with it every stream
                // on it (closing one HTTP/2 stream would not do: clients reuse the connection).
                let serial = tracked
                    .as_ref()
                    .map(|t| t.serial().to_string())
                    .unwrap_or_default();
                info!(%remote, %serial, "client certificate revoked: connection closed");
            }
        }
    }
}

/// Resolves when the connection's certificate is revoked; never without one.
async fn revoked(tracked: Option<&Tracked>) {
    match tracked {
        Some(tracked) => tracked.revoked().await,
        None => std::future::pending().await,
    }
}

impl Connection {
    fn handshake_failed(&self, error: &io::Error) {
        let remote = self.remote;
        // tokio-rustls hands rustls's error over inside the I/O error.
        let tls = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        match tls {
            Some(
                refusal @ (rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented),
            ) => {
                warn!(%remote, error = %refusal, "client certificate refused");
                self.refused(&refusal.to_string(), None);
            }
            _ => debug!(%remote, %error, "TLS handshake failed"),
        }
    }

    fn refused(&self, reason: &str, serial: Option<Serial>) {
        if let Some(on_refusal) = &self.on_refusal {
            on_refusal(Refusal {
                remote: self.remote,
                reason: reason.to_owned(),
                serial,
            });
        }
    }
}

/// The caller's service with the connection's identity added to each request.
#[derive(Clone)]
struct WithPeer<S> {
    inner: S,
    peer: Option<PeerCertificate>,
    addr: PeerAddr,
}

impl<S, B> Service<Request<B>> for WithPeer<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let extensions = request.extensions_mut();
        extensions.insert(self.addr);
        if let Some(peer) = &self.peer {
            extensions.insert(peer.clone());
        }
        self.inner.call(request)
    }
}

impl<S> fmt::Debug for WithPeer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithPeer")
            .field("peer", &self.peer)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}
