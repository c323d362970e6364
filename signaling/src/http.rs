//! Routes: the WebSocket upgrade, the web UI and static files, health, room listings,
//! statistics and metrics.
//!
//! Handlers here only read shared state or hand a socket to `conn`; they never change
//! a room.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use node_core::signal::ErrorCode;
use serde::{Deserialize, Serialize};
use tower_http::services::ServeDir;

use crate::Shared;
use crate::metrics::Exposition;
use crate::rooms::RoomView;

/// Room for the WebSocket framing and a JSON envelope around an oversized payload, so
/// that a frame somewhat over `message_bytes_max` still reaches us and can be answered
/// with `too_big` rather than a dropped connection.
const HARD_CAP_SLACK_BYTES: usize = 16 * 1024;

/// The WebSocket layer's read and write buffers, per connection.
const SOCKET_BUFFER_BYTES: usize = 4 * 1024;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let static_files = ServeDir::new(&shared.config.static_dir);
    Router::new()
        .route("/ws", get(upgrade))
        .route("/healthz", get(healthz))
        .route("/api/rooms", get(rooms))
        .route("/api/stats", get(stats))
        .route("/api/info", get(info))
        .route("/api/rooms/{room}/back", axum::routing::post(bring_back))
        .route("/metrics", get(metrics))
        .nest_service("/static", static_files)
        .fallback(web_ui)
        .with_state(shared)
}

async fn upgrade(
    State(shared): State<Arc<Shared>>,
    ext: axum::http::Extensions,
    ws: WebSocketUpgrade,
) -> Response {
    // Known when served by `serve` (connect info); not when embedded without it.
    let ip = ext
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let Ok(slot) = shared.connection_slots.clone().try_acquire_owned() else {
        shared
            .stats
            .connections_refused
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            connections_max = shared.config.connections_max,
            "refusing a websocket: too many open"
        );
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many connections; try again later\n",
        )
            .into_response();
    };
    let hard_cap = shared
        .config
        .message_bytes_max
        .saturating_mul(4)
        .saturating_add(HARD_CAP_SLACK_BYTES);
    // Small buffers: tungstenite's default read buffer (128 KiB, filled before every
    // read) made an idle member cost ~138 KB; signaling frames are small.
    ws.max_message_size(hard_cap)
        .max_frame_size(hard_cap)
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .on_upgrade(move |socket| crate::conn::run(socket, shared, slot, ip))
}

async fn healthz() -> &'static str {
    "ok"
}

/// Rooms listed per `/api/rooms` page unless the query asks for fewer, and at most.
const ROOMS_PAGE_DEFAULT: usize = 100;
const ROOMS_PAGE_MAX: usize = 1_000;

/// `/api/rooms?after=NAME&limit=N`: the rooms after `NAME` by name, `N` of them.
#[derive(Deserialize)]
struct RoomsQuery {
    after: Option<String>,
    limit: Option<usize>,
}

/// The body of `/api/rooms`.
#[derive(Serialize)]
struct RoomsBody {
    /// One page of rooms with their members, by room name.
    rooms: Vec<RoomView>,
    /// The `after` that gets the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    /// Rooms and members on the whole server.
    rooms_total: usize,
    peers_total: usize,
}

/// One page of rooms: the registry's lock is held while one page is copied, never
/// while the whole registry is, and the JSON is written after it is released.
async fn rooms(State(shared): State<Arc<Shared>>, Query(q): Query<RoomsQuery>) -> Json<RoomsBody> {
    let limit = q
        .limit
        .unwrap_or(ROOMS_PAGE_DEFAULT)
        .clamp(1, ROOMS_PAGE_MAX);
    let ((rooms, more), (rooms_total, peers_total)) = {
        let registry = shared.registry();
        (
            registry.rooms_page(q.after.as_deref(), limit),
            registry.counts(),
        )
    };
    let next = more.then(|| rooms.last().map(|r| r.name.clone())).flatten();
    Json(RoomsBody {
        rooms,
        next,
        rooms_total,
        peers_total,
    })
}

/// The body of `/api/info`: what a page needs to know about the server.
#[derive(Serialize)]
struct InfoBody {
    /// The address an audience reaches the server at, if known; a page uses its own
    /// otherwise. Never the presenter key.
    public_url: Option<String>,
    /// The server listens on loopback only: no other machine can join.
    loopback_only: bool,
}

async fn info(State(shared): State<Arc<Shared>>) -> Json<InfoBody> {
    Json(InfoBody {
        public_url: shared.config.public_url.clone(),
        loopback_only: shared.config.loopback_only,
    })
}

/// How long a `POST /api/rooms/{room}/back` with a wrong presenter key waits for its
/// refusal.
const WRONG_KEY_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// The body of `POST /api/rooms/{room}/back`.
#[derive(serde::Deserialize)]
struct BackBody {
    presenter_key: String,
}

/// A presenter ends a room's outage early (its "bring the server back now"): 200 with
/// `{"back": true}` if the room was away, `{"back": false}` if it was not; 403 without
/// the server's presenter key (or when the server has none).
async fn bring_back(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(room): axum::extract::Path<String>,
    Json(body): Json<BackBody>,
) -> Response {
    let allowed = shared
        .config
        .presenter_key
        .as_deref()
        .is_some_and(|key| crate::conn::same_secret(&body.presenter_key, key));
    if !allowed {
        shared
            .stats
            .presenter_keys_refused
            .fetch_add(1, Ordering::Relaxed);
        // Guessing costs time: a second a guess per connection (connections are capped),
        // where the right key answers at once.
        tokio::time::sleep(WRONG_KEY_DELAY).await;
        return (
            StatusCode::FORBIDDEN,
            "only a presenter (with the server's presenter key) can bring the server back",
        )
            .into_response();
    }
    let back = shared
        .registry()
        .bring_back(&room, tokio::time::Instant::now());
    Json(serde_json::json!({ "back": back })).into_response()
}

/// The body of `/api/stats`: counters since the server started.
#[derive(Serialize)]
struct StatsBody {
    /// WebSockets open now.
    connections_open: u64,
    /// WebSockets opened since start.
    connections_opened: u64,
    /// Upgrades refused because too many WebSockets were open.
    connections_refused: u64,
    /// Clients dropped because their outbound queue filled up.
    slow_clients_dropped: u64,
    /// Frames refused with an error.
    frames_refused: u64,
    /// Joins that gave a presenter key other than the server's.
    presenter_keys_refused: u64,
    /// Clients dropped because their socket took nothing for a while.
    writers_stalled: u64,
    /// Clients dropped because nothing was heard from them (no pong) for a while.
    silent_dropped: u64,
    /// Bytes queued for all clients now.
    queued_bytes: u64,
    /// Connections accepted and not upgraded, now.
    handshakes_open: usize,
    /// Handshakes closed to make room for newer connections.
    handshakes_evicted: u64,
    /// `accept` calls that failed (most often: out of file descriptors).
    accept_errors: u64,
    /// Resumes refused: a bad or expired token, or an id in use.
    tokens_refused: u64,
    /// Rooms now.
    rooms: usize,
    /// Peers in all rooms now.
    peers: usize,
}

async fn stats(State(shared): State<Arc<Shared>>) -> Json<StatsBody> {
    let ((rooms, peers), registry_slow) = {
        let registry = shared.registry();
        (registry.counts(), registry.slow_dropped())
    };
    let s = &shared.stats;
    Json(StatsBody {
        connections_open: shared.connections_open(),
        connections_opened: s.connections_opened.load(Ordering::Relaxed),
        connections_refused: s.connections_refused.load(Ordering::Relaxed),
        slow_clients_dropped: registry_slow + s.slow_dropped.load(Ordering::Relaxed),
        frames_refused: s.frames_refused.load(Ordering::Relaxed),
        presenter_keys_refused: s.presenter_keys_refused.load(Ordering::Relaxed),
        writers_stalled: s.writers_stalled.load(Ordering::Relaxed),
        silent_dropped: s.silent_dropped.load(Ordering::Relaxed),
        queued_bytes: s.queued_bytes.load(Ordering::Relaxed) as u64,
        handshakes_open: shared.handshakes.len(),
        handshakes_evicted: s.handshakes_evicted.load(Ordering::Relaxed),
        accept_errors: s.accept_errors.load(Ordering::Relaxed),
        tokens_refused: s.tokens_refused.load(Ordering::Relaxed),
        rooms,
        peers,
    })
}

/// `/metrics`: the counters of `/api/stats` and more, by label, in Prometheus's text
/// format.
async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let ((rooms, peers), slow_in_registry, mut frames_out) = {
        let registry = shared.registry();
        (
            registry.counts(),
            registry.slow_dropped(),
            registry.frames_out().clone(),
        )
    };
    for (kind, n) in shared.stats.frames_out.snapshot() {
        *frames_out.entry(kind).or_default() += n;
    }
    let s = &shared.stats;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mut e = Exposition::new();
    let open = shared.connections_open();
    e.single("connections_open", "gauge", "WebSockets open now.", open);
    let handshakes = shared.handshakes.len() as u64;
    e.single(
        "handshakes_open",
        "gauge",
        "Connections accepted and not upgraded to a WebSocket, now.",
        handshakes,
    );
    e.single("rooms", "gauge", "Rooms now.", rooms as u64);
    e.single("peers", "gauge", "Members of all rooms now.", peers as u64);
    let queued = s.queued_bytes.load(Ordering::Relaxed) as u64;
    e.single(
        "queued_bytes",
        "gauge",
        "Bytes queued for all clients now.",
        queued,
    );
    let counters: [(&str, &str, u64); 8] = [
        (
            "tokens_refused_total",
            "Resumes refused: a bad or expired token, or an id in use.",
            load(&s.tokens_refused),
        ),
        (
            "connections_opened_total",
            "WebSockets opened.",
            load(&s.connections_opened),
        ),
        (
            "connections_refused_total",
            "Upgrades refused because connections_max WebSockets were open.",
            load(&s.connections_refused),
        ),
        (
            "handshakes_evicted_total",
            "Connections not upgraded, closed to make room for newer ones.",
            load(&s.handshakes_evicted),
        ),
        (
            "accept_errors_total",
            "Failed accept calls.",
            load(&s.accept_errors),
        ),
        (
            "writers_stalled_total",
            "Clients whose socket took nothing for write_stall_ms.",
            load(&s.writers_stalled),
        ),
        (
            "slow_dropped_total",
            "Clients dropped because their queue filled up.",
            slow_in_registry + load(&s.slow_dropped),
        ),
        (
            "presenter_keys_refused_total",
            "Joins with a presenter key other than the server's.",
            load(&s.presenter_keys_refused),
        ),
    ];
    for (name, help, value) in counters {
        e.single(name, "counter", help, value);
    }
    let kinds_in = [
        "join", "resume", "signal", "outage", "ping", "binary", "invalid",
    ];
    e.labelled(
        "frames_in_total",
        "Frames received, by type.",
        "type",
        &kinds_in,
        &s.frames_in.snapshot(),
    );
    let kinds_out = [
        "welcome",
        "peer_joined",
        "peer_left",
        "signal",
        "error",
        "ping",
        "close",
    ];
    e.labelled(
        "frames_out_total",
        "Frames queued for clients, by type.",
        "type",
        &kinds_out,
        &frames_out,
    );
    let codes: Vec<&'static str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    e.labelled(
        "errors_total",
        "Error frames sent, by code.",
        "code",
        &codes,
        &s.errors.snapshot(),
    );
    let reasons = [
        "slow_reader",
        "silent",
        "never_joined",
        "too_many_errors",
        "protocol_violation",
        "presenter_outage",
        "shutdown",
    ];
    e.labelled(
        "drops_total",
        "Connections the server ended, by reason.",
        "reason",
        &reasons,
        &s.drops.snapshot(),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        e.finish(),
    )
        .into_response()
}

/// Everything else is the web UI, or, when it has not been built, a note saying how to
/// build it. Looked up per request, so building the UI needs no restart.
async fn web_ui(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let dist = &shared.config.dist_dir;
    let built = tokio::fs::metadata(dist)
        .await
        .is_ok_and(|meta| meta.is_dir());
    if !built {
        let text = format!(
            "The Meshwork web UI is not built: {} does not exist.\n\
             Run `cargo xtask demo` to build it and serve it.\n",
            dist.display()
        );
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            text,
        )
            .into_response();
    }
    match ServeDir::new(dist).try_call(req).await {
        Ok(response) => {
            let mut response = response.map(Body::new);
            // Revalidate every time: the page and its compute worker (whose files Trunk
            // does not hash) must come from the same build after an upgrade.
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-cache"),
            );
            response
        }
        Err(e) => {
            tracing::warn!(error = %e, "serving the web UI failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not read the web UI\n",
            )
                .into_response()
        }
    }
}
