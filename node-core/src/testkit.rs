//! Whole nodes ([`MeshNode`]: membership, the engine, chunking and the bulk queue
//! together) wired back to back in memory, on virtual time, for tests: [`Net`] carries
//! their messages with a fixed latency, computes their tasks with the real kernels in a
//! fixed time, and delivers the server's word when one dies. A test may watch one node
//! step by step (its events and its state after each step), as a page watches its own.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use crate::engine::Event;
use crate::job::{JobId, TaskId};
use crate::kernels::JobOutput;
use crate::membership::{MembershipConfig, Micros};
use crate::node::{Action, MeshNode, NodeEvent};
use crate::signal::{PeerId, PeerInfo, PeerKind};
use crate::transport::TransportEvent;

/// Data-channel latency.
pub const LATENCY_US: u64 = 2_000;
/// How long one task takes to compute.
pub const TASK_US: u64 = 20_000;

/// What a watcher of one node is shown after each of its steps: the time, the node,
/// and the events of that step.
pub type Watcher = Box<dyn FnMut(Micros, &MeshNode, &[NodeEvent])>;

/// Nodes in one room, on virtual time; see the module's words.
pub struct Net {
    pub nodes: Vec<MeshNode>,
    pub ids: Vec<PeerId>,
    pub alive: Vec<bool>,
    pub now: Micros,
    /// (time, seq) -> (node index, event)
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    pending: BTreeMap<u64, (usize, Input)>,
    seq: u64,
    /// The job outputs node 0 assembled.
    pub done: Vec<JobOutput>,
    /// Data-channel messages sent, their bytes, and the largest one.
    pub sent: u64,
    pub sent_bytes: u64,
    pub largest: usize,
    /// Every node's events, in order.
    pub events: Vec<(usize, NodeEvent)>,
    /// A node watched step by step, and what watches it.
    watched: Option<(usize, Watcher)>,
}

enum Input {
    Transport(TransportEvent),
    Computed(JobId, TaskId, Vec<u8>),
}

/// Node 0 joined with the presenter key (the server marks it so); nobody else did.
pub fn info(id: &PeerId) -> PeerInfo {
    PeerInfo {
        id: id.clone(),
        kind: PeerKind::Native,
        name: String::new(),
        presenter: id.0 == "peer0",
        colour: 0,
    }
}

impl Net {
    /// `n` nodes that all joined one room and opened channels to each other.
    pub fn new(n: usize) -> Net {
        Net::with_workers(&vec![1; n])
    }

    /// One node per entry, each computing that many tasks at once.
    pub fn with_workers(workers: &[u16]) -> Net {
        Net::build(workers, None)
    }

    /// `n` nodes, node `i` shown to `watcher` after each of its steps from before it
    /// joins (its `Joined`, every peer's connection).
    pub fn watched(n: usize, i: usize, watcher: Watcher) -> Net {
        Net::build(&vec![1; n], Some((i, watcher)))
    }

    fn build(workers: &[u16], watched: Option<(usize, Watcher)>) -> Net {
        let mut net = Net {
            nodes: Vec::new(),
            ids: Vec::new(),
            alive: Vec::new(),
            now: Micros(0),
            queue: BinaryHeap::new(),
            pending: BTreeMap::new(),
            seq: 0,
            done: Vec::new(),
            sent: 0,
            sent_bytes: 0,
            largest: 0,
            events: Vec::new(),
            watched,
        };
        for w in workers {
            net.add(*w);
        }
        net
    }

    /// A node computing `workers` tasks at once joins the room now and opens a channel
    /// to every living member; returns its index.
    pub fn add(&mut self, workers: u16) -> usize {
        let i = self.nodes.len();
        let id = PeerId(format!("peer{i}"));
        let node = MeshNode::new(MembershipConfig::default(), String::new(), workers);
        self.nodes.push(node);
        self.ids.push(id.clone());
        self.alive.push(true);
        let living: Vec<usize> = (0..i).filter(|j| self.alive[*j]).collect();
        let peers: Vec<PeerInfo> = living.iter().map(|j| info(&self.ids[*j])).collect();
        self.input(
            i,
            TransportEvent::Joined {
                me: info(&id),
                peers,
            },
        );
        for j in living {
            self.input(j, TransportEvent::PeerJoined(info(&id)));
            let (a, b) = (self.ids[i].clone(), self.ids[j].clone());
            self.input(i, TransportEvent::ChannelOpen(b));
            self.input(j, TransportEvent::ChannelOpen(a));
        }
        i
    }

    fn at(&mut self, at: u64, i: usize, input: Input) {
        self.seq += 1;
        self.pending.insert(self.seq, (i, input));
        self.queue.push(Reverse((at, self.seq)));
    }

    pub fn input(&mut self, i: usize, ev: TransportEvent) {
        let now = self.now;
        self.nodes[i].handle_transport(now, ev);
        self.drain(i);
    }

    /// Node `from` sends `bytes` to `to`: delivered after the latency if both live.
    pub fn send(&mut self, from: usize, to: &PeerId, bytes: Vec<u8>) {
        self.sent += 1;
        self.sent_bytes += bytes.len() as u64;
        self.largest = self.largest.max(bytes.len());
        let Some(t) = self.ids.iter().position(|p| p == to) else {
            return;
        };
        if self.alive[from] && self.alive[t] {
            let ev = TransportEvent::Message(self.ids[from].clone(), bytes);
            self.at(self.now.0 + LATENCY_US, t, Input::Transport(ev));
        }
    }

    /// Carries out a node's actions after a step; bulk goes out at once (no
    /// back-pressure here).
    pub fn drain(&mut self, i: usize) {
        let from = self.events.len();
        while let Some(a) = self.nodes[i].poll_action() {
            match a {
                Action::Send { to, bytes } => self.send(i, &to, bytes),
                Action::Close { .. } | Action::Reconnect { .. } => {}
                Action::Compute { job, task, kernel } => {
                    let mut out = Vec::new();
                    kernel.run_task(task.0, &mut out).expect("valid task");
                    self.at(self.now.0 + TASK_US, i, Input::Computed(job, task, out));
                }
                Action::Event(e) => {
                    if let (0, NodeEvent::Engine(Event::JobDone { output, .. })) = (i, &e) {
                        self.done.push(output.clone());
                    }
                    self.events.push((i, e));
                }
                // As the run loop does: it closes everything; the server tells the rest.
                Action::Leave => self.kill(i),
                Action::Rejoin => self.rejoin_later(i),
            }
        }
        for to in self.nodes[i].bulk_waiting() {
            while let Some(bytes) = self.nodes[i].pop_bulk(&to) {
                self.send(i, &to, bytes);
            }
        }
        if let Some((w, mut watcher)) = self.watched.take() {
            if w == i {
                let events: Vec<NodeEvent> =
                    self.events[from..].iter().map(|(_, e)| e.clone()).collect();
                watcher(self.now, &self.nodes[i], &events);
            }
            self.watched = Some((w, watcher));
        }
    }

    /// Runs until node 0 assembled `jobs` outputs or `limit_ms` of virtual time passed.
    pub fn run(&mut self, jobs: usize, limit_ms: u64) {
        while self.done.len() < jobs && self.now.0 < limit_ms * 1000 {
            let mut next = self.queue.peek().map_or(u64::MAX, |Reverse((t, _))| *t);
            let mut timer = None;
            for (i, n) in self.nodes.iter().enumerate() {
                if self.alive[i]
                    && let Some(t) = n.poll_timeout()
                    && t.0 < next
                {
                    next = t.0;
                    timer = Some(i);
                }
            }
            self.now = Micros(self.now.0.max(next));
            if let Some(i) = timer {
                self.nodes[i].handle_timeout(self.now);
                self.drain(i);
                continue;
            }
            let Some(Reverse((_, seq))) = self.queue.pop() else {
                return;
            };
            let (i, input) = self.pending.remove(&seq).expect("queued");
            if !self.alive[i] {
                continue;
            }
            match input {
                Input::Transport(ev) => self.nodes[i].handle_transport(self.now, ev),
                Input::Computed(job, task, out) => {
                    self.nodes[i].handle_computed(self.now, job, task, out)
                }
            }
            self.drain(i);
        }
    }

    /// Runs until `ms` of virtual time, whatever finishes.
    pub fn run_until(&mut self, ms: u64) {
        self.run(usize::MAX, ms);
    }

    /// Node `i` enters the room again under its id, as its transport does for
    /// [`Action::Rejoin`]: the server tells the others it left and joined again, welcomes
    /// it with the living members, and new channels open both ways.
    fn rejoin_later(&mut self, i: usize) {
        let t = self.now.0 + 50_000;
        let me = self.ids[i].clone();
        let living: Vec<usize> = (0..self.nodes.len())
            .filter(|j| *j != i && self.alive[*j])
            .collect();
        for &j in &living {
            self.at(t, j, Input::Transport(TransportEvent::PeerLeft(me.clone())));
            let joined = TransportEvent::PeerJoined(info(&me));
            self.at(t, j, Input::Transport(joined));
        }
        let peers = living.iter().map(|j| info(&self.ids[*j])).collect();
        let welcome = TransportEvent::Joined {
            me: info(&me),
            peers,
        };
        self.at(t, i, Input::Transport(welcome));
        for &j in &living {
            let open = TransportEvent::ChannelOpen(self.ids[j].clone());
            self.at(t, i, Input::Transport(open));
            self.at(
                t,
                j,
                Input::Transport(TransportEvent::ChannelOpen(me.clone())),
            );
        }
    }

    /// Node `i` dies: nothing more from or to it; the others hear of it from the server.
    pub fn kill(&mut self, i: usize) {
        self.alive[i] = false;
        let gone = self.ids[i].clone();
        for j in 0..self.nodes.len() {
            if j != i && self.alive[j] {
                let ev = TransportEvent::PeerLeft(gone.clone());
                self.at(self.now.0 + 50_000, j, Input::Transport(ev));
            }
        }
    }
}
