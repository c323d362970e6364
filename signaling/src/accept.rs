//! The accept loop: every TCP connection is counted and bounded from the moment it is
//! accepted, not only once it has become a WebSocket.
//!
//! A connection that has not (yet) been upgraded — a plain HTTP request, keep-alive
//! between requests, an upgrade under way, or a client that opened a socket and said
//! nothing — is a *handshake*. Handshakes are bounded two ways:
//!
//! - in time: hyper closes a connection whose request head has not fully arrived
//!   `request_deadline_ms` after it started waiting for one (silent sockets, half-sent
//!   requests, idle keep-alive);
//! - in number: at most `handshakes_max` at once; a new connection past that evicts the
//!   oldest handshake. A flood of silent sockets therefore costs each of them its place
//!   a little sooner, and a request that is sent at once (`/healthz`, a page, an
//!   upgrade) is always served: it is the newest, not the oldest.
//!
//! WebSockets are bounded by `connections_max` at the upgrade (`http::upgrade`); a joined
//! member is never evicted by newcomers.
//!
//! `accept` failing (out of file descriptors, most often) is backed off exponentially up
//! to a second instead of spinning, counted, logged at most once a second, and frees the
//! oldest handshake's descriptor.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower_service::Service;

use crate::Shared;

/// Longest pause after a failed `accept`.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The handshakes open now, oldest first, each with the signal that evicts it.
#[derive(Default)]
pub(crate) struct Handshakes {
    open: Mutex<BTreeMap<u64, Arc<Notify>>>,
    next: AtomicU64,
}

/// One handshake's place; dropping it (the connection ended or was upgraded) frees it.
struct Handshake {
    id: u64,
    evicted: Arc<Notify>,
    all: Arc<Handshakes>,
}

impl Handshakes {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Notify>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a new connection; evicts the oldest if `max` are open already.
    fn admit(self: &Arc<Self>, max: usize) -> (Handshake, bool) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let evicted = Arc::new(Notify::new());
        let mut open = self.lock();
        let mut evicted_one = false;
        while open.len() >= max.max(1) {
            if let Some((_, oldest)) = open.pop_first() {
                // A stored permit: the connection sees it even if it is not waiting yet.
                oldest.notify_one();
                evicted_one = true;
            }
        }
        open.insert(id, evicted.clone());
        drop(open);
        let handshake = Handshake {
            id,
            evicted,
            all: self.clone(),
        };
        (handshake, evicted_one)
    }

    /// Evicts the oldest handshake, if any (to free a file descriptor).
    fn evict_oldest(&self) -> bool {
        let oldest = self.lock().pop_first();
        oldest.map(|(_, n)| n.notify_one()).is_some()
    }

    /// Handshakes open now.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        self.all.lock().remove(&self.id);
    }
}

/// Accepts connections on `listener` and serves each with `app` until shutdown begins;
/// then gives open handshakes up to `grace` to finish their request, and returns.
pub(crate) async fn run(
    listener: TcpListener,
    app: axum::Router,
    shared: Arc<Shared>,
    grace: Duration,
) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut tasks = JoinSet::new();
    let mut backoff = Duration::ZERO;
    let mut last_warned: Option<Instant> = None;
    loop {
        // Reap finished connections so that the set does not grow.
        while tasks.try_join_next().is_some() {}
        let accepted = tokio::select! {
            () = shutting_down(&mut shutdown) => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => {
                backoff = Duration::ZERO;
                pair
            }
            Err(e) => {
                shared.stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                backoff = (backoff * 2).clamp(Duration::from_millis(5), ACCEPT_BACKOFF_MAX);
                let now = Instant::now();
                if last_warned.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
                    last_warned = Some(now);
                    tracing::warn!(error = %e, "accept failed; backing off {backoff:?}");
                }
                // Out of descriptors: the oldest handshake is the likeliest to be idle.
                if shared.handshakes.evict_oldest() {
                    shared
                        .stats
                        .handshakes_evicted
                        .fetch_add(1, Ordering::Relaxed);
                }
                tokio::select! {
                    () = shutting_down(&mut shutdown) => break,
                    () = tokio::time::sleep(backoff) => continue,
                }
            }
        };
        let (handshake, evicted) = shared.handshakes.admit(shared.config.handshakes_max);
        if evicted {
            shared
                .stats
                .handshakes_evicted
                .fetch_add(1, Ordering::Relaxed);
        }
        tasks.spawn(serve_connection(
            tcp,
            peer,
            app.clone(),
            handshake,
            shared.clone(),
            grace,
        ));
    }
    drop(listener);
    // Every connection task bounds its own end by `grace`; this bound is a backstop.
    let all_done = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(grace + Duration::from_secs(1), all_done)
        .await
        .is_err()
    {
        tracing::warn!("dropping connections still open after {grace:?}");
        tasks.abort_all();
    }
}

/// Serves HTTP/1.1 (and the upgrade to a WebSocket) on one connection, until it closes,
/// is evicted, or shutdown's grace runs out.
async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    app: axum::Router,
    handshake: Handshake,
    shared: Arc<Shared>,
    grace: Duration,
) {
    let _ = tcp.set_nodelay(true);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let mut app = app.clone();
        async move { Ok::<_, Infallible>(app.call(req).await.unwrap_or_else(|e| match e {})) }
    });
    let deadline = Duration::from_millis(shared.config.request_deadline_ms.max(1));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(deadline)
        .max_buf_size(REQUEST_BUFFER_BYTES);
    let conn = builder
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades();
    tokio::pin!(conn);
    let mut shutdown = shared.shutdown.subscribe();
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "http connection ended");
            }
        }
        () = handshake.evicted.notified() => {
            tracing::debug!(%peer, "evicted the oldest open handshake for a newer one");
        }
        () = shutting_down(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(grace, conn.as_mut()).await;
        }
    }
}

/// Resolves once shutdown has begun (at once if it has), holding no borrow of the
/// watched value.
async fn shutting_down(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|down| *down).await;
}

/// Most bytes buffered for one request head: signaling requests are small, and a
/// client cannot make the server hold more for it before the deadline.
const REQUEST_BUFFER_BYTES: usize = 16 * 1024;
