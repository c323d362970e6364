//! The platform-free node: [`MeshNode`] owns [`Membership`] and the compute [`Engine`]
//! and is the only thing the run loops talk to.
//!
//! It routes every data-channel message to membership or the engine, turns
//! membership's peers coming and going into the engine's `PeerUp` and `PeerDown`, puts
//! chunked messages back together ([`crate::chunk`]) and splits the engine's big ones,
//! and is the one place where the two vocabularies meet: membership speaks signaling ids
//! ([`PeerId`]) and microseconds ([`Micros`]), the engine [`NodeId`]s and [`Millis`].
//!
//! Sans-IO like both: time comes in as an argument and nothing here touches a socket, a
//! clock or a thread. The run loops in `driver` (feature `platform`) carry out its
//! [`Action`]s (send, close, compute, report) and feed back transport events, finished
//! computations and timeouts, so a tab and a CLI node behave the same.

use std::collections::{BTreeMap, VecDeque};

use crate::chunk::{self, Reassembly, ReassemblyConfig};
use crate::engine::{self, Command, Engine, EngineConfig, Input, Millis, Output};
use crate::job::{JobId, NodeId, TaskId, content_hash};
use crate::kernels::Kernel;
use crate::membership::{
    LeftReason, Membership, MembershipConfig, MeshEvent, MeshOutput, Micros, PeerState,
    default_name,
};
use crate::signal::{ErrorCode, PeerId, PeerInfo};
use crate::transport::TransportEvent;
use crate::wire::{self, BULK_PAYLOAD_MAX, ConsoleCmd, ConsoleState, EngineMsg, WireMsg};

/// The engine's id for a signaling peer: a hash of the id the server gave it (which a
/// peer cannot choose), with the hash that resists crafted collisions.
pub fn node_id(peer: &PeerId) -> NodeId {
    NodeId(content_hash(peer.0.as_bytes()))
}

/// The steal grace for a mesh whose slowest round trip is `slowest_rtt_ms`: four round
/// trips (a claim needs half of one to arrive), at least 20 ms and at most `max_ms`
/// (the engine's configured grace, kept while no round trip is measured). A fixed
/// 200 ms grace outlasted short jobs: on loopback, a native done with its share of a
/// 2048² picture (about 110 ms) idled until its peer was done (median 169 ms for the
/// job against 147 with stealing open after 50 ms). A slower link keeps a longer grace,
/// so that thieves do not take tasks whose owners' claims are still on the way.
pub fn steal_grace_ms(slowest_rtt_ms: f64, max_ms: u64) -> u64 {
    let rtts = (4.0 * slowest_rtt_ms).ceil();
    if rtts.is_nan() || rtts <= 0.0 {
        return max_ms;
    }
    (rtts as u64).clamp(20.min(max_ms), max_ms)
}

/// The engine's clock from membership's.
fn millis(now: Micros) -> Millis {
    Millis(now.0 / 1000)
}

/// What a node reports to its shell (the CLI's output, the UI).
#[derive(Clone, Debug, PartialEq)]
pub enum NodeEvent {
    /// The signaling server welcomed us, into a room of `peers` other members.
    Joined { me: PeerInfo, peers: usize },
    /// Something happened in the mesh.
    Mesh(MeshEvent),
    /// Something happened to a job.
    Engine(engine::Event),
    /// The signaling server refused a frame.
    SignalingError {
        code: ErrorCode,
        message: String,
        retry_after_ms: Option<u64>,
    },
    /// The signaling socket closed; the mesh carries on without it, and the transport
    /// tries to resume.
    SignalingClosed,
    /// The signaling server took us back under our id; it knows `peers` members of the
    /// room now (others come back as they reconnect).
    SignalingBack { peers: usize },
    /// The network path to a peer: the kinds of the local and remote ICE candidates
    /// selected (`relay` when it goes through a TURN server).
    Path {
        peer: PeerId,
        local: String,
        remote: String,
    },
    /// The connection to `peer` gathered no local ICE candidate: this node offered WebRTC
    /// no network address, so it cannot connect (see `TransportEvent::NoLocalAddress`).
    NoLocalAddress { peer: PeerId },
    /// A console command reached this node: from a presenter (`from`; `None` when this
    /// node gave it itself) and obeyed, or from someone without the presenter key and
    /// ignored.
    Console {
        from: Option<PeerInfo>,
        cmd: ConsoleCmd,
        obeyed: bool,
    },
    /// A presenter (`by`, when this node still knew it) revived this failed node: it
    /// enters the room again.
    Revived { by: Option<PeerInfo> },
    /// A member's console state (this node's own too) as it announced it: sent when it
    /// changes, when the member connects, and as a plain state when it is gone for good.
    ConsoleState { peer: PeerId, state: ConsoleState },
    /// A bulk stream this node sent ([`MeshNode::start_bulk`]) was acknowledged: the
    /// peer counted `bytes` of it, `secs` after it started (`cargo xtask bench mesh`).
    BulkDone { peer: PeerId, bytes: u64, secs: f64 },
    /// This node's data-channel traffic since it started, told after each job it saw
    /// finish (a program reading events measures a job's bytes with it).
    Traffic(Traffic),
    /// By job, the validated tasks short of copies ([`Engine::copies_short`]), told
    /// when it changes, at most once per [`COPIES_EVERY_MS`], by a node asked to
    /// ([`MeshNode::watch_copies`]): a checker's view of re-replication.
    CopiesShort(BTreeMap<JobId, u32>),
}

/// How often a node watching its copies ([`MeshNode::watch_copies`]) counts them.
pub const COPIES_EVERY_MS: u64 = 1_000;

/// Data-channel bytes a node sent and received, and what packing saved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes of every data-channel message sent and received.
    pub bytes_out: u64,
    pub bytes_in: u64,
    /// Of what arrived packed: the packed bytes, and the bytes they stood for.
    pub packed_in: u64,
    pub unpacked_in: u64,
}

/// Result bytes waiting for one peer, at most this many (whole messages beyond it are
/// dropped and counted; the engine sends copies and answers fetches again later).
pub const BULK_QUEUED_MAX: usize = 8 << 20;

/// The run loops hand result bytes to a channel only while it has fewer than this many
/// bytes in flight: a heartbeat sent meanwhile waits behind at most this much (a few
/// milliseconds on a LAN), never behind a whole transfer.
pub const BULK_IN_FLIGHT_MAX: usize = 512 << 10;

/// The same allowance for a channel to a browser, smaller: a browser's UDP socket
/// holds a few hundred KiB, and what SCTP has in flight beyond that is dropped when
/// the tab is busy (loopback counted 74 to 204 dropped datagrams in each 20 MiB sent
/// with 512 KiB in flight). Each loss then waits for SCTP's retransmission timer, a
/// second at least natively, with every later message, heartbeats too, behind it.
pub const BULK_IN_FLIGHT_BROWSER: usize = 32 << 10;

/// While result bytes wait for a channel to drain, a run loop looks again this often.
pub const BULK_POLL_MS: u64 = 1;

/// Result bytes go to a peer only while fewer than this many of the bytes sent to it
/// are unread by its program (its [`WireMsg::Read`] reports): whatever the transport
/// buffers between (a native's event queue holds thousands of messages, a tab's has no
/// bound), a slow reader has at most this much waiting, so the heartbeats it sends and
/// answers never queue behind a transfer. 1 MiB is 64 messages: a few milliseconds of
/// reading, and on loopback (round trip under a millisecond) well over the channel's
/// own speed.
pub const READ_WINDOW: u64 = 1 << 20;

/// A node reports what it read from a peer (a [`WireMsg::Read`]) each time this many more
/// bytes came from it: the window above then always has seven eighths of itself open.
pub const READ_REPORT: u64 = 128 << 10;

/// A window closed this long, while the peer was heard from and reported nothing, is
/// opened again and counted ([`NodeStats::read_window_reopened`]): bytes counted as sent
/// that never reached it (a send dropped on a closing channel) must not stall results
/// to a living member for good.
pub const READ_STALL_MS: u64 = 2_000;

/// What the page hands the run loop besides the network's events.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum PageInput {
    /// A command of the page's user (submit, cancel, assemble...).
    Command(crate::engine::Command),
    /// A computation the run loop asked the page for finished.
    Computed {
        job: JobId,
        task: TaskId,
        output: Vec<u8>,
    },
    /// The page's user picked another number of workers.
    Workers(u16),
    /// A console command of the page's user for a member (or this node).
    Console {
        target: crate::signal::PeerId,
        cmd: ConsoleCmd,
    },
    /// The presenter takes the signaling server away from the room for `secs` seconds.
    ServerAway { secs: u32 },
    /// The presenter's reset: every member a presenter failed comes back (through the
    /// signaling server, since a failed member hears nothing on its data channels).
    ReviveRoom,
    /// The tab went to the background (hidden) or came back: peers are told, and give
    /// it a longer allowance meanwhile.
    Background(bool),
    /// A benchmark: send `bytes` of bulk data to `to` ([`MeshNode::start_bulk`]).
    Bulk {
        to: crate::signal::PeerId,
        bytes: u64,
    },
    /// What the page shows changed (a selection, say): the run loop calls back
    /// [`Page::on_change`](crate::driver) without a step of the node.
    Refresh,
}

/// What the run loop must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Send at once: control traffic (heartbeats, facts, requests), small. Result bytes
    /// wait in this node's bulk queue instead, which the run loop drains with
    /// [`MeshNode::pop_bulk`] only while the channel has little in flight, so that a
    /// transfer never holds a heartbeat back long enough to cause a false death.
    Send {
        to: PeerId,
        bytes: Vec<u8>,
    },
    Close {
        peer: PeerId,
    },
    /// Replace the connection to a silent member with a fresh one
    /// ([`crate::transport::Transport::reconnect`]).
    Reconnect {
        peer: PeerId,
    },
    /// Compute one task (off the event loop) and hand the output to
    /// [`MeshNode::handle_computed`].
    Compute {
        job: JobId,
        task: TaskId,
        kernel: Kernel,
    },
    Event(NodeEvent),
    /// A presenter asked this node to leave: close every connection and the signaling
    /// socket, and stop.
    Leave,
    /// A presenter revived this failed node: enter the room again under the same id
    /// ([`crate::transport::Transport::rejoin`]).
    Rejoin,
}

/// A command given before the server welcomed this node (which has no id until then).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not in a room yet: wait for the server's welcome")]
pub struct NotJoined;

/// Why a console command could not be sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConsoleError {
    #[error("not in a room yet: wait for the server's welcome")]
    NotJoined,
    #[error("{0} is not a member of this mesh")]
    NoSuchMember(PeerId),
}

/// Counters of the glue itself, for logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Engine messages for a peer that is no longer a member.
    pub sent_to_gone: u64,
    /// Messages over the chunked limit (never made by the engine: a bug if not zero).
    pub unsendable: u64,
    /// Reassembled messages that were not engine messages.
    pub dropped_reassembled: u64,
    /// Bulk messages dropped because their peer's queue was full.
    pub bulk_dropped: u64,
    /// Console commands from members without the presenter key, ignored.
    pub console_refused: u64,
    /// Packed messages that did not open (truncated, a bomb, not a message inside).
    pub unpack_refused: u64,
    /// Read windows opened because a living peer reported nothing for
    /// [`READ_STALL_MS`] (see [`READ_WINDOW`]); zero unless sends were lost.
    pub read_window_reopened: u64,
    /// Bytes on the data channels.
    pub traffic: Traffic,
}

/// A stream of benchmark bytes to one peer: made a message at a time as its channel
/// drains, after any result bytes waiting for it, then ended with a `BulkEnd`.
#[derive(Debug)]
struct BulkOut {
    to: PeerId,
    /// Bytes not yet made into messages.
    remaining: u64,
    started: Micros,
    /// The `BulkEnd` went out; the peer's acknowledgement is awaited.
    ended: bool,
}

/// The sequence number of a bulk stream's `BulkEnd`.
const BULK_SEQ: u32 = 1;

/// Bytes each way on the channel to one peer, since it opened: the read window.
#[derive(Debug, Default)]
struct Flow {
    /// Bytes this node sent the peer, and of them what the peer reported read.
    sent: u64,
    acked: u64,
    /// Bytes this node read from the peer, and what it last reported of that.
    read: u64,
    reported: u64,
    /// When the peer was last heard from.
    heard: Micros,
    /// Since when the window has been seen closed (by the timer).
    closed_since: Option<Micros>,
}

impl Flow {
    fn open(&self) -> bool {
        self.sent.saturating_sub(self.acked) < READ_WINDOW
    }
}

/// Result bytes waiting for one peer: whole messages, each as its data-channel pieces.
#[derive(Debug, Default)]
struct BulkQueue {
    messages: VecDeque<VecDeque<Vec<u8>>>,
    bytes: usize,
}

/// The platform-free part of a running node.
#[derive(Debug)]
pub struct MeshNode {
    config: MembershipConfig,
    engine_config: EngineConfig,
    /// Cores offered in our Hello.
    cores: u16,
    /// One task handed out ahead per core, following the cores when they change
    /// ([`MeshNode::with_tasks_ahead`]).
    ahead_per_core: bool,
    /// Our display name; empty means "derive one from the id".
    name: String,
    /// None until the server has welcomed us and told us our id.
    membership: Option<Membership>,
    engine: Option<Engine>,
    /// Members, by engine id.
    members: BTreeMap<NodeId, PeerId>,
    reassembly: Reassembly,
    bulk: BTreeMap<PeerId, BulkQueue>,
    /// The read window of each peer with an open channel (removed when it closes):
    /// bounded by the channels open.
    flow: BTreeMap<PeerId, Flow>,
    /// A benchmark's stream of bulk bytes under way ([`MeshNode::start_bulk`]).
    bulk_out: Option<BulkOut>,
    next_stream: u32,
    stats: NodeStats,
    actions: VecDeque<Action>,
    /// A presenter failed this node: it answers nothing any more.
    failed: bool,
    /// A presenter made this node lie: its results are wrong on purpose.
    lying: bool,
    /// A hostile member, for tests: its reports are honest, but every copy it stores
    /// and every payload it serves is changed ([`MeshNode::serving_lies`]).
    serves_lies: bool,
    /// Data-channel messages handed to the run loop per peer, for the view's pulses.
    /// Bounded by the peers ever met (pruned when one leaves).
    sent: BTreeMap<PeerId, u64>,
    /// When copies are counted next, and what they were last told as
    /// ([`MeshNode::watch_copies`]); `None` when nobody asked.
    copies: Option<(Micros, BTreeMap<JobId, u32>)>,
    /// This node's console state as it last announced it.
    announced: ConsoleState,
    /// The console states members announced (only those that are not plain): bounded
    /// by the members, pruned when one is gone for good.
    states: BTreeMap<PeerId, ConsoleState>,
}

impl MeshNode {
    pub fn new(config: MembershipConfig, name: String, cores: u16) -> Self {
        Self::with_engine(config, EngineConfig::default(), name, cores)
    }

    pub fn with_engine(
        config: MembershipConfig,
        engine_config: EngineConfig,
        name: String,
        cores: u16,
    ) -> Self {
        MeshNode {
            config,
            engine_config,
            cores,
            ahead_per_core: false,
            name,
            membership: None,
            engine: None,
            members: BTreeMap::new(),
            reassembly: Reassembly::new(ReassemblyConfig::default()),
            bulk: BTreeMap::new(),
            flow: BTreeMap::new(),
            bulk_out: None,
            next_stream: 0,
            stats: NodeStats::default(),
            actions: VecDeque::new(),
            failed: false,
            lying: false,
            serves_lies: false,
            copies: None,
            sent: BTreeMap::new(),
            announced: ConsoleState::default(),
            states: BTreeMap::new(),
        }
    }

    /// Hands one task ahead to each core (`EngineConfig::ahead`), also after the cores
    /// change ([`MeshNode::set_workers`]): a tab's compute workers, whose next task
    /// otherwise waits for a round trip through the page and the node's worker.
    pub fn with_tasks_ahead(mut self) -> Self {
        self.ahead_per_core = true;
        self
    }

    /// Makes this node a hostile member, for tests of the others: it computes and
    /// reports honestly (so no quorum catches it), but every result copy it sends and
    /// every fetch it answers carries changed bytes under the true hash. Only the
    /// others' hash checks keep those bytes out of their outputs.
    pub fn serving_lies(mut self) -> Self {
        self.serves_lies = true;
        self
    }

    /// Makes this node tell [`NodeEvent::CopiesShort`] (a checker reads it; counting is
    /// a pass over every task of every job held, so only when asked).
    pub fn watch_copies(&mut self) {
        self.copies = Some((Micros(0), BTreeMap::new()));
    }

    /// Every [`COPIES_EVERY_MS`], if asked: the copies short, told when they changed.
    fn count_copies(&mut self, now: Micros) {
        let Some((next, told)) = &mut self.copies else {
            return;
        };
        if now < *next {
            return;
        }
        *next = Micros(now.0 + COPIES_EVERY_MS * 1_000);
        let short = self
            .engine
            .as_ref()
            .map(Engine::copies_short)
            .unwrap_or_default();
        if short != *told {
            *told = short.clone();
            self.actions
                .push_back(Action::Event(NodeEvent::CopiesShort(short)));
        }
    }

    /// This node's console state now: what a presenter's commands left set.
    pub fn console_state(&self) -> ConsoleState {
        let cut = self.membership.as_ref().map_or_else(Vec::new, |m| {
            m.peers()
                .filter(|p| p.cut)
                .map(|p| p.info.id.clone())
                .take(wire::STATE_CUTS_MAX)
                .collect()
        });
        ConsoleState {
            paused: self.engine.as_ref().is_some_and(Engine::is_paused),
            pacing_ms: self.engine.as_ref().map_or(0, Engine::pacing_floor),
            lying: self.lying,
            cut,
        }
    }

    /// The console states members announced that are not plain.
    pub fn member_states(&self) -> &BTreeMap<PeerId, ConsoleState> {
        &self.states
    }

    /// Tells every member this node's console state if it changed since it last did.
    fn announce_state(&mut self) {
        let now = self.console_state();
        if now == self.announced {
            return;
        }
        self.announced = now.clone();
        let bytes = wire::encode(&WireMsg::State(now.clone()));
        // Members, not through a link cut just now (its event is not pumped yet).
        let peers: Vec<PeerId> = self.membership.as_ref().map_or_else(Vec::new, |m| {
            m.peers()
                .filter(|p| p.state == PeerState::Connected && !p.cut)
                .map(|p| p.info.id.clone())
                .collect()
        });
        for p in peers {
            self.send(p, bytes.clone());
        }
        if let Some(m) = &self.membership {
            let peer = m.me().id.clone();
            self.actions
                .push_back(Action::Event(NodeEvent::ConsoleState { peer, state: now }));
        }
    }

    /// A member connected: it learns this node's console state, unless there is
    /// nothing to learn.
    fn tell_state(&mut self, to: &PeerId) {
        if !self.announced.is_plain() {
            self.send_state(to);
        }
    }

    /// Sends this node's console state to `to`.
    fn send_state(&mut self, to: &PeerId) {
        let bytes = wire::encode(&WireMsg::State(self.announced.clone()));
        self.send(to.clone(), bytes);
    }

    /// A member's console state arrived, or (plain) it is gone for good.
    fn member_state(&mut self, peer: PeerId, state: ConsoleState) {
        let old = if state.is_plain() {
            self.states.remove(&peer)
        } else {
            self.states.insert(peer.clone(), state.clone())
        };
        if old.unwrap_or_default() != state {
            self.actions
                .push_back(Action::Event(NodeEvent::ConsoleState { peer, state }));
        }
    }

    /// Data-channel messages sent to `peer` so far (control and result bytes).
    pub fn messages_to(&self, peer: &PeerId) -> u64 {
        self.sent.get(peer).copied().unwrap_or(0)
    }

    /// Whether a presenter failed this node (it is silent).
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// Whether a presenter made this node report wrong results.
    pub fn is_lying(&self) -> bool {
        self.lying
    }

    pub fn membership(&self) -> Option<&Membership> {
        self.membership.as_ref()
    }

    pub fn engine(&self) -> Option<&Engine> {
        self.engine.as_ref()
    }

    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    pub fn reassembly(&self) -> &Reassembly {
        &self.reassembly
    }

    /// The signaling id of an engine node, while it is a member.
    pub fn peer_of(&self, node: NodeId) -> Option<&PeerId> {
        self.members.get(&node)
    }

    pub fn handle_transport(&mut self, now: Micros, ev: TransportEvent) {
        // A channel's bytes are counted from its opening on both sides, by a failed
        // node too (it reads and ignores): the counts must agree when it speaks again.
        match &ev {
            TransportEvent::ChannelOpen(id) => {
                let flow = Flow {
                    heard: now,
                    ..Flow::default()
                };
                self.flow.insert(id.clone(), flow);
            }
            // The channel's end ends its counts (the server's word that a peer left
            // comes after its connection closed); entering the room again does not.
            TransportEvent::ChannelClosed(id) | TransportEvent::PeerLeft(id) => {
                self.flow.remove(id);
            }
            // Once per message: the peer's id is cloned only for a channel not seen open.
            TransportEvent::Message(id, bytes) => {
                let f = match self.flow.get_mut(id) {
                    Some(f) => f,
                    None => self.flow.entry(id.clone()).or_default(),
                };
                f.read += bytes.len() as u64;
                f.heard = now;
            }
            _ => {}
        }
        if self.failed {
            // Silent, as a crashed machine, except to a presenter's revive.
            if let TransportEvent::Revive(by) = ev {
                self.revive(now, by);
            }
            return;
        }
        match ev {
            TransportEvent::Joined { mut me, peers } => {
                let listed = peers.len();
                me.name = if self.name.is_empty() {
                    default_name(me.kind, &me.id)
                } else {
                    self.name.clone()
                };
                let mut m = Membership::new(me.clone(), self.cores, self.config.clone());
                for p in peers {
                    m.handle_announced(now, p);
                }
                let id = node_id(&me.id);
                if self.engine.as_ref().is_some_and(|e| e.id() == id) {
                    // Entered again under the same id (revived): the engine keeps its
                    // jobs and results; the members it knew come back as they connect.
                    for n in std::mem::take(&mut self.members).into_keys() {
                        self.engine_input(now, Input::PeerDown(n));
                    }
                } else {
                    // The cores offered are the tasks computed at once (0: none).
                    let mut config = EngineConfig {
                        slots: usize::from(self.cores),
                        ..self.engine_config.clone()
                    };
                    if self.ahead_per_core {
                        config.ahead = usize::from(self.cores);
                    }
                    self.engine = Some(Engine::new(id, config, id.0, millis(now)));
                }
                self.members.clear();
                self.bulk.clear();
                self.states.clear();
                self.announced = ConsoleState::default();
                self.membership = Some(m);
                self.actions
                    .push_back(Action::Event(NodeEvent::Joined { me, peers: listed }));
            }
            TransportEvent::PeerJoined(p) => {
                if let Some(m) = &mut self.membership {
                    m.handle_announced(now, p);
                }
            }
            TransportEvent::Path {
                peer,
                local,
                remote,
            } => self.actions.push_back(Action::Event(NodeEvent::Path {
                peer,
                local,
                remote,
            })),
            TransportEvent::NoLocalAddress(peer) => self
                .actions
                .push_back(Action::Event(NodeEvent::NoLocalAddress { peer })),
            TransportEvent::Rejoined { peers } => {
                let n = peers.len();
                if let Some(m) = &mut self.membership {
                    for p in peers {
                        m.handle_announced(now, p);
                    }
                }
                self.actions
                    .push_back(Action::Event(NodeEvent::SignalingBack { peers: n }));
            }
            TransportEvent::PeerLeft(id) => {
                if let Some(m) = &mut self.membership {
                    m.handle_signal_left(now, &id);
                }
            }
            TransportEvent::ChannelOpen(id) => {
                if let Some(m) = &mut self.membership {
                    m.handle_channel_open(now, &id);
                }
            }
            TransportEvent::ChannelClosed(id) => {
                if let Some(m) = &mut self.membership {
                    m.handle_channel_closed(now, &id);
                }
            }
            TransportEvent::Message(id, bytes) => {
                self.stats.traffic.bytes_in += bytes.len() as u64;
                if let Some(m) = &mut self.membership {
                    m.handle_message(now, &id, &bytes);
                }
                self.report_read(&id);
            }
            TransportEvent::SignalingError {
                code,
                message,
                retry_after_ms,
            } => self
                .actions
                .push_back(Action::Event(NodeEvent::SignalingError {
                    code,
                    message,
                    retry_after_ms,
                })),
            TransportEvent::SignalingClosed => self
                .actions
                .push_back(Action::Event(NodeEvent::SignalingClosed)),
            // Only a failed node has anything to come back from.
            TransportEvent::Revive(_) => {}
        }
        self.pump(now);
    }

    /// A presenter revived this failed node: it speaks again, and enters the room again
    /// so that the members, which took its silence for a departure, see it come back.
    /// What it was told to do before it failed (pause, lie, slow motion) is over too.
    fn revive(&mut self, now: Micros, by: PeerId) {
        self.failed = false;
        self.lying = false;
        if let Some(e) = &mut self.engine {
            e.set_paused(false);
            e.set_pacing_floor(0);
            // What it was computing when it failed was thrown away: its slots are free.
            e.abandon_running();
            // A revive is a presenter's reset: whom it caught lying is forgotten too.
            e.forget_liars();
            e.handle_input(millis(now), Input::Timeout);
        }
        let by = self
            .membership
            .as_ref()
            .and_then(|m| m.peer(&by))
            .map(|p| p.info.clone());
        self.actions
            .push_back(Action::Event(NodeEvent::Revived { by }));
        self.actions.push_back(Action::Rejoin);
        self.pump(now);
    }

    /// A command of this node's user (submit, cancel, assemble, pacing).
    pub fn handle_command(&mut self, now: Micros, cmd: Command) -> Result<(), NotJoined> {
        if self.failed {
            return Ok(());
        }
        let engine = self.engine.as_mut().ok_or(NotJoined)?;
        engine.handle_input(millis(now), Input::Command(cmd));
        self.pump(now);
        Ok(())
    }

    /// Tasks this node computes at once (its cores offered).
    pub fn cores(&self) -> u16 {
        self.cores
    }

    /// Changes how many tasks this node computes at once (0: none), for example when a
    /// page's user picks another number of workers. Computations under way finish.
    pub fn set_workers(&mut self, now: Micros, workers: u16) {
        self.cores = workers;
        if let Some(engine) = &mut self.engine {
            engine.set_slots(usize::from(workers));
            if self.ahead_per_core {
                engine.set_ahead(usize::from(workers));
            }
            engine.handle_input(millis(now), Input::Timeout);
        }
        self.pump(now);
    }

    /// This node went to the background (a hidden tab) or came back: its peers are
    /// told, and allow it a longer silence meanwhile (see [`Membership::set_background`]).
    pub fn set_background(&mut self, now: Micros, on: bool) {
        if self.failed {
            return;
        }
        if let Some(m) = &mut self.membership {
            m.set_background(on);
        }
        self.pump(now);
    }

    /// A computation asked for by [`Action::Compute`] finished.
    pub fn handle_computed(&mut self, now: Micros, job: JobId, task: TaskId, mut output: Vec<u8>) {
        if self.failed {
            return;
        }
        if self.lying {
            lie(&mut output);
        }
        if let Some(engine) = &mut self.engine {
            engine.handle_input(millis(now), Input::ComputeFinished { job, task, output });
        }
        self.pump(now);
    }

    pub fn handle_timeout(&mut self, now: Micros) {
        if self.failed {
            return;
        }
        if let Some(m) = &mut self.membership {
            m.handle_timeout(now);
        }
        if let Some(e) = &mut self.engine
            && e.poll_timeout().is_some_and(|t| t <= millis(now))
        {
            e.handle_input(millis(now), Input::Timeout);
        }
        self.reassembly.expire(now);
        self.check_windows(now);
        self.count_copies(now);
        self.pump(now);
    }

    pub fn poll_timeout(&self) -> Option<Micros> {
        if self.failed {
            return None;
        }
        let engine = self
            .engine
            .as_ref()
            .and_then(Engine::poll_timeout)
            .map(|Millis(ms)| Micros::from_ms(ms));
        [
            self.membership.as_ref().and_then(Membership::poll_timeout),
            engine,
            self.reassembly.poll_timeout(),
            self.copies.as_ref().map(|(next, _)| *next),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// A console command of this node's user for `target` (this node or a member). It
    /// is sent whether or not this node holds the presenter key: the receiver decides.
    pub fn console(
        &mut self,
        now: Micros,
        target: &PeerId,
        cmd: ConsoleCmd,
    ) -> Result<(), ConsoleError> {
        if self.failed {
            return Ok(());
        }
        let m = self.membership.as_ref().ok_or(ConsoleError::NotJoined)?;
        if *target == m.me().id {
            self.obey(now, None, cmd);
        } else if m
            .peer(target)
            // A cut link carries nothing, console commands included.
            .is_some_and(|p| p.state == PeerState::Connected && !p.cut)
        {
            self.send(target.clone(), wire::encode(&WireMsg::Console(cmd)));
        } else {
            return Err(ConsoleError::NoSuchMember(target.clone()));
        }
        self.pump(now);
        Ok(())
    }

    /// Carries out a console command (its sender was checked, or it is this node's own).
    fn obey(&mut self, now: Micros, from: Option<PeerInfo>, cmd: ConsoleCmd) {
        self.actions.push_back(Action::Event(NodeEvent::Console {
            from,
            cmd: cmd.clone(),
            obeyed: true,
        }));
        let at = millis(now);
        match cmd {
            ConsoleCmd::Fail => {
                // Silent from here on, as a frozen machine: nothing queued goes out.
                self.failed = true;
                self.actions.retain(|a| matches!(a, Action::Event(_)));
                self.bulk.clear();
            }
            ConsoleCmd::Leave => self.actions.push_back(Action::Leave),
            ConsoleCmd::Cut { peer } => {
                if let Some(m) = &mut self.membership {
                    m.set_cut(now, &peer, true);
                }
            }
            ConsoleCmd::Restore { peer } => {
                if let Some(m) = &mut self.membership {
                    m.set_cut(now, &peer, false);
                }
            }
            ConsoleCmd::Lie { on } => self.lying = on,
            ConsoleCmd::Pacing { ms } => {
                if let Some(e) = &mut self.engine {
                    e.set_pacing_floor(ms);
                }
            }
            ConsoleCmd::Pause { on } => {
                if let Some(e) = &mut self.engine {
                    e.set_paused(on);
                    e.handle_input(at, Input::Timeout);
                }
            }
            ConsoleCmd::Step => {
                if let Some(e) = &mut self.engine {
                    e.step();
                    e.handle_input(at, Input::Timeout);
                }
            }
            ConsoleCmd::Forgive => {
                if let Some(e) = &mut self.engine {
                    e.forget_liars();
                    e.handle_input(at, Input::Timeout);
                }
            }
        }
        if !self.failed {
            self.announce_state();
        }
    }

    /// Peers with result bytes (or a bulk stream's) waiting.
    ///
    /// Peers whose read window is full are left out: they are waited for (a report of
    /// theirs, then [`MeshNode::handle_transport`], opens it again).
    pub fn bulk_waiting(&self) -> Vec<PeerId> {
        let mut peers: Vec<PeerId> = self.bulk.keys().cloned().collect();
        if let Some(b) = &self.bulk_out
            && !b.ended
            && !self.bulk.contains_key(&b.to)
        {
            peers.push(b.to.clone());
        }
        peers.retain(|p| self.window_open(p));
        peers
    }

    /// The bytes in flight on the channel to `to` under which the run loop hands it
    /// result bytes ([`BULK_IN_FLIGHT_MAX`], [`BULK_IN_FLIGHT_BROWSER`] to a browser).
    pub fn in_flight_max(&self, to: &PeerId) -> usize {
        let browser = self
            .membership
            .as_ref()
            .and_then(|m| m.peer(to))
            .is_some_and(|p| p.info.kind == crate::signal::PeerKind::Browser);
        if browser {
            BULK_IN_FLIGHT_BROWSER
        } else {
            BULK_IN_FLIGHT_MAX
        }
    }

    /// Whether result bytes may go to `to`: fewer than [`READ_WINDOW`] sent to it unread.
    fn window_open(&self, to: &PeerId) -> bool {
        self.flow.get(to).is_none_or(Flow::open)
    }

    /// Counts `len` bytes sent to `to` on its channel.
    fn count_sent(&mut self, to: &PeerId, len: usize) {
        *self.sent.entry(to.clone()).or_default() += 1;
        self.stats.traffic.bytes_out += len as u64;
        if let Some(f) = self.flow.get_mut(to) {
            f.sent += len as u64;
        }
    }

    /// Tells `from` what this node has read from it, once [`READ_REPORT`] more bytes
    /// came since the last report (a failed node never gets here: it says nothing).
    fn report_read(&mut self, from: &PeerId) {
        let Some(f) = self.flow.get_mut(from) else {
            return;
        };
        if f.read - f.reported < READ_REPORT {
            return;
        }
        f.reported = f.read;
        let msg = WireMsg::Read { bytes: f.read };
        self.send(from.clone(), wire::encode(&msg));
    }

    /// A peer reported what it read of ours: the window moves on.
    fn on_read(&mut self, from: &PeerId, bytes: u64) {
        if let Some(f) = self.flow.get_mut(from) {
            let acked = bytes.min(f.sent);
            if acked > f.acked {
                f.acked = acked;
                f.closed_since = None;
            }
        }
    }

    /// Opens windows closed [`READ_STALL_MS`] while their peer kept speaking (a peer
    /// not heard for half of that restarts the clock: it may be frozen, or reading).
    fn check_windows(&mut self, now: Micros) {
        let stall = Micros::from_ms(READ_STALL_MS);
        for f in self.flow.values_mut() {
            if f.open() {
                f.closed_since = None;
                continue;
            }
            if now.saturating_sub(f.heard).0 > stall.0 / 2 {
                f.closed_since = Some(now);
            }
            let since = *f.closed_since.get_or_insert(now);
            if now.saturating_sub(since) >= stall {
                f.acked = f.sent;
                f.closed_since = None;
                self.stats.read_window_reopened += 1;
            }
        }
    }

    /// Starts a benchmark's stream of `bytes` bulk bytes to `to` (replacing one under
    /// way): sent through the bulk queue like result bytes, so with the same flow
    /// control, and acknowledged by the peer with the bytes it counted
    /// ([`NodeEvent::BulkDone`]).
    pub fn start_bulk(&mut self, now: Micros, to: PeerId, bytes: u64) {
        self.bulk_out = Some(BulkOut {
            to,
            remaining: bytes,
            started: now,
            ended: false,
        });
    }

    /// The next message of the bulk stream to `to`, if one is under way.
    fn next_bulk_message(&mut self, to: &PeerId) -> Option<Vec<u8>> {
        let b = self.bulk_out.as_mut().filter(|b| &b.to == to && !b.ended)?;
        let msg = if b.remaining == 0 {
            b.ended = true;
            WireMsg::BulkEnd { seq: BULK_SEQ }
        } else {
            let n = b.remaining.min(BULK_PAYLOAD_MAX as u64);
            b.remaining -= n;
            WireMsg::Bulk {
                data: vec![0x5a; n as usize],
            }
        };
        let bytes = wire::encode(&msg);
        self.count_sent(to, bytes.len());
        Some(bytes)
    }

    /// The next data-channel message of result bytes for `to`, if any, or else of a
    /// bulk stream to it: the run loop calls this while the channel to `to` has little
    /// in flight.
    ///
    /// Nothing while `to`'s read window is full.
    pub fn pop_bulk(&mut self, to: &PeerId) -> Option<Vec<u8>> {
        if !self.window_open(to) {
            return None;
        }
        let Some(q) = self.bulk.get_mut(to) else {
            return self.next_bulk_message(to);
        };
        let msg = q.messages.front_mut()?;
        let piece = msg.pop_front();
        if msg.is_empty() {
            q.messages.pop_front();
        }
        if let Some(p) = &piece {
            q.bytes -= p.len();
        }
        if q.messages.is_empty() {
            self.bulk.remove(to);
        }
        let piece = piece?;
        self.count_sent(to, piece.len());
        Some(piece)
    }

    /// Moves everything membership and the engine want done into `actions`, feeding
    /// each what the other produced, until both are quiet.
    fn pump(&mut self, now: Micros) {
        loop {
            let mut busy = false;
            while let Some(out) = self.membership.as_mut().and_then(Membership::poll_output) {
                busy = true;
                self.on_mesh_output(now, out);
            }
            while let Some(out) = self.engine.as_mut().and_then(Engine::poll_output) {
                busy = true;
                self.on_engine_output(out);
            }
            if !busy {
                return;
            }
        }
    }

    fn on_mesh_output(&mut self, now: Micros, out: MeshOutput) {
        match out {
            MeshOutput::Send { to, msg } => self.send(to, wire::encode(&msg)),
            MeshOutput::Close { peer } => self.actions.push_back(Action::Close { peer }),
            MeshOutput::Reconnect { peer } => {
                self.actions.push_back(Action::Reconnect { peer });
            }
            MeshOutput::Deliver { from, msg } => self.on_deliver(now, from, msg),
            MeshOutput::Event(e) => {
                match &e {
                    MeshEvent::PeerConnected { peer, .. } => {
                        let n = node_id(&peer.id);
                        self.members.insert(n, peer.id.clone());
                        self.tell_state(&peer.id);
                        self.engine_input(now, Input::PeerUp(n));
                    }
                    MeshEvent::PeerLeft { peer, .. } | MeshEvent::LinkCut { peer } => {
                        if matches!(e, MeshEvent::PeerLeft { .. }) {
                            self.sent.remove(&peer.id);
                        }
                        // Gone for good unless it fell silent (it may come back as it was).
                        if matches!(e, MeshEvent::PeerLeft { reason, .. } if reason != LeftReason::Heartbeat)
                        {
                            self.member_state(peer.id.clone(), ConsoleState::default());
                        }
                        self.reassembly.forget(&peer.id);
                        self.bulk.remove(&peer.id);
                        self.bulk_out.take_if(|b| b.to == peer.id);
                        let n = node_id(&peer.id);
                        if self.members.remove(&n).is_some() {
                            self.engine_input(now, Input::PeerDown(n));
                        }
                    }
                    MeshEvent::LinkRestored { peer } | MeshEvent::PeerBack { peer, .. } => {
                        let n = node_id(&peer.id);
                        self.members.insert(n, peer.id.clone());
                        // Even a plain state: what it holds of ours may be from before.
                        self.send_state(&peer.id);
                        self.engine_input(now, Input::PeerUp(n));
                    }
                    MeshEvent::Rtt { .. } => {
                        let slowest = self.membership.as_ref().map_or(0.0, |m| {
                            m.peers().filter_map(|p| p.rtt_ms).fold(0.0, f64::max)
                        });
                        let grace = steal_grace_ms(slowest, self.engine_config.steal_after_ms);
                        if let Some(e) = &mut self.engine {
                            e.set_steal_after_ms(grace);
                        }
                    }
                    MeshEvent::BulkAcked { peer, seq, bytes } if *seq == BULK_SEQ => {
                        if let Some(b) = self.bulk_out.take_if(|b| b.ended && &b.to == peer) {
                            let secs = now.saturating_sub(b.started).as_ms_f64() / 1000.0;
                            self.actions.push_back(Action::Event(NodeEvent::BulkDone {
                                peer: peer.clone(),
                                bytes: *bytes,
                                secs,
                            }));
                        }
                    }
                    MeshEvent::SilentGone { peer, .. } => {
                        self.member_state(peer.id.clone(), ConsoleState::default());
                        self.sent.remove(&peer.id);
                        self.reassembly.forget(&peer.id);
                        self.bulk.remove(&peer.id);
                        self.bulk_out.take_if(|b| b.to == peer.id);
                    }
                    _ => {}
                }
                self.actions.push_back(Action::Event(NodeEvent::Mesh(e)));
            }
        }
    }

    fn on_deliver(&mut self, now: Micros, from: PeerId, msg: WireMsg) {
        let msg = match msg {
            WireMsg::Chunk {
                stream,
                index,
                count,
                data,
            } => match self.reassembly.push(now, &from, stream, index, count, data) {
                Ok(Some(whole)) => whole,
                Ok(None) => return,
                Err(e) => {
                    let why = format!("chunk refused: {e}");
                    let e = MeshEvent::Dropped { peer: from, why };
                    self.actions.push_back(Action::Event(NodeEvent::Mesh(e)));
                    return;
                }
            },
            msg => msg,
        };
        let msg = match msg {
            WireMsg::Packed { len, data } => match wire::unpack(len, &data) {
                Ok(msg) => {
                    self.stats.traffic.packed_in += data.len() as u64;
                    self.stats.traffic.unpacked_in += u64::from(len);
                    msg
                }
                Err(e) => {
                    self.stats.unpack_refused += 1;
                    let e = MeshEvent::Dropped {
                        peer: from,
                        why: e.to_string(),
                    };
                    self.actions.push_back(Action::Event(NodeEvent::Mesh(e)));
                    return;
                }
            },
            msg => msg,
        };
        match msg {
            WireMsg::Engine(msg) => {
                let from = node_id(&from);
                self.engine_input(now, Input::Message { from, msg });
            }
            WireMsg::State(state) => self.member_state(from, state),
            WireMsg::Read { bytes } => self.on_read(&from, bytes),
            WireMsg::Console(cmd) => {
                let sender = self
                    .membership
                    .as_ref()
                    .and_then(|m| m.peer(&from))
                    .map(|p| p.info.clone());
                match sender {
                    // The signaling server marked it: it joined with the presenter key.
                    Some(info) if info.presenter => self.obey(now, Some(info), cmd),
                    other => {
                        self.stats.console_refused += 1;
                        let from = other.unwrap_or_else(|| PeerInfo {
                            id: from,
                            kind: crate::signal::PeerKind::Browser,
                            name: String::new(),
                            presenter: false,
                            colour: 0,
                        });
                        self.actions.push_back(Action::Event(NodeEvent::Console {
                            from: Some(from),
                            cmd,
                            obeyed: false,
                        }));
                    }
                }
            }
            _ => self.stats.dropped_reassembled += 1,
        }
    }

    /// Queues a message to send at once, counting it for the view.
    fn send(&mut self, to: PeerId, bytes: Vec<u8>) {
        self.count_sent(&to, bytes.len());
        self.actions.push_back(Action::Send { to, bytes });
    }

    fn engine_input(&mut self, now: Micros, input: Input) {
        if let Some(e) = &mut self.engine {
            e.handle_input(millis(now), input);
        }
    }

    fn on_engine_output(&mut self, out: Output) {
        match out {
            Output::Send { to, mut msg } => match self.members.get(&to).cloned() {
                Some(peer) => {
                    if self.serves_lies {
                        serve_a_lie(&mut msg);
                    }
                    self.send_engine(&[peer], msg)
                }
                None => self.stats.sent_to_gone += 1,
            },
            Output::Broadcast { msg } => {
                let peers: Vec<PeerId> = self.members.values().cloned().collect();
                self.send_engine(&peers, msg);
            }
            Output::RunTask { job, task, kernel } => {
                self.actions
                    .push_back(Action::Compute { job, task, kernel });
            }
            Output::Event(e) => {
                let done = matches!(e, engine::Event::JobDone { .. });
                self.actions.push_back(Action::Event(NodeEvent::Engine(e)));
                if done {
                    let t = NodeEvent::Traffic(self.stats.traffic.clone());
                    self.actions.push_back(Action::Event(t));
                }
            }
        }
    }

    /// Encodes `msg` once (in chunks if it is big) and sends it to every peer in `to`:
    /// control messages at once, result bytes through each peer's bulk queue.
    fn send_engine(&mut self, to: &[PeerId], msg: EngineMsg) {
        let bulk = matches!(
            msg,
            EngineMsg::Store { .. } | EngineMsg::Payload { .. } | EngineMsg::Preview { .. }
        );
        self.next_stream = self.next_stream.wrapping_add(1);
        // Packed once for every receiver: result tiles shrink ten to thirty times.
        let msg = wire::pack(WireMsg::Engine(msg));
        let Some(pieces) = chunk::split(&msg, self.next_stream) else {
            self.stats.unsendable += 1;
            return;
        };
        let len: usize = pieces.iter().map(Vec::len).sum();
        for peer in to {
            if !bulk {
                for bytes in &pieces {
                    let (to, bytes) = (peer.clone(), bytes.clone());
                    self.send(to, bytes);
                }
                continue;
            }
            let q = self.bulk.entry(peer.clone()).or_default();
            if q.bytes + len > BULK_QUEUED_MAX {
                self.stats.bulk_dropped += 1;
                if q.messages.is_empty() {
                    self.bulk.remove(peer);
                }
                continue;
            }
            q.bytes += len;
            q.messages.push_back(pieces.iter().cloned().collect());
        }
    }
}

/// What a member serving lies ([`MeshNode::serving_lies`]) sends: the bytes of a copy it
/// stores with a holder, or of a payload it answers a fetch with, changed, under the
/// hash of the true ones; a receiver that skipped its hash check would take them for a
/// validated result. (A console liar does not do this: its wrong results must travel
/// intact, so that a job with `q = 1` shows the lie believed.)
fn serve_a_lie(msg: &mut EngineMsg) {
    if let EngineMsg::Store { payload, .. } | EngineMsg::Payload { payload, .. } = msg {
        lie(payload);
    }
}

/// A liar's result: every byte changed, in a way that shows on a picture and keeps it
/// one: a colour index (0 to 64, see `kernels::mandelbrot`) moves half way round the
/// palette (black becomes a colour), any other byte is inverted.
fn lie(output: &mut [u8]) {
    let indices = u16::from(crate::kernels::mandelbrot::BLACK) + 1;
    for b in output.iter_mut() {
        *b = if u16::from(*b) < indices {
            ((u16::from(*b) + indices / 2) % indices) as u8
        } else {
            !*b
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::{PeerId, PeerKind};
    use crate::wire::WireMsg;

    fn info(id: &str, kind: PeerKind) -> PeerInfo {
        PeerInfo {
            id: PeerId(id.into()),
            kind,
            name: String::new(),
            presenter: false,
            colour: 0,
        }
    }

    /// A tab's Hello, as `id` sends it, offering `cores`.
    fn hello(id: &PeerId, cores: u16) -> Vec<u8> {
        wire::encode(&WireMsg::Hello {
            id: id.clone(),
            kind: PeerKind::Browser,
            name: "tab".into(),
            cores,
        })
    }

    fn drain(n: &mut MeshNode) -> Vec<Action> {
        std::iter::from_fn(|| n.poll_action()).collect()
    }

    #[test]
    fn a_join_then_a_channel_gives_hello_then_connected() {
        let mut n = MeshNode::new(MembershipConfig::default(), String::new(), 3);
        n.handle_transport(
            Micros(0),
            TransportEvent::Joined {
                me: info("abcdef", PeerKind::Native),
                peers: vec![info("p1", PeerKind::Browser)],
            },
        );
        let out = drain(&mut n);
        assert!(
            matches!(&out[..], [Action::Event(NodeEvent::Joined { me, peers: 1 })] if me.name == "native-abcd"),
            "{out:?}"
        );
        let p1 = PeerId("p1".into());
        n.handle_transport(Micros(10), TransportEvent::ChannelOpen(p1.clone()));
        let out = drain(&mut n);
        let [Action::Send { to, bytes }] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(to, &p1);
        assert!(matches!(
            wire::decode(bytes),
            Ok(WireMsg::Hello { cores: 3, .. })
        ));
        n.handle_transport(
            Micros(20),
            TransportEvent::Message(p1.clone(), hello(&p1, 8)),
        );
        assert!(matches!(
            &drain(&mut n)[..],
            [Action::Event(NodeEvent::Mesh(MeshEvent::PeerConnected {
                cores: 8,
                ..
            }))]
        ));
        let gone = node_id(&p1);
        n.handle_transport(Micros(30), TransportEvent::PeerLeft(p1));
        // Membership says so, and the engine hears of it.
        let out = drain(&mut n);
        assert!(
            matches!(
                &out[..],
                [
                    Action::Event(NodeEvent::Mesh(MeshEvent::PeerLeft { .. })),
                    Action::Event(NodeEvent::Engine(engine::Event::PeerDead { node }))
                ] if *node == gone
            ),
            "{out:?}"
        );
    }

    /// A node joined with `p1` connected (its Hello read): the actions drained.
    fn connected_to_p1() -> (MeshNode, PeerId) {
        let mut n = MeshNode::new(MembershipConfig::default(), String::new(), 1);
        n.handle_transport(
            Micros(0),
            TransportEvent::Joined {
                me: info("abcdef", PeerKind::Native),
                peers: vec![info("p1", PeerKind::Browser)],
            },
        );
        let p1 = PeerId("p1".into());
        n.handle_transport(Micros(10), TransportEvent::ChannelOpen(p1.clone()));
        n.handle_transport(
            Micros(20),
            TransportEvent::Message(p1.clone(), hello(&p1, 1)),
        );
        drain(&mut n);
        (n, p1)
    }

    /// Pops bulk messages for `to` until there are none: their bytes.
    fn pop_all(n: &mut MeshNode, to: &PeerId) -> u64 {
        std::iter::from_fn(|| n.pop_bulk(to))
            .map(|m| m.len() as u64)
            .sum()
    }

    #[test]
    fn result_bytes_wait_while_the_reader_has_a_window_unread() {
        let (mut n, p1) = connected_to_p1();
        let before = n.flow[&p1].sent;
        n.start_bulk(Micros(30), p1.clone(), 8 << 20);
        let first = pop_all(&mut n, &p1);
        // A window's worth went (the last message may overshoot it), then nothing,
        // though most of the stream waits: the peer has not said it read any of it.
        assert!(
            (READ_WINDOW..READ_WINDOW + 20_000).contains(&(first + before)),
            "{first}"
        );
        assert!(n.bulk_waiting().is_empty());
        assert_eq!(n.pop_bulk(&p1), None);
        // It read half: half a window more may go.
        let half = (before + first) / 2;
        let read = wire::encode(&WireMsg::Read { bytes: half });
        n.handle_transport(Micros(40), TransportEvent::Message(p1.clone(), read));
        assert_eq!(n.bulk_waiting(), vec![p1.clone()]);
        let second = pop_all(&mut n, &p1);
        assert!((half - 20_000..half + 20_000).contains(&second), "{second}");
        // A report of more than was ever sent moves the window to what was sent, no
        // further: a window's worth again, not more.
        let lie = wire::encode(&WireMsg::Read { bytes: u64::MAX });
        n.handle_transport(Micros(50), TransportEvent::Message(p1.clone(), lie));
        let third = pop_all(&mut n, &p1);
        assert!(
            (READ_WINDOW..READ_WINDOW + 20_000).contains(&third),
            "{third}"
        );
        // A new channel starts the counts again.
        n.handle_transport(Micros(60), TransportEvent::ChannelOpen(p1.clone()));
        assert!(pop_all(&mut n, &p1) >= READ_WINDOW);
        assert_eq!(n.stats().read_window_reopened, 0);
    }

    #[test]
    fn a_reader_reports_every_read_report_bytes_and_a_failed_one_does_not() {
        let (mut n, p1) = connected_to_p1();
        let bulk = wire::encode(&WireMsg::Bulk {
            data: vec![1; wire::BULK_PAYLOAD_MAX],
        });
        let reports = |n: &mut MeshNode| -> Vec<u64> {
            drain(n)
                .into_iter()
                .filter_map(|a| match a {
                    Action::Send { to, bytes } if to.0 == "p1" => match wire::decode(&bytes) {
                        Ok(WireMsg::Read { bytes }) => Some(bytes),
                        _ => None,
                    },
                    _ => None,
                })
                .collect()
        };
        let mut read = n.flow[&p1].read;
        let mut said = Vec::new();
        for i in 0..40 {
            n.handle_transport(
                Micros(100 + i),
                TransportEvent::Message(p1.clone(), bulk.clone()),
            );
            read += bulk.len() as u64;
            said.extend(reports(&mut n));
        }
        // Each report says all that was read by then, and they come READ_REPORT apart.
        assert!(said.len() >= 4, "{said:?}");
        assert!(
            said.windows(2).all(|w| w[1] - w[0] >= READ_REPORT),
            "{said:?}"
        );
        assert!(
            read - said.last().unwrap() < READ_REPORT,
            "{said:?} of {read}"
        );
        // A failed node reads on (the counts must agree when it is revived) in silence.
        n.failed = true;
        for i in 0..20 {
            n.handle_transport(
                Micros(200 + i),
                TransportEvent::Message(p1.clone(), bulk.clone()),
            );
            read += bulk.len() as u64;
        }
        assert_eq!(reports(&mut n), Vec::<u64>::new());
        n.failed = false;
        n.handle_transport(
            Micros(300),
            TransportEvent::Message(p1.clone(), bulk.clone()),
        );
        read += bulk.len() as u64;
        assert_eq!(reports(&mut n), vec![read]);
    }

    #[test]
    fn a_window_closed_while_its_peer_speaks_and_reports_nothing_opens_again() {
        let (mut n, p1) = connected_to_p1();
        n.start_bulk(Micros(30), p1.clone(), 8 << 20);
        pop_all(&mut n, &p1);
        let ping = wire::encode(&WireMsg::Ping { seq: 1 });
        // Closed and the peer silent (it may be frozen, or reading a backlog): the
        // window waits for it, however long.
        n.handle_timeout(Micros::from_ms(100));
        n.handle_timeout(Micros::from_ms(100 + READ_STALL_MS + 100));
        assert!(n.pop_bulk(&p1).is_none());
        // It wakes and speaks every 250 ms but reports nothing: for READ_STALL_MS the
        // window still waits (a report may be on its way), then the bytes it never read
        // are taken for lost, and the window opens, counted.
        let woke = 200 + READ_STALL_MS;
        for t in (woke..woke + READ_STALL_MS).step_by(250) {
            let ping = TransportEvent::Message(p1.clone(), ping.clone());
            n.handle_transport(Micros::from_ms(t), ping);
            n.handle_timeout(Micros::from_ms(t + 10));
            assert!(n.pop_bulk(&p1).is_none(), "open at {t} ms");
        }
        let t = woke + READ_STALL_MS;
        n.handle_transport(
            Micros::from_ms(t),
            TransportEvent::Message(p1.clone(), ping),
        );
        n.handle_timeout(Micros::from_ms(t + 10));
        assert!(n.pop_bulk(&p1).is_some());
        assert_eq!(n.stats().read_window_reopened, 1);
    }

    #[test]
    fn events_before_the_welcome_are_ignored() {
        let mut n = MeshNode::new(MembershipConfig::default(), "x".into(), 1);
        n.handle_transport(Micros(0), TransportEvent::ChannelOpen(PeerId("p".into())));
        n.handle_transport(
            Micros(0),
            TransportEvent::Message(PeerId("p".into()), vec![1, 2]),
        );
        assert!(drain(&mut n).is_empty());
        assert_eq!(n.poll_timeout(), None);
    }

    /// A lone node's computations handed out at once for an unpaced 8-task job.
    fn computes_at_once(n: &mut MeshNode) -> usize {
        drain(n)
            .iter()
            .filter(|a| matches!(a, Action::Compute { .. }))
            .count()
    }

    #[test]
    fn tasks_ahead_follow_the_workers_when_asked_for() {
        use crate::kernels::{Kernel, monte_carlo};
        let job = |nonce| crate::engine::Command::Submit {
            kernel: Kernel::MonteCarloPi(monte_carlo::Params {
                samples_per_task: 10,
                tasks: 8,
                seed: 1,
            }),
            replication: 1,
            quorum: 1,
            pacing_ms: 0,
            nonce,
        };
        for (ahead, first, after) in [(false, 1, 2), (true, 2, 4)] {
            let mut n = MeshNode::new(MembershipConfig::default(), String::new(), 1);
            if ahead {
                n = n.with_tasks_ahead();
            }
            n.handle_transport(
                Micros(0),
                TransportEvent::Joined {
                    me: info("abcdef", PeerKind::Browser),
                    peers: vec![],
                },
            );
            drain(&mut n);
            n.handle_command(Micros(1), job(1)).unwrap();
            assert_eq!(computes_at_once(&mut n), first, "ahead: {ahead}");
            // One more worker: as many more tasks (and one more ahead, if asked for).
            n.set_workers(Micros(2), 2);
            assert_eq!(computes_at_once(&mut n), after - first, "ahead: {ahead}");
        }
    }
}
