//! The WebRTC negotiation policy, written once for both transports.
//!
//! Sans-IO in the style of quinn-proto and str0m: no clock, no socket, no `async`, no
//! WebRTC types. The transport feeds it what happened (a frame from the signaling server,
//! the result of a platform call, a channel or connection event) and drains
//! [`Negotiation::poll_step`] for what to do next ([`Step`]). `transport/native.rs`
//! (webrtc-rs) and `transport/web.rs` (web-sys) only carry out steps and report back,
//! so a tab and a native node negotiate the same way.
//!
//! # Connection attempts
//!
//! Every peer connection the policy asks for is one *attempt*, named by a [`ConnId`]
//! that is never reused. Steps name the attempt they are about, and every report from
//! the platform names the attempt it comes from. A report about an attempt that is no
//! longer the peer's current one (closed, or replaced by a newer offer) is *stale*: it is
//! counted, changes nothing, and yields only a [`Step::Close`] of that attempt, so that a
//! connection the platform finished building after the policy gave up on it is torn down
//! too. Closing is idempotent on the platform: it closes the attempt it holds under that
//! id, if any.
//!
//! # The rules
//!
//! - **Who offers.** The newcomer: on the server's Welcome we offer to every peer listed
//!   (once each, never to ourselves, at most [`NegotiationConfig::peers_max`] peers).
//!   Peers that join later offer to us; PeerJoined only reports them.
//! - **An offer** from a peer gets an answer. If we already have an attempt with that
//!   peer (in any state), it is closed and replaced, silently: no ChannelClosed, since
//!   the peer is still there and the new attempt carries on (membership keeps its state
//!   for the peer; events of the replaced attempt are stale). One exception: when the
//!   offer crosses our own offer to that peer (ours has no answer yet) and our id is the
//!   lower, theirs is ignored and counted, since the peer replaces its own attempt with
//!   ours on the same rule; so two sides that try again at the same moment meet in one
//!   attempt.
//! - **An answer** is applied only to our own offer that has no remote description yet;
//!   any other answer (no attempt, we are the answerer, a second answer) is dropped and
//!   counted, and does not disturb the connection.
//! - **ICE candidates** from the peer are normalised ([`Candidate::new`]: an empty
//!   `sdpMid` becomes none, a missing m-line index becomes 0). When the peer's current
//!   attempt has its remote description they are added at once. Otherwise they are held
//!   for the peer, at most [`NegotiationConfig::early_candidates_max`] (further ones are
//!   dropped and counted), and added to the next attempt whose remote description is
//!   set. This holds whether the peer has an attempt under way or none at all
//!   (candidates can arrive before the offer they belong to, or after we closed the
//!   connection), so an early or a late candidate is treated the same way: held,
//!   bounded. Only PeerLeft forgets them (with everything else about the peer).
//! - **Failures.** A failed platform call of the negotiation (create or set a
//!   description, build the connection) ends that attempt, whether we offered or
//!   answered; so does an attempt whose data channel is not open within
//!   [`NegotiationConfig::open_within_ms`] (an offer or an answer lost while the server
//!   was down, a peer frozen when it was offered to).
//! - **Closed channels.** The data channel closing and the connection failing or closing
//!   are one input, [`Negotiation::connection_closed`], which ends the attempt too.
//! - **What an ended attempt reports.** [`TransportEvent::ChannelClosed`], **at most
//!   once per attempt** (the first close signal ends the attempt, every later one is
//!   stale). For a peer the server does not list, at once. For a listed peer, an
//!   attempt that never opened reports nothing (the peer stays one being connected
//!   to), and an open one reports after [`NegotiationConfig::close_grace_ms`], and only
//!   if no fresh channel opened meanwhile: a peer that replaced the connection (its
//!   fresh offer may reach us after the old connection's close) is not shown leaving.
//!   One ChannelClosed is enough: membership's `handle_channel_closed` removes the
//!   peer and ignores the rest.
//! - **Trying again.** While the server lists a peer (its Welcome, PeerJoined and
//!   PeerLeft say who is in the room), an ended attempt with it, or one we closed on
//!   membership's word, is followed by a new offer after
//!   [`NegotiationConfig::retry_first_ms`], doubled after each failure in a row up to
//!   [`NegotiationConfig::retry_max_ms`], and reset when a channel opens or an attempt
//!   used up its whole deadline (the next one then starts soon, so that a link that
//!   heals finds an attempt checking). When membership gives up on a peer while a
//!   fresh attempt is checking, that attempt goes on. Two living
//!   members in the room therefore never stay apart for good, whatever was lost on the
//!   way. If a ChannelClosed made the driver forget the peer, a PeerJoined announces it
//!   again before the new attempt starts (whichever side offers). The policy keeps no
//!   clock: it asks for timers with [`Step::Alarm`] and checks each against its state
//!   when it rings, so an alarm that no longer matters changes nothing.
//! - **No local address.** An attempt whose gathering ended
//!   ([`Negotiation::gathering_done`]) without one local candidate cannot connect:
//!   [`TransportEvent::NoLocalAddress`] says so, once per attempt, before the failure.
//! - **Channel open** is emitted at most once per attempt (a browser answerer's channel
//!   may arrive already open and is reported at once; a second report is ignored).
//! - **PeerLeft** closes the peer's attempt first, then emits
//!   [`TransportEvent::PeerLeft`] (and no ChannelClosed: the departure is already known).
//! - **A fresh connection on membership's word** ([`Negotiation::reconnect`], after a
//!   member has been silent a while): for a listed peer, an open attempt is closed
//!   quietly and replaced by a new offer, as an offer from the peer would replace it;
//!   an attempt not yet open is left alone, and a peer without one is offered to at
//!   once. A link that was cut keeps its old connection, whose SCTP retransmission
//!   timer may by then wait tens of seconds; the fresh one opens as soon as the network
//!   lets it.
//! - **Closes we asked for** ([`Negotiation::close_peer`] when membership gives up on a
//!   silent peer, [`Negotiation::shutdown`]) close the attempt and report nothing. After
//!   shutdown, server frames and the driver's inputs are ignored, and a platform report
//!   only closes the attempt it names.
//! - **Signaling errors** and the socket closing are passed through as events.
//! - **Untrusted or out-of-order frames**: a signal before the Welcome, a signal from our
//!   own id, a second Welcome, or a new peer beyond `peers_max` is dropped and counted
//!   in [`NegotiationStats`].
//!
//! Data-channel messages do not pass through the policy: the transports emit
//! [`TransportEvent::Message`] directly, on the hot path.
//!
//! # Using it from a transport
//!
//! Keep one `Negotiation` behind a lock (`Mutex` natively, `RefCell` in the browser).
//! For each input: take the lock, call the input, drain `poll_step` until `None`,
//! release the lock, then carry out the steps in order. So each caller carries out
//! exactly the steps its own input caused, and no lock is held across an `await`.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use super::TransportEvent;
use crate::signal::{IceServer, PeerId, PeerInfo, PeerKind, ServerMsg, SignalData};

/// Bounds of the policy's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NegotiationConfig {
    /// ICE candidates held per peer until a remote description is set.
    pub early_candidates_max: usize,
    /// Most peers with negotiation state at once; the signaling server bounds a room
    /// too, this keeps a misbehaving server from growing our state without bound.
    pub peers_max: usize,
    /// How long an attempt may take to open its data channel before it is given up
    /// (and, while the server lists the peer, tried again). A connection on loopback
    /// or a LAN opens in well under a second; ICE itself gives up after about 30 s.
    pub open_within_ms: u64,
    /// The wait before a new attempt after one failed; doubled after every further
    /// failure in a row, up to [`NegotiationConfig::retry_max_ms`].
    pub retry_first_ms: u64,
    /// The longest wait between attempts with a peer the server still lists.
    pub retry_max_ms: u64,
    /// How long the close of an open channel to a listed peer waits before it is
    /// reported: a peer that replaced the connection with a fresh one (its offer on
    /// its way through the server, or ours) is not shown leaving.
    pub close_grace_ms: u64,
}

impl Default for NegotiationConfig {
    fn default() -> Self {
        NegotiationConfig {
            early_candidates_max: 64,
            peers_max: 256,
            open_within_ms: 15_000,
            retry_first_ms: 500,
            retry_max_ms: 8_000,
            close_grace_ms: 1_000,
        }
    }
}

/// One connection attempt with a peer. Never reused, so a report from a replaced or
/// closed attempt can be told from one of the current attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

impl ConnId {
    /// The attempt's number, for a transport that reports on it from elsewhere (a
    /// browser's data channel moved to a worker).
    pub fn number(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// An ICE candidate, normalised so that both platforms read it the same way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The `candidate:` line, passed on as-is.
    pub candidate: String,
    /// The media stream id; never empty.
    pub sdp_mid: Option<String>,
    /// The m-line index; 0 when the sender gave none (there is one m-line, the data
    /// channel's).
    pub sdp_mline_index: u16,
}

impl Candidate {
    /// Normalises the fields of [`SignalData::Ice`]: webrtc-rs sends an empty `sdpMid`,
    /// which browsers refuse, and the m-line index alone identifies the line.
    pub fn new(candidate: String, sdp_mid: Option<String>, sdp_mline_index: Option<u16>) -> Self {
        Candidate {
            candidate,
            sdp_mid: sdp_mid.filter(|m| !m.is_empty()),
            sdp_mline_index: sdp_mline_index.unwrap_or(0),
        }
    }

    /// The candidate as a signaling payload.
    pub fn into_signal(self) -> SignalData {
        SignalData::Ice {
            candidate: self.candidate,
            sdp_mid: self.sdp_mid,
            sdp_mline_index: Some(self.sdp_mline_index),
        }
    }
}

/// What the transport must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Use these ICE servers for every connection created from now on.
    SetIceServers(Vec<IceServer>),
    /// Create a connection for `conn` with our data channel, create an offer and set it
    /// as the local description; then report [`Negotiation::local_description`] with its
    /// SDP, or [`Negotiation::negotiation_failed`].
    Offer { peer: PeerId, conn: ConnId },
    /// Create a connection for `conn`, set `sdp` as the remote offer and report
    /// [`Negotiation::remote_description_set`]; then create an answer, set it as the
    /// local description and report [`Negotiation::local_description`]. Any failure:
    /// [`Negotiation::negotiation_failed`].
    Answer {
        peer: PeerId,
        conn: ConnId,
        sdp: String,
    },
    /// Set `sdp` as the remote answer on `conn`, then report
    /// [`Negotiation::remote_description_set`] or [`Negotiation::negotiation_failed`].
    ApplyAnswer {
        peer: PeerId,
        conn: ConnId,
        sdp: String,
    },
    /// Add a remote ICE candidate to `conn` (a refusal is only worth a debug log).
    AddCandidate {
        peer: PeerId,
        conn: ConnId,
        candidate: Candidate,
    },
    /// Close `conn` and forget it, if the platform still holds it under that id. Unset
    /// its callbacks first where the platform allows: nothing about it is wanted any more.
    Close { peer: PeerId, conn: ConnId },
    /// Send this negotiation payload to `to` through the signaling server.
    Signal { to: PeerId, data: SignalData },
    /// Hand this event to the driver.
    Emit(TransportEvent),
    /// Call [`Negotiation::alarm`] with `alarm` once `after_ms` have passed. Alarms are
    /// never cancelled: one that no longer matters changes nothing when it rings.
    Alarm { after_ms: u64, alarm: Alarm },
}

/// A timer the policy asked for with [`Step::Alarm`], handed back when it rings. The
/// policy checks it against its state, so a late, repeated or made-up alarm is harmless.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Alarm {
    /// Attempt `conn` must have its data channel open by now.
    Open { peer: PeerId, conn: ConnId },
    /// Time to try `peer` again (retry number `round`, which only the latest one
    /// scheduled for the peer carries).
    Retry { peer: PeerId, round: u64 },
    /// The grace after an open channel to `peer` closed is over (number `round`).
    Closed { peer: PeerId, round: u64 },
}

/// Counters of inputs the policy did not act on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NegotiationStats {
    /// Server frames dropped: a signal before the Welcome or from our own id, a second
    /// Welcome, an answer we did not ask for, a new peer beyond `peers_max`.
    pub dropped_frames: u64,
    /// Remote ICE candidates dropped over `early_candidates_max` (or `peers_max`).
    pub dropped_candidates: u64,
    /// Platform reports about an attempt that is no longer current.
    pub stale_reports: u64,
    /// Offers that crossed our own pending offer to the same peer and were ignored,
    /// because ours wins (the lower id's offer does).
    pub offers_crossed: u64,
    /// Attempts given up because their channel was not open within
    /// [`NegotiationConfig::open_within_ms`].
    pub attempts_timed_out: u64,
    /// Attempts started again with a peer the server still lists.
    pub retries: u64,
    /// Fresh attempts asked for by membership ([`Negotiation::reconnect`]).
    pub reconnects: u64,
}

/// Which side of the offer/answer exchange we are in an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Offerer,
    Answerer,
}

#[derive(Debug)]
struct Attempt {
    conn: ConnId,
    role: Role,
    /// Whether the remote description is set, so candidates can be added.
    remote_set: bool,
    /// Whether ChannelOpen was emitted.
    open: bool,
    /// Local ICE candidates gathered so far.
    local_candidates: u32,
    /// Whether the platform said gathering is done.
    gathered: bool,
}

/// A peer the signaling server lists in the room now.
#[derive(Debug)]
struct Listed {
    info: PeerInfo,
    /// Whether the driver was told of the peer since its last ChannelClosed (which
    /// makes membership forget it): a new attempt announces it again first.
    announced: bool,
    /// Attempts in a row that failed (reset when one opens), for the backoff.
    failures: u32,
    /// The round of the retry alarm that is due, if one is.
    retry: Option<u64>,
    /// The round of the grace alarm of a closed channel not yet reported, if any.
    closing: Option<u64>,
}

#[derive(Debug, Default)]
struct PeerNegotiation {
    /// The current attempt, if any.
    attempt: Option<Attempt>,
    /// Remote candidates waiting for a remote description, bounded.
    early: Vec<Candidate>,
}

/// The negotiation policy for one node. See the module documentation for its rules.
#[derive(Debug)]
pub struct Negotiation {
    config: NegotiationConfig,
    /// Our kind and display name, for the Joined event.
    kind: PeerKind,
    name: String,
    /// Our id, once the server has welcomed us.
    me: Option<PeerId>,
    /// Our colour, from the last welcome.
    colour: Option<u8>,
    shut_down: bool,
    next_conn: u64,
    peers: BTreeMap<PeerId, PeerNegotiation>,
    /// Who the server lists in the room, besides us (at most `peers_max`).
    roster: BTreeMap<PeerId, Listed>,
    next_round: u64,
    steps: VecDeque<Step>,
    stats: NegotiationStats,
}

impl Negotiation {
    /// A policy for a node of `kind` named `name` (as sent in our Join).
    pub fn new(config: NegotiationConfig, kind: PeerKind, name: String) -> Self {
        Negotiation {
            config,
            kind,
            name,
            me: None,
            colour: None,
            shut_down: false,
            next_conn: 0,
            peers: BTreeMap::new(),
            roster: BTreeMap::new(),
            next_round: 0,
            steps: VecDeque::new(),
            stats: NegotiationStats::default(),
        }
    }

    // ---- getters ----

    /// Our id, once welcomed.
    /// The colour the server gave this node in its last welcome: asked for again when
    /// it resumes.
    pub fn colour(&self) -> Option<u8> {
        self.colour
    }

    pub fn me(&self) -> Option<&PeerId> {
        self.me.as_ref()
    }

    /// The peer's current attempt, if any.
    pub fn conn(&self, peer: &PeerId) -> Option<ConnId> {
        self.peers.get(peer)?.attempt.as_ref().map(|a| a.conn)
    }

    /// Remote candidates held for `peer`.
    pub fn early_candidates(&self, peer: &PeerId) -> usize {
        self.peers.get(peer).map_or(0, |p| p.early.len())
    }

    pub fn stats(&self) -> &NegotiationStats {
        &self.stats
    }

    /// The next step to carry out; drain until `None` after every input.
    pub fn poll_step(&mut self) -> Option<Step> {
        self.steps.pop_front()
    }

    // ---- input: the signaling server ----

    /// A frame from the signaling server.
    pub fn handle_server(&mut self, msg: ServerMsg) {
        if self.shut_down {
            return;
        }
        match msg {
            ServerMsg::Welcome {
                id,
                peers,
                ice_servers,
                presenter,
                colour,
                ..
            } => {
                self.colour = Some(colour);
                if self.me.as_ref() == Some(&id) {
                    self.on_welcome_back(peers, ice_servers);
                } else {
                    self.on_welcome(id, peers, ice_servers, presenter, colour);
                }
            }
            // The transport keeps the token; nothing to negotiate.
            ServerMsg::ResumeToken { .. } => {}
            ServerMsg::PeerJoined { peer } => {
                self.list(peer.clone(), true);
                self.emit(TransportEvent::PeerJoined(peer));
            }
            ServerMsg::PeerLeft { id } => {
                self.roster.remove(&id);
                if let Some(p) = self.peers.remove(&id)
                    && let Some(a) = p.attempt
                {
                    self.steps.push_back(Step::Close {
                        peer: id.clone(),
                        conn: a.conn,
                    });
                }
                self.emit(TransportEvent::PeerLeft(id));
            }
            ServerMsg::Signal { from, data } => self.on_signal(from, data),
            ServerMsg::Revive { from } => self.emit(TransportEvent::Revive(from)),
            ServerMsg::Error {
                code,
                message,
                retry_after_ms,
                ..
            } => self.emit(TransportEvent::SignalingError {
                code,
                message,
                retry_after_ms,
            }),
        }
    }

    /// The signaling socket closed. Established connections carry on.
    pub fn signaling_closed(&mut self) {
        if !self.shut_down {
            self.emit(TransportEvent::SignalingClosed);
        }
    }

    fn on_welcome(
        &mut self,
        id: PeerId,
        peers: Vec<PeerInfo>,
        ice_servers: Vec<IceServer>,
        presenter: bool,
        colour: u8,
    ) {
        if self.me.is_some() {
            self.stats.dropped_frames += 1;
            return;
        }
        self.me = Some(id.clone());
        self.steps.push_back(Step::SetIceServers(ice_servers));
        let me = PeerInfo {
            id: id.clone(),
            kind: self.kind,
            name: self.name.clone(),
            presenter,
            colour,
        };
        let to_offer: Vec<PeerId> = peers.iter().map(|p| p.id.clone()).collect();
        for p in &peers {
            if p.id != id {
                self.list(p.clone(), true);
            }
        }
        self.emit(TransportEvent::Joined { me, peers });
        // The newcomer offers to everyone already there.
        for peer in to_offer {
            if peer == id || self.conn(&peer).is_some() {
                continue;
            }
            if !self.has_room_for(&peer) {
                self.stats.dropped_frames += 1;
                continue;
            }
            self.offer_to(peer);
        }
    }

    /// A welcome under our own id again: the transport resumed after its signaling
    /// socket dropped (or the server restarted). The mesh is as it was; we offer to the
    /// members listed that we have no connection with (they joined while we were away),
    /// as any newcomer would: for every pair, the one that rejoins later offers.
    fn on_welcome_back(&mut self, peers: Vec<PeerInfo>, ice_servers: Vec<IceServer>) {
        self.steps.push_back(Step::SetIceServers(ice_servers));
        let me = self.me.clone();
        let to_offer: Vec<PeerId> = peers
            .iter()
            .map(|p| p.id.clone())
            .filter(|p| Some(p) != me.as_ref() && self.conn(p).is_none())
            .collect();
        // The list is the room now: whoever is not on it left while we were away.
        let listed: std::collections::BTreeSet<&PeerId> = peers.iter().map(|p| &p.id).collect();
        self.roster.retain(|id, _| listed.contains(id));
        for p in &peers {
            if Some(&p.id) != me.as_ref() {
                self.list(p.clone(), true);
            }
        }
        self.emit(TransportEvent::Rejoined { peers });
        for peer in to_offer {
            if !self.has_room_for(&peer) {
                self.stats.dropped_frames += 1;
                continue;
            }
            self.offer_to(peer);
        }
    }

    fn on_signal(&mut self, from: PeerId, data: SignalData) {
        if self.me.as_ref().is_none_or(|me| *me == from) {
            // Before the Welcome nobody can know us; and we never signal ourselves.
            match data {
                SignalData::Ice { .. } => self.stats.dropped_candidates += 1,
                _ => self.stats.dropped_frames += 1,
            }
            return;
        }
        match data {
            SignalData::Offer { sdp } => {
                if !self.has_room_for(&from) {
                    self.stats.dropped_frames += 1;
                    return;
                }
                // Two offers crossed (both sides tried again at once): the lower id's
                // offer wins, so both sides end up in the same attempt.
                let crossed = self
                    .peers
                    .get(&from)
                    .and_then(|p| p.attempt.as_ref())
                    .is_some_and(|a| a.role == Role::Offerer && !a.remote_set);
                if crossed && self.me.as_ref().is_some_and(|me| *me < from) {
                    self.stats.offers_crossed += 1;
                    return;
                }
                // A newer offer replaces whatever we had with the peer.
                self.close_attempt(&from);
                self.announce(&from);
                let conn = self.start(&from, Role::Answerer);
                self.steps.push_back(Step::Answer {
                    peer: from,
                    conn,
                    sdp,
                });
            }
            SignalData::Answer { sdp } => {
                let attempt = self.peers.get(&from).and_then(|p| p.attempt.as_ref());
                match attempt {
                    Some(a) if a.role == Role::Offerer && !a.remote_set => {
                        let conn = a.conn;
                        self.steps.push_back(Step::ApplyAnswer {
                            peer: from,
                            conn,
                            sdp,
                        });
                    }
                    _ => self.stats.dropped_frames += 1,
                }
            }
            SignalData::Ice {
                candidate,
                sdp_mid,
                sdp_mline_index,
            } => {
                let candidate = Candidate::new(candidate, sdp_mid, sdp_mline_index);
                if !self.has_room_for(&from) {
                    self.stats.dropped_candidates += 1;
                    return;
                }
                let max = self.config.early_candidates_max;
                let p = self.peers.entry(from.clone()).or_default();
                match &p.attempt {
                    Some(a) if a.remote_set => {
                        let conn = a.conn;
                        self.steps.push_back(Step::AddCandidate {
                            peer: from,
                            conn,
                            candidate,
                        });
                    }
                    _ if p.early.len() < max => p.early.push(candidate),
                    _ => {
                        self.stats.dropped_candidates += 1;
                        self.forget_if_empty(&from);
                    }
                }
            }
        }
    }

    // ---- input: the platform's reports ----

    /// Our offer or answer for `conn` is set as the local description: send it.
    pub fn local_description(&mut self, peer: &PeerId, conn: ConnId, sdp: String) {
        let Some(a) = self.current(peer, conn) else {
            return;
        };
        let data = match a.role {
            Role::Offerer => SignalData::Offer { sdp },
            Role::Answerer => SignalData::Answer { sdp },
        };
        self.steps.push_back(Step::Signal {
            to: peer.clone(),
            data,
        });
    }

    /// `conn` gathered a local ICE candidate: send it (trickle ICE).
    pub fn local_candidate(&mut self, peer: &PeerId, conn: ConnId, candidate: Candidate) {
        let Some(a) = self.current(peer, conn) else {
            return;
        };
        a.local_candidates += 1;
        self.steps.push_back(Step::Signal {
            to: peer.clone(),
            data: candidate.into_signal(),
        });
    }

    /// `conn` finished gathering local ICE candidates. With none at all it cannot
    /// connect to anyone: reported as [`TransportEvent::NoLocalAddress`] (the browser or
    /// the network offered WebRTC no address), before the failure that follows.
    pub fn gathering_done(&mut self, peer: &PeerId, conn: ConnId) {
        let Some(a) = self.current(peer, conn) else {
            return;
        };
        let first = !std::mem::replace(&mut a.gathered, true);
        if first && a.local_candidates == 0 {
            self.emit(TransportEvent::NoLocalAddress(peer.clone()));
        }
    }

    /// The remote description of `conn` is set: add the candidates that came early.
    pub fn remote_description_set(&mut self, peer: &PeerId, conn: ConnId) {
        let Some(a) = self.current(peer, conn) else {
            return;
        };
        a.remote_set = true;
        let early = self
            .peers
            .get_mut(peer)
            .map(|p| std::mem::take(&mut p.early))
            .unwrap_or_default();
        for candidate in early {
            self.steps.push_back(Step::AddCandidate {
                peer: peer.clone(),
                conn,
                candidate,
            });
        }
    }

    /// A platform call of the negotiation of `conn` failed (building the connection,
    /// creating or setting a description). The platform logs why.
    pub fn negotiation_failed(&mut self, peer: &PeerId, conn: ConnId) {
        self.lost(peer, conn);
    }

    /// The data channel of `conn` is open.
    pub fn channel_open(&mut self, peer: &PeerId, conn: ConnId) {
        let Some(a) = self.current(peer, conn) else {
            return;
        };
        if !a.open {
            a.open = true;
            if let Some(l) = self.roster.get_mut(peer) {
                l.failures = 0;
                l.retry = None;
            }
            self.emit(TransportEvent::ChannelOpen(peer.clone()));
        }
    }

    /// An alarm asked for with [`Step::Alarm`] rang.
    pub fn alarm(&mut self, alarm: Alarm) {
        if self.shut_down {
            return;
        }
        match alarm {
            Alarm::Open { peer, conn } => {
                let pending = self
                    .peers
                    .get(&peer)
                    .and_then(|p| p.attempt.as_ref())
                    .is_some_and(|a| a.conn == conn && !a.open);
                if pending {
                    self.stats.attempts_timed_out += 1;
                    // It spent its whole deadline trying: the next one starts soon, so
                    // that a link that heals finds an attempt checking.
                    if let Some(l) = self.roster.get_mut(&peer) {
                        l.failures = 0;
                    }
                    self.lost(&peer, conn);
                }
            }
            Alarm::Retry { peer, round } => {
                let Some(l) = self.roster.get_mut(&peer) else {
                    return;
                };
                if l.retry != Some(round) {
                    return;
                }
                l.retry = None;
                // An offer from the peer may have started an attempt since.
                if self.conn(&peer).is_some() || !self.has_room_for(&peer) {
                    return;
                }
                self.stats.retries += 1;
                self.announce(&peer);
                self.offer_to(peer);
            }
            Alarm::Closed { peer, round } => {
                let Some(l) = self.roster.get_mut(&peer) else {
                    return;
                };
                if l.closing != Some(round) {
                    return;
                }
                l.closing = None;
                let attempt = self.peers.get(&peer).and_then(|p| p.attempt.as_ref());
                if attempt.is_some_and(|a| a.open) {
                    // A fresh channel took its place in time: nothing to report.
                    return;
                }
                let connecting = attempt.is_some();
                self.emit(TransportEvent::ChannelClosed(peer.clone()));
                // The driver forgets the peer on it; an attempt under way needs it known
                // when it opens.
                if let Some(l) = self.roster.get_mut(&peer) {
                    l.announced = false;
                }
                if connecting {
                    self.announce(&peer);
                }
            }
        }
    }

    /// The data channel of `conn` closed, or its connection failed or closed.
    pub fn connection_closed(&mut self, peer: &PeerId, conn: ConnId) {
        self.lost(peer, conn);
    }

    // ---- input: the driver ----

    /// Replace the connection to `peer` with a fresh attempt (membership heard nothing
    /// from it for a while, and the old connection may take long to carry anything
    /// again once the network heals). Only for a peer the server lists; an attempt not
    /// yet open is fresh already and is left to finish. Reports nothing: the old
    /// attempt is replaced as an offer from the peer would replace it.
    pub fn reconnect(&mut self, peer: &PeerId) {
        if self.shut_down || !self.roster.contains_key(peer) {
            return;
        }
        match self.peers.get(peer).and_then(|p| p.attempt.as_ref()) {
            Some(a) if !a.open => return,
            Some(_) => self.close_attempt(peer),
            None => {}
        }
        if !self.has_room_for(peer) {
            return;
        }
        if let Some(l) = self.roster.get_mut(peer) {
            l.retry = None;
        }
        self.stats.reconnects += 1;
        self.announce(peer);
        self.offer_to(peer.clone());
    }

    /// Close the connection to `peer` (membership gave up on it after a long silence).
    /// Reports nothing; while the server still lists the peer, it is tried again later
    /// (a member cut off for a long while reconnects once the network heals).
    pub fn close_peer(&mut self, peer: &PeerId) {
        if self.shut_down {
            return;
        }
        if let Some(l) = self.roster.get_mut(peer) {
            l.announced = false;
        }
        let pending = self
            .peers
            .get(peer)
            .and_then(|p| p.attempt.as_ref())
            .is_some_and(|a| !a.open);
        if pending && self.roster.contains_key(peer) {
            // A fresh attempt is checking already: it goes on (it may be the one that
            // connects when the link heals), the peer announced again for it.
            self.announce(peer);
            return;
        }
        self.close_attempt(peer);
        self.forget_if_empty(peer);
        self.retry_later(peer);
    }

    /// Close every connection; every later input is ignored. Reports nothing.
    pub fn shutdown(&mut self) {
        if self.shut_down {
            return;
        }
        self.shut_down = true;
        self.roster.clear();
        for (peer, p) in std::mem::take(&mut self.peers) {
            if let Some(a) = p.attempt {
                self.steps.push_back(Step::Close { peer, conn: a.conn });
            }
        }
    }

    /// Start over, as if just made (the transport enters the room again under the same
    /// id, [`crate::transport::Transport::rejoin`]): every attempt is closed without a
    /// report and forgotten, and the next welcome is a first one, after which we offer
    /// to every member listed. Attempt numbers keep growing, so a report from an attempt
    /// of before is stale. The colour is kept, to be asked for again.
    pub fn restart(&mut self) {
        if self.shut_down {
            return;
        }
        self.roster.clear();
        for (peer, p) in std::mem::take(&mut self.peers) {
            if let Some(a) = p.attempt {
                self.steps.push_back(Step::Close { peer, conn: a.conn });
            }
        }
        self.me = None;
    }

    // ---- internals ----

    fn emit(&mut self, ev: TransportEvent) {
        self.steps.push_back(Step::Emit(ev));
    }

    /// Whether `peer` has state already, or there is room for it.
    fn has_room_for(&self, peer: &PeerId) -> bool {
        self.peers.contains_key(peer) || self.peers.len() < self.config.peers_max
    }

    /// Notes `info` as listed by the server; `announced`: the driver hears of it with
    /// the event that goes with this. Beyond `peers_max` the peer is not tracked (and
    /// so not tried again).
    fn list(&mut self, info: PeerInfo, announced: bool) {
        if !self.roster.contains_key(&info.id) && self.roster.len() >= self.config.peers_max {
            return;
        }
        let l = self.roster.entry(info.id.clone()).or_insert(Listed {
            info: info.clone(),
            announced,
            failures: 0,
            retry: None,
            closing: None,
        });
        l.info = info;
        l.announced |= announced;
    }

    /// Tells the driver of a listed peer again if a ChannelClosed made it forget the
    /// peer, before an attempt with it starts.
    fn announce(&mut self, peer: &PeerId) {
        if let Some(l) = self.roster.get_mut(peer)
            && !l.announced
        {
            l.announced = true;
            let info = l.info.clone();
            self.emit(TransportEvent::PeerJoined(info));
        }
    }

    /// Schedules a new attempt with `peer` if the server lists it, after a wait that
    /// doubles with each failure in a row.
    fn retry_later(&mut self, peer: &PeerId) {
        let Some(l) = self.roster.get_mut(peer) else {
            return;
        };
        let after_ms = self
            .config
            .retry_first_ms
            .saturating_mul(1u64 << l.failures.min(20))
            .min(self.config.retry_max_ms);
        l.failures = l.failures.saturating_add(1);
        self.next_round += 1;
        let round = self.next_round;
        l.retry = Some(round);
        self.steps.push_back(Step::Alarm {
            after_ms,
            alarm: Alarm::Retry {
                peer: peer.clone(),
                round,
            },
        });
    }

    /// Starts a new attempt with `peer`, keeping the candidates held for it, with its
    /// deadline to open.
    fn start(&mut self, peer: &PeerId, role: Role) -> ConnId {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.steps.push_back(Step::Alarm {
            after_ms: self.config.open_within_ms,
            alarm: Alarm::Open {
                peer: peer.clone(),
                conn,
            },
        });
        self.peers.entry(peer.clone()).or_default().attempt = Some(Attempt {
            conn,
            role,
            remote_set: false,
            open: false,
            local_candidates: 0,
            gathered: false,
        });
        conn
    }

    /// Starts a new attempt with `peer` in which we offer.
    fn offer_to(&mut self, peer: PeerId) {
        let conn = self.start(&peer, Role::Offerer);
        self.steps.push_back(Step::Offer { peer, conn });
    }

    /// The peer's attempt if `conn` is it. A report about any other attempt is stale:
    /// counted, and that attempt closed in case the platform still holds it.
    fn current(&mut self, peer: &PeerId, conn: ConnId) -> Option<&mut Attempt> {
        let is_current = !self.shut_down && self.conn(peer) == Some(conn);
        if !is_current {
            self.stats.stale_reports += 1;
            self.steps.push_back(Step::Close {
                peer: peer.clone(),
                conn,
            });
            return None;
        }
        self.peers.get_mut(peer)?.attempt.as_mut()
    }

    /// Closes the peer's attempt, if any. Candidates held for the peer stay held.
    fn close_attempt(&mut self, peer: &PeerId) {
        if let Some(a) = self.peers.get_mut(peer).and_then(|p| p.attempt.take()) {
            self.steps.push_back(Step::Close {
                peer: peer.clone(),
                conn: a.conn,
            });
        }
    }

    /// `conn` failed or closed: close it, report it once if the driver must know, and
    /// try the peer again while the server lists it.
    fn lost(&mut self, peer: &PeerId, conn: ConnId) {
        let Some(a) = self.current(peer, conn) else {
            return;
        };
        let was_open = a.open;
        self.close_attempt(peer);
        self.forget_if_empty(peer);
        // A channel that never opened changes nothing for a listed peer: it stays one
        // being connected to. An open one's close is reported after a grace, unless a
        // fresh channel opens in time. A peer the server does not list: at once.
        match self.roster.get_mut(peer) {
            Some(l) if was_open => {
                self.next_round += 1;
                let round = self.next_round;
                l.closing = Some(round);
                self.steps.push_back(Step::Alarm {
                    after_ms: self.config.close_grace_ms,
                    alarm: Alarm::Closed {
                        peer: peer.clone(),
                        round,
                    },
                });
            }
            Some(_) => {}
            None => self.emit(TransportEvent::ChannelClosed(peer.clone())),
        }
        self.retry_later(peer);
    }

    fn forget_if_empty(&mut self, peer: &PeerId) {
        if self
            .peers
            .get(peer)
            .is_some_and(|p| p.attempt.is_none() && p.early.is_empty())
        {
            self.peers.remove(peer);
        }
    }
}
