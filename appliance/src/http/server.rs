//! The listener loop: TLS handshake (with a deadline), HTTP/1.1 with a
//! header-read timeout, and a graceful stop in two phases.
//!
//! When `stop` resolves (SIGTERM), the server keeps accepting and serving
//! for the drain delay, so that a balancer polling `/readyz` (503 from the
//! same moment) takes this replica out before it goes away; every response
//! in that window carries `Connection: close`, so no client reuses a
//! connection that is about to end. Then it stops accepting and waits, up
//! to the grace period, for the connections it has: a request in flight is
//! answered; a connection accepted but still in its TLS handshake, or not
//! yet past its first request line, gets that first request answered too
//! (bounded by the handshake and header-read timeouts) — an accepted
//! connection is never closed without an answer. Idle keep-alive
//! connections are closed.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue};
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Timeouts and limits of the listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    /// How long the server keeps accepting after the stop request.
    pub drain_delay: Duration,
    /// How long open connections then get to finish.
    pub shutdown_grace: Duration,
}

/// Outcome of a drained shutdown.
#[derive(Debug, PartialEq, Eq)]
pub enum Drain {
    /// Every connection finished.
    Complete,
    /// The grace period ran out with connections still open.
    TimedOut,
}

/// Serves `app` on `listener` until `stop` resolves, drains as the module
/// describes, and returns when every connection has ended or the grace
/// period is over.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: Router,
    limits: Limits,
    stop: impl Future<Output = ()>,
) -> Drain {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Some(limits.header_read_timeout))
        .keep_alive(true);
    let acceptor = Acceptor {
        listener,
        tls: tls.map(TlsAcceptor::from),
        app,
        builder,
        limits,
        // `true` once draining: responses close their connection.
        draining: watch::channel(false).0,
        // `true` once accepting has stopped: connections wind down.
        closing: watch::channel(false).0,
    };
    acceptor.accept_until(stop).await;
    acceptor.draining.send_replace(true);
    acceptor
        .accept_until(tokio::time::sleep(limits.drain_delay))
        .await;
    let Acceptor {
        listener, closing, ..
    } = acceptor;
    drop(listener);
    closing.send_replace(true);
    // Every connection task holds a receiver: all gone, all ended.
    tokio::select! {
        () = closing.closed() => Drain::Complete,
        () = tokio::time::sleep(limits.shutdown_grace) => Drain::TimedOut,
    }
}

struct Acceptor {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    builder: http1::Builder,
    limits: Limits,
    draining: watch::Sender<bool>,
    closing: watch::Sender<bool>,
}

impl Acceptor {
    async fn accept_until(&self, until: impl Future<Output = ()>) {
        tokio::pin!(until);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and similar: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut until => return,
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(self.connection(stream, peer));
        }
    }

    /// One connection's whole life, from the TLS handshake to its end.
    fn connection(
        &self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
    ) -> impl Future<Output = ()> + Send + 'static {
        let first_request = Arc::new(Notify::new());
        let draining = self.draining.subscribe();
        let service = {
            let first_request = first_request.clone();
            self.app
                .clone()
                .map_request(move |mut request: axum::extract::Request<_>| {
                    first_request.notify_one();
                    request
                        .extensions_mut()
                        .insert(ConnectInfo::<SocketAddr>(peer));
                    request
                })
                .map_response(move |mut response: axum::response::Response| {
                    if *draining.borrow() {
                        response
                            .headers_mut()
                            .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    }
                    response
                })
        };
        let service = TowerToHyperService::new(service);
        let builder = self.builder.clone();
        let acceptor = self.tls.clone();
        let handshake_timeout = self.limits.tls_handshake_timeout;
        let closing = self.closing.subscribe();
        async move {
            let result = match acceptor {
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await;
                    let tls_stream = match handshake {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let connection = builder.serve_connection(TokioIo::new(tls_stream), service);
                    until_closed(connection, closing, &first_request).await
                }
                None => {
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    until_closed(connection, closing, &first_request).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
    }
}

/// Drives `connection` to its end; once the server closes, ends it after
/// its current request — or after its first one, when none came yet (the
/// header-read timeout bounds that wait).
async fn until_closed<I, S>(
    connection: http1::Connection<I, S>,
    mut closing: watch::Receiver<bool>,
    first_request: &Notify,
) -> hyper::Result<()>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => return result,
        _ = closing.wait_for(|closed| *closed) => {}
    }
    tokio::select! {
        result = connection.as_mut() => return result,
        () = first_request.notified() => {}
    }
    connection.as_mut().graceful_shutdown();
    connection.await
}
