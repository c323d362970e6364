//! The deterministic simulator's machinery (the tests are in `sim.rs`, the benchmark in
//! `benches/engine.rs`): many engines in one thread on virtual time, a seeded
//! network that loses, duplicates, delays and reorders messages, partitions that heal,
//! nodes that crash, restart and join mid-job, and nodes that lie about results.
//!
//! It always advances the earliest deadline (a delivery, a finished computation, an
//! engine timeout or a scheduled fault) and checks invariants after every step:
//! - safety: a task is validated only with `q` matching reports from distinct nodes;
//!   every node that validates a task agrees on its hash; with at most `q - 1` liars the
//!   hash is the true one;
//! - the assembled output equals the job computed by one process alone;
//! - liveness: once faults stop (at least `q` honest nodes remain), the job completes
//!   within a bound tied to the job's size (`Sim::liveness_bound_ms`);
//! - memory: board facts and stored result bytes stay within their bounds.
//!
//! `cargo test` runs `SIM_SEEDS` seeds (default 500); a failure prints its seed, and
//! `SIM_SEED=<n> cargo test -p node-core --test sim -- --nocapture` replays it exactly
//! with a trace. `cargo xtask soak` runs 100,000.

#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

use node_core::engine::{Command, Engine, EngineConfig, Event, Input, Millis, Output, Why};
use node_core::job::{JobId, JobSpec, NodeId, TaskId};
use node_core::kernels::{JobOutput, Kernel, mandelbrot, monte_carlo, primes};
use node_core::wire::{EngineMsg, Fact, TaskFact};

/// After the last fault, the job must be done within this much simulated time plus
/// the time its work takes (see [`Sim::liveness_bound_ms`]): what recovery may cost
/// (claims expire after 10 s, a fake holder costs fetch timeouts, a lost report a help
/// request every 2 s).
pub const RECOVERY_MS: u64 = 60_000;
/// The same, in a mesh with no hostile node and little loss (5 % at most): departures
/// are noticed and acted on (no claim has to expire, no holder has to fail a fetch),
/// so recovery is quick.
pub const HONEST_RECOVERY_MS: u64 = 8_000;
/// The same at 20 % loss, where a help request, its answer or a report may be lost a
/// few times in a row (the soak found 11 s).
pub const HONEST_LOSSY_RECOVERY_MS: u64 = 20_000;
/// After the job is done (and the faults are over), the run goes on this long, and then
/// every validated result must be back to `r` copies: copying after a departure may
/// take a detection delay, a few store retries and a turn of every live holder.
pub const COPIES_MS: u64 = 30_000;
/// Hard stop for a run, in simulated time.
const RUN_LIMIT_MS: u64 = 1_000_000;
/// Most tasks in a hostile submitter's job.
const FRONT_RUN_TASKS_MAX: u32 = 12;

/// A small, fast, seedable generator (splitmix64), so a seed replays exactly.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }
}

/// What can go wrong, and when.
#[derive(Clone, Debug)]
pub enum Fault {
    Crash(usize),
    Restart(usize),
    Join,
    Partition(Vec<usize>),
    Heal,
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub nodes: usize,
    pub kernel: Kernel,
    pub replication: u8,
    pub quorum: u8,
    pub liars: usize,
    /// Silent claimers (after the liars): they claim every task of the job and never
    /// report a result. Liars and silent claimers together are at most `q - 1`.
    pub silent: usize,
    /// Fake holders (after the silent claimers): they say they hold every result and
    /// never serve one. Liars, silent claimers and fake holders are at most `q - 1`.
    pub fake_holders: usize,
    /// Flooders (after the fake holders): early on they send every peer as many valid
    /// jobs of their own as they can, and jobs forged in every other node's name.
    /// Liars and the other hostile nodes together are at most `q - 1`.
    pub flooders: usize,
    /// Forgers (after the flooders): every result byte they send is junk under the true
    /// hash, and they push junk stores and payloads nobody asked for.
    pub forgers: usize,
    /// Mutes (after the forgers): from a moment in the first seconds of the job on, they
    /// send nothing at all (mid-transfer, maybe), while their links stay up, so nobody
    /// is told they left. Liars and the other hostile nodes together are at most `q - 1`.
    pub mutes: usize,
    /// Hostile submitters (after the mutes): each submits a `q = 1` job of its own and,
    /// as soon as another node claims one of its tasks, reports a fake hash for it to
    /// every peer, ahead of the claimer's true report. Honest in node 0's job, so not
    /// counted among its `q - 1` hostile nodes.
    pub front_runners: usize,
    /// Authors of facts each node takes per job (the engine's `authors_max`); small in
    /// some scenarios, so that some peers' facts are refused.
    pub authors_max: usize,
    pub loss: f64,
    pub dup: f64,
    pub latency_ms: (u64, u64),
    pub faults: Vec<(u64, Fault)>,
    pub task_ms: (u64, u64),
    /// When node 0 submits the job (random in the first 400 ms if None).
    pub submit_at_ms: Option<u64>,
    /// Nodes that compute ten times slower.
    pub stragglers: usize,
    /// Every third node serves at most four results per peer and sync interval, so
    /// that requests wait for their asker's budget to renew (off in benchmarks, whose
    /// assemblers would wait for them).
    pub tight_servers: bool,
}

pub fn scenario(rng: &mut Rng) -> Scenario {
    let big = rng.chance(0.05);
    let nodes = if big {
        rng.range(16, 64) as usize
    } else {
        rng.range(2, 10) as usize
    };
    let kernel = match rng.below(3) {
        0 => Kernel::Mandelbrot(mandelbrot::Params {
            x_min: -2.0,
            x_max: 1.0,
            y_min: -1.5,
            y_max: 1.5,
            width: 32,
            height: 24,
            max_iter: 40,
            tiles_x: rng.range(1, 8) as u32,
            tiles_y: rng.range(1, 6) as u32,
        }),
        1 => Kernel::Primes(primes::Params {
            n: rng.range(1_000, 200_000),
            ranges: rng.range(1, 32) as u32,
        }),
        _ => Kernel::MonteCarloPi(monte_carlo::Params {
            samples_per_task: 200,
            tasks: rng.range(1, 32) as u32,
            seed: rng.next(),
        }),
    };
    let quorum = rng.range(1, 3.min(nodes as u64)) as u8;
    // A result needs as many copies as matching reports: r >= q.
    let replication = (rng.range(1, 3) as u8).max(quorum);
    // At most q-1 liars, and at least q honest nodes besides them.
    let liars =
        (rng.below(u64::from(quorum)) as usize).min(nodes.saturating_sub(usize::from(quorum)));
    let hostile_max =
        (usize::from(quorum) - 1 - liars).min(nodes.saturating_sub(usize::from(quorum) + liars));
    let silent = rng.below(hostile_max as u64 + 1) as usize;
    let fake_holders = rng.below((hostile_max - silent) as u64 + 1) as usize;
    // Floods are rarer, and only in small meshes: every flooded job is gossiped by
    // every node for the rest of the run, which a big mesh makes slow to simulate.
    let flooders = if !big && rng.chance(0.25) {
        rng.below((hostile_max - silent - fake_holders) as u64 + 1) as usize
    } else {
        0
    };
    let forgers = rng.below((hostile_max - silent - fake_holders - flooders) as u64 + 1) as usize;
    let mutes =
        rng.below((hostile_max - silent - fake_holders - flooders - forgers) as u64 + 1) as usize;
    let front_runners = usize::from(nodes >= 3 && rng.chance(0.15));
    let cap_authors = rng.chance(0.1);
    let calm = rng.chance(0.2);
    let mut faults = Vec::new();
    if !calm {
        for _ in 0..rng.range(0, 4) {
            let at = rng.range(0, 3_000);
            let victim = rng.range(1, nodes as u64 - 1) as usize;
            match rng.below(4) {
                0 => {
                    faults.push((at, Fault::Crash(victim)));
                    if rng.chance(0.5) {
                        faults.push((at + rng.range(100, 3_000), Fault::Restart(victim)));
                    }
                }
                1 => faults.push((at, Fault::Join)),
                2 => {
                    let side: Vec<usize> = (0..nodes).filter(|_| rng.chance(0.5)).collect();
                    faults.push((at, Fault::Partition(side)));
                    faults.push((at + rng.range(200, 5_000), Fault::Heal));
                }
                _ => faults.push((at, Fault::Crash(victim))),
            }
        }
    }
    faults.sort_by_key(|(t, _)| *t);
    // Liveness needs q honest nodes at the end: spare some crash victims if needed.
    let hostile = liars + silent + fake_holders + flooders + forgers + mutes;
    // Some scenarios take facts from one author fewer than will ever take part, so on
    // every node the last other author's facts are refused (a node's own always count
    // for it); one honest node is spared for that.
    let spare = usize::from(cap_authors);
    while honest_survivors(nodes, hostile, &faults) < usize::from(quorum) + spare {
        let Some(i) = faults
            .iter()
            .rposition(|(_, f)| matches!(f, Fault::Crash(_)))
        else {
            break;
        };
        faults.remove(i);
    }
    let authors_max =
        if cap_authors && honest_survivors(nodes, hostile, &faults) > usize::from(quorum) {
            let ever = nodes
                + faults
                    .iter()
                    .filter(|(_, f)| matches!(f, Fault::Join | Fault::Restart(_)))
                    .count();
            // Other authors than the node itself: `ever - 1`; one of them is refused.
            ever - 2
        } else {
            EngineConfig::default().authors_max
        };
    let mut sc = Scenario {
        nodes,
        kernel,
        replication,
        quorum,
        liars,
        silent,
        fake_holders,
        flooders,
        forgers,
        mutes,
        front_runners,
        authors_max,
        loss: if calm {
            0.0
        } else {
            [0.0, 0.01, 0.05, 0.2][rng.below(4) as usize]
        },
        dup: if calm {
            0.0
        } else {
            [0.0, 0.01, 0.1][rng.below(3) as usize]
        },
        latency_ms: if rng.chance(0.5) { (0, 5) } else { (1, 80) },
        faults,
        task_ms: (5, rng.range(10, 200)),
        stragglers: rng.below(3) as usize,
        submit_at_ms: None,
        tight_servers: true,
    };
    // One run in ten where nothing goes wrong, on a mesh formed before the job: there
    // the work done is checked too (`Sim::calm`).
    if rng.chance(0.1) {
        sc.liars = 0;
        sc.silent = 0;
        sc.fake_holders = 0;
        sc.flooders = 0;
        sc.forgers = 0;
        sc.mutes = 0;
        sc.front_runners = 0;
        sc.authors_max = EngineConfig::default().authors_max;
        sc.faults.clear();
        sc.loss = 0.0;
        sc.dup = 0.0;
        sc.stragglers = 0;
        sc.submit_at_ms = Some(rng.range(300, 400));
    }
    sc
}

/// Honest nodes alive once every fault has happened; `hostile` are the first nodes
/// after node 0 (liars, then silent claimers).
pub fn honest_survivors(nodes: usize, hostile: usize, faults: &[(u64, Fault)]) -> usize {
    // (hostile, alive) per node slot, as the simulator numbers them.
    let mut slots: Vec<(bool, bool)> = (0..nodes).map(|i| (i >= 1 && i <= hostile, true)).collect();
    for (_, f) in faults {
        match f {
            Fault::Crash(i) if *i > 0 && *i < slots.len() => slots[*i].1 = false,
            Fault::Restart(i) if *i < slots.len() && !slots[*i].1 => slots.push((false, true)),
            Fault::Join => slots.push((false, true)),
            _ => {}
        }
    }
    slots.iter().filter(|(liar, alive)| !liar && *alive).count()
}

pub struct Node {
    id: NodeId,
    engine: Engine,
    alive: bool,
    liar: bool,
    /// Claims every task and never reports.
    silent: bool,
    /// Whether this hostile node made its one announcement yet (claims, holdings or
    /// jobs for every task or peer).
    announced: bool,
    /// Says it holds every result, and never sends result bytes to anyone.
    fake_holder: bool,
    /// Sends junk bytes under true hashes.
    forger: bool,
    /// From this simulated time on, sends nothing (its links stay up).
    mute_at: Option<u64>,
    /// Any of the adversaries above (or a flooder): its copies and claims count for
    /// nothing in the checkers.
    hostile: bool,
    /// A hostile submitter (honest in node 0's job): its own `q = 1` job, and the tasks
    /// of it it has front-run already.
    front_runner: Option<(Option<JobId>, BTreeSet<TaskId>)>,
    slow: bool,
    /// Partition side; nodes talk only within a side.
    side: u8,
}

#[derive(Debug, Clone)]
pub enum Delivery {
    Msg {
        to: NodeId,
        from: NodeId,
        msg: EngineMsg,
    },
    Up {
        at: NodeId,
        peer: NodeId,
    },
    Down {
        at: NodeId,
        peer: NodeId,
    },
    Computed {
        at: NodeId,
        job: JobId,
        task: TaskId,
        output: Vec<u8>,
    },
    /// A flooder sends its jobs.
    Flood {
        at: NodeId,
    },
    /// A node is told to show the job from previews.
    Watch {
        at: NodeId,
        job: JobId,
    },
    /// A node is told to assemble the job's output too.
    Assemble {
        at: NodeId,
        job: JobId,
    },
    /// A hostile submitter submits its own job.
    FrontRunnerSubmits {
        at: NodeId,
    },
}

pub struct Sim {
    pub seed: u64,
    pub rng: Rng,
    pub sc: Scenario,
    pub now: u64,
    pub nodes: Vec<Node>,
    pub queue: BinaryHeap<Reverse<(u64, u64)>>,
    pub pending: HashMap<u64, Delivery>,
    pub seq: u64,
    pub next_id: u64,
    /// True task outputs, computed once.
    pub truth: HashMap<TaskId, Vec<u8>>,
    pub reference: JobOutput,
    pub job: Option<JobId>,
    /// The first validated hash of each task, across all nodes.
    pub agreed: BTreeMap<TaskId, u64>,
    pub done_at: Option<u64>,
    /// The output node 0 assembled.
    pub assembled: Option<JobOutput>,
    pub trace: bool,
    pub steps: u64,
    /// Wall time spent inside engine calls (`handle_input`, `poll_output`).
    pub engine_ns: u128,
    /// How often each interesting path ran (steals, recomputes, liars caught…), so the
    /// tests can check that the scenarios exercise them.
    pub counts: BTreeMap<&'static str, u64>,
    /// The checkers' own record, kept apart from the engines' boards: by node and task,
    /// the authors of each result hash whose report reached that node (a delivered
    /// `Facts` message, or the node's own computation).
    pub reports_seen: HashMap<(usize, TaskId), BTreeMap<u64, BTreeSet<NodeId>>>,
    /// By node, the peers it marked as liars, in a job (`Some`) or in every job
    /// (`None`): it must never place them again there.
    pub marked: HashMap<usize, BTreeSet<(Option<JobId>, NodeId)>>,
    /// By node, the peers it was told are up (and not down since): the only members
    /// its placement may rank, besides itself.
    pub views: HashMap<usize, BTreeSet<NodeId>>,
    /// Whether the step under way may have changed a placement (see `check_placement`).
    pub placement_moved: bool,
    /// Result bytes each node sent each peer, by sync interval.
    pub served: HashMap<(usize, NodeId, u64), usize>,
    /// When the last fault happened (or the job was submitted, if later).
    pub faults_end: u64,
    /// When node 0 submitted the job.
    pub submitted_at: u64,
    /// Node 0 is taking the scenario's submission (its refusal fails the run at once).
    submitting: bool,
    /// By node, computations of tasks it already saw validated, asked by help requests.
    pub helped_validated: HashMap<usize, u64>,
    /// Help requests of the job's submitter delivered: (node, task). The submitter's
    /// asks are not rate-limited (each task is computed at most once per node anyway).
    pub submitter_asked: BTreeSet<(usize, TaskId)>,
    /// `Holding` facts delivered: (node, task, hash, author).
    pub holdings_seen: BTreeSet<(usize, TaskId, u64, NodeId)>,
    /// Fetches sent: (node, to, task).
    pub fetches_sent: BTreeSet<(usize, NodeId, TaskId)>,
}

/// The seeds a simulator test runs: `{PREFIX}_SEED=<n>` alone (a replay), else
/// `{PREFIX}_SEEDS` seeds (default `default`) from `{PREFIX}_SEED_BASE` (default 0).
pub fn seeds_from_env(prefix: &str, default: u64) -> Vec<u64> {
    let var = |name: &str| std::env::var(format!("{prefix}_{name}")).ok();
    if let Some(s) = var("SEED") {
        return vec![
            s.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{prefix}_SEED is a number")),
        ];
    }
    let n = var("SEEDS").and_then(|s| s.parse().ok()).unwrap_or(default);
    let base: u64 = var("SEED_BASE").and_then(|s| s.parse().ok()).unwrap_or(0);
    (base..base + n).collect()
}

fn fail(seed: u64, what: String) -> ! {
    panic!(
        "simulator seed {seed} violated an invariant: {what}\n  replay: SIM_SEED={seed} cargo test -p node-core --test sim -- --nocapture"
    );
}

impl Sim {
    pub fn new(seed: u64) -> Sim {
        let mut rng = Rng(seed);
        let sc = scenario(&mut rng);
        Sim::with(seed, rng, sc)
    }

    pub fn with(seed: u64, rng: Rng, sc: Scenario) -> Sim {
        let reference = sc.kernel.run_all().expect("scenario kernels are valid");
        let mut sim = Sim {
            seed,
            rng,
            now: 0,
            nodes: Vec::new(),
            queue: BinaryHeap::new(),
            pending: HashMap::new(),
            seq: 0,
            next_id: 1,
            truth: HashMap::new(),
            reference,
            job: None,
            agreed: BTreeMap::new(),
            done_at: None,
            assembled: None,
            trace: std::env::var("SIM_SEED").is_ok(),
            steps: 0,
            engine_ns: 0,
            counts: BTreeMap::new(),
            reports_seen: HashMap::new(),
            marked: HashMap::new(),
            views: HashMap::new(),
            placement_moved: false,
            served: HashMap::new(),
            faults_end: 0,
            submitted_at: 0,
            submitting: false,
            helped_validated: HashMap::new(),
            submitter_asked: BTreeSet::new(),
            holdings_seen: BTreeSet::new(),
            fetches_sent: BTreeSet::new(),
            sc,
        };
        if sim.sc.authors_max < EngineConfig::default().authors_max {
            *sim.counts.entry("authors capped").or_insert(0) += 1;
        }
        let stragglers = sim.sc.stragglers;
        for i in 0..sim.sc.nodes {
            let liar = i >= 1 && i <= sim.sc.liars;
            let silent = i > sim.sc.liars && i <= sim.sc.liars + sim.sc.silent;
            let holders_end = sim.sc.liars + sim.sc.silent + sim.sc.fake_holders;
            let flooders_end = holders_end + sim.sc.flooders;
            let fake_holder = i > sim.sc.liars + sim.sc.silent && i <= holders_end;
            let flooder = i > holders_end && i <= flooders_end;
            let forgers_end = flooders_end + sim.sc.forgers;
            let hostile = forgers_end + sim.sc.mutes;
            let forger = i > flooders_end && i <= forgers_end;
            let mute = i > forgers_end && i <= hostile;
            let front_runner = i > hostile && i <= hostile + sim.sc.front_runners;
            let slow =
                i > hostile + sim.sc.front_runners && i > sim.sc.nodes.saturating_sub(stragglers);
            let n = sim.add_node(liar, slow);
            sim.nodes[n].silent = silent;
            sim.nodes[n].fake_holder = fake_holder;
            sim.nodes[n].forger = forger;
            sim.nodes[n].hostile = i >= 1 && i <= hostile;
            if mute {
                // While results are computed, stored and fetched (the job is submitted
                // in the first 400 ms and its tasks take up to a few seconds).
                sim.nodes[n].mute_at = Some(sim.rng.range(300, 3_000));
            }
            if front_runner {
                sim.nodes[n].front_runner = Some((None, BTreeSet::new()));
                let at = sim.rng.range(100, 600);
                let id = sim.nodes[n].id;
                sim.push(at, Delivery::FrontRunnerSubmits { at: id });
            }
            if flooder || forger {
                // Early (jobs, then fetches) and then every second for a while
                // (fetches, junk): most of it while results are being validated.
                let id = sim.nodes[n].id;
                for k in 0..8 {
                    let at = sim.rng.range(250, 600) + k * 1_000;
                    sim.push(at, Delivery::Flood { at: id });
                }
            }
        }
        sim
    }

    fn add_node(&mut self, liar: bool, slow: bool) -> usize {
        let id = NodeId(self.next_id);
        self.next_id += 1;
        let config = EngineConfig {
            slots: 1 + (self.rng.below(2) as usize),
            // Every other node hands out a task ahead (drawn from its id, not the
            // generator, so that a seed still means the run it meant before).
            ahead: (id.0 % 2) as usize,
            authors_max: self.sc.authors_max,
            served_bytes_per_sync_max: self.served_budget_of(id),
            ..EngineConfig::default()
        };
        let engine = Engine::new(id, config, self.rng.next(), Millis(self.now));
        self.nodes.push(Node {
            id,
            engine,
            alive: true,
            liar,
            silent: false,
            announced: false,
            fake_holder: false,
            forger: false,
            mute_at: None,
            hostile: false,
            front_runner: None,
            slow,
            side: 0,
        });
        let i = self.nodes.len() - 1;
        // Connect to every live node on the same side.
        for j in 0..i {
            if self.nodes[j].alive && self.nodes[j].side == self.nodes[i].side {
                self.link_up(i, j);
            }
        }
        i
    }

    fn push(&mut self, at: u64, d: Delivery) {
        self.seq += 1;
        self.pending.insert(self.seq, d);
        self.queue.push(Reverse((at, self.seq)));
    }

    fn index(&self, id: NodeId) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    fn connected(&self, a: usize, b: usize) -> bool {
        self.nodes[a].alive && self.nodes[b].alive && self.nodes[a].side == self.nodes[b].side
    }

    /// Both ends learn of each other after a handshake delay.
    fn link_up(&mut self, a: usize, b: usize) {
        let (ia, ib) = (self.nodes[a].id, self.nodes[b].id);
        let d1 = self.now + self.rng.range(20, 300);
        let d2 = self.now + self.rng.range(20, 300);
        self.push(d1, Delivery::Up { at: ia, peer: ib });
        self.push(d2, Delivery::Up { at: ib, peer: ia });
    }

    /// Survivors notice a departure after a detection delay (signaling or heartbeat).
    fn link_down(&mut self, survivor: usize, gone: usize) {
        let d = self.now + self.rng.range(5, 1_500);
        let (s, g) = (self.nodes[survivor].id, self.nodes[gone].id);
        self.push(d, Delivery::Down { at: s, peer: g });
    }

    fn apply_fault(&mut self, f: Fault) {
        if self.trace {
            println!("[{:>7}] fault {f:?}", self.now);
        }
        match f {
            Fault::Crash(i) => {
                if i >= self.nodes.len() || !self.nodes[i].alive || i == 0 {
                    return;
                }
                for j in 0..self.nodes.len() {
                    if j != i && self.connected(i, j) {
                        self.link_down(j, i);
                    }
                }
                self.nodes[i].alive = false;
            }
            Fault::Restart(i) => {
                if i >= self.nodes.len() || self.nodes[i].alive {
                    return;
                }
                // A restarted process is a new node with empty state and a new id (as a
                // reloaded tab is). It comes back honest: a lying node under a new id would
                // be one more liar, and the fault model allows at most q - 1.
                let slow = self.nodes[i].slow;
                self.add_node(false, slow);
            }
            Fault::Join => {
                self.add_node(false, false);
            }
            Fault::Partition(side) => {
                for &i in &side {
                    if i < self.nodes.len() && i != 0 {
                        self.set_side(i, 1);
                    }
                }
            }
            Fault::Heal => {
                for i in 0..self.nodes.len() {
                    if self.nodes[i].side != 0 {
                        self.set_side(i, 0);
                    }
                }
            }
        }
    }

    fn set_side(&mut self, i: usize, side: u8) {
        let before: Vec<usize> = (0..self.nodes.len())
            .filter(|&j| j != i && self.connected(i, j))
            .collect();
        self.nodes[i].side = side;
        let after: Vec<usize> = (0..self.nodes.len())
            .filter(|&j| j != i && self.connected(i, j))
            .collect();
        for &j in &before {
            if !after.contains(&j) {
                self.link_down(i, j);
                self.link_down(j, i);
            }
        }
        for &j in &after {
            if !before.contains(&j) {
                self.link_up(i, j);
            }
        }
    }

    fn output_for(&mut self, task: TaskId, liar: bool) -> Vec<u8> {
        let kernel = &self.sc.kernel;
        let out = self
            .truth
            .entry(task)
            .or_insert_with(|| {
                let mut out = Vec::new();
                kernel.run_task(task.0, &mut out).expect("valid task");
                out
            })
            .clone();
        if liar {
            // Liars collude: all produce the same wrong bytes, the hardest case for q.
            let mut bad = out;
            bad[0] ^= 0xff;
            bad
        } else {
            out
        }
    }

    fn step_engine(&mut self, i: usize, input: Input) {
        // Placement changes only with membership, marks and new jobs: checked then.
        if matches!(
            input,
            Input::PeerUp(_) | Input::PeerDown(_) | Input::Command(_)
        ) {
            self.placement_moved = true;
        }
        let now = Millis(self.now);
        let t0 = std::time::Instant::now();
        self.nodes[i].engine.handle_input(now, input);
        self.engine_ns += t0.elapsed().as_nanos();
        self.drain(i);
    }

    fn drain(&mut self, i: usize) {
        let me = self.nodes[i].id;
        loop {
            let t0 = std::time::Instant::now();
            let out = self.nodes[i].engine.poll_output();
            self.engine_ns += t0.elapsed().as_nanos();
            let Some(out) = out else { break };
            match out {
                Output::Send { to, msg } => {
                    self.check_output(i, to, &msg);
                    self.transmit(i, to, msg)
                }
                Output::Broadcast { msg } => {
                    let peers: Vec<NodeId> = self.nodes[i].engine.peers().collect();
                    for to in peers {
                        self.check_output(i, to, &msg);
                        self.transmit(i, to, msg.clone());
                    }
                }
                Output::RunTask { job, .. } if self.nodes[i].silent => {
                    // Claim every task at once, and never finish any.
                    self.say_once_for_every_task(i, job, "silent claimer", |_, _| {
                        Fact::Claim(Why::Assigned)
                    });
                }
                Output::RunTask { job, task, kernel } => {
                    let ours = Some(job) == self.job;
                    let output = if ours {
                        assert_eq!(kernel, self.sc.kernel);
                        if self.nodes[i].fake_holder {
                            self.say_once_for_every_task(i, job, "fake holder", |sim, t| {
                                let out = sim.output_for(t, false);
                                Fact::Holding(sim.hash_of(t, &out))
                            });
                        }
                        let liar = self.nodes[i].liar;
                        self.output_for(task, liar)
                    } else {
                        // Another job (a flooder's): tiny, computed for real.
                        let mut output = Vec::new();
                        kernel.run_task(task.0, &mut output).expect("valid task");
                        output
                    };
                    let (lo, hi) = self.sc.task_ms;
                    let mut ms = self.rng.range(lo, hi);
                    if ours && self.nodes[i].slow {
                        ms *= 10;
                    }
                    let at = self.now + ms;
                    self.push(
                        at,
                        Delivery::Computed {
                            at: me,
                            job,
                            task,
                            output,
                        },
                    );
                }
                Output::Event(e) => self.check_event(i, e),
            }
        }
        self.check_memory(i);
        if std::mem::take(&mut self.placement_moved) {
            self.check_placement(i);
        }
    }

    /// Result bytes a node may send one peer per sync interval in this simulation:
    /// every result twice over, so an honest assembler (which fetches each result
    /// about once) never meets it and a fetch flood (each result eight times) does.
    fn served_budget(&self) -> usize {
        2 * self.sc.kernel.task_count() as usize * self.sc.kernel.task_output_len_max()
    }

    /// The budget of node `id`: with [`Scenario::tight_servers`], every third node
    /// (from the id, as `ahead`) serves at most four results per sync interval.
    fn served_budget_of(&self, id: NodeId) -> usize {
        if self.sc.tight_servers && id.0.is_multiple_of(3) {
            (4 * self.sc.kernel.task_output_len_max()).min(self.served_budget())
        } else {
            self.served_budget()
        }
    }

    /// Checks on what an engine sends (not on what the simulator's adversaries push).
    fn check_output(&mut self, from: usize, to: NodeId, msg: &EngineMsg) {
        if let EngineMsg::Fetch { task, .. } = msg {
            self.fetches_sent.insert((from, to, *task));
        }
        // An engine's answers to fetches stay within the budget (the engine's window is
        // its own, so two budgets may fall in one of these buckets).
        if let EngineMsg::Payload { payload, .. } = msg {
            let bucket = self.now / EngineConfig::default().sync_ms;
            let budget = self.served_budget_of(self.nodes[from].id);
            let sent = self.served.entry((from, to, bucket)).or_insert(0);
            *sent += payload.len();
            let sent = *sent;
            if sent > 2 * budget {
                fail(
                    self.seed,
                    format!(
                        "{} sent {to} {sent} bytes of results in one sync interval",
                        self.nodes[from].id
                    ),
                );
            }
        }
        // A node never places a peer it marked as a liar (in that job, or in every job):
        // no copy, fetch or help for it.
        if let EngineMsg::Store { job, .. }
        | EngineMsg::Fetch { job, .. }
        | EngineMsg::Help { job, .. } = msg
            && self
                .marked
                .get(&from)
                .is_some_and(|m| m.contains(&(Some(*job), to)) || m.contains(&(None, to)))
        {
            fail(
                self.seed,
                format!(
                    "{} placed work on {to}, which it marked as a liar",
                    self.nodes[from].id
                ),
            );
        }
    }

    fn transmit(&mut self, from: usize, to: NodeId, mut msg: EngineMsg) {
        if self.nodes[from].mute_at.is_some_and(|t| self.now >= t) {
            if !self.nodes[from].announced {
                self.nodes[from].announced = true;
                *self.counts.entry("went silent").or_insert(0) += 1;
            }
            return;
        }
        if self.nodes[from].fake_holder
            && matches!(
                msg,
                EngineMsg::Payload { .. } | EngineMsg::Store { .. } | EngineMsg::Preview { .. }
            )
        {
            return;
        }
        if self.nodes[from].forger
            && let EngineMsg::Payload { payload, .. }
            | EngineMsg::Store { payload, .. }
            | EngineMsg::Preview {
                preview: payload, ..
            } = &mut msg
            && let Some(b) = payload.first_mut()
        {
            *b ^= 0x5a;
        }
        if self.trace && !matches!(msg, EngineMsg::Facts { .. } | EngineMsg::Digest { .. }) {
            let what = format!("{msg:?}");
            println!(
                "[{:>7}] {} -> {to}: {}",
                self.now,
                self.nodes[from].id,
                &what[..what.len().min(90)]
            );
        }
        let Some(t) = self.index(to) else { return };
        if !self.connected(from, t) || self.rng.chance(self.sc.loss) {
            return;
        }
        let copies = if self.rng.chance(self.sc.dup) { 2 } else { 1 };
        let fid = self.nodes[from].id;
        for _ in 0..copies {
            let (lo, hi) = self.sc.latency_ms;
            let at = self.now + self.rng.range(lo, hi);
            self.push(
                at,
                Delivery::Msg {
                    to,
                    from: fid,
                    msg: msg.clone(),
                },
            );
        }
    }

    fn check_event(&mut self, i: usize, e: Event) {
        let seed = self.seed;
        if self.trace {
            println!("[{:>7}] {} {e}", self.now, self.nodes[i].id);
        }
        // Help with a task this node already sees validated costs a computation it would
        // not otherwise do: at most one per peer per `straggler_ms`, the job's submitter
        // excepted. (Where boards refuse an author, this record of delivered reports is
        // not the node's view: skipped.)
        if let Event::TaskStarted {
            job,
            task,
            why: Why::Helped,
        } = &e
            && Some(*job) == self.job
            && !self.submitter_asked.contains(&(i, *task))
            && self.sc.authors_max >= EngineConfig::default().authors_max
        {
            let q = usize::from(self.sc.quorum);
            let validated_here = self
                .reports_seen
                .get(&(i, *task))
                .is_some_and(|by_hash| by_hash.values().any(|a| a.len() >= q));
            if validated_here {
                let n = self.helped_validated.entry(i).or_insert(0);
                *n += 1;
                let n = *n;
                let max = (self.now / EngineConfig::default().straggler_ms + 1) * self.next_id;
                if n > max {
                    fail(
                        seed,
                        format!(
                            "{} computed {n} validated tasks for help (max {max})",
                            self.nodes[i].id
                        ),
                    );
                }
            }
        }
        if let Event::TaskStarted {
            job,
            task,
            why: Why::Recompute,
        } = &e
            && Some(*job) == self.job
        {
            self.check_recompute(i, *job, *task);
        }
        let path = match &e {
            Event::TaskStarted { why, .. } => Some(match why {
                Why::Assigned => "assigned",
                Why::Helped => "helped",
                Why::Stolen => "stolen",
                Why::Speculative => "speculative",
                Why::Recompute => "recomputed",
            }),
            Event::TaskMismatch { .. } => Some("mismatch"),
            Event::LiarMarked { .. } => {
                self.placement_moved = true;
                Some("liar marked")
            }
            Event::JobAccepted { .. } => {
                self.placement_moved = true;
                None
            }
            Event::ResultReplicated { .. } => Some("replicated"),
            Event::HolderLost { .. } => Some("holder lost"),
            _ => None,
        };
        if let Some(p) = path {
            *self.counts.entry(p).or_insert(0) += 1;
        }
        match e {
            // The scenario's own job refused by its submitter: say why at once, rather
            // than wait for a liveness deadline that cannot be met.
            Event::JobRefused { why, .. } if i == 0 && self.submitting => {
                fail(
                    seed,
                    format!("the engine refused the scenario's job: {why}"),
                );
            }
            // Other jobs (a flooder's) are not checked against this scenario's truth.
            Event::TaskValidated { job, .. } if Some(job) != self.job => {}
            Event::TaskValidated { job, task, hash } => {
                let q = usize::from(self.sc.quorum);
                // Counted from the simulator's own record of delivered reports, not from
                // the engine's board.
                let n = self
                    .reports_seen
                    .get(&(i, task))
                    .and_then(|by_hash| by_hash.get(&hash))
                    .map_or(0, BTreeSet::len);
                let _ = job;
                if n < q {
                    fail(
                        seed,
                        format!("{task} validated with {n} < q = {q} reporters"),
                    );
                }
                if let Some(h) = self.agreed.get(&task) {
                    if *h != hash {
                        fail(
                            seed,
                            format!("nodes disagree on {task}: {h:016x} vs {hash:016x}"),
                        );
                    }
                } else {
                    self.agreed.insert(task, hash);
                }
                let truth = self.output_for(task, false);
                if hash != self.hash_of(task, &truth) && self.sc.liars < q {
                    fail(
                        seed,
                        format!(
                            "wrong result accepted for {task} with {} liars, q = {q}",
                            self.sc.liars
                        ),
                    );
                }
            }
            Event::LiarMarked {
                node,
                job,
                everywhere,
                ..
            } => {
                if let Some(j) = self.index(node)
                    && !self.nodes[j].liar
                {
                    fail(seed, format!("honest node {node} was marked a liar"));
                }
                let marked = self.marked.entry(i).or_default();
                marked.insert((Some(job), node));
                if everywhere {
                    marked.insert((None, node));
                }
            }
            // Every node that assembles the job gets the one-process output.
            Event::JobDone { job, output, .. } if Some(job) == self.job && i != 0 => {
                *self.counts.entry("assembled elsewhere").or_insert(0) += 1;
                if output != self.reference {
                    fail(
                        seed,
                        format!("node {i} assembled an output other than the one-process one"),
                    );
                }
            }
            Event::JobDone { job, output, .. } if Some(job) == self.job => {
                if output != self.reference {
                    fail(
                        seed,
                        "the assembled output differs from the one-process output".into(),
                    );
                }
                self.done_at = Some(self.now);
                self.assembled = Some(output);
            }
            _ => {}
        }
    }

    /// A node recomputes a validated result only when no live honest holder it knows
    /// of exists: a holder whose `Holding` fact reached it, still linked to it, holding
    /// the true bytes, and never asked by it for them (a fetch may go unanswered on a
    /// lossy link, and the engine gives up on a holder that does not serve).
    fn check_recompute(&self, i: usize, job: JobId, task: TaskId) {
        // Where boards refuse an author, a delivered fact may not be in the node's view.
        if self.sc.authors_max < EngineConfig::default().authors_max {
            return;
        }
        let Some(&hash) = self.agreed.get(&task) else {
            return;
        };
        let truth = self.output_for_ref(task);
        for (j, n) in self.nodes.iter().enumerate() {
            if j != i
                && !n.hostile
                && self.connected(i, j)
                && self.nodes[i].engine.peers().any(|p| p == n.id)
                && n.engine.held(job, task) == Some(truth)
                && self.holdings_seen.contains(&(i, task, hash, n.id))
                && !self.fetches_sent.contains(&(i, n.id, task))
            {
                fail(
                    self.seed,
                    format!(
                        "{} recomputed {task} while {} held it, said so, and was never asked",
                        self.nodes[i].id, n.id
                    ),
                );
            }
        }
    }

    /// The true bytes of a task, once computed by [`Sim::output_for`].
    fn output_for_ref(&self, task: TaskId) -> &[u8] {
        self.truth.get(&task).map_or(&[], Vec::as_slice)
    }

    /// Once the job is done and the faults are over: every task has `r` live copies
    /// (or one on every node that keeps the job and can hold one, if fewer), counted from the bytes the
    /// nodes hold, compared with the truth here. Fake holders and mutes count as the
    /// copy they say they are (no node can tell them apart from a holder until it
    /// fetches); forgers, whose bytes never arrive intact, do not.
    fn check_copies(&mut self) {
        let Some(job) = self.job else { return };
        // A node may evict a finished job to make room for others (a flooder's): its
        // copies go with it, by design, once the job is done, and copies sent to it are
        // refused; copies are not counted where that happened.
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|&j| self.nodes[j].alive)
            .collect();
        if live
            .iter()
            .any(|&j| self.nodes[j].engine.progress(job).is_none())
        {
            return;
        }
        let liars = live.iter().filter(|&&j| self.nodes[j].liar).count();
        let forgers = live.iter().filter(|&&j| self.nodes[j].forger).count();
        let r = usize::from(self.sc.replication);
        let expected = r.min(live.len() - liars).saturating_sub(forgers);
        *self.counts.entry("copies checked").or_insert(0) += 1;
        for t in 0..self.sc.kernel.task_count() {
            let task = TaskId(t);
            let truth = self.output_for(task, false);
            let copies = live
                .iter()
                .filter(|&&j| {
                    let n = &self.nodes[j];
                    !n.forger
                        && (n.fake_holder
                            || n.mute_at.is_some()
                            || n.engine.held(job, task) == Some(&truth[..]))
                })
                .count();
            if copies < expected {
                let holders: Vec<(NodeId, bool, bool)> = live
                    .iter()
                    .map(|&j| {
                        let n = &self.nodes[j];
                        (
                            n.id,
                            n.hostile,
                            n.engine.held(job, task) == Some(&truth[..]),
                        )
                    })
                    .collect();
                fail(
                    self.seed,
                    format!(
                        "{task} has {copies} live copies {COPIES_MS} ms after the job and the faults ended (r = {r}, expected {expected}); live (id, hostile, holds): {holders:?}"
                    ),
                );
            }
        }
    }

    /// Once the job is done and the faults are over (when copies are counted): every
    /// living honest node that shows the job from previews has a preview or the tile
    /// of every task: a watched picture completes.
    fn check_watchers_complete(&mut self) {
        let Some(job) = self.job else { return };
        for i in 0..self.nodes.len() {
            let n = &self.nodes[i];
            if !n.alive || n.hostile || !n.engine.is_watching(job) {
                continue;
            }
            *self.counts.entry("watcher complete").or_insert(0) += 1;
            if !n.engine.is_previewed(job) {
                let missing: Vec<u32> = (0..self.sc.kernel.task_count())
                    .filter(|t| {
                        n.engine.held(job, TaskId(*t)).is_none()
                            && n.engine.preview(job, TaskId(*t)).is_none()
                    })
                    .collect();
                fail(
                    self.seed,
                    format!(
                        "node {i} watches the job and still lacks the preview of tasks {missing:?} {COPIES_MS} ms after the job and the faults ended"
                    ),
                );
            }
        }
    }

    /// Everything an engine keeps stays within bounds set by the scenario (tighter than
    /// the engine's own caps): one job unless a flooder sent more, at most as many liars
    /// as the scenario has, and so on.
    fn check_memory(&self, i: usize) {
        let fp = self.nodes[i].engine.footprint();
        let tasks = self.sc.kernel.task_count() as usize;
        let authors = self.next_id as usize; // every node that ever existed
        let flood = self.sc.flooders > 0;
        // A flooder's jobs have one tiny task each; at most `jobs_max` jobs are kept. A
        // hostile submitter's job has at most `FRONT_RUN_TASKS_MAX` tasks.
        let fronts = self.sc.front_runners;
        let other_tasks = if flood { 16 } else { 0 } + fronts * FRONT_RUN_TASKS_MAX as usize;
        let all_tasks = tasks + other_tasks;
        let jobs_max = if flood { 16 } else { 1 + fronts };
        let ids_max = if flood { 64 } else { 1 + fronts };
        let bounds: [(&str, usize, usize); 13] = [
            ("jobs", fp.jobs, jobs_max),
            ("facts", fp.facts as usize, all_tasks * authors * 5),
            (
                "result bytes",
                fp.payload_bytes,
                tasks * self.sc.kernel.task_output_len_max() + other_tasks * 64,
            ),
            ("retired ids", fp.retired, if flood { 64 } else { 0 }),
            ("asked ids", fp.asked, ids_max),
            ("liars", fp.liars, self.sc.liars),
            ("peer budgets", fp.peer_budgets, 2 * authors),
            // A request waits at most once per task and kind from an honest asker; a
            // flooder asks each result several times.
            ("requests waiting", fp.deferred, 2 * all_tasks * authors),
            ("task marks", fp.task_marks, 7 * all_tasks),
            ("per-author entries", fp.per_author, 3 * all_tasks * authors),
            ("fetches", fp.fetches, all_tasks),
            ("per-peer entries", fp.per_peer, 2 * jobs_max * authors),
            ("unflushed facts", fp.outbox, 5 * all_tasks),
        ];
        for (what, n, max) in bounds {
            if n > max {
                fail(
                    self.seed,
                    format!(
                        "memory over bound at {}: {n} {what} (max {max})",
                        self.nodes[i].id
                    ),
                );
            }
        }
        // No submitter other than this node has more than its share of unfinished jobs
        // here (a job is finished here once every task is validated: only node 0's
        // own job, which it assembles, waits for more).
        let me = self.nodes[i].id;
        let engine = &self.nodes[i].engine;
        let mut open: BTreeMap<NodeId, usize> = BTreeMap::new();
        for job in engine.job_ids() {
            let (Some(spec), Some((done, all))) = (engine.job_spec(job), engine.progress(job))
            else {
                continue;
            };
            if spec.submitter != me && done < all {
                *open.entry(spec.submitter).or_insert(0) += 1;
            }
        }
        let share = EngineConfig::default().jobs_per_submitter_max;
        if let Some((s, n)) = open.into_iter().find(|(_, n)| *n > share) {
            fail(
                self.seed,
                format!("{me} keeps {n} unfinished jobs of {s} (its share is {share})"),
            );
        }
    }

    /// A node's placement ranks only members it was told are up (or itself), and none
    /// it marked as a liar in that job or in every job: checked against the simulator's
    /// own record of the `PeerUp`/`PeerDown` it delivered and the marks it saw.
    fn check_placement(&self, i: usize) {
        let engine = &self.nodes[i].engine;
        let me = self.nodes[i].id;
        let view = self.views.get(&i);
        let marked = self.marked.get(&i);
        for job in engine.job_ids() {
            let tasks = engine.progress(job).map_or(0, |(_, t)| t);
            for task in (0..tasks).map(TaskId) {
                for n in engine.placement(job, task) {
                    if n != me && !view.is_some_and(|v| v.contains(&n)) {
                        fail(
                            self.seed,
                            format!(
                                "{me} ranks {n} for {task}, which it was told is gone (or never up)"
                            ),
                        );
                    }
                    if marked.is_some_and(|m| m.contains(&(Some(job), n)) || m.contains(&(None, n)))
                    {
                        fail(
                            self.seed,
                            format!("{me} ranks {n} for {task}, which it marked as a liar"),
                        );
                    }
                }
            }
        }
    }

    /// A hostile node's one announcement: a fact of its own about every task of the
    /// job, sent to every peer (once per node; `what` names it for coverage).
    fn say_once_for_every_task(
        &mut self,
        i: usize,
        job: JobId,
        what: &'static str,
        mut fact: impl FnMut(&mut Sim, TaskId) -> Fact,
    ) {
        if self.nodes[i].announced {
            return;
        }
        self.nodes[i].announced = true;
        *self.counts.entry(what).or_insert(0) += 1;
        let facts: Vec<TaskFact> = (0..self.sc.kernel.task_count())
            .map(|t| TaskFact {
                task: TaskId(t),
                fact: fact(self, TaskId(t)),
            })
            .collect();
        self.facts_to_all(i, job, &facts);
    }

    /// Node `i` sends `facts` about `job` to every peer it has (as an adversary would,
    /// outside its engine).
    fn facts_to_all(&mut self, i: usize, job: JobId, facts: &[TaskFact]) {
        let peers: Vec<NodeId> = self.nodes[i].engine.peers().collect();
        for to in peers {
            let msg = EngineMsg::Facts {
                job,
                facts: facts.to_vec(),
            };
            self.transmit(i, to, msg);
        }
    }

    /// Records, for the checkers, that a report of `hash` by `author` reached node `i`.
    fn saw_report(&mut self, i: usize, task: TaskId, hash: u64, author: NodeId) {
        self.reports_seen
            .entry((i, task))
            .or_default()
            .entry(hash)
            .or_default()
            .insert(author);
    }

    /// How long after the last fault the job may take: [`RECOVERY_MS`] plus its work
    /// done on one node at the slowest honest speed (every task `q` times at the longest
    /// task time, ten times that if the scenario has stragglers).
    pub fn liveness_bound_ms(&self) -> u64 {
        let tasks = u64::from(self.sc.kernel.task_count());
        let slow = if self.sc.stragglers > 0 { 10 } else { 1 };
        let recovery = if self.honest_mesh() && self.sc.loss <= 0.05 {
            HONEST_RECOVERY_MS
        } else if self.honest_mesh() {
            HONEST_LOSSY_RECOVERY_MS
        } else {
            RECOVERY_MS
        };
        recovery + tasks * u64::from(self.sc.quorum) * self.sc.task_ms.1 * slow
    }

    /// Nothing goes wrong at all: an honest mesh, formed before the job came (every
    /// link is up within 300 ms), no fault, no loss, no slow node.
    pub fn calm(&self) -> bool {
        self.submitted_at >= 300
            && self.honest_mesh()
            && self.sc.faults.is_empty()
            && self.sc.loss == 0.0
            && self.sc.stragglers == 0
    }

    /// No hostile node, and every author's facts are taken.
    pub fn honest_mesh(&self) -> bool {
        let sc = &self.sc;
        sc.liars
            + sc.silent
            + sc.fake_holders
            + sc.flooders
            + sc.forgers
            + sc.mutes
            + sc.front_runners
            == 0
            && sc.authors_max >= EngineConfig::default().authors_max
    }

    /// The id of the job node 0 submits.
    fn submitted_job(&self) -> JobId {
        JobSpec {
            kernel: self.sc.kernel.clone(),
            replication: self.sc.replication,
            quorum: self.sc.quorum,
            pacing_ms: 0,
            submitter: self.nodes[0].id,
            nonce: self.seed,
        }
        .id()
    }

    /// A flooder's jobs: its own, many, and forged ones in every other node's name.
    fn flood(&mut self, i: usize) {
        if self.nodes[i].forger {
            return self.push_junk(i);
        }
        self.flood_fetches(i);
        if self.nodes[i].announced {
            return;
        }
        self.nodes[i].announced = true;
        *self.counts.entry("job flood").or_insert(0) += 1;
        let flooder = self.nodes[i].id;
        let others: Vec<NodeId> = self.nodes.iter().map(|n| n.id).collect();
        let mut specs = Vec::new();
        for (k, submitter) in std::iter::repeat_n(flooder, 24)
            .chain(others.iter().flat_map(|o| std::iter::repeat_n(*o, 4)))
            .enumerate()
        {
            specs.push(JobSpec {
                kernel: Kernel::MonteCarloPi(monte_carlo::Params {
                    samples_per_task: 1,
                    tasks: 1,
                    seed: k as u64,
                }),
                replication: 1,
                quorum: 1,
                pacing_ms: 0,
                submitter,
                nonce: self.seed ^ k as u64,
            });
        }
        let peers: Vec<NodeId> = self.nodes[i].engine.peers().collect();
        for to in peers {
            for spec in &specs {
                self.transmit(i, to, EngineMsg::Job { spec: spec.clone() });
            }
        }
    }

    /// The hash the engine names task `task`'s result `bytes` of the scenario's job by.
    fn hash_of(&self, task: TaskId, bytes: &[u8]) -> u64 {
        node_core::job::result_hash(&self.sc.kernel, task, bytes)
    }

    /// A flooder asks every peer for every result, many times over, and for help with
    /// every task.
    fn flood_fetches(&mut self, i: usize) {
        let Some(job) = self.job else { return };
        *self.counts.entry("fetch flood").or_insert(0) += 1;
        let hashes: Vec<(TaskId, u64)> = (0..self.sc.kernel.task_count())
            .map(|t| {
                let out = self.output_for(TaskId(t), false);
                (TaskId(t), self.hash_of(TaskId(t), &out))
            })
            .collect();
        let peers: Vec<NodeId> = self.nodes[i].engine.peers().collect();
        for to in peers {
            for _ in 0..8 {
                for (task, hash) in &hashes {
                    let msg = EngineMsg::Fetch {
                        job,
                        task: *task,
                        hash: *hash,
                    };
                    self.transmit(i, to, msg);
                }
            }
            for (task, _) in &hashes {
                self.transmit(i, to, EngineMsg::Help { job, task: *task });
            }
            // True bytes under their true hash, to nodes that may not hold them: only a
            // node ranked among a task's top keeps them.
            for (task, hash) in &hashes {
                let payload = self.output_for(*task, false);
                let store = EngineMsg::Store {
                    job,
                    task: *task,
                    hash: *hash,
                    payload,
                };
                self.transmit(i, to, store);
            }
        }
        *self.counts.entry("store flood").or_insert(0) += 1;
    }

    /// A hostile submitter submits its own `q = 1` job.
    fn front_runner_submits(&mut self, i: usize) {
        let tasks = self.rng.range(4, u64::from(FRONT_RUN_TASKS_MAX)) as u32;
        let kernel = Kernel::MonteCarloPi(monte_carlo::Params {
            samples_per_task: 16,
            tasks,
            seed: self.rng.next(),
        });
        let replication = self.rng.range(1, 2) as u8;
        let nonce = self.rng.next();
        let spec = JobSpec {
            kernel: kernel.clone(),
            replication,
            quorum: 1,
            pacing_ms: 0,
            submitter: self.nodes[i].id,
            nonce,
        };
        if let Some((job, _)) = &mut self.nodes[i].front_runner {
            *job = Some(spec.id());
        }
        let submit = Command::Submit {
            kernel,
            replication,
            quorum: 1,
            pacing_ms: 0,
            nonce,
        };
        self.step_engine(i, Input::Command(submit));
    }

    /// A hostile submitter `i` heard `facts` about a job: for every task of its own job
    /// another node claims, it reports a fake hash to every peer at once, ahead of the
    /// claimer's report (once a task).
    fn front_run(&mut self, i: usize, job: JobId, facts: &[TaskFact]) {
        let Some((Some(own), done)) = &self.nodes[i].front_runner else {
            return;
        };
        if *own != job {
            return;
        }
        let fresh: Vec<TaskId> = facts
            .iter()
            .filter(|f| matches!(f.fact, Fact::Claim(_)) && !done.contains(&f.task))
            .map(|f| f.task)
            .collect();
        if fresh.is_empty() {
            return;
        }
        if let Some((_, done)) = &mut self.nodes[i].front_runner {
            done.extend(fresh.iter().copied());
        }
        *self.counts.entry("front run").or_insert(0) += fresh.len() as u64;
        let facts: Vec<TaskFact> = fresh
            .iter()
            .map(|t| TaskFact {
                task: *t,
                fact: Fact::Report(0xfa4e_0000_0000_0000 ^ u64::from(t.0)),
            })
            .collect();
        self.facts_to_all(i, job, &facts);
    }

    /// A forger pushes junk under every true hash, as stores and as payloads nobody
    /// asked for.
    fn push_junk(&mut self, i: usize) {
        let Some(job) = self.job else { return };
        *self.counts.entry("junk pushed").or_insert(0) += 1;
        let peers: Vec<NodeId> = self.nodes[i].engine.peers().collect();
        for t in 0..self.sc.kernel.task_count() {
            let task = TaskId(t);
            let truth = self.output_for(task, false);
            let hash = self.hash_of(task, &truth);
            for to in &peers {
                // `transmit` turns the true bytes into junk for a forger.
                let store = EngineMsg::Store {
                    job,
                    task,
                    hash,
                    payload: truth.clone(),
                };
                let payload = EngineMsg::Payload {
                    job,
                    task,
                    hash,
                    payload: truth.clone(),
                };
                self.transmit(i, *to, store);
                self.transmit(i, *to, payload);
            }
        }
    }

    /// Tasks computed by all nodes.
    pub fn tasks_run(&self) -> u64 {
        self.nodes.iter().map(|n| n.engine.stats().tasks_run).sum()
    }

    pub fn run(&mut self) {
        // Node 0 (never crashed, never lying) submits and assembles.
        let submit = Command::Submit {
            kernel: self.sc.kernel.clone(),
            replication: self.sc.replication,
            quorum: self.sc.quorum,
            pacing_ms: 0,
            nonce: self.seed,
        };
        // Submit at a random moment while the mesh forms, unless the scenario says when.
        let start = self
            .sc
            .submit_at_ms
            .unwrap_or_else(|| self.rng.range(0, 400));
        self.submitted_at = start;
        let mut faults: Vec<(u64, Fault)> = self
            .sc
            .faults
            .iter()
            .map(|(t, f)| (t + start, f.clone()))
            .collect();
        faults.reverse();
        let faults_end = faults.first().map_or(start, |(t, _)| *t);
        self.faults_end = faults_end;
        let mut submitted = false;
        loop {
            self.steps += 1;
            // The earliest deadline: a delivery, a fault, the submission or a timeout.
            let mut next = u64::MAX;
            if let Some(Reverse((t, _))) = self.queue.peek() {
                next = next.min(*t);
            }
            if let Some((t, _)) = faults.last() {
                next = next.min(*t);
            }
            if !submitted {
                next = next.min(start);
            }
            let mut timer = None;
            for (i, n) in self.nodes.iter().enumerate() {
                if n.alive
                    && let Some(Millis(t)) = n.engine.poll_timeout()
                    && t < next
                {
                    next = t;
                    timer = Some(i);
                }
            }
            if let Some(done) = self.done_at {
                // With the faults over, go on a while and count copies; otherwise stop.
                if self.faults_end > done {
                    break;
                }
                if next > done + COPIES_MS {
                    self.check_copies();
                    self.check_watchers_complete();
                    break;
                }
            }
            if self.done_at.is_none()
                && (next > RUN_LIMIT_MS || next > faults_end + self.liveness_bound_ms())
            {
                let job = self.job.expect("submitted");
                let (v, t) = self.nodes[0].engine.progress(job).unwrap_or((0, 0));
                if self.trace {
                    for task in (0..t).map(TaskId) {
                        let e = self.nodes[0].engine.task_facts(job, task);
                        if e.is_some_and(|e| e.accepted().is_none()) {
                            println!(
                                "stuck at node 0: {task} {:?}; placement {:?}, peers {:?}",
                                e,
                                self.nodes[0].engine.placement(job, task),
                                self.nodes[0].engine.peers().collect::<Vec<_>>()
                            );
                        }
                    }
                    let alive: Vec<(NodeId, bool)> = self
                        .nodes
                        .iter()
                        .filter(|n| n.alive)
                        .map(|n| (n.id, n.liar))
                        .collect();
                    println!("alive (id, liar): {alive:?}");
                }
                fail(
                    self.seed,
                    format!(
                        "liveness: job not done {} ms after the last fault ({v}/{t} tasks validated at node 0)",
                        self.liveness_bound_ms()
                    ),
                );
            }
            self.now = self.now.max(next);
            if !submitted && start <= next {
                submitted = true;
                self.submitting = true;
                self.step_engine(0, Input::Command(submit.clone()));
                self.submitting = false;
                let job = self.submitted_job();
                self.job = Some(job);
                // Half the runs, another node assembles the output too.
                if self.nodes.len() > 1 && self.rng.chance(0.5) {
                    let i = self.rng.range(1, self.nodes.len() as u64 - 1) as usize;
                    let at = self.now + self.rng.range(0, 2_000);
                    let id = self.nodes[i].id;
                    self.push(at, Delivery::Assemble { at: id, job });
                }
                // Half the runs, a node shows it from previews (a tab of the audience).
                if self.nodes.len() > 1 && self.rng.chance(0.5) {
                    let i = self.rng.range(1, self.nodes.len() as u64 - 1) as usize;
                    let at = self.now + self.rng.range(0, 2_000);
                    let id = self.nodes[i].id;
                    self.push(at, Delivery::Watch { at: id, job });
                }
                continue;
            }
            if let Some(i) = timer {
                if self.trace
                    && let Some((why, _)) = self.nodes[i].engine.next_timer()
                {
                    println!("[{:>7}] {} wakes: {why:?}", self.now, self.nodes[i].id);
                }
                self.step_engine(i, Input::Timeout);
                continue;
            }
            if faults.last().is_some_and(|(t, _)| *t <= next) {
                let (_, f) = faults.pop().expect("checked");
                self.apply_fault(f);
                continue;
            }
            let Some(Reverse((_, seq))) = self.queue.pop() else {
                continue;
            };
            let Some(d) = self.pending.remove(&seq) else {
                continue;
            };
            match d {
                Delivery::Watch { at, job } => {
                    if let Some(i) = self.index(at)
                        && self.nodes[i].alive
                    {
                        self.step_engine(i, Input::Command(Command::Watch { job }));
                    }
                }
                Delivery::Assemble { at, job } => {
                    if let Some(i) = self.index(at)
                        && self.nodes[i].alive
                    {
                        self.step_engine(i, Input::Command(Command::Assemble { job }));
                    }
                }
                Delivery::FrontRunnerSubmits { at } => {
                    if let Some(i) = self.index(at)
                        && self.nodes[i].alive
                    {
                        self.front_runner_submits(i);
                    }
                }
                Delivery::Flood { at } => {
                    if let Some(i) = self.index(at)
                        && self.nodes[i].alive
                    {
                        self.flood(i);
                    }
                }
                Delivery::Msg { to, from, msg } => {
                    // As on a data channel: nothing arrives from a peer before its Hello
                    // (PeerUp) or after it was declared gone.
                    if let (Some(t), Some(f)) = (self.index(to), self.index(from))
                        && self.connected(t, f)
                        && self.nodes[t].engine.peers().any(|p| p == from)
                    {
                        // Facts about a job the node has not taken up yet are dropped
                        // by it (it asks for the spec), so they are not in its view.
                        if let EngineMsg::Facts { job, facts } = &msg
                            && Some(*job) == self.job
                            && self.nodes[t].engine.progress(*job).is_some()
                        {
                            for f in facts {
                                match f.fact {
                                    Fact::Report(h) => self.saw_report(t, f.task, h, from),
                                    Fact::Holding(h) => {
                                        self.holdings_seen.insert((t, f.task, h, from));
                                    }
                                    _ => {}
                                }
                            }
                        }
                        if let EngineMsg::Help { job, task } = &msg
                            && Some(*job) == self.job
                            && from == self.nodes[0].id
                        {
                            self.submitter_asked.insert((t, *task));
                        }
                        if let EngineMsg::Facts { job, facts } = &msg {
                            self.front_run(t, *job, facts);
                        }
                        // A store kept only by a node its own placement ranks for the task.
                        let stored = match &msg {
                            EngineMsg::Store { job, task, .. }
                                if self.nodes[t].engine.held(*job, *task).is_none() =>
                            {
                                Some((*job, *task))
                            }
                            _ => None,
                        };
                        self.step_engine(t, Input::Message { from, msg });
                        if let Some((job, task)) = stored
                            && self.nodes[t].engine.held(job, task).is_some()
                            && !self.nodes[t]
                                .engine
                                .placement(job, task)
                                .contains(&self.nodes[t].id)
                        {
                            fail(
                                self.seed,
                                format!(
                                    "{} kept a copy of {task} from {from}, a task it does not rank for",
                                    self.nodes[t].id
                                ),
                            );
                        }
                    }
                }
                Delivery::Up { at, peer } => {
                    if let (Some(a), Some(p)) = (self.index(at), self.index(peer))
                        && self.connected(a, p)
                    {
                        self.views.entry(a).or_default().insert(peer);
                        self.step_engine(a, Input::PeerUp(peer));
                    }
                }
                Delivery::Down { at, peer } => {
                    if let (Some(a), Some(p)) = (self.index(at), self.index(peer))
                        && self.nodes[a].alive
                        && !self.connected(a, p)
                    {
                        if let Some(v) = self.views.get_mut(&a) {
                            v.remove(&peer);
                        }
                        self.step_engine(a, Input::PeerDown(peer));
                    }
                }
                Delivery::Computed {
                    at,
                    job,
                    task,
                    output,
                } => {
                    if let Some(a) = self.index(at)
                        && self.nodes[a].alive
                    {
                        if Some(job) == self.job {
                            self.saw_report(a, task, self.hash_of(task, &output), at);
                        }
                        self.step_engine(a, Input::ComputeFinished { job, task, output });
                    }
                }
            }
        }
        self.check_work();
        self.check_previews();
        let deferred: u64 = self
            .nodes
            .iter()
            .map(|n| n.engine.stats().asks_deferred)
            .sum();
        *self.counts.entry("requests deferred").or_insert(0) += deferred;
    }

    /// Every preview any node accepted is the preview of the true result (a forger's
    /// junk under the true hash, or a fake holder's silence, never gets one in).
    fn check_previews(&mut self) {
        let (Some(job), Some(params)) = (self.job, self.sc.kernel.image().cloned()) else {
            return;
        };
        let mut checked = 0;
        for i in 0..self.nodes.len() {
            for t in 0..self.sc.kernel.task_count() {
                let task = TaskId(t);
                let Some(got) = self.nodes[i].engine.preview(job, task).map(<[u8]>::to_vec) else {
                    continue;
                };
                let truth = self.output_for(task, false);
                if got != node_core::kernels::preview::make(&params, t, &truth) {
                    fail(
                        self.seed,
                        format!("node {i} took a preview of {task} other than the true one"),
                    );
                }
                checked += 1;
            }
        }
        if checked > 0 {
            *self.counts.entry("previews checked").or_insert(0) += checked;
        }
    }

    /// In a calm run, the work done stays close to the work needed (`q` computations of
    /// every task): a node computes another's task only to steal it at the end, when
    /// it would otherwise idle. Extra computations are at most half the work needed
    /// plus half a computation per node (the measured worst, 49 nodes on 28 tasks, was
    /// 26 extra).
    fn check_work(&mut self) {
        if !self.calm() {
            return;
        }
        *self.counts.entry("work checked").or_insert(0) += 1;
        let q = u64::from(self.sc.quorum);
        let tasks = u64::from(self.sc.kernel.task_count());
        let needed = q * tasks;
        let max = needed + (needed + self.sc.nodes as u64) / 2;
        let done = self.tasks_run();
        if done > max {
            fail(
                self.seed,
                format!("{done} computations in a calm run where {needed} are needed (max {max})"),
            );
        }
    }
}
