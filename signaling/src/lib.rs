//! Meshwork's signaling server.
//!
//! It owns rooms and the WebSocket at `/ws` over which peers of one room find each other
//! and exchange WebRTC offers, answers and ICE candidates (the protocol is
//! [`node_core::signal`]). It gives every connection a random peer id, tells a room who
//! joined and who left, and serves the built web UI, `static/`, `/healthz`,
//! `/api/rooms` (who is where, a page at a time), `/api/stats` (counters for
//! operators), `/metrics` (the same and more for Prometheus) and `/api/info` (the
//! address an audience joins at, and whether the server listens on loopback only).
//!
//! It holds no job state and sees none of the mesh's traffic: once peers are connected
//! they talk over data channels, so an established mesh keeps working while this server
//! is down. Every member gets a resume token (`token`): signed with a key kept beside
//! the server, it gets the member its id back from this server or a restarted one, so
//! the room is whole again once members have reconnected. With a TURN secret, every
//! welcome carries the member's own short-lived TURN credentials (`turn`).
//!
//! Everything it holds is bounded by [`Config`], in number and in time: connections
//! from accept on, rooms, peers per room, frame size, frame rate per connection and per
//! source address, and each connection's outbound queue.
//!
//! It never relays between rooms, never lets a client pick or claim a peer id, and never
//! interprets the SDP and ICE payloads it relays (it only checks that they are
//! well-formed).
//!
//! Modules, bottom-up: `limit` (token buckets), `token` (resume tokens), `turn` (TURN
//! credentials), `outbox` (a connection's bounded queue), `rooms` (the registry; no
//! sockets), `conn` (one WebSocket), `metrics` (the Prometheus text format), `http`
//! (routes), `accept` (the accept loop).

mod accept;
mod conn;
mod http;
mod limit;
mod metrics;
mod outbox;
mod rooms;
mod token;
mod turn;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use node_core::signal::IceServer;
use tokio::sync::{Semaphore, watch};

pub use crate::conn::ERRORS_IN_A_ROW_MAX;
use crate::rooms::{Limits, Registry};
pub use crate::token::ResumeKey;

/// How long [`serve`] waits, after shutdown begins, for open WebSockets to say goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the server serves and the bounds on what it holds. The listening address is the
/// caller's: [`serve`] takes a bound listener.
#[derive(Debug, Clone)]
pub struct Config {
    /// The built web UI (Trunk's output), served at `/` with `index.html` for directories.
    pub dist_dir: PathBuf,
    /// Assets served as-is under `/static`.
    pub static_dir: PathBuf,
    /// STUN/TURN servers handed to every peer in its `welcome`; none by default, which
    /// suits peers on one host or one LAN.
    pub ice_servers: Vec<IceServer>,
    /// Largest text frame answered normally; a larger one gets `too_big`. Frames past
    /// about four times this close the connection (the WebSocket layer's hard cap).
    pub message_bytes_max: usize,
    /// Members per room.
    pub peers_per_room_max: usize,
    /// Rooms at once.
    pub rooms_max: usize,
    /// Sustained inbound frames per second per connection; more get `rate_limited`.
    pub messages_per_second_max: u32,
    /// Frames a connection may send at once after a quiet spell (the token bucket's size).
    pub messages_burst_max: u32,
    /// The same over all connections from one source address: many tabs behind one
    /// address (a classroom's NAT) share it, one host cannot multiply its budget by
    /// opening connections. Every welcome tells the per-connection pace; this one a
    /// client learns from a `rate_limited` error with `retry_after_ms`.
    pub address_messages_per_second_max: u32,
    pub address_messages_burst_max: u32,
    /// Open WebSockets at once; further upgrades are refused with 503.
    pub connections_max: usize,
    /// Connections not upgraded to a WebSocket at once (plain HTTP, keep-alive, upgrades
    /// under way, sockets that said nothing yet); past it, a new connection evicts the
    /// oldest. The server holds at most `connections_max + handshakes_max` sockets.
    pub handshakes_max: usize,
    /// A connection whose request head has not arrived this long after the server
    /// started waiting for it is closed (ms): silent sockets, half-sent requests and
    /// idle keep-alive cannot hold descriptors.
    pub request_deadline_ms: u64,
    /// Frames queued for one client; a client that lets its queue fill is dropped.
    pub outbox_messages_max: usize,
    /// Bytes queued for one client, likewise: frames may be 64 KiB each, so a count of
    /// frames alone would let one client that never reads pin megabytes.
    pub outbox_bytes_max: usize,
    /// A client whose socket takes no frame for this long is dropped (ms).
    pub write_stall_ms: u64,
    /// The server pings every client this often (ms), and drops one it has heard
    /// nothing from (no pong, no frame) for `dead_after_ms`: a peer whose network
    /// vanished leaves its room, and the others are told.
    pub ping_interval_ms: u64,
    pub dead_after_ms: u64,
    /// Joins per second from one address on average, and in a burst: a room's worth of
    /// tabs behind one address joins at once, a loop that joins and leaves does not.
    pub joins_per_second_max: u32,
    pub joins_burst_max: u32,
    /// A connection that has not joined a room this long after opening is closed (ms):
    /// sockets that never join cannot hold the connection slots.
    pub join_deadline_ms: u64,
    /// The presenter key: a member whose `join` carries it is marked a presenter in
    /// every announcement of it, and members obey only presenters' console commands.
    /// `None`: nobody is a presenter.
    pub presenter_key: Option<String>,
    /// The address an audience reaches the server at, given to pages at `/api/info` for
    /// the join QR code. `None`: each page uses its own address.
    pub public_url: Option<String>,
    /// The server listens on a loopback address only (`--bind 127.0.0.1:…`): no other
    /// machine can reach it, which the join QR code then says instead of showing an
    /// address no phone can open.
    pub loopback_only: bool,
    /// The key resume tokens are signed with. Keep it across restarts (`meshwork serve`
    /// keeps it in a file) and members get their ids back from the restarted server;
    /// `None`: a random key for this run.
    pub resume_key: Option<ResumeKey>,
    /// How long a resume token is good for (s); members get a fresh one every third of
    /// that.
    pub resume_token_secs: u64,
    /// The secret shared with the TURN server (coturn's `static-auth-secret`): every
    /// member's welcome then carries its own short-lived credentials for each TURN
    /// server in `ice_servers` that has none.
    pub turn_secret: Option<String>,
    /// How long those credentials are good for (s).
    pub turn_credential_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            dist_dir: PathBuf::from("dist"),
            static_dir: PathBuf::from("static"),
            ice_servers: Vec::new(),
            message_bytes_max: 64 * 1024,
            peers_per_room_max: 64,
            rooms_max: 1024,
            messages_per_second_max: 50,
            // A newcomer to a full room (64) sends an offer and a few candidates to each
            // of the 63 others at once: about 200 frames.
            messages_burst_max: 320,
            address_messages_per_second_max: 2_000,
            address_messages_burst_max: 8_000,
            connections_max: 4096,
            handshakes_max: 512,
            request_deadline_ms: 5_000,
            outbox_messages_max: 256,
            outbox_bytes_max: 1 << 20,
            write_stall_ms: 5_000,
            ping_interval_ms: 3_000,
            dead_after_ms: 9_000,
            joins_per_second_max: 10,
            joins_burst_max: 128,
            join_deadline_ms: 10_000,
            presenter_key: None,
            public_url: None,
            loopback_only: false,
            resume_key: None,
            resume_token_secs: 3_600,
            turn_secret: None,
            turn_credential_secs: 86_400,
        }
    }
}

/// A fresh presenter key: 128 random bits as 32 hex digits.
pub fn new_presenter_key() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    format!("{:032x}", rng.random::<u128>())
}

/// Counters since start, shown at `/api/stats`.
#[derive(Debug, Default)]
struct Stats {
    /// Upgrades refused because `connections_max` were open.
    connections_refused: AtomicU64,
    /// Clients dropped by their own connection for not reading its replies; the
    /// registry counts those dropped while relaying to them.
    slow_dropped: AtomicU64,
    /// Frames answered with an error (or dropped, past the consecutive-error limit).
    frames_refused: AtomicU64,
    /// Connections opened, also used to number them in logs.
    connections_opened: AtomicU64,
    /// Joins that gave a presenter key other than the server's.
    presenter_keys_refused: AtomicU64,
    /// Clients dropped because their socket took nothing for `write_stall_ms`.
    writers_stalled: AtomicU64,
    /// Clients dropped because nothing was heard from them for `dead_after_ms`.
    silent_dropped: AtomicU64,
    /// Bytes queued for all clients now.
    queued_bytes: Arc<std::sync::atomic::AtomicUsize>,
    /// `accept` calls that failed (most often: out of file descriptors).
    accept_errors: AtomicU64,
    /// Handshakes closed to make room for newer connections.
    handshakes_evicted: AtomicU64,
    /// Resumes refused: bad, expired, or for an id in use.
    tokens_refused: AtomicU64,
    /// Frames received, by type (`join`, `signal`, `outage`, `ping`, `binary`,
    /// `invalid`).
    frames_in: metrics::Tally,
    /// Frames queued by connections themselves (`error`, `ping`, `close`); the registry
    /// counts what it relays and announces.
    frames_out: metrics::Tally,
    /// Error frames by code.
    errors: metrics::Tally,
    /// Connections the server ended, by reason.
    drops: metrics::Tally,
}

/// What every request and connection shares.
struct Shared {
    /// The configuration the server was built with.
    config: Config,
    /// Every room and its members. A plain mutex: no critical section awaits.
    rooms: Mutex<Registry>,
    /// One permit per open WebSocket, so the cap holds under any load; [`serve`] also
    /// takes them all back to know that every connection has closed.
    connection_slots: Arc<Semaphore>,
    /// How many permits `connection_slots` started with.
    connection_slots_total: u32,
    /// Becomes `true` once, when shutdown begins; each connection watches it.
    shutdown: watch::Sender<bool>,
    /// Counters for operators.
    stats: Stats,
    /// Joins per source address.
    joins: Mutex<limit::PerAddress>,
    /// Frames per source address, over all its connections.
    frames: Mutex<limit::PerAddress>,
    /// Connections accepted and not upgraded.
    handshakes: Arc<accept::Handshakes>,
    /// Signs and checks resume tokens.
    resume_key: ResumeKey,
}

impl Shared {
    fn new(config: Config) -> Arc<Self> {
        let slots = config
            .connections_max
            .min(Semaphore::MAX_PERMITS)
            .min(u32::MAX as usize);
        let limits = Limits {
            peers_per_room_max: config.peers_per_room_max,
            rooms_max: config.rooms_max,
            rate: Some(node_core::signal::RateLimits {
                messages_per_second: config.messages_per_second_max,
                messages_burst: config.messages_burst_max,
            }),
        };
        Arc::new(Shared {
            rooms: Mutex::new(Registry::new(limits)),
            connection_slots: Arc::new(Semaphore::new(slots)),
            connection_slots_total: u32::try_from(slots).unwrap_or(u32::MAX),
            shutdown: watch::channel(false).0,
            stats: Stats::default(),
            joins: Mutex::new(limit::PerAddress::new(
                config.joins_per_second_max,
                config.joins_burst_max,
            )),
            frames: Mutex::new(limit::PerAddress::new(
                config.address_messages_per_second_max,
                config.address_messages_burst_max,
            )),
            handshakes: Arc::default(),
            resume_key: config.resume_key.clone().unwrap_or_else(ResumeKey::random),
            config,
        })
    }

    /// Whether a join from `ip` may go ahead now (and counts it).
    fn join_allowed(&self, ip: std::net::IpAddr, now: tokio::time::Instant) -> bool {
        let mut joins = self.joins.lock().unwrap_or_else(PoisonError::into_inner);
        joins.take(ip, now).is_ok()
    }

    /// Whether a frame from `ip` fits its address's budget now (and counts it); if not,
    /// how long until it would.
    fn frame_allowed(
        &self,
        ip: std::net::IpAddr,
        now: tokio::time::Instant,
    ) -> Result<(), Option<Duration>> {
        let mut frames = self.frames.lock().unwrap_or_else(PoisonError::into_inner);
        frames.take(ip, now)
    }

    /// The registry, even if a panic elsewhere poisoned its lock: its methods never
    /// leave it half-updated at a point that can panic, and refusing every client from
    /// then on would be worse.
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// WebSockets open now.
    fn connections_open(&self) -> u64 {
        let free = self.connection_slots.available_permits() as u64;
        u64::from(self.connection_slots_total).saturating_sub(free)
    }

    fn next_conn_number(&self) -> u64 {
        self.stats
            .connections_opened
            .fetch_add(1, Ordering::Relaxed)
            + 1
    }

    /// Closes every WebSocket, now and any that opens later.
    fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }
}

/// Serves on `listener` until `shutdown` resolves, then stops accepting, closes every
/// WebSocket with "going away" and returns once they are closed and in-flight HTTP
/// requests are done, or after a few seconds' grace whatever clients do.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shared = Shared::new(config);
    if let Ok(addr) = listener.local_addr() {
        let dist_dir = shared.config.dist_dir.display();
        tracing::info!(%addr, %dist_dir, "signaling server listening");
    }
    let app = http::router(shared.clone());
    let signal = {
        let shared = shared.clone();
        async move {
            shutdown.await;
            tracing::info!("signaling server shutting down");
            shared.begin_shutdown();
        }
    };
    let accepting = tokio::spawn(accept::run(listener, app, shared.clone(), SHUTDOWN_GRACE));
    signal.await;
    shared.begin_shutdown();

    // Handshakes end within the grace (the accept loop bounds them). Upgraded
    // connections run in tasks of their own; each holds a slot until it has closed, so
    // taking every slot back means they are all gone. Both within one bound.
    let websockets = shared
        .connection_slots
        .acquire_many(shared.connection_slots_total);
    let both = futures_util::future::join(accepting, websockets);
    match tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), both).await {
        Ok((Err(e), _)) => tracing::error!(error = %e, "the accept loop failed"),
        Ok(_) => {}
        Err(_) => {
            tracing::warn!("some connections had not closed {SHUTDOWN_GRACE:?} after shutdown")
        }
    }
    Ok(())
}
