//! Whole nodes ([`MeshNode`]: membership, the engine, chunking and the bulk queue
//! together) wired back to back in memory, on virtual time: a job whose results are
//! several data-channel messages each runs to the one-process output, through a
//! departure and a peer that sends broken chunk streams.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use node_core::chunk::CHUNK_DATA_MAX;
use node_core::engine::{Command, Event};
use node_core::kernels::{JobOutput, Kernel, mandelbrot};
use node_core::membership::{MembershipConfig, Micros};
use node_core::node::{Action, BULK_QUEUED_MAX, MeshNode, NodeEvent};
use node_core::signal::{PeerId, PeerInfo, PeerKind};
use node_core::transport::TransportEvent;
use node_core::wire::{self, MESSAGE_LEN_MAX, WireMsg};

/// Data-channel latency.
const LATENCY_US: u64 = 2_000;
/// How long one task takes to compute.
const TASK_US: u64 = 20_000;

struct Net {
    nodes: Vec<MeshNode>,
    ids: Vec<PeerId>,
    alive: Vec<bool>,
    now: Micros,
    /// (time, seq) -> (node index, event)
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    pending: BTreeMap<u64, (usize, Input)>,
    seq: u64,
    /// The job outputs node 0 assembled.
    done: Vec<JobOutput>,
    /// Data-channel messages sent, and the largest one.
    sent: u64,
    largest: usize,
}

enum Input {
    Transport(TransportEvent),
    Computed(node_core::job::JobId, node_core::job::TaskId, Vec<u8>),
}

fn info(id: &PeerId) -> PeerInfo {
    PeerInfo {
        id: id.clone(),
        kind: PeerKind::Native,
        name: String::new(),
    }
}

impl Net {
    /// `n` nodes that all joined one room and opened channels to each other.
    fn new(n: usize) -> Net {
        Net::with_workers(&vec![1; n])
    }

    /// One node per entry, each computing that many tasks at once.
    fn with_workers(workers: &[u16]) -> Net {
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
            largest: 0,
        };
        for (i, w) in workers.iter().enumerate() {
            let id = PeerId(format!("peer{i}"));
            let node = MeshNode::new(MembershipConfig::default(), String::new(), *w);
            net.nodes.push(node);
            net.ids.push(id.clone());
            net.alive.push(true);
            let peers: Vec<PeerInfo> = net.ids[..i].iter().map(info).collect();
            net.input(
                i,
                TransportEvent::Joined {
                    me: info(&id),
                    peers,
                },
            );
            for j in 0..i {
                net.input(j, TransportEvent::PeerJoined(info(&id)));
                let (a, b) = (net.ids[i].clone(), net.ids[j].clone());
                net.input(i, TransportEvent::ChannelOpen(b));
                net.input(j, TransportEvent::ChannelOpen(a));
            }
        }
        net
    }

    fn at(&mut self, at: u64, i: usize, input: Input) {
        self.seq += 1;
        self.pending.insert(self.seq, (i, input));
        self.queue.push(Reverse((at, self.seq)));
    }

    fn input(&mut self, i: usize, ev: TransportEvent) {
        let now = self.now;
        self.nodes[i].handle_transport(now, ev);
        self.drain(i);
    }

    fn send(&mut self, from: usize, to: &PeerId, bytes: Vec<u8>) {
        self.sent += 1;
        self.largest = self.largest.max(bytes.len());
        let Some(t) = self.ids.iter().position(|p| p == to) else {
            return;
        };
        if self.alive[from] && self.alive[t] {
            let ev = TransportEvent::Message(self.ids[from].clone(), bytes);
            self.at(self.now.0 + LATENCY_US, t, Input::Transport(ev));
        }
    }

    /// Carries out a node's actions; bulk goes out at once (no back-pressure here).
    fn drain(&mut self, i: usize) {
        while let Some(a) = self.nodes[i].poll_action() {
            match a {
                Action::Send { to, bytes } => self.send(i, &to, bytes),
                Action::Close { .. } => {}
                Action::Compute { job, task, kernel } => {
                    let mut out = Vec::new();
                    kernel.run_task(task.0, &mut out).expect("valid task");
                    self.at(self.now.0 + TASK_US, i, Input::Computed(job, task, out));
                }
                Action::Event(NodeEvent::Engine(Event::JobDone { output, .. })) if i == 0 => {
                    self.done.push(output);
                }
                Action::Event(_) => {}
            }
        }
        for to in self.nodes[i].bulk_waiting() {
            while let Some(bytes) = self.nodes[i].pop_bulk(&to) {
                self.send(i, &to, bytes);
            }
        }
    }

    /// Runs until node 0 assembled `jobs` outputs or `limit_ms` of virtual time passed.
    fn run(&mut self, jobs: usize, limit_ms: u64) {
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

    /// Node `i` dies: nothing more from or to it; the others hear of it from the server.
    fn kill(&mut self, i: usize) {
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

/// 256×256 in 2×2 tiles: every result is 64 KiB, five data-channel messages.
fn image_job() -> Kernel {
    Kernel::Mandelbrot(mandelbrot::Params {
        x_min: -2.0,
        x_max: 1.0,
        y_min: -1.5,
        y_max: 1.5,
        width: 256,
        height: 256,
        max_iter: 64,
        tiles_x: 2,
        tiles_y: 2,
    })
}

fn submit(net: &mut Net, kernel: &Kernel, r: u8, q: u8) {
    let cmd = Command::Submit {
        kernel: kernel.clone(),
        replication: r,
        quorum: q,
        pacing_ms: 0,
        nonce: 1,
    };
    let now = net.now;
    net.nodes[0].handle_command(now, cmd).expect("joined");
    net.drain(0);
}

#[test]
fn a_job_with_results_over_one_message_runs_to_the_one_process_output() {
    let kernel = image_job();
    assert!(kernel.task_output_len_max() > 3 * MESSAGE_LEN_MAX);
    let mut net = Net::new(3);
    net.run(0, 500); // the Hello exchange
    submit(&mut net, &kernel, 2, 2);
    net.run(1, 60_000);
    assert_eq!(net.done, vec![kernel.run_all().unwrap()]);
    // Results crossed the wire in chunks, and no message was over the channel limit.
    let completed: u64 = net
        .nodes
        .iter()
        .map(|n| n.reassembly().stats().completed)
        .sum();
    assert!(completed > 0, "no chunked message arrived");
    assert!(net.largest <= MESSAGE_LEN_MAX, "{} bytes", net.largest);
    for n in &net.nodes {
        assert_eq!(n.reassembly().reserved(), 0);
        assert_eq!(n.stats().unsendable, 0);
    }
}

#[test]
fn a_node_computes_only_with_workers_and_starts_when_given_some() {
    let kernel = image_job();
    let mut net = Net::with_workers(&[0, 0]);
    net.run(0, 500);
    submit(&mut net, &kernel, 1, 1);
    let start = net.now.0 / 1000;
    net.run(1, start + 5_000);
    assert!(
        net.done.is_empty(),
        "a job finished with no worker anywhere"
    );
    let now = net.now;
    net.nodes[1].set_workers(now, 2);
    net.drain(1);
    net.run(1, start + 65_000);
    assert_eq!(net.done, vec![kernel.run_all().unwrap()]);
    let run = |i: usize| net.nodes[i].engine().map_or(0, |e| e.stats().tasks_run);
    assert_eq!((run(0), run(1)), (0, 4));
}

#[test]
fn a_node_killed_mid_job_costs_time_not_the_output() {
    let kernel = image_job();
    let mut net = Net::new(4);
    net.run(0, 500);
    submit(&mut net, &kernel, 2, 1);
    // Until some results exist, then kill a node that computed (node 0 submits).
    let start = net.now.0;
    net.run(0, (start + 30_000) / 1000);
    net.kill(2);
    net.run(1, 60_000);
    assert_eq!(net.done, vec![kernel.run_all().unwrap()]);
}

#[test]
fn broken_chunk_streams_are_counted_and_ignored_while_the_job_completes() {
    let kernel = image_job();
    let mut net = Net::new(3);
    net.run(0, 500);
    submit(&mut net, &kernel, 1, 1);
    // Node 2 turns hostile toward node 0: streams with inconsistent headers, chunks of
    // the wrong size, more chunks than announced, a stream left halfway.
    let chunk = |stream, index, count, len| {
        wire::encode(&WireMsg::Chunk {
            stream,
            index,
            count,
            data: vec![0xab; len],
        })
    };
    let to = net.ids[0].clone();
    let bad = [
        chunk(1, 0, 3, CHUNK_DATA_MAX),
        chunk(2, 1, 3, CHUNK_DATA_MAX), // another stream
        chunk(3, 0, 2, CHUNK_DATA_MAX),
        chunk(3, 1, 2, 10),
        chunk(3, 2, 2, 10),  // more than announced
        chunk(4, 0, 9, 100), // a short first chunk
        chunk(5, 0, u32::MAX, CHUNK_DATA_MAX),
        chunk(6, 0, 4, CHUNK_DATA_MAX), // left halfway
    ];
    for bytes in bad {
        net.send(2, &to, bytes);
    }
    net.run(1, 60_000);
    assert_eq!(net.done, vec![kernel.run_all().unwrap()]);
    let r = net.nodes[0].reassembly().stats().clone();
    // Streams 1, 3 (its junk reassembles to nothing), 4, 5 and 6 (cut off by the next
    // stream node 2 sends) refused, and the chunks of stream 2 and the extra one of 3.
    assert!(r.refused >= 5, "{r:?}");
    assert!(r.completed > 0, "{r:?}");
    assert_eq!(net.nodes[0].reassembly().reserved(), 0);
}

/// Node 0 and a scripted peer that has said Hello.
fn node_and_peer(kernel: &Kernel) -> (Net, PeerId) {
    let mut net = Net::new(1);
    submit(&mut net, kernel, 1, 1);
    net.run(1, 60_000);
    let peer = PeerId("scripted".into());
    let now = net.now;
    let n = &mut net.nodes[0];
    n.handle_transport(now, TransportEvent::PeerJoined(info(&peer)));
    n.handle_transport(now, TransportEvent::ChannelOpen(peer.clone()));
    let hello = wire::encode(&WireMsg::Hello {
        id: peer.clone(),
        kind: PeerKind::Browser,
        name: "scripted".into(),
        cores: 1,
    });
    n.handle_transport(now, TransportEvent::Message(peer.clone(), hello));
    while n.poll_action().is_some() {}
    (net, peer)
}

#[test]
fn a_stream_left_halfway_by_a_live_peer_is_freed_after_its_timeout() {
    let (mut net, peer) = node_and_peer(&image_job());
    let start = net.now.0;
    let n = &mut net.nodes[0];
    let first = wire::encode(&WireMsg::Chunk {
        stream: 1,
        index: 0,
        count: 4,
        data: vec![1; CHUNK_DATA_MAX],
    });
    n.handle_transport(Micros(start), TransportEvent::Message(peer.clone(), first));
    assert!(n.reassembly().reserved() > 0);
    // The peer stays alive (it answers heartbeats) but never sends the rest.
    let mut t = start;
    for _ in 0..1_000 {
        if n.reassembly().stats().stalled > 0 || t > start + 10_000_000 {
            break;
        }
        // The next timer, at least a millisecond on (a timer that does not move would
        // otherwise hold this loop in place).
        t = n.poll_timeout().expect("timers run").0.max(t + 1_000);
        n.handle_timeout(Micros(t));
        let ping = wire::encode(&WireMsg::Ping { seq: 0 });
        n.handle_transport(Micros(t), TransportEvent::Message(peer.clone(), ping));
        while n.poll_action().is_some() {}
    }
    assert_eq!(n.reassembly().stats().stalled, 1);
    assert_eq!(n.reassembly().reserved(), 0);
    let waited = t - start;
    assert!((5_000_000..6_000_000).contains(&waited), "{waited} µs");
    assert!(
        n.membership().unwrap().peer(&peer).is_some(),
        "the peer was dropped instead"
    );
}

#[test]
fn result_bytes_wait_in_a_bounded_queue_and_control_traffic_does_not() {
    // Node 0 holds every result of a job alone (r = 1, one node) and is asked for them
    // all, many times, by a peer that never takes its bytes off the queue.
    let kernel = image_job();
    let (mut net, peer) = node_and_peer(&kernel);
    let now = net.now;
    let n = &mut net.nodes[0];
    let job = n.engine().unwrap().job_ids().next().unwrap();
    let tasks = kernel.task_count();
    for round in 0..64u64 {
        for t in 0..tasks {
            let task = node_core::job::TaskId(t);
            let hash = node_core::job::content_hash(n.engine().unwrap().held(job, task).unwrap());
            let fetch = wire::encode(&WireMsg::Engine(node_core::wire::EngineMsg::Fetch {
                job,
                task,
                hash,
            }));
            n.handle_transport(
                Micros(now.0 + round),
                TransportEvent::Message(peer.clone(), fetch),
            );
        }
        // A heartbeat answer is an action at once, whatever waits in the bulk queue.
        let ping = wire::encode(&WireMsg::Ping { seq: round as u32 });
        n.handle_transport(
            Micros(now.0 + round),
            TransportEvent::Message(peer.clone(), ping),
        );
        let actions: Vec<Action> = std::iter::from_fn(|| n.poll_action()).collect();
        assert!(
            actions
                .iter()
                .any(|a| matches!(a, Action::Send { bytes, .. }
                if wire::decode(bytes) == Ok(WireMsg::Pong { seq: round as u32 }))),
            "round {round}: {actions:?}"
        );
        assert!(actions.iter().all(|a| match a {
            Action::Send { bytes, .. } => bytes.len() < 1024,
            _ => true,
        }));
    }
    // The queue stopped at its bound; the rest was dropped and counted.
    let mut queued = 0;
    while let Some(b) = n.pop_bulk(&peer) {
        queued += b.len();
    }
    assert!(queued <= BULK_QUEUED_MAX, "{queued}");
    assert!(queued > BULK_QUEUED_MAX / 2, "{queued}");
    assert!(n.stats().bulk_dropped > 0);
}
