//! "Why?" in plain words: what a click on a task or a node shows, worked out from the
//! engine's task board and the rendezvous ranking, the same ones the engine decides by.

use std::collections::BTreeMap;

use node_core::engine::Engine;
use node_core::job::{JobId, NodeId, TaskId};

use crate::model::{members, ranked};

/// What one node is doing, as this node's board sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Load {
    /// Tasks it claimed and has not reported.
    pub running: u32,
    /// Validated tasks whose result it computed.
    pub done: u32,
    /// Validated results whose bytes it holds.
    pub held: u32,
}

/// Every node's load over every job (capped at `tasks_max` tasks per job, so a huge job
/// costs a bounded scan).
pub fn loads(engine: &Engine, tasks_max: u32) -> BTreeMap<NodeId, Load> {
    let mut out: BTreeMap<NodeId, Load> = BTreeMap::new();
    for job in engine.job_ids() {
        let Some((_, tasks)) = engine.progress(job) else {
            continue;
        };
        for t in 0..tasks.min(tasks_max) {
            let Some(entry) = engine.task_entry(job, TaskId(t)) else {
                continue;
            };
            match entry.validated_hash {
                Some(hash) => {
                    for (n, f) in &entry.authors {
                        let l = out.entry(*n).or_default();
                        if f.reports.contains(&hash) {
                            l.done += 1;
                        }
                        if f.reports.contains(&hash) || f.holding.contains(&hash) {
                            l.held += 1;
                        }
                    }
                }
                None => {
                    for (n, f) in &entry.authors {
                        if f.claimed && f.reports.is_empty() && engine.is_live(*n) {
                            out.entry(*n).or_default().running += 1;
                        }
                    }
                }
            }
        }
    }
    out
}

/// "first", "second", "third", then "4th", "5th"...
pub fn ordinal(i: usize) -> String {
    match i {
        1 => "first".into(),
        2 => "second".into(),
        3 => "third".into(),
        n => format!("{n}th"),
    }
}

/// A task explained: its state, who computed or computes it and why that node, its live
/// copies against `r`, disagreements and liars. `departed` are members that left, with
/// how, so that a task they would own says where its first owner went.
pub fn task_words(
    engine: &Engine,
    job: JobId,
    task: TaskId,
    departed: &[(NodeId, String)],
    name: impl Fn(NodeId) -> String,
) -> String {
    let Some(spec) = engine.job_spec(job) else {
        return format!(
            "task {} of job {job}: this node no longer knows the job",
            task.0
        );
    };
    let Some(entry) = engine.task_entry(job, task) else {
        return format!("task {} of job {job}: no such task", task.0);
    };
    let members = members(engine);
    let order = ranked(job, task, &members);
    let n = order.len();
    let rank_of = |node: NodeId| order.iter().position(|m| *m == node).map(|i| i + 1);
    let ranks = |node: NodeId| match rank_of(node) {
        Some(1) => format!("it ranks first of {n} members for this task"),
        Some(i) => format!(
            "it ranks {} of {n} for this task: it took the task over from higher-ranked members that were busy or gone",
            ordinal(i)
        ),
        None => "it is no longer a member".into(),
    };
    let liars: Vec<NodeId> = engine.liars().collect();
    let mut s = format!("task {} of job {job}: ", task.0);
    match entry.validated_hash {
        Some(hash) => {
            let by: Vec<NodeId> = entry
                .authors
                .iter()
                .filter(|(_, f)| f.reports.contains(&hash))
                .map(|(n, _)| *n)
                .collect();
            let top = engine.holders_wanted(job, task);
            let live: Vec<NodeId> = entry
                .holders_of(hash)
                .filter(|n| engine.is_live(*n))
                .collect();
            let placed = live.iter().filter(|n| top.contains(n)).count();
            let names = |v: &[NodeId]| v.iter().map(|n| name(*n)).collect::<Vec<_>>().join(", ");
            s += &format!(
                "validated: {} matching report{} (q = {}) from {}. Its r = {} top-ranked members ({}) should hold it; {placed} do. Live copies anywhere: {} ({}).",
                by.len(),
                if by.len() == 1 { "" } else { "s" },
                spec.quorum,
                names(&by),
                spec.replication,
                names(&top),
                live.len(),
                names(&live)
            );
            if placed < top.len() {
                s += " A holder copies it to the top-ranked member that lacks it.";
            }
        }
        None => {
            let runner = entry
                .authors
                .iter()
                .find(|(n, f)| f.claimed && f.reports.is_empty() && engine.is_live(*n))
                .map(|(n, _)| *n);
            match runner {
                Some(r) => s += &format!("runs on {}: {}.", name(r), ranks(r)),
                None => match order.first() {
                    Some(first) => {
                        s += &format!(
                            "waits; it goes to {} first (it ranks first of {n}).",
                            name(*first)
                        )
                    }
                    None => s += "waits for a member to compute it.",
                },
            }
        }
    }
    // Where a departed member would have ranked above everyone now: its first owner.
    let mut all = members.clone();
    all.extend(departed.iter().map(|(n, _)| *n));
    if let Some(first) = ranked(job, task, &all).first()
        && let Some((_, how)) = departed.iter().find(|(n, _)| n == first)
    {
        s += &format!(" Its first owner, {}, left ({how}).", name(*first));
    }
    if entry.has_mismatch() {
        s += &format!(
            " Members reported different results: a hash counts once {} members agree on it.",
            spec.quorum
        );
    }
    for (n, _) in entry.authors.iter().filter(|(n, _)| liars.contains(n)) {
        s += &format!(
            " {} reported a wrong result here and was marked a liar.",
            name(*n)
        );
    }
    s
}

/// A node explained: what it is doing and holding, and whether it was caught lying.
pub fn node_words(engine: &Engine, node: NodeId, load: Load, about: &str) -> String {
    let mut s = format!(
        "{about}: {} task{} running, {} computed and validated, {} result{} held.",
        load.running,
        if load.running == 1 { "" } else { "s" },
        load.done,
        load.held,
        if load.held == 1 { "" } else { "s" },
    );
    if engine.liars().any(|n| n == node) {
        s += " Caught reporting a wrong result: it gets no more tasks here.";
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use node_core::engine::placement::score;
    use node_core::engine::{Command, EngineConfig, Input, Millis, Output};
    use node_core::kernels::{Kernel, monte_carlo};

    fn engine_with_job(me: u64, peers: &[u64]) -> (Engine, JobId) {
        let mut e = Engine::new(NodeId(me), EngineConfig::default(), me, Millis(0));
        for p in peers {
            e.handle_input(Millis(0), Input::PeerUp(NodeId(*p)));
        }
        e.handle_input(
            Millis(1),
            Input::Command(Command::Submit {
                kernel: Kernel::MonteCarloPi(monte_carlo::Params {
                    samples_per_task: 1000,
                    tasks: 8,
                    seed: 1,
                }),
                replication: 2,
                quorum: 1,
                pacing_ms: 0,
                nonce: 1,
            }),
        );
        let mut job = None;
        while let Some(o) = e.poll_output() {
            if let Output::Event(node_core::engine::Event::JobAccepted { job: j, .. }) = o {
                job = Some(j);
            }
        }
        (e, job.expect("accepted"))
    }

    #[test]
    fn ranking_is_by_score_and_ordinals_read_well() {
        let (job, task) = (JobId(7), TaskId(3));
        let nodes = [NodeId(1), NodeId(2), NodeId(3)];
        let r = ranked(job, task, &nodes);
        assert_eq!(r.len(), 3);
        assert!(score(job, task, r[0]) > score(job, task, r[1]));
        assert!(score(job, task, r[1]) > score(job, task, r[2]));
        assert_eq!(
            [ordinal(1), ordinal(2), ordinal(3), ordinal(4)],
            ["first", "second", "third", "4th"]
        );
    }

    #[test]
    fn a_running_task_names_its_node_and_rank_and_a_departed_first_owner() {
        let (mut e, job) = engine_with_job(1, &[2, 3]);
        // The engine started its own tasks: some task runs here.
        let running: Vec<TaskId> = (0..8)
            .map(TaskId)
            .filter(|t| {
                e.task_entry(job, *t)
                    .and_then(|en| en.facts_of(NodeId(1)))
                    .is_some_and(|f| f.claimed)
            })
            .collect();
        assert!(!running.is_empty());
        let name = |n: NodeId| format!("node-{}", n.0);
        let words = task_words(&e, job, running[0], &[], name);
        assert!(words.contains("runs on node-1: it ranks"), "{words}");
        let load = loads(&e, 1024)[&NodeId(1)];
        assert_eq!(load.running as usize, running.len());
        // A node that left and would rank first for some task is named as its first owner.
        e.handle_input(Millis(2), Input::PeerDown(NodeId(3)));
        let gone = [(NodeId(3), "its heartbeats stopped".to_string())];
        let owned_by_3 = (0..8)
            .map(TaskId)
            .find(|t| ranked(job, *t, &[NodeId(1), NodeId(2), NodeId(3)])[0] == NodeId(3));
        let t = owned_by_3.expect("node 3 ranks first for one of 8 tasks");
        let words = task_words(&e, job, t, &gone, name);
        assert!(
            words.contains("Its first owner, node-3, left (its heartbeats stopped)"),
            "{words}"
        );
    }
}
