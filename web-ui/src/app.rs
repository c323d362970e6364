//! The page: the node's view signals, the components, and the node's start-up.

use leptos::prelude::*;
use node_core::driver::run_web;
use node_core::membership::{MembershipConfig, MeshEvent, PeerState};
use node_core::node::{MeshNode, NodeEvent};
use node_core::signal::{PeerInfo, valid_room_name};
use node_core::transport::web::WebTransport;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;

/// Most lines kept in the event log.
const LOG_LEN_MAX: usize = 50;

/// One peer as the page shows it.
#[derive(Clone, Debug, PartialEq)]
struct PeerRow {
    id: String,
    name: String,
    kind: &'static str,
    state: &'static str,
    /// Last round trip, rounded to 0.1 ms so the view does not churn on noise.
    rtt_ms: Option<f64>,
}

/// One line of the join/leave log.
#[derive(Clone, Debug, PartialEq)]
struct LogLine {
    /// Sequence number, the list key.
    seq: u64,
    /// "joined" or "left".
    event: &'static str,
    peer: String,
    /// How a departure was noticed; empty for joins.
    reason: &'static str,
    /// Join: time to connect. Departure: time since the peer was last heard.
    ms: f64,
    text: String,
}

/// The page's view of the mesh, written by the node, read by components.
#[derive(Clone, Copy)]
struct MeshView {
    me: RwSignal<Option<PeerInfo>>,
    status: RwSignal<String>,
    peers: RwSignal<Vec<PeerRow>>,
    log: RwSignal<Vec<LogLine>>,
}

fn query_param(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    web_sys::UrlSearchParams::new_with_str(&search)
        .ok()?
        .get(name)
}

fn signaling_url() -> Option<String> {
    let loc = web_sys::window()?.location();
    let scheme = if loc.protocol().ok()? == "https:" {
        "wss"
    } else {
        "ws"
    };
    Some(format!("{scheme}://{}/ws", loc.host().ok()?))
}

fn rows(node: &MeshNode) -> Vec<PeerRow> {
    let Some(m) = node.membership() else {
        return Vec::new();
    };
    m.peers()
        .map(|p| PeerRow {
            id: p.info.id.0.clone(),
            name: p.info.name.clone(),
            kind: p.info.kind.as_str(),
            state: p.state.as_str(),
            rtt_ms: p
                .rtt_ms
                .filter(|_| p.state == PeerState::Connected)
                .map(|ms| (ms * 10.0).round() / 10.0),
        })
        .collect()
}

fn push_log(
    view: MeshView,
    event: &'static str,
    peer: &PeerInfo,
    reason: &'static str,
    ms: f64,
    text: String,
) {
    view.log.update(|log| {
        let seq = log.last().map_or(0, |l| l.seq + 1);
        log.push(LogLine {
            seq,
            event,
            peer: peer.id.0.clone(),
            reason,
            ms,
            text,
        });
        if log.len() > LOG_LEN_MAX {
            log.remove(0);
        }
    });
}

fn on_event(view: MeshView, e: &NodeEvent) {
    match e {
        NodeEvent::Joined { me } => {
            view.me.set(Some(me.clone()));
            view.status.set("joined".into());
        }
        NodeEvent::Mesh(MeshEvent::PeerConnected {
            peer, connect_ms, ..
        }) => push_log(
            view,
            "joined",
            peer,
            "",
            *connect_ms,
            format!(
                "{} ({}) connected in {:.0} ms",
                peer.name, peer.kind, connect_ms
            ),
        ),
        NodeEvent::Mesh(MeshEvent::PeerLeft {
            peer,
            reason,
            detect_ms,
            ..
        }) => {
            let how = match reason.as_str() {
                "signaling" => "the signaling server saw its socket close",
                "channel_closed" => "its data channel closed",
                _ => "its heartbeats stopped",
            };
            push_log(
                view,
                "left",
                peer,
                reason.as_str(),
                *detect_ms,
                format!(
                    "{} ({}) left: {how}, {:.0} ms after it was last heard",
                    peer.name, peer.kind, detect_ms
                ),
            )
        }
        // Jobs are not shown on the page yet.
        NodeEvent::Mesh(_) | NodeEvent::Engine(_) => {}
        NodeEvent::SignalingError { message, .. } => {
            view.status.set(format!("signaling error: {message}"))
        }
        NodeEvent::SignalingClosed => view
            .status
            .set("signaling server disconnected; the mesh carries on".into()),
    }
}

/// Joins the room and runs the node for the life of the page.
fn start_node(view: MeshView, room: String) {
    let Some(url) = signaling_url() else {
        view.status
            .set("cannot tell the server's address from this page".into());
        return;
    };
    let name = query_param("name").unwrap_or_default();
    let transport = match WebTransport::connect(&url, &room, &name) {
        Ok(t) => t,
        Err(e) => {
            view.status
                .set(format!("cannot open the signaling socket: {e:?}"));
            return;
        }
    };
    // Close every connection when the tab goes away, so that peers notice in
    // milliseconds instead of waiting for their heartbeat timeout.
    let close = transport.closer();
    if let Some(w) = web_sys::window() {
        let on_pagehide = Closure::<dyn FnMut()>::new(close);
        let _ =
            w.add_event_listener_with_callback("pagehide", on_pagehide.as_ref().unchecked_ref());
        // Lives as long as the page.
        on_pagehide.forget();
    }
    let cores = web_sys::window()
        .map(|w| w.navigator().hardware_concurrency() as u16)
        .unwrap_or(1)
        .max(1);
    let node = MeshNode::new(MembershipConfig::default(), name, cores);
    wasm_bindgen_futures::spawn_local(run_web(
        transport,
        node,
        move |e| on_event(view, e),
        move |node| {
            let new = rows(node);
            if view.peers.with_untracked(|old| *old != new) {
                view.peers.set(new);
            }
        },
    ));
}

#[component]
fn App() -> impl IntoView {
    let view = MeshView {
        me: RwSignal::new(None),
        status: RwSignal::new("connecting to the signaling server…".into()),
        peers: RwSignal::new(Vec::new()),
        log: RwSignal::new(Vec::new()),
    };
    let asked = query_param("room");
    let room = match asked {
        Some(r) if valid_room_name(&r) => r,
        Some(_) => {
            view.status.set(
                "that room name is not valid (letters, digits, '-', '_'); joined `demo`".into(),
            );
            "demo".to_string()
        }
        None => "demo".to_string(),
    };
    start_node(view, room.clone());
    view! {
        <main class="app">
            <header>
                <h1>"Meshwork"</h1>
                <p class="tagline">"This tab is a node in a WebRTC mesh of browsers and native processes."</p>
            </header>
            <Me view room/>
            <Peers view/>
            <EventLog view/>
        </main>
    }
}

/// This node: id, name, kind, room and signaling status.
#[component]
fn Me(view: MeshView, room: String) -> impl IntoView {
    let field = move |f: fn(&PeerInfo) -> String| {
        move || view.me.get().map(|m| f(&m)).unwrap_or_else(|| "…".into())
    };
    view! {
        <section class="me" data-testid="me">
            <h2>"This node"</h2>
            <dl>
                <dt>"id"</dt><dd data-testid="me-id">{field(|m| m.id.0.clone())}</dd>
                <dt>"name"</dt><dd data-testid="me-name">{field(|m| m.name.clone())}</dd>
                <dt>"kind"</dt><dd data-testid="me-kind">{field(|m| m.kind.as_str().to_string())}</dd>
                <dt>"room"</dt><dd data-testid="room">{room}</dd>
                <dt>"status"</dt><dd data-testid="status">{move || view.status.get()}</dd>
            </dl>
        </section>
    }
}

/// Every peer with its kind, connection state and round-trip time.
#[component]
fn Peers(view: MeshView) -> impl IntoView {
    let connected = move || {
        view.peers
            .with(|p| p.iter().filter(|r| r.state == "connected").count())
    };
    view! {
        <section class="peers">
            <h2>"Peers "<span class="count" data-testid="peer-count">{connected}</span></h2>
            <table data-testid="peer-list">
                <thead><tr><th>"name"</th><th>"kind"</th><th>"state"</th><th>"RTT"</th></tr></thead>
                <tbody>
                    {move || view.peers.get().into_iter().map(|p| {
                        let rtt = p.rtt_ms.map(|ms| format!("{ms:.1} ms")).unwrap_or_else(|| "–".into());
                        view! {
                            <tr data-testid="peer-row" data-peer-id=p.id.clone() data-kind=p.kind data-state=p.state
                                class=format!("peer {} {}", p.kind, p.state)>
                                <td class="name" title=p.id.clone()>{p.name.clone()}</td>
                                <td data-testid="peer-kind">{p.kind}</td>
                                <td data-testid="peer-state">{p.state}</td>
                                <td data-testid="peer-rtt">{rtt}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
            <Show when=move || view.peers.with(Vec::is_empty)>
                <p class="empty">"No other peers yet. Open this page in another tab, or run "<code>"meshwork node"</code>"."</p>
            </Show>
        </section>
    }
}

/// Joins and departures, with how each departure was noticed.
#[component]
fn EventLog(view: MeshView) -> impl IntoView {
    view! {
        <section class="log">
            <h2>"Events"</h2>
            <ol data-testid="event-log">
                {move || view.log.get().into_iter().rev().map(|l| view! {
                    <li data-testid="log-entry" data-event=l.event data-peer=l.peer.clone()
                        data-reason=l.reason data-ms=format!("{:.1}", l.ms) class=l.event>{l.text.clone()}</li>
                }).collect_view()}
            </ol>
        </section>
    }
}

/// Mounts the app on the page.
pub fn start() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}
