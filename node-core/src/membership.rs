//! Who is in the mesh, as this node sees it: the Hello exchange, heartbeats, RTT and
//! failure detection.
//!
//! Sans-IO like the engine: time comes in as an argument ([`Micros`], because loopback
//! round trips are well under a millisecond), messages come in as bytes, and everything
//! this module wants done comes out of [`Membership::poll_output`]. The drivers (native
//! and wasm) feed it transport events and carry out its outputs; both therefore detect
//! departures in exactly the same way.
//!
//! A peer is gone on whichever comes first:
//! - the signaling server's `peer_left` ([`LeftReason::Signaling`]): fastest in practice,
//!   the server sees a killed process's WebSocket close within ~100 ms;
//! - the data channel closing ([`LeftReason::ChannelClosed`]): fires when the other side
//!   closes its connection cleanly (e.g. on `pagehide`);
//! - no message of any kind for [`MembershipConfig::dead_after_ms`]
//!   ([`LeftReason::Heartbeat`]): works even when the signaling server is down.
//!
//! Silence is a suspicion, not a death sentence. A member declared gone by silence stays
//! tracked as [`PeerState::Silent`] with its channel open: the layers above treat it as
//! gone (its work moves), and the first message it sends again brings it back
//! ([`MeshEvent::PeerBack`]). Only its channel closing, the server's `peer_left`, or
//! [`MembershipConfig::forget_after_ms`] more of silence end it for good; after
//! [`MembershipConfig::reconnect_after_ms`] of it, a fresh connection is asked for once
//! ([`MeshOutput::Reconnect`]), in case the old one is slow to carry anything after the
//! network heals. A member that
//! said it is in the background ([`WireMsg::Background`]: a hidden tab, a phone about to
//! lock) gets [`MembershipConfig::background_dead_after_ms`] instead. And this node
//! judges others only over time it was awake itself: when its own timer comes late
//! (a frozen process, a busy or throttled page), the time it slept does not count as
//! their silence.
//!
//! Run-loop rule: after every `handle_*` call, drain `poll_output()` until `None`, then
//! call `handle_timeout` no later than `poll_timeout()`.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use crate::signal::{PeerId, PeerInfo, PeerKind};
use crate::wire::{self, WireMsg};

/// A point in time in microseconds, from a clock of the driver's choosing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Micros(pub u64);

impl Micros {
    pub fn from_ms(ms: u64) -> Self {
        Micros(ms.saturating_mul(1000))
    }
    pub fn saturating_sub(self, other: Micros) -> Micros {
        Micros(self.0.saturating_sub(other.0))
    }
    pub fn as_ms_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
    fn plus_ms(self, ms: u64) -> Micros {
        Micros(self.0.saturating_add(ms.saturating_mul(1000)))
    }
}

/// Timing of the Hello/heartbeat protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipConfig {
    /// How often a Ping goes to each connected peer.
    pub heartbeat_ms: u64,
    /// Silence after which a peer is declared dead. Several heartbeats long, so that one
    /// lost or late message does not evict a live peer.
    pub dead_after_ms: u64,
    /// Most peers tracked at once; announcements beyond it are dropped and counted.
    pub peers_max: usize,
    /// Silence after which a member that said it is in the background is declared gone
    /// (its timers may run once a second or less, or not at all for a while).
    pub background_dead_after_ms: u64,
    /// Silence, after being declared gone by silence, after which a member is
    /// forgotten and its channel closed: it may come back until then.
    pub forget_after_ms: u64,
    /// Silence, after being declared gone by silence, after which this node asks once
    /// for a fresh connection to the member ([`MeshOutput::Reconnect`]). A link that
    /// was cut keeps its old connection alive, but that connection's transport waits
    /// longer and longer between retransmissions (SCTP's timer doubles up to 60 s), so
    /// after a long cut the old connection could stay mute for many seconds after the
    /// network heals; a fresh one is up within a round trip or two.
    pub reconnect_after_ms: u64,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        MembershipConfig {
            heartbeat_ms: 250,
            dead_after_ms: 1500,
            peers_max: 256,
            background_dead_after_ms: 10_000,
            forget_after_ms: 60_000,
            reconnect_after_ms: 2_000,
        }
    }
}

/// How a departure was noticed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeftReason {
    Signaling,
    ChannelClosed,
    Heartbeat,
}

impl LeftReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LeftReason::Signaling => "signaling",
            LeftReason::ChannelClosed => "channel_closed",
            LeftReason::Heartbeat => "heartbeat",
        }
    }
}

impl fmt::Display for LeftReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a peer is in its life cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// Announced by the signaling server; WebRTC negotiation under way.
    Connecting,
    /// Data channel open, our Hello sent, theirs not yet received.
    ChannelOpen,
    /// Hello received: a member of the mesh.
    Connected,
    /// A member declared gone by its silence; its channel stays open and any message
    /// from it makes it `Connected` again.
    Silent,
}

impl PeerState {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Connecting => "connecting",
            PeerState::ChannelOpen => "channel_open",
            PeerState::Connected => "connected",
            PeerState::Silent => "silent",
        }
    }
}

/// What this node knows about one peer.
#[derive(Clone, Debug)]
pub struct PeerView {
    pub info: PeerInfo,
    pub state: PeerState,
    /// Cores the peer offered in its Hello.
    pub cores: u16,
    /// Last round-trip time measured, in milliseconds.
    pub rtt_ms: Option<f64>,
    /// When the peer was announced, to report how long connecting took.
    pub announced_at: Micros,
    /// When anything was last heard from the peer (or it was announced).
    last_heard: Micros,
    /// When the next Ping is due.
    next_ping: Micros,
    /// The outstanding Ping: its sequence number and when it was sent.
    ping_out: Option<(u32, Micros)>,
    /// Bulk payload bytes received since the last BulkEnd.
    bulk_rx_bytes: u64,
    /// A presenter cut the link to this peer: nothing is sent to it or taken from it,
    /// and its silence is not death, until the link is restored.
    pub cut: bool,
    /// Messages taken from this peer.
    pub messages_in: u64,
    /// The peer said it is in the background (a hidden tab): a longer allowance.
    pub background: bool,
    /// A fresh connection was asked for in this spell of silence.
    reconnect_asked: bool,
    /// The peer's Hello arrived on its current channel.
    greeted: bool,
    /// The transport's open event for the current channel came (a channel can also be
    /// taken as open from its first message, before that event).
    open_reported: bool,
}

impl PeerView {
    /// When anything was last heard from the peer (or it was announced), less the time
    /// this node itself was asleep since.
    pub fn last_heard(&self) -> Micros {
        self.last_heard
    }
}

/// Something for the UI, the log or the engine.
#[derive(Clone, Debug, PartialEq)]
pub enum MeshEvent {
    /// The peer's Hello arrived: it is a member now.
    PeerConnected {
        peer: PeerInfo,
        cores: u16,
        /// From announcement to Hello.
        connect_ms: f64,
    },
    /// The peer is gone.
    PeerLeft {
        peer: PeerInfo,
        reason: LeftReason,
        /// Time from the last message heard from the peer to the moment its departure was
        /// noticed: an upper bound on how long detection took.
        detect_ms: f64,
        /// Whether it had completed the Hello exchange.
        was_connected: bool,
    },
    /// A round trip was measured.
    Rtt { peer: PeerId, ms: f64 },
    /// A message from a peer was dropped (undecodable or against the protocol).
    Dropped { peer: PeerId, why: String },
    /// The peer acknowledged a bulk transfer (`cargo xtask bench mesh`).
    BulkAcked { peer: PeerId, seq: u32, bytes: u64 },
    /// The link to a member was cut on a presenter's command: to the layers above it is
    /// gone, but it stays in the view (see [`Membership::set_cut`]).
    LinkCut { peer: PeerInfo },
    /// The link was restored: the member is back, with everything it kept.
    LinkRestored { peer: PeerInfo },
    /// A member declared gone by its silence ([`MeshEvent::PeerLeft`] with
    /// [`LeftReason::Heartbeat`]) was heard again: it is a member again.
    PeerBack {
        peer: PeerInfo,
        /// How long it had been silent (from the last message before, to this one).
        silent_ms: f64,
    },
    /// A member declared gone by its silence is now gone for good (its channel closed,
    /// the server said it left, or it stayed silent `forget_after_ms`).
    SilentGone { peer: PeerInfo, reason: LeftReason },
    /// A member said it went to the background (a hidden tab) or came back.
    Background { peer: PeerId, on: bool },
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq)]
pub enum MeshOutput {
    /// Send this message on the peer's data channel.
    Send {
        to: PeerId,
        msg: WireMsg,
    },
    /// Tear down the peer's connection (it was declared dead).
    Close {
        peer: PeerId,
    },
    /// Replace the peer's connection with a fresh one, if the server still lists it
    /// (the member has been silent a while: see
    /// [`MembershipConfig::reconnect_after_ms`]). Its state here is unchanged.
    Reconnect {
        peer: PeerId,
    },
    /// A message for the layers above (an engine message, or a chunk of one) from a
    /// member.
    Deliver {
        from: PeerId,
        msg: WireMsg,
    },
    Event(MeshEvent),
}

/// Counters, for logs and the UI.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MeshStats {
    pub messages_in: u64,
    pub dropped_undecodable: u64,
    pub dropped_protocol: u64,
    pub dropped_unknown_peer: u64,
    pub dropped_over_capacity: u64,
    /// Messages from a peer whose link was cut.
    pub dropped_cut: u64,
}

/// This node's view of the mesh.
#[derive(Debug)]
pub struct Membership {
    me: PeerInfo,
    cores: u16,
    config: MembershipConfig,
    peers: BTreeMap<PeerId, PeerView>,
    out: VecDeque<MeshOutput>,
    next_seq: u32,
    stats: MeshStats,
    /// When `handle_timeout` last ran: a much later call means this node was asleep.
    last_tick: Option<Micros>,
    /// This node said it is in the background.
    background: bool,
}

impl Membership {
    pub fn new(me: PeerInfo, cores: u16, config: MembershipConfig) -> Self {
        Membership {
            me,
            cores,
            config,
            peers: BTreeMap::new(),
            out: VecDeque::new(),
            next_seq: 0,
            stats: MeshStats::default(),
            last_tick: None,
            background: false,
        }
    }

    // ---- getters ----

    pub fn me(&self) -> &PeerInfo {
        &self.me
    }

    pub fn peers(&self) -> impl Iterator<Item = &PeerView> {
        self.peers.values()
    }

    pub fn peer(&self, id: &PeerId) -> Option<&PeerView> {
        self.peers.get(id)
    }

    /// Peers that completed the Hello exchange.
    pub fn connected(&self) -> impl Iterator<Item = &PeerView> {
        self.peers
            .values()
            .filter(|p| p.state == PeerState::Connected)
    }

    pub fn stats(&self) -> &MeshStats {
        &self.stats
    }

    // ---- input ----

    /// The signaling server announced a peer (in the welcome or a peer-joined).
    pub fn handle_announced(&mut self, now: Micros, info: PeerInfo) {
        if info.id == self.me.id || self.peers.contains_key(&info.id) {
            return;
        }
        if self.peers.len() >= self.config.peers_max {
            self.stats.dropped_over_capacity += 1;
            return;
        }
        self.peers.insert(
            info.id.clone(),
            PeerView {
                info,
                state: PeerState::Connecting,
                cores: 0,
                rtt_ms: None,
                announced_at: now,
                last_heard: now,
                next_ping: now,
                ping_out: None,
                bulk_rx_bytes: 0,
                cut: false,
                messages_in: 0,
                background: false,
                reconnect_asked: false,
                greeted: false,
                open_reported: false,
            },
        );
    }

    /// This node goes to the background (a hidden tab) or comes back: every peer is told,
    /// and gives it [`MembershipConfig::background_dead_after_ms`] meanwhile.
    pub fn set_background(&mut self, on: bool) {
        if self.background == on {
            return;
        }
        self.background = on;
        for (id, view) in &self.peers {
            if matches!(
                view.state,
                PeerState::ChannelOpen | PeerState::Connected | PeerState::Silent
            ) && !view.cut
            {
                self.out.push_back(MeshOutput::Send {
                    to: id.clone(),
                    msg: WireMsg::Background { on },
                });
            }
        }
    }

    /// Whether this node said it is in the background.
    pub fn is_background(&self) -> bool {
        self.background
    }

    /// Cuts (or restores) the link to a member, as a presenter's demonstration of a
    /// network partition: while cut, its messages are dropped, none are sent to it and
    /// its silence is not taken for death; this node reports it gone ([`MeshEvent::LinkCut`])
    /// and back ([`MeshEvent::LinkRestored`]). The data channel stays open underneath, so
    /// a restore needs no new connection. Returns false (and does nothing) for a peer
    /// that is not a member or already in that state.
    pub fn set_cut(&mut self, now: Micros, peer: &PeerId, cut: bool) -> bool {
        let Some(view) = self.peers.get_mut(peer) else {
            return false;
        };
        if view.state != PeerState::Connected || view.cut == cut {
            return false;
        }
        view.cut = cut;
        view.ping_out = None;
        let peer = view.info.clone();
        if cut {
            self.out
                .push_back(MeshOutput::Event(MeshEvent::LinkCut { peer }));
        } else {
            // Heard "now": the heartbeat timeout starts afresh.
            view.last_heard = now;
            view.next_ping = now;
            self.out
                .push_back(MeshOutput::Event(MeshEvent::LinkRestored { peer }));
        }
        true
    }

    /// The data channel to `peer` opened: say Hello and start heartbeats. A channel
    /// that opens for a peer past `Connecting` replaced the one before it (a fresh
    /// connection after a silence, or the peer's new offer): Hello is said again on it,
    /// since the peer may have started over and now waits for it, and the peer's Hello
    /// on it is welcome too; the member's state does not change.
    pub fn handle_channel_open(&mut self, now: Micros, peer: &PeerId) {
        let Some(view) = self.peers.get_mut(peer) else {
            self.stats.dropped_unknown_peer += 1;
            return;
        };
        let fresh = view.open_reported;
        view.open_reported = true;
        if view.state != PeerState::Connecting && !fresh {
            // The open event of the channel its first message opened already.
            return;
        }
        self.open(now, peer);
    }

    /// The channel to `peer` is open (a new one if the peer is past `Connecting`).
    fn open(&mut self, now: Micros, peer: &PeerId) {
        let Some(view) = self.peers.get_mut(peer) else {
            return;
        };
        view.greeted = false;
        if view.state == PeerState::Connecting {
            view.state = PeerState::ChannelOpen;
            view.last_heard = now;
        }
        // The first ping goes at once, behind the Hello: the round trip it measures
        // sets how soon this node may steal from the peer (`node::steal_grace_ms`),
        // and a submitter hands its job out right after connecting.
        view.next_ping = now;
        self.out.push_back(MeshOutput::Send {
            to: peer.clone(),
            msg: WireMsg::Hello {
                id: self.me.id.clone(),
                kind: self.me.kind,
                name: self.me.name.clone(),
                cores: self.cores,
            },
        });
        if self.background {
            self.out.push_back(MeshOutput::Send {
                to: peer.clone(),
                msg: WireMsg::Background { on: true },
            });
        }
    }

    /// Bytes arrived from `peer`'s data channel.
    pub fn handle_message(&mut self, now: Micros, peer: &PeerId, bytes: &[u8]) {
        let msg = match wire::decode(bytes) {
            Ok(msg) => msg,
            Err(e) => {
                self.stats.dropped_undecodable += 1;
                self.out.push_back(MeshOutput::Event(MeshEvent::Dropped {
                    peer: peer.clone(),
                    why: e.to_string(),
                }));
                return;
            }
        };
        self.handle_wire(now, peer, msg);
    }

    /// A decoded message arrived from `peer`.
    pub fn handle_wire(&mut self, now: Micros, peer: &PeerId, msg: WireMsg) {
        // A message proves the channel is open even if its open event was missed (a
        // browser may hand over an answerer's channel already open): say Hello first.
        if self
            .peers
            .get(peer)
            .is_some_and(|v| v.state == PeerState::Connecting)
        {
            self.open(now, peer);
        }
        let Some(view) = self.peers.get_mut(peer) else {
            self.stats.dropped_unknown_peer += 1;
            return;
        };
        if view.cut {
            self.stats.dropped_cut += 1;
            return;
        }
        self.stats.messages_in += 1;
        view.messages_in += 1;
        if view.state == PeerState::Silent {
            view.state = PeerState::Connected;
            view.reconnect_asked = false;
            view.ping_out = None;
            view.next_ping = now;
            self.out.push_back(MeshOutput::Event(MeshEvent::PeerBack {
                peer: view.info.clone(),
                silent_ms: now.saturating_sub(view.last_heard).as_ms_f64(),
            }));
        }
        view.last_heard = now;
        let protocol_error = |stats: &mut MeshStats, out: &mut VecDeque<MeshOutput>, why: &str| {
            stats.dropped_protocol += 1;
            out.push_back(MeshOutput::Event(MeshEvent::Dropped {
                peer: peer.clone(),
                why: why.to_string(),
            }));
        };
        match msg {
            WireMsg::Hello {
                id,
                kind,
                name,
                cores,
            } => {
                if id != *peer {
                    // The signaling server vouches for ids; a Hello naming someone else
                    // is a lie or a bug, and must not rename the peer.
                    protocol_error(&mut self.stats, &mut self.out, "hello with a foreign id");
                    return;
                }
                if view.greeted {
                    protocol_error(&mut self.stats, &mut self.out, "second hello");
                    return;
                }
                view.greeted = true;
                if view.state == PeerState::Connected {
                    // Its Hello on a fresh channel: the same member, nothing changes.
                    return;
                }
                view.state = PeerState::Connected;
                view.info.kind = kind;
                view.info.name = crate::signal::clean_display_name(&name);
                view.cores = cores;
                self.out
                    .push_back(MeshOutput::Event(MeshEvent::PeerConnected {
                        peer: view.info.clone(),
                        cores,
                        connect_ms: now.saturating_sub(view.announced_at).as_ms_f64(),
                    }));
            }
            WireMsg::Ping { seq } => {
                self.out.push_back(MeshOutput::Send {
                    to: peer.clone(),
                    msg: WireMsg::Pong { seq },
                });
            }
            WireMsg::Pong { seq } => {
                if let Some((out_seq, sent)) = view.ping_out
                    && out_seq == seq
                {
                    let ms = now.saturating_sub(sent).as_ms_f64();
                    view.rtt_ms = Some(ms);
                    view.ping_out = None;
                    self.out.push_back(MeshOutput::Event(MeshEvent::Rtt {
                        peer: peer.clone(),
                        ms,
                    }));
                }
            }
            WireMsg::Bulk { data } => {
                view.bulk_rx_bytes = view.bulk_rx_bytes.saturating_add(data.len() as u64);
            }
            WireMsg::BulkEnd { seq } => {
                let bytes = std::mem::take(&mut view.bulk_rx_bytes);
                self.out.push_back(MeshOutput::Send {
                    to: peer.clone(),
                    msg: WireMsg::BulkAck { seq, bytes },
                });
            }
            // Not membership's business: handed up, from members only (a peer is one
            // once its Hello arrived; the ordered channel delivers that first).
            WireMsg::Engine(_)
            | WireMsg::Chunk { .. }
            | WireMsg::Packed { .. }
            | WireMsg::Read { .. }
            | WireMsg::Console(_)
            | WireMsg::State(_) => {
                if view.state != PeerState::Connected {
                    protocol_error(&mut self.stats, &mut self.out, "message before hello");
                    return;
                }
                self.out.push_back(MeshOutput::Deliver {
                    from: peer.clone(),
                    msg,
                });
            }
            WireMsg::BulkAck { seq, bytes } => {
                self.out.push_back(MeshOutput::Event(MeshEvent::BulkAcked {
                    peer: peer.clone(),
                    seq,
                    bytes,
                }));
            }
            WireMsg::Background { on } => {
                if view.background != on {
                    view.background = on;
                    self.out.push_back(MeshOutput::Event(MeshEvent::Background {
                        peer: peer.clone(),
                        on,
                    }));
                }
            }
        }
    }

    /// The signaling server said the peer left.
    pub fn handle_signal_left(&mut self, now: Micros, peer: &PeerId) {
        self.remove(now, peer, LeftReason::Signaling);
    }

    /// The peer's data channel or connection closed.
    pub fn handle_channel_closed(&mut self, now: Micros, peer: &PeerId) {
        self.remove(now, peer, LeftReason::ChannelClosed);
    }

    /// Time passed: send due Pings, declare silent peers gone.
    pub fn handle_timeout(&mut self, now: Micros) {
        // Called about every heartbeat while peers are tracked: a call much later than
        // that means this node was asleep (frozen, busy, throttled), and the time it
        // slept is nobody's silence.
        let heartbeat = Micros::from_ms(self.config.heartbeat_ms);
        if let Some(last) = self.last_tick {
            let gap = now.saturating_sub(last);
            if gap.0 > 2 * heartbeat.0 {
                let slept = gap.0 - heartbeat.0;
                for view in self.peers.values_mut() {
                    view.last_heard = Micros(view.last_heard.0.saturating_add(slept).min(now.0));
                }
            }
        }
        self.last_tick = Some(now);
        let mut silent = Vec::new();
        let mut forgotten = Vec::new();
        let mut refresh = Vec::new();
        for (id, view) in &mut self.peers {
            if view.state == PeerState::Connecting || view.cut {
                continue;
            }
            let quiet = now.saturating_sub(view.last_heard);
            let allowance = if view.background {
                self.config.background_dead_after_ms
            } else {
                self.config.dead_after_ms
            };
            match view.state {
                // A channel open without a Hello is not a member yet: it waits as long as
                // a silent member may come back (the peer may be the one asleep).
                PeerState::Silent | PeerState::ChannelOpen
                    if quiet >= Micros::from_ms(allowance + self.config.forget_after_ms) =>
                {
                    forgotten.push(id.clone());
                    continue;
                }
                PeerState::Connected if quiet >= Micros::from_ms(allowance) => {
                    silent.push(id.clone());
                }
                PeerState::Silent
                    if !view.reconnect_asked
                        && quiet >= Micros::from_ms(allowance + self.config.reconnect_after_ms) =>
                {
                    view.reconnect_asked = true;
                    refresh.push(id.clone());
                }
                _ => {}
            }
            if now >= view.next_ping {
                self.next_seq = self.next_seq.wrapping_add(1);
                view.ping_out = Some((self.next_seq, now));
                view.next_ping = now.plus_ms(self.config.heartbeat_ms);
                self.out.push_back(MeshOutput::Send {
                    to: id.clone(),
                    msg: WireMsg::Ping { seq: self.next_seq },
                });
            }
        }
        for id in silent {
            if let Some(view) = self.peers.get_mut(&id) {
                view.state = PeerState::Silent;
                self.out.push_back(MeshOutput::Event(MeshEvent::PeerLeft {
                    peer: view.info.clone(),
                    reason: LeftReason::Heartbeat,
                    detect_ms: now.saturating_sub(view.last_heard).as_ms_f64(),
                    was_connected: true,
                }));
            }
        }
        for id in forgotten {
            self.remove(now, &id, LeftReason::Heartbeat);
            self.out.push_back(MeshOutput::Close { peer: id });
        }
        for peer in refresh {
            self.out.push_back(MeshOutput::Reconnect { peer });
        }
    }

    // ---- output ----

    pub fn poll_output(&mut self) -> Option<MeshOutput> {
        self.out.pop_front()
    }

    /// When `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Option<Micros> {
        self.peers
            .values()
            .filter(|v| v.state != PeerState::Connecting && !v.cut)
            .map(|v| {
                let allowance = if v.background {
                    self.config.background_dead_after_ms
                } else {
                    self.config.dead_after_ms
                };
                let judged = match v.state {
                    PeerState::Connected => allowance,
                    PeerState::Silent if !v.reconnect_asked => {
                        allowance + self.config.reconnect_after_ms
                    }
                    _ => allowance + self.config.forget_after_ms,
                };
                v.next_ping.min(v.last_heard.plus_ms(judged))
            })
            .min()
    }

    fn remove(&mut self, now: Micros, peer: &PeerId, reason: LeftReason) {
        if let Some(view) = self.peers.remove(peer) {
            // A silent member was declared gone already: now it is gone for good.
            let e = if view.state == PeerState::Silent {
                MeshEvent::SilentGone {
                    peer: view.info,
                    reason,
                }
            } else {
                MeshEvent::PeerLeft {
                    peer: view.info,
                    reason,
                    detect_ms: now.saturating_sub(view.last_heard).as_ms_f64(),
                    was_connected: view.state == PeerState::Connected,
                }
            };
            self.out.push_back(MeshOutput::Event(e));
        }
    }
}

/// A default display name for a node without one: its kind and the id's first characters.
pub fn default_name(kind: PeerKind, id: &PeerId) -> String {
    let short: String = id.0.chars().take(4).collect();
    format!("{kind}-{short}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, kind: PeerKind) -> PeerInfo {
        PeerInfo {
            id: PeerId(id.into()),
            kind,
            name: id.into(),
            presenter: false,
            colour: 0,
        }
    }

    fn drain(m: &mut Membership) -> Vec<MeshOutput> {
        std::iter::from_fn(|| m.poll_output()).collect()
    }

    fn hello(id: &str) -> WireMsg {
        WireMsg::Hello {
            id: PeerId(id.into()),
            kind: PeerKind::Browser,
            name: "tab".into(),
            cores: 4,
        }
    }

    fn connected_pair() -> (Membership, PeerId) {
        let mut m = Membership::new(info("me", PeerKind::Native), 2, MembershipConfig::default());
        let b = PeerId("b".into());
        m.handle_announced(Micros(0), info("b", PeerKind::Browser));
        m.handle_channel_open(Micros::from_ms(100), &b);
        let out = drain(&mut m);
        assert!(
            matches!(&out[..], [MeshOutput::Send { msg: WireMsg::Hello { id, cores: 2, .. }, .. }] if id.0 == "me"),
            "{out:?}"
        );
        m.handle_wire(Micros::from_ms(120), &b, hello("b"));
        let out = drain(&mut m);
        assert!(
            matches!(&out[..], [MeshOutput::Event(MeshEvent::PeerConnected { cores: 4, connect_ms, .. })] if *connect_ms == 120.0),
            "{out:?}"
        );
        (m, b)
    }

    #[test]
    fn hello_makes_a_member_and_pings_measure_rtt() {
        let (mut m, b) = connected_pair();
        assert_eq!(m.connected().count(), 1);
        let ping = |m: &mut Membership| match &drain(m)[..] {
            [
                MeshOutput::Send {
                    msg: WireMsg::Ping { seq },
                    ..
                },
            ] => *seq,
            other => panic!("expected one ping, got {other:?}"),
        };
        // The first ping is due as the channel opens (100 ms), so that a round trip
        // is known at once; the next a heartbeat later.
        assert_eq!(m.poll_timeout(), Some(Micros::from_ms(100)));
        m.handle_timeout(Micros::from_ms(120));
        let first = ping(&mut m);
        assert_eq!(m.poll_timeout(), Some(Micros::from_ms(370)));
        m.handle_wire(Micros::from_ms(121), &b, WireMsg::Pong { seq: first });
        assert!(
            matches!(&drain(&mut m)[..], [MeshOutput::Event(MeshEvent::Rtt { ms, .. })] if *ms == 1.0)
        );
        m.handle_timeout(Micros::from_ms(370));
        let seq = ping(&mut m);
        m.handle_wire(Micros(370_400), &b, WireMsg::Pong { seq });
        let out = drain(&mut m);
        assert_eq!(
            out,
            vec![MeshOutput::Event(MeshEvent::Rtt {
                peer: b.clone(),
                ms: 0.4
            })]
        );
        assert_eq!(m.peer(&b).unwrap().rtt_ms, Some(0.4));
        // A stale or repeated pong measures nothing.
        m.handle_wire(Micros(351_000), &b, WireMsg::Pong { seq });
        assert!(drain(&mut m).is_empty());
    }

    #[test]
    fn bulk_bytes_are_counted_and_acknowledged() {
        let (mut m, b) = connected_pair();
        for _ in 0..3 {
            m.handle_wire(
                Micros::from_ms(200),
                &b,
                WireMsg::Bulk {
                    data: vec![0; 1000],
                },
            );
        }
        m.handle_wire(Micros::from_ms(201), &b, WireMsg::BulkEnd { seq: 4 });
        m.handle_wire(
            Micros::from_ms(202),
            &b,
            WireMsg::BulkAck { seq: 5, bytes: 77 },
        );
        assert_eq!(
            drain(&mut m),
            vec![
                MeshOutput::Send {
                    to: b.clone(),
                    msg: WireMsg::BulkAck {
                        seq: 4,
                        bytes: 3000
                    }
                },
                MeshOutput::Event(MeshEvent::BulkAcked {
                    peer: b,
                    seq: 5,
                    bytes: 77
                }),
            ]
        );
    }

    #[test]
    fn a_message_before_the_open_event_opens_the_channel() {
        let mut m = Membership::new(info("me", PeerKind::Native), 2, MembershipConfig::default());
        let b = PeerId("b".into());
        m.handle_announced(Micros(0), info("b", PeerKind::Browser));
        m.handle_wire(Micros::from_ms(5), &b, hello("b"));
        let out = drain(&mut m);
        assert!(
            matches!(
                &out[0],
                MeshOutput::Send {
                    msg: WireMsg::Hello { .. },
                    ..
                }
            ),
            "{out:?}"
        );
        assert!(
            matches!(&out[1], MeshOutput::Event(MeshEvent::PeerConnected { .. })),
            "{out:?}"
        );
        // The late open event changes nothing.
        m.handle_channel_open(Micros::from_ms(6), &b);
        assert!(drain(&mut m).is_empty());
    }

    #[test]
    fn pings_are_answered() {
        let (mut m, b) = connected_pair();
        m.handle_wire(Micros::from_ms(200), &b, WireMsg::Ping { seq: 9 });
        assert_eq!(
            drain(&mut m),
            vec![MeshOutput::Send {
                to: b,
                msg: WireMsg::Pong { seq: 9 }
            }]
        );
    }

    /// Runs `m`'s timers (and nothing else) until `until_ms`, returning what came out
    /// with the time it came out.
    fn run_timers(m: &mut Membership, until_ms: u64) -> Vec<(Micros, MeshOutput)> {
        let mut out = Vec::new();
        while let Some(now) = m.poll_timeout().filter(|t| *t <= Micros::from_ms(until_ms)) {
            m.handle_timeout(now);
            out.extend(drain(m).into_iter().map(|o| (now, o)));
        }
        out
    }

    fn left(out: &[(Micros, MeshOutput)]) -> Vec<(Micros, LeftReason, f64)> {
        out.iter()
            .filter_map(|(t, o)| match o {
                MeshOutput::Event(MeshEvent::PeerLeft {
                    reason, detect_ms, ..
                }) => Some((*t, *reason, *detect_ms)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn silence_is_a_suspicion_that_heals_when_the_peer_is_heard_again() {
        let (mut m, b) = connected_pair();
        // Last heard at 120 ms; pings go out but nothing comes back.
        let out = run_timers(&mut m, 3_000);
        assert_eq!(
            left(&out),
            [(Micros::from_ms(120 + 1500), LeftReason::Heartbeat, 1500.0)]
        );
        // Declared gone, but still tracked, its channel open (nothing closes it) and
        // still pinged, so that it hears from us when it wakes.
        assert!(
            !out.iter()
                .any(|(_, o)| matches!(o, MeshOutput::Close { .. }))
        );
        assert_eq!(m.peer(&b).unwrap().state, PeerState::Silent);
        assert_eq!(m.connected().count(), 0);
        assert!(
            out.iter()
                .filter(|(t, _)| *t > Micros::from_ms(1620))
                .any(|(_, o)| matches!(
                    o,
                    MeshOutput::Send {
                        msg: WireMsg::Ping { .. },
                        ..
                    }
                ))
        );
        // It speaks again at 3.5 s: back, silent for 3.38 s; and its message counts.
        m.handle_wire(Micros::from_ms(3_500), &b, WireMsg::Ping { seq: 7 });
        let out = drain(&mut m);
        assert!(
            matches!(&out[0], MeshOutput::Event(MeshEvent::PeerBack { peer, silent_ms })
                if peer.id == b && *silent_ms == 3380.0),
            "{out:?}"
        );
        assert!(matches!(
            &out[1],
            MeshOutput::Send {
                msg: WireMsg::Pong { seq: 7 },
                ..
            }
        ));
        assert_eq!(m.peer(&b).unwrap().state, PeerState::Connected);
        // Once only.
        m.handle_wire(Micros::from_ms(3_600), &b, WireMsg::Ping { seq: 8 });
        assert!(
            !drain(&mut m)
                .iter()
                .any(|o| matches!(o, MeshOutput::Event(_)))
        );
    }

    #[test]
    fn a_fresh_channel_to_a_member_is_greeted_again_on_both_sides() {
        let (mut m, b) = connected_pair();
        let hellos = |out: &[MeshOutput]| {
            out.iter()
                .filter(|o| {
                    matches!(
                        o,
                        MeshOutput::Send {
                            msg: WireMsg::Hello { .. },
                            ..
                        }
                    )
                })
                .count()
        };
        // The connection was replaced (a reconnect, or the peer's new offer): Hello goes
        // out again, since the peer may have started over and waits for it.
        m.handle_channel_open(Micros::from_ms(500), &b);
        assert_eq!(hellos(&drain(&mut m)), 1);
        // The peer's Hello on the fresh channel is welcome, once, and changes nothing.
        m.handle_wire(Micros::from_ms(510), &b, hello("b"));
        assert_eq!(drain(&mut m), []);
        m.handle_wire(Micros::from_ms(520), &b, hello("b"));
        assert!(matches!(
            &drain(&mut m)[..],
            [MeshOutput::Event(MeshEvent::Dropped { why, .. })] if why == "second hello"
        ));
        assert_eq!(m.peer(&b).unwrap().state, PeerState::Connected);
        // A silent member greets on a fresh channel: it is back, with no protocol error.
        run_timers(&mut m, 3_000);
        assert_eq!(m.peer(&b).unwrap().state, PeerState::Silent);
        m.handle_channel_open(Micros::from_ms(3_000), &b);
        assert_eq!(hellos(&drain(&mut m)), 1);
        m.handle_wire(Micros::from_ms(3_010), &b, hello("b"));
        assert!(matches!(
            &drain(&mut m)[..],
            [MeshOutput::Event(MeshEvent::PeerBack { .. })]
        ));
        assert_eq!(m.peer(&b).unwrap().state, PeerState::Connected);
        assert_eq!(m.stats().dropped_protocol, 1);
    }

    #[test]
    fn a_fresh_connection_is_asked_for_once_per_spell_of_silence() {
        let reconnects = |out: &[(Micros, MeshOutput)]| -> Vec<Micros> {
            out.iter()
                .filter(|(_, o)| matches!(o, MeshOutput::Reconnect { .. }))
                .map(|(t, _)| *t)
                .collect()
        };
        let (mut m, b) = connected_pair();
        // Last heard at 120 ms: gone by silence at 1,620 ms, a fresh connection asked
        // for 2 s later, and only once however long the silence lasts.
        let out = run_timers(&mut m, 30_000);
        assert_eq!(reconnects(&out), [Micros::from_ms(120 + 1500 + 2000)]);
        assert!(
            out.iter()
                .any(|(_, o)| matches!(o, MeshOutput::Reconnect { peer } if *peer == b))
        );
        // It speaks again (on the fresh connection): the next silence asks again.
        m.handle_wire(Micros::from_ms(30_000), &b, WireMsg::Pong { seq: 0 });
        drain(&mut m);
        assert_eq!(m.peer(&b).unwrap().state, PeerState::Connected);
        let out = run_timers(&mut m, 40_000);
        assert_eq!(reconnects(&out), [Micros::from_ms(30_000 + 1500 + 2000)]);
        // A peer whose link a presenter cut is not silent: nothing is asked.
        let (mut m, b) = connected_pair();
        m.set_cut(Micros::from_ms(130), &b, true);
        drain(&mut m);
        assert_eq!(reconnects(&run_timers(&mut m, 30_000)), []);
    }

    #[test]
    fn a_silent_peer_is_forgotten_after_the_forget_time_or_when_its_channel_closes() {
        let (mut m, b) = connected_pair();
        let config = MembershipConfig::default();
        let out = run_timers(
            &mut m,
            120 + config.dead_after_ms + config.forget_after_ms + 1_000,
        );
        let gone: Vec<Micros> = out
            .iter()
            .filter(|(_, o)| {
                matches!(
                    o,
                    MeshOutput::Event(MeshEvent::SilentGone {
                        reason: LeftReason::Heartbeat,
                        ..
                    })
                )
            })
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(gone, [Micros::from_ms(120 + 1500 + 60_000)]);
        assert!(
            out.iter()
                .any(|(_, o)| matches!(o, MeshOutput::Close { peer } if *peer == b))
        );
        assert!(m.peer(&b).is_none());
        assert_eq!(m.poll_timeout(), None);
        assert_eq!(left(&out).len(), 1, "declared gone once");
        // A silent peer whose channel closes: gone for good, said so once.
        let (mut m, b) = connected_pair();
        run_timers(&mut m, 2_000);
        m.handle_channel_closed(Micros::from_ms(2_100), &b);
        let out = drain(&mut m);
        assert!(
            matches!(
                &out[..],
                [MeshOutput::Event(MeshEvent::SilentGone {
                    reason: LeftReason::ChannelClosed,
                    ..
                })]
            ),
            "{out:?}"
        );
    }

    #[test]
    fn the_time_this_node_slept_is_nobodys_silence() {
        let (mut m, b) = connected_pair();
        run_timers(&mut m, 1_000);
        // Frozen from 1 s to 4 s (a stopped process, a page busy or throttled): the
        // peer's messages of that time wait behind the timer that fires on waking.
        m.handle_timeout(Micros::from_ms(4_000));
        assert!(
            left(
                &drain(&mut m)
                    .into_iter()
                    .map(|o| (Micros(0), o))
                    .collect::<Vec<_>>()
            )
            .is_empty()
        );
        assert_eq!(m.peer(&b).unwrap().state, PeerState::Connected);
        // Real silence after waking is still noticed, a dead_after later.
        let out = run_timers(&mut m, 8_000);
        let l = left(&out);
        assert_eq!(l.len(), 1, "{l:?}");
        assert!(l[0].0 <= Micros::from_ms(4_000 + 1_500 + 250), "{l:?}");
    }

    #[test]
    fn a_peer_in_the_background_gets_a_longer_allowance_and_we_say_when_we_are() {
        let (mut m, b) = connected_pair();
        m.handle_wire(Micros::from_ms(200), &b, WireMsg::Background { on: true });
        assert_eq!(
            drain(&mut m),
            [MeshOutput::Event(MeshEvent::Background {
                peer: b.clone(),
                on: true
            })]
        );
        assert!(m.peer(&b).unwrap().background);
        let out = run_timers(&mut m, 10_000);
        assert!(left(&out).is_empty(), "9.8 s of silence in the background");
        let out = run_timers(&mut m, 11_000);
        assert_eq!(left(&out).len(), 1, "10 s of it");
        // This node's own: every member is told, and a member met later too.
        let (mut m, b) = connected_pair();
        m.set_background(true);
        assert_eq!(
            drain(&mut m),
            [MeshOutput::Send {
                to: b,
                msg: WireMsg::Background { on: true }
            }]
        );
        m.set_background(true);
        assert!(drain(&mut m).is_empty(), "said once");
        let c = PeerId("c".into());
        m.handle_announced(Micros(0), info("c", PeerKind::Browser));
        m.handle_channel_open(Micros::from_ms(10), &c);
        let out = drain(&mut m);
        assert!(
            matches!(
                &out[..],
                [
                    MeshOutput::Send {
                        msg: WireMsg::Hello { .. },
                        ..
                    },
                    MeshOutput::Send {
                        msg: WireMsg::Background { on: true },
                        ..
                    }
                ]
            ),
            "{out:?}"
        );
    }

    #[test]
    fn any_message_keeps_a_peer_alive() {
        let (mut m, b) = connected_pair();
        for t in (200..5000).step_by(200) {
            m.handle_wire(Micros::from_ms(t), &b, WireMsg::Ping { seq: 1 });
            m.handle_timeout(Micros::from_ms(t + 1));
        }
        assert!(
            !drain(&mut m)
                .iter()
                .any(|o| matches!(o, MeshOutput::Event(MeshEvent::PeerLeft { .. })))
        );
        assert_eq!(m.connected().count(), 1);
    }

    #[test]
    fn signaling_and_channel_close_remove_once() {
        let (mut m, b) = connected_pair();
        m.handle_signal_left(Micros::from_ms(300), &b);
        m.handle_channel_closed(Micros::from_ms(301), &b);
        let out = drain(&mut m);
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(matches!(
            &out[0],
            MeshOutput::Event(MeshEvent::PeerLeft { reason: LeftReason::Signaling, detect_ms, was_connected: true, .. })
                if *detect_ms == 180.0
        ));
    }

    #[test]
    fn protocol_violations_are_dropped_and_counted() {
        let (mut m, b) = connected_pair();
        m.handle_message(Micros::from_ms(200), &b, &[1, 255, 255]);
        m.handle_wire(Micros::from_ms(201), &b, hello("someone-else"));
        m.handle_wire(Micros::from_ms(202), &b, hello("b"));
        m.handle_message(
            Micros::from_ms(203),
            &PeerId("stranger".into()),
            &wire::encode(&WireMsg::Ping { seq: 1 }),
        );
        let out = drain(&mut m);
        assert_eq!(out.len(), 3, "{out:?}");
        assert!(
            out.iter()
                .all(|o| matches!(o, MeshOutput::Event(MeshEvent::Dropped { .. })))
        );
        let s = m.stats();
        assert_eq!(
            (
                s.dropped_undecodable,
                s.dropped_protocol,
                s.dropped_unknown_peer
            ),
            (1, 2, 1)
        );
        assert_eq!(m.peer(&b).unwrap().info.name, "tab");
    }

    #[test]
    fn announcements_are_bounded_and_self_is_ignored() {
        let config = MembershipConfig {
            peers_max: 2,
            ..MembershipConfig::default()
        };
        let mut m = Membership::new(info("me", PeerKind::Native), 1, config);
        m.handle_announced(Micros(0), info("me", PeerKind::Native));
        for id in ["a", "b", "c"] {
            m.handle_announced(Micros(0), info(id, PeerKind::Native));
        }
        assert_eq!(m.peers().count(), 2);
        assert_eq!(m.stats().dropped_over_capacity, 1);
    }
}
