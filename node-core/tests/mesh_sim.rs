//! The whole-node simulator: [`MeshNode`]s (membership with its heartbeats and failure
//! detection, the engine, chunking, the bulk queue) on virtual time, over simulated data
//! channels that behave like the real ones: reliable and ordered, with a latency and a
//! bandwidth, so that bytes queue on a busy channel and the run loop's back-pressure
//! rule (result bytes only while under `MeshNode::in_flight_max` are in flight, and
//! only while the receiver's read window is open) is what keeps heartbeats moving. The engine-level simulator (`sim.rs`) tries lossy networks and
//! hostile peers; this one tries what only whole nodes show:
//!
//! - nodes that crash, announced by the signaling server or not (then only their silence
//!   tells), and nodes that join mid-job;
//! - nodes that freeze for a while (a tab in the background, a laptop lid, a GC pause,
//!   SIGSTOP) while they compute: shorter than the heartbeat timeout, or longer, so that
//!   they are declared gone by silence while their computation goes on, and are taken
//!   back when they speak again; on waking, a frozen node's timer may fire before the
//!   messages that waited for it;
//! - flapping nodes that freeze again and again for about the heartbeat timeout;
//! - slow channels carrying results of many chunks.
//!
//! Checked on every run, from the simulator's own records: the submitter's output
//! equals the one-process output, within a time bound after the last fault; a heartbeat
//! never waits on a channel behind more than the run loop's bulk allowance (control
//! traffic never waits behind a transfer); no live node that was not frozen is ever
//! declared gone by silence, not even by a node that was frozen itself; a few seconds
//! after the job and the last freeze, every live node counts every other as a member
//! again (membership and engine), so no living member is shown dead; no message is
//! over the channel limit; nothing is dropped from a bulk queue; no read window is
//! opened for want of reports.
//!
//! `cargo test -p node-core --test mesh_sim` runs `MESH_SIM_SEEDS` seeds (default 20, ten
//! seconds in a debug build; `cargo xtask test` runs 2,000 in release and `cargo xtask
//! soak` a tenth of its count). `MESH_SIM_SEED=<n> … -- --nocapture` replays one seed
//! with a trace; `MESH_SIM_SLACK=1` prints how long each job took after its last fault.

mod simulator;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use node_core::engine::{Command, Event};
use node_core::job::{JobId, TaskId};
use node_core::kernels::{JobOutput, Kernel, mandelbrot};
use node_core::membership::{LeftReason, MembershipConfig, MeshEvent, Micros, PeerState};
use node_core::node::{Action, BULK_IN_FLIGHT_MAX, BULK_POLL_MS, MeshNode, NodeEvent, node_id};
use node_core::signal::{PeerId, PeerInfo, PeerKind};
use node_core::transport::TransportEvent;
use node_core::wire::{self, MESSAGE_LEN_MAX, WireMsg};
use simulator::Rng;

/// After the last fault (or the submission), the job must be done within this long plus
/// its work (every task computed `q` times one after the other at the slowest task
/// time). A silent crash takes 1.5 s to notice, then tasks move and results are fetched
/// again; 2,000 seeds needed at most 1.8 s beyond the work. A departure the engine is
/// not told of costs a claim expiry (10 s) and fails this bound.
const RECOVERY_MS: u64 = 6_000;
/// Hard stop for a run, in simulated time.
const RUN_LIMIT_MS: u64 = 300_000;
/// After the job and the last freeze, members have this long to take back those they
/// declared gone by silence (a heartbeat or two, and a message's way).
const SETTLE_MS: u64 = 3_000;

#[derive(Clone, Debug)]
enum Fault {
    /// The node dies; the server tells the others after a delay, or (`announced` false)
    /// its network vanished and only its silence tells.
    Crash { node: usize, announced: bool },
    /// The node freezes for this long: it takes no event and sends nothing, while its
    /// computations go on.
    Freeze { node: usize, ms: u64 },
    /// A new node joins.
    Join,
}

#[derive(Clone, Debug)]
struct Scenario {
    nodes: usize,
    kernel: Kernel,
    replication: u8,
    quorum: u8,
    submit_at_ms: u64,
    /// Per node, tasks computed at once.
    slots: Vec<u16>,
    /// Bytes per millisecond of every channel (250 kB/s to 20 MB/s).
    bandwidth: u64,
    task_ms: (u64, u64),
    faults: Vec<(u64, Fault)>,
}

fn scenario(rng: &mut Rng) -> Scenario {
    let nodes = rng.range(2, 7) as usize;
    // Tiles of 4 to 64 KiB (results of one to five chunks), up to 48 of them: on a slow
    // link, fetching the results for the output takes seconds.
    let side = [32, 64, 128][rng.below(3) as usize];
    let (tiles_x, tiles_y) = (rng.range(1, 8) as u32, rng.range(1, 6) as u32);
    let kernel = Kernel::Mandelbrot(mandelbrot::Params {
        width: side * tiles_x,
        height: side * tiles_y,
        max_iter: 8,
        tiles_x,
        tiles_y,
        ..mandelbrot::Params::default()
    });
    let quorum = rng.range(1, 2.min(nodes as u64)) as u8;
    let replication = (rng.range(1, 3) as u8).max(quorum);
    // One run in five moves all it can over slow links: two or three nodes, one copy of
    // each result, 24 to 48 tiles of 64 KiB; the output is fetched in a burst of
    // megabytes, seconds long, behind which no heartbeat may wait.
    let heavy = rng.chance(0.2);
    let (nodes, kernel, quorum, replication) = if heavy {
        let (tiles_x, tiles_y) = (rng.range(6, 8) as u32, rng.range(4, 6) as u32);
        let image = Kernel::Mandelbrot(mandelbrot::Params {
            width: 128 * tiles_x,
            height: 128 * tiles_y,
            max_iter: 8,
            tiles_x,
            tiles_y,
            ..mandelbrot::Params::default()
        });
        (rng.range(2, 3) as usize, image, 1, 1)
    } else {
        (nodes, kernel, quorum, replication)
    };
    let submit_at_ms = rng.range(300, 1_500);
    let mut faults = Vec::new();
    let dead_after = MembershipConfig::default().dead_after_ms;
    for _ in 0..rng.range(0, 4) {
        let at = submit_at_ms + rng.range(0, 4_000);
        // Node 0 submits and assembles; it is never lost, and freezes only briefly.
        let node = rng.range(0, nodes as u64 - 1) as usize;
        match rng.below(5) {
            0 if node > 0 => faults.push((
                at,
                Fault::Crash {
                    node,
                    announced: rng.chance(0.6),
                },
            )),
            1 if node > 0 => {
                // Flapping: silent for about the heartbeat timeout, again and again.
                let mut t = at;
                for _ in 0..rng.range(2, 4) {
                    let ms = rng.range(dead_after - 300, dead_after + 300);
                    faults.push((t, Fault::Freeze { node, ms }));
                    t += ms + rng.range(100, 1_000);
                }
            }
            2 => faults.push((at, Fault::Join)),
            _ => {
                let ms = if node == 0 {
                    rng.range(50, dead_after - 500)
                } else {
                    rng.range(50, 3 * dead_after)
                };
                faults.push((at, Fault::Freeze { node, ms }));
            }
        }
    }
    faults.sort_by_key(|(t, _)| *t);
    // Liveness needs q members that stay: a crashed node is gone (a frozen one comes
    // back). Spare faults, the latest first, until q remain.
    let lost = |faults: &[(u64, Fault)]| {
        let mut gone = std::collections::BTreeSet::new();
        for (_, f) in faults {
            if let Fault::Crash { node, .. } = f {
                gone.insert(*node);
            }
        }
        gone.len()
    };
    let joins = |faults: &[(u64, Fault)]| {
        faults
            .iter()
            .filter(|(_, f)| matches!(f, Fault::Join))
            .count()
    };
    while nodes + joins(&faults) - lost(&faults) < usize::from(quorum) {
        let Some(i) = faults.iter().rposition(|(_, f)| !matches!(f, Fault::Join)) else {
            break;
        };
        faults.remove(i);
    }
    Scenario {
        nodes,
        kernel,
        replication,
        quorum,
        submit_at_ms,
        slots: (0..nodes + 8).map(|_| rng.range(1, 2) as u16).collect(),
        // A third of the runs on a slow link (2 to 8 Mbit/s), where a result of many
        // chunks takes a good part of the heartbeat timeout to cross.
        bandwidth: if heavy || rng.chance(0.3) {
            rng.range(250, 1_000)
        } else {
            rng.range(1_000, 20_000)
        },
        task_ms: (5, rng.range(10, 150)),
        faults,
    }
}

struct SimNode {
    node: MeshNode,
    peer: PeerId,
    alive: bool,
    /// Frozen until then (µs): events wait.
    frozen_until: u64,
    /// Events that arrived while frozen, in order.
    deferred: Vec<Ev>,
    /// A bulk poll is scheduled.
    bulk_poll: bool,
    /// Frozen spans (µs), for the false-death check.
    frozen: Vec<(u64, u64)>,
}

#[derive(Debug)]
enum Ev {
    Transport(TransportEvent),
    Computed(JobId, TaskId, Vec<u8>),
    BulkPoll,
    Fault(Fault),
}

/// One direction of a data channel.
struct Channel {
    /// When the last byte handed to it is on the wire (µs).
    busy_until: u64,
    latency_us: u64,
    open: bool,
}

struct World {
    seed: u64,
    rng: Rng,
    sc: Scenario,
    now: u64,
    nodes: Vec<SimNode>,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    pending: HashMap<u64, (usize, Ev)>,
    seq: u64,
    channels: HashMap<(usize, usize), Channel>,
    trace: bool,
    reference: JobOutput,
    done: Option<(u64, JobOutput)>,
    last_fault_ms: u64,
    /// Deaths by silence: (time µs, the node that declared, the peer declared dead).
    silent_deaths: Vec<(u64, usize, usize)>,
    /// Members declared gone by silence and heard again.
    returns: usize,
    /// When a node removed a peer (any reason): (node, peer) -> time µs.
    removed: HashMap<(usize, usize), u64>,
    largest: usize,
    /// The longest a message waited behind others on a channel (µs).
    longest_wait_us: u64,
    steps: u64,
}

fn fail(seed: u64, what: String) -> ! {
    panic!(
        "mesh simulator seed {seed}: {what}\n  replay: MESH_SIM_SEED={seed} cargo test -p node-core --test mesh_sim -- --nocapture"
    );
}

impl World {
    fn new(seed: u64) -> World {
        let mut rng = Rng(seed);
        let sc = scenario(&mut rng);
        let reference = sc.kernel.run_all().expect("valid kernel");
        let mut w = World {
            seed,
            rng,
            now: 0,
            nodes: Vec::new(),
            queue: BinaryHeap::new(),
            pending: HashMap::new(),
            seq: 0,
            channels: HashMap::new(),
            trace: std::env::var("MESH_SIM_SEED").is_ok(),
            reference,
            done: None,
            last_fault_ms: sc.submit_at_ms,
            silent_deaths: Vec::new(),
            returns: 0,
            removed: HashMap::new(),
            largest: 0,
            longest_wait_us: 0,
            steps: 0,
            sc,
        };
        for _ in 0..w.sc.nodes {
            w.join();
        }
        for (at, f) in w.sc.faults.clone() {
            w.push(at * 1000, 0, Ev::Fault(f));
        }
        w
    }

    fn push(&mut self, at_us: u64, node: usize, ev: Ev) {
        self.seq += 1;
        self.pending.insert(self.seq, (node, ev));
        self.queue.push(Reverse((at_us, self.seq)));
    }

    fn info(&self, i: usize) -> PeerInfo {
        PeerInfo {
            id: self.nodes[i].peer.clone(),
            kind: PeerKind::Native,
            name: format!("n{i}"),
            presenter: false,
            colour: 0,
        }
    }

    fn index(&self, peer: &PeerId) -> Option<usize> {
        self.nodes.iter().position(|n| &n.peer == peer)
    }

    /// A node joins the room: the server welcomes it with the live members and
    /// announces it to them; channels open after a handshake.
    fn join(&mut self) {
        let i = self.nodes.len();
        let slots = self.sc.slots.get(i).copied().unwrap_or(1);
        self.nodes.push(SimNode {
            node: MeshNode::new(MembershipConfig::default(), format!("n{i}"), slots),
            peer: PeerId(format!("p{i:02}-{:x}", self.rng.next() & 0xffff)),
            alive: true,
            frozen_until: 0,
            deferred: Vec::new(),
            bulk_poll: false,
            frozen: Vec::new(),
        });
        let others: Vec<usize> = (0..i).filter(|j| self.nodes[*j].alive).collect();
        let peers = others.iter().map(|j| self.info(*j)).collect();
        let me = self.info(i);
        self.push(
            self.now,
            i,
            Ev::Transport(TransportEvent::Joined { me, peers }),
        );
        for j in others {
            let info = self.info(i);
            let at = self.now + self.rng.range(1_000, 20_000);
            self.push(at, j, Ev::Transport(TransportEvent::PeerJoined(info)));
            for (a, b) in [(i, j), (j, i)] {
                let latency_us = self.rng.range(200, 20_000);
                self.channels.insert(
                    (a, b),
                    Channel {
                        busy_until: 0,
                        latency_us,
                        open: true,
                    },
                );
            }
            let open = self.now + self.rng.range(30_000, 300_000);
            let (pi, pj) = (self.nodes[i].peer.clone(), self.nodes[j].peer.clone());
            self.push(open, i, Ev::Transport(TransportEvent::ChannelOpen(pj)));
            self.push(
                open + 1_000,
                j,
                Ev::Transport(TransportEvent::ChannelOpen(pi)),
            );
        }
    }

    /// Bytes from `a` to `b` not yet on the wire.
    fn queued(&self, a: usize, b: usize) -> usize {
        self.channels.get(&(a, b)).map_or(0, |c| {
            (c.busy_until.saturating_sub(self.now) * self.sc.bandwidth / 1000) as usize
        })
    }

    fn send(&mut self, from: usize, to: &PeerId, bytes: Vec<u8>) {
        self.largest = self.largest.max(bytes.len());
        if bytes.len() > MESSAGE_LEN_MAX {
            fail(
                self.seed,
                format!("n{from} sent {} bytes in one message", bytes.len()),
            );
        }
        let Some(to) = self.index(to) else { return };
        let bw = self.sc.bandwidth;
        let now = self.now;
        let Some(c) = self.channels.get_mut(&(from, to)) else {
            return;
        };
        if !c.open {
            return;
        }
        let start = c.busy_until.max(now);
        let wait = start - now;
        self.longest_wait_us = self.longest_wait_us.max(wait);
        // A heartbeat waits behind at most what the run loop lets into the channel: the
        // bulk allowance and a control message or two, never a whole transfer.
        let allowed = ((BULK_IN_FLIGHT_MAX + 2 * MESSAGE_LEN_MAX) as u64 * 1000).div_ceil(bw);
        if wait > allowed
            && bytes.len() < 64
            && matches!(
                wire::decode(&bytes),
                Ok(WireMsg::Ping { .. } | WireMsg::Pong { .. })
            )
        {
            fail(
                self.seed,
                format!(
                    "a heartbeat from n{from} to n{to} waited {} ms behind other bytes (at most {} ms allowed)",
                    wait / 1000,
                    allowed / 1000
                ),
            );
        }
        c.busy_until = start + (bytes.len() as u64 * 1000).div_ceil(bw);
        let at = c.busy_until + c.latency_us;
        let peer = self.nodes[from].peer.clone();
        self.push(at, to, Ev::Transport(TransportEvent::Message(peer, bytes)));
    }

    /// Closes both directions of a channel; the other end hears of it.
    fn close(&mut self, a: usize, b: usize) {
        for k in [(a, b), (b, a)] {
            if let Some(c) = self.channels.get_mut(&k) {
                c.open = false;
            }
        }
        let at = self.now + self.rng.range(1_000, 50_000);
        let peer = self.nodes[a].peer.clone();
        self.push(at, b, Ev::Transport(TransportEvent::ChannelClosed(peer)));
    }

    /// Carries out node `i`'s actions as a run loop does.
    fn drain(&mut self, i: usize) {
        while let Some(a) = self.nodes[i].node.poll_action() {
            match a {
                Action::Send { to, bytes } => self.send(i, &to, bytes),
                Action::Close { peer } => {
                    if let Some(j) = self.index(&peer) {
                        self.close(i, j);
                    }
                }
                // A simulated channel carries on the moment its ends are awake again
                // (it has no retransmission timer to wait out): nothing to replace.
                Action::Reconnect { .. } => {}
                Action::Compute { job, task, kernel } => {
                    let mut out = Vec::new();
                    kernel.run_task(task.0, &mut out).expect("valid task");
                    let ms = self.rng.range(self.sc.task_ms.0, self.sc.task_ms.1);
                    self.push(self.now + ms * 1000, i, Ev::Computed(job, task, out));
                }
                Action::Event(e) => self.on_event(i, e),
                Action::Leave | Action::Rejoin => {
                    panic!("node {i} obeyed a console, but nobody here holds one")
                }
            }
        }
        for to in self.nodes[i].node.bulk_waiting() {
            let Some(j) = self.index(&to) else { continue };
            while self.queued(i, j) < self.nodes[i].node.in_flight_max(&to) {
                let Some(bytes) = self.nodes[i].node.pop_bulk(&to) else {
                    break;
                };
                self.send(i, &to, bytes);
            }
        }
        if !self.nodes[i].node.bulk_waiting().is_empty() && !self.nodes[i].bulk_poll {
            self.nodes[i].bulk_poll = true;
            self.push(self.now + BULK_POLL_MS * 1000, i, Ev::BulkPoll);
        }
    }

    fn on_event(&mut self, i: usize, e: NodeEvent) {
        if self.trace && !matches!(e, NodeEvent::Mesh(MeshEvent::Rtt { .. })) {
            println!("[{:>9.3}] n{i} {e:?}", self.now as f64 / 1000.0);
        }
        match e {
            NodeEvent::Mesh(MeshEvent::PeerLeft { peer, reason, .. }) => {
                let Some(p) = self.index(&peer.id) else {
                    return;
                };
                self.removed.entry((i, p)).or_insert(self.now);
                if reason == LeftReason::Heartbeat {
                    self.silent_deaths.push((self.now, i, p));
                }
            }
            NodeEvent::Mesh(MeshEvent::PeerBack { .. }) => self.returns += 1,
            NodeEvent::Engine(Event::JobDone { output, .. }) if i == 0 => {
                self.done = Some((self.now, output));
            }
            _ => {}
        }
    }

    fn apply(&mut self, f: Fault) {
        if self.trace {
            println!("[{:>9.3}] fault {f:?}", self.now as f64 / 1000.0);
        }
        self.last_fault_ms = self.last_fault_ms.max(self.now / 1000);
        match f {
            Fault::Crash { node, announced } => {
                if !self.nodes[node].alive {
                    return;
                }
                self.nodes[node].alive = false;
                for (&(a, b), c) in self.channels.iter_mut() {
                    if a == node || b == node {
                        c.open = false;
                    }
                }
                if announced {
                    let live: Vec<usize> = (0..self.nodes.len())
                        .filter(|j| self.nodes[*j].alive)
                        .collect();
                    for j in live {
                        let at = self.now + self.rng.range(5_000, 200_000);
                        let peer = self.nodes[node].peer.clone();
                        self.push(at, j, Ev::Transport(TransportEvent::PeerLeft(peer)));
                    }
                }
            }
            Fault::Freeze { node, ms } => {
                let n = &mut self.nodes[node];
                if n.alive && n.frozen_until <= self.now {
                    n.frozen_until = self.now + ms * 1000;
                    n.frozen.push((self.now, n.frozen_until));
                    self.last_fault_ms = self.last_fault_ms.max(n.frozen_until / 1000);
                }
            }
            Fault::Join => self.join(),
        }
    }

    fn handle(&mut self, i: usize, ev: Ev) {
        let now = Micros(self.now);
        match ev {
            Ev::Transport(t) => self.nodes[i].node.handle_transport(now, t),
            Ev::Computed(job, task, out) => self.nodes[i].node.handle_computed(now, job, task, out),
            Ev::BulkPoll => self.nodes[i].bulk_poll = false,
            Ev::Fault(f) => return self.apply(f),
        }
        self.drain(i);
    }

    fn submit(&mut self) {
        let cmd = Command::Submit {
            kernel: self.sc.kernel.clone(),
            replication: self.sc.replication,
            quorum: self.sc.quorum,
            pacing_ms: 0,
            nonce: 1,
        };
        let now = Micros(self.now);
        self.nodes[0]
            .node
            .handle_command(now, cmd)
            .expect("node 0 joined at once");
        self.drain(0);
    }

    /// Runs to the end and checks everything; returns the steps taken, the longest wait
    /// on a channel (µs) and the deaths by silence.
    fn run(mut self) -> (u64, u64, usize, usize) {
        let mut submitted = false;
        let limit = RUN_LIMIT_MS * 1000;
        // Once the job is done, the run goes on until every node has thawed and the
        // last fault happened, and then `SETTLE_MS`, for the members to take back those they declared gone.
        let settle = |w: &World| {
            w.done.as_ref().map(|(at, _)| {
                let thawed = w.nodes.iter().map(|n| n.frozen_until).max().unwrap_or(0);
                (*at).max(thawed).max(w.last_fault_ms * 1000) + SETTLE_MS * 1000
            })
        };
        while settle(&self).is_none_or(|end| self.now < end) && self.now < limit {
            let submit_at = self.sc.submit_at_ms * 1000;
            // The earliest of: a queued event, a node's timer, a frozen node thawing.
            let mut next = self.queue.peek().map_or(u64::MAX, |Reverse((t, _))| *t);
            let mut timer = None;
            for (i, n) in self.nodes.iter().enumerate() {
                if !n.alive {
                    continue;
                }
                let t = if n.frozen_until > self.now {
                    Some(n.frozen_until)
                } else {
                    n.node.poll_timeout().map(|t| t.0)
                };
                if let Some(t) = t
                    && t < next
                {
                    next = t;
                    timer = Some(i);
                }
            }
            if !submitted && submit_at <= next {
                self.now = self.now.max(submit_at);
                submitted = true;
                self.submit();
                continue;
            }
            if next == u64::MAX {
                break;
            }
            self.now = self.now.max(next);
            self.steps += 1;
            if let Some(i) = timer {
                if !self.nodes[i].deferred.is_empty() && self.nodes[i].frozen_until <= self.now {
                    // Thawed: what arrived meanwhile, and the timers, in either order (a
                    // browser may run an overdue timer before queued messages).
                    if self.rng.chance(0.5) {
                        self.nodes[i].node.handle_timeout(Micros(self.now));
                        self.drain(i);
                    }
                    for ev in std::mem::take(&mut self.nodes[i].deferred) {
                        self.handle(i, ev);
                    }
                    continue;
                }
                let now = Micros(self.now);
                self.nodes[i].node.handle_timeout(now);
                self.drain(i);
                continue;
            }
            let Some(Reverse((_, seq))) = self.queue.pop() else {
                break;
            };
            let (i, ev) = self.pending.remove(&seq).expect("queued");
            if matches!(ev, Ev::Fault(_)) {
                self.handle(i, ev);
                continue;
            }
            if !self.nodes[i].alive {
                continue;
            }
            if let Ev::Transport(TransportEvent::Message(from, _)) = &ev {
                // A closed channel delivers nothing more.
                let open = self
                    .index(from)
                    .and_then(|f| self.channels.get(&(f, i)))
                    .is_some_and(|c| c.open);
                if !open {
                    continue;
                }
            }
            if self.nodes[i].frozen_until > self.now {
                self.nodes[i].deferred.push(ev);
                continue;
            }
            self.handle(i, ev);
        }
        self.check();
        (
            self.steps,
            self.longest_wait_us,
            self.silent_deaths.len(),
            self.returns,
        )
    }

    fn check(&self) {
        let seed = self.seed;
        let Some((at, output)) = &self.done else {
            fail(
                seed,
                format!(
                    "the job did not complete ({} ms simulated; last fault at {} ms)",
                    self.now / 1000,
                    self.last_fault_ms
                ),
            );
        };
        if *output != self.reference {
            fail(
                seed,
                "the assembled output differs from the one-process output".into(),
            );
        }
        let tasks = u64::from(self.sc.kernel.task_count());
        let work_ms = tasks * self.sc.task_ms.1 * u64::from(self.sc.quorum);
        let bound = self.last_fault_ms + RECOVERY_MS + work_ms;
        if std::env::var("MESH_SIM_SLACK").is_ok() {
            eprintln!(
                "slack seed {seed}: done {} ms after the last fault, work {work_ms} ms",
                (at / 1000).saturating_sub(self.last_fault_ms)
            );
        }
        if at / 1000 > bound {
            fail(
                seed,
                format!("done at {} ms, over the bound of {bound} ms", at / 1000),
            );
        }
        // No death by silence of a live node that was not frozen (the declaring node may
        // have been frozen itself: the time it slept is nobody's silence), unless its own
        // side had already let go of the channel.
        let dead_after = MembershipConfig::default().dead_after_ms * 1000;
        for &(t, n, p) in &self.silent_deaths {
            let window = t.saturating_sub(dead_after + 1_000)..=t;
            let froze = |k: usize| {
                self.nodes[k]
                    .frozen
                    .iter()
                    .any(|(a, b)| *a <= *window.end() && *b >= *window.start())
            };
            let crashed = !self.nodes[p].alive;
            let let_go = self.removed.get(&(p, n)).is_some_and(|r| *r <= t);
            if !crashed && !froze(p) && !let_go {
                fail(
                    seed,
                    format!(
                        "n{n} declared n{p} dead by silence at {:.3} ms while both ran",
                        t as f64 / 1000.0
                    ),
                );
            }
        }
        // Every live node takes every other back: a member in its membership and its
        // engine, however long it was frozen.
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].alive)
            .collect();
        for &i in &live {
            let node = &self.nodes[i].node;
            for &p in live.iter().filter(|p| **p != i) {
                let peer = &self.nodes[p].peer;
                let state = node
                    .membership()
                    .and_then(|m| m.peer(peer))
                    .map(|v| v.state);
                let in_engine = node
                    .engine()
                    .is_some_and(|e| e.peers().any(|n| n == node_id(peer)));
                if state != Some(PeerState::Connected) || !in_engine {
                    fail(
                        seed,
                        format!(
                            "n{i} shows live n{p} as {state:?} (in its engine: {in_engine}) {SETTLE_MS} ms after the job and the last fault"
                        ),
                    );
                }
            }
        }
        for (i, n) in self.nodes.iter().enumerate().filter(|(_, n)| n.alive) {
            let s = n.node.stats();
            // A read window opens by itself only when sent bytes were lost, and no
            // simulated channel loses any.
            if s.bulk_dropped != 0 || s.unsendable != 0 || s.read_window_reopened != 0 {
                fail(seed, format!("n{i}: {s:?}"));
            }
        }
    }
}

#[test]
fn whole_nodes_finish_every_job_through_crashes_freezes_and_slow_channels() {
    let seeds = simulator::seeds_from_env("MESH_SIM", 20);
    let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
    let mut steps = 0;
    let mut longest_wait = 0;
    let mut silent_deaths = 0;
    let mut returns = 0;
    for &seed in &seeds {
        let w = World::new(seed);
        for (_, f) in &w.sc.faults {
            let k = match f {
                Fault::Crash {
                    announced: true, ..
                } => "crash announced",
                Fault::Crash { .. } => "crash silent",
                Fault::Freeze { ms, .. } if *ms >= MembershipConfig::default().dead_after_ms => {
                    "freeze over the timeout"
                }
                Fault::Freeze { .. } => "freeze under the timeout",
                Fault::Join => "join",
            };
            *kinds.entry(k).or_default() += 1;
        }
        let (n, wait, silent, back) = w.run();
        returns += back;
        steps += n;
        longest_wait = longest_wait.max(wait);
        silent_deaths += silent;
    }
    eprintln!(
        "mesh_sim: {} seeds, {steps} steps, longest wait on a channel {} ms, {silent_deaths} deaths by silence (of frozen or crashed nodes), {returns} members back after one, faults {kinds:?}",
        seeds.len(),
        longest_wait / 1000
    );
    if seeds.len() >= 200 {
        // The scenarios try every kind of fault.
        for k in [
            "crash announced",
            "crash silent",
            "freeze over the timeout",
            "freeze under the timeout",
            "join",
        ] {
            assert!(kinds.get(k).is_some_and(|n| *n > 0), "no {k} in {kinds:?}");
        }
        assert!(returns > 0, "no member came back after its silence");
    }
}
