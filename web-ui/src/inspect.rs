//! "Why?" in plain words: what a click on a task or a node shows, worked out from the
//! engine's task board and the rendezvous ranking, the same ones the engine decides by.

use std::collections::BTreeMap;

use node_core::engine::{Engine, Verdict, Why};
use node_core::job::{JobId, NodeId, TaskId};

pub use crate::model::Load;
use crate::model::{members, plural};

/// Every node's load over every job (capped at `tasks_max` tasks per job, so a huge job
/// costs a bounded scan).
pub fn loads(engine: &Engine, tasks_max: u32) -> BTreeMap<NodeId, Load> {
    let mut out: BTreeMap<NodeId, Load> = BTreeMap::new();
    for job in engine.job_ids() {
        let Some((_, tasks)) = engine.progress(job) else {
            continue;
        };
        for t in 0..tasks.min(tasks_max) {
            let Some(facts) = engine.task_facts(job, TaskId(t)) else {
                continue;
            };
            match facts.accepted() {
                Some(_) => {
                    for a in facts.authors() {
                        let l = out.entry(a.node).or_default();
                        if a.reported_accepted {
                            l.done += 1;
                        }
                        if a.holds_accepted() {
                            l.held += 1;
                        }
                    }
                }
                None => {
                    for n in engine.unreported_claims(job, TaskId(t)) {
                        if engine.is_live(n) {
                            out.entry(n).or_default().running += 1;
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

/// Why a member computed a task, in words (what its claim said), and where it ranks.
fn reason_words(why: Option<Why>, rank: Option<usize>, members: usize, quorum: u8) -> String {
    let ranked = match rank {
        Some(1) => format!("it ranks first of {members} for this task"),
        Some(i) => format!("it ranks {} of {members} for this task", ordinal(i)),
        None => "it is not a member now".into(),
    };
    match why {
        Some(Why::Assigned) if quorum > 1 => format!(
            "placement chose it: {ranked}, among the first q = {quorum} that had not computed it yet"
        ),
        Some(Why::Assigned) => format!("placement chose it: {ranked}"),
        Some(Why::Stolen) => {
            format!("it stole the task: it was idle and no live member had started it ({ranked})")
        }
        Some(Why::Speculative) => format!(
            "a backup: the member computing it was taking long, so it ran a second copy ({ranked})"
        ),
        Some(Why::Helped) => format!(
            "it was asked to help: a member lacked the matching results it needed to accept one ({ranked})"
        ),
        Some(Why::Recompute) => {
            format!("computed again: every member holding the accepted result had left ({ranked})")
        }
        None => ranked,
    }
}

/// A task explained: its state, who computed or computes it and why there, its live
/// copies against `r`, disagreements and verdicts. `departed` are members that left,
/// with how, so that a task they would own says where its first owner went.
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
    let Some(facts) = engine.task_facts(job, task) else {
        return format!("task {} of job {job}: no such task", task.0);
    };
    let members = members(engine, job);
    let order = Engine::ranked(job, task, &members);
    let n = order.len();
    let rank_of = |node: NodeId| order.iter().position(|m| *m == node).map(|i| i + 1);
    let why_of = |node: NodeId| facts.author(node).and_then(|a| a.why);
    let names = |v: &[NodeId]| v.iter().map(|n| name(*n)).collect::<Vec<_>>().join(", ");
    let (q, r) = (spec.quorum, spec.replication);
    let mut s = format!("task {} of job {job}: ", task.0);
    match facts.accepted() {
        Some(_) => {
            // In the order placement ranks them; members gone last.
            let mut by: Vec<NodeId> = facts.reporters().collect();
            by.sort_by_key(|n| (rank_of(*n).unwrap_or(usize::MAX), n.0));
            if q == 1 {
                s += "validated: q = 1, so the first result reported was accepted.";
            } else {
                s += &format!(
                    "validated: {} matching results (q = {q}) were accepted.",
                    by.len()
                );
            }
            for b in &by {
                s += &format!(
                    " {} computed it: {}.",
                    name(*b),
                    reason_words(why_of(*b), rank_of(*b), n, q)
                );
            }
            if q == 1 && by.len() > 1 {
                s += &format!(" ({} results agree; one was enough.)", by.len());
            }
            let wanted = engine.holders_wanted(job, task);
            let caught: Vec<NodeId> = engine.caught_in(job).collect();
            let live: Vec<NodeId> = facts
                .holders()
                .filter(|n| engine.is_live(*n) && !caught.contains(n))
                .collect();
            let placed: Vec<NodeId> = live
                .iter()
                .copied()
                .filter(|n| wanted.contains(n))
                .collect();
            s += &format!(
                " Its r = {r} {} belong at its top-ranked live, honest {}: {}; {} of them {} it now.",
                plural(u32::from(r), "copy", "copies"),
                plural(wanted.len() as u32, "member", "members"),
                names(&wanted),
                placed.len(),
                plural(placed.len() as u32, "holds", "hold"),
            );
            if wanted.len() < usize::from(r) {
                s += &format!(
                    " Only {} live, honest {} can hold it, fewer than r.",
                    wanted.len(),
                    plural(wanted.len() as u32, "member", "members")
                );
            } else if placed.len() < wanted.len() {
                let refusing: Vec<NodeId> = wanted
                    .iter()
                    .copied()
                    .filter(|n| {
                        !placed.contains(n) && facts.author(*n).is_some_and(|a| a.reported_other)
                    })
                    .collect();
                if refusing.is_empty() {
                    s +=
                        " A member that holds it copies it to the top-ranked member that lacks it.";
                } else {
                    s += &format!(
                        " {} computed a different result and, with q = 1, may believe its own: it refuses the copy, and after 10 tries the next-ranked member gets it instead.",
                        names(&refusing)
                    );
                }
            }
            let elsewhere: Vec<NodeId> = live
                .iter()
                .copied()
                .filter(|n| !wanted.contains(n))
                .collect();
            if !elsewhere.is_empty() {
                s += &format!(
                    " Also held by {} (a member that fetched the whole picture keeps every tile; such copies do not count toward r).",
                    names(&elsewhere)
                );
            }
            if engine.preview(job, task).is_some() {
                s += " This tab draws it from its preview, the tile's pixel at every 4th column of every 4th row (a sixteenth of its bytes), fetched from a holder and checked against the validated hash, which seals the tile's bytes with its preview's.";
            }
        }
        None => {
            let runners: Vec<NodeId> = engine
                .unreported_claims(job, task)
                .filter(|n| engine.is_live(*n))
                .collect();
            if runners.is_empty() {
                match order.first() {
                    Some(first) => {
                        s += &format!(
                            "waits; it goes to {} first (it ranks first of {n}).",
                            name(*first)
                        )
                    }
                    None => s += "waits for a member to compute it.",
                }
            } else {
                s += "runs";
                for (i, r) in runners.iter().enumerate() {
                    s += if i == 0 { " on " } else { "; and on " };
                    s += &format!(
                        "{}: {}",
                        name(*r),
                        reason_words(why_of(*r), rank_of(*r), n, q)
                    );
                }
                s += ".";
            }
            let best = facts.best_agreement();
            if best > 0 {
                s += &format!(
                    " {best} of the q = {q} matching {} needed {} in.",
                    plural(q.into(), "result", "results"),
                    plural(best as u32, "is", "are"),
                );
            }
        }
    }
    // Where a departed member would have ranked above everyone now: its first owner.
    let mut all = members.clone();
    all.extend(departed.iter().map(|(n, _)| *n));
    if let Some(first) = Engine::ranked(job, task, &all).first()
        && let Some((_, how)) = departed.iter().find(|(n, _)| n == first)
    {
        s += &format!(" Its first owner, {}, left ({how}).", name(*first));
    }
    if facts.accepted().is_none() && facts.has_mismatch() {
        s += &format!(
            " Members reported different results: a result is accepted once {q} {} on it.",
            plural(q.into(), "member reports", "members agree")
        );
    }
    for a in facts.authors() {
        let Some(v) = engine.verdict(job, task, a.node) else {
            continue;
        };
        let who = name(a.node);
        s += &match v {
            Verdict::Disagreed => format!(
                " {who} reported a different result: with q = 1 the first report is believed, so this is a disagreement, not proof of a lie; nobody is marked a liar."
            ),
            Verdict::Unproven => format!(
                " {who} reported two different results; fewer than two other members back the accepted one, so it is not marked yet."
            ),
            Verdict::CaughtInJob => format!(
                " {who} reported a different result while two other members reported the accepted one: caught lying, it gets no more tasks of this job (the evidence includes the job's submitter, so it still counts in other jobs)."
            ),
            Verdict::CaughtEverywhere => format!(
                " {who} reported a different result while two other members, besides the job's submitter, reported the accepted one: caught lying, it gets no more tasks in any job."
            ),
        };
    }
    s
}

/// A member's state as the page knows it, for [`node_words`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MemberState {
    /// It left (or its silence was taken for a departure): how, and when.
    pub gone: Option<String>,
    /// It is silent: declared gone by its silence, it may come back.
    pub silent: bool,
    /// It said it is in the background.
    pub background: bool,
}

/// A node explained: what it is doing and holding, where it is, and whether it was
/// caught lying (and where).
pub fn node_words(
    engine: &Engine,
    node: NodeId,
    load: Load,
    about: &str,
    state: &MemberState,
) -> String {
    let mut s = format!("{about}: ");
    if let Some(how) = &state.gone {
        s += &format!("{how}. ");
    } else if state.background {
        s += "in the background (its tab is hidden): the others wait 10 s before they take its silence for a departure. ";
    }
    s += &format!(
        "{} {} running, {} {} computed that were accepted, {} validated {} held",
        load.running,
        plural(load.running, "task", "tasks"),
        load.done,
        plural(load.done, "result", "results"),
        load.held,
        plural(load.held, "result", "results"),
    );
    if state.gone.is_some() {
        s += " when last heard of: its copies no longer count as live copies, and its unfinished tasks went to others.";
    } else {
        s += ".";
    }
    let everywhere = engine.liars().any(|n| n == node);
    let jobs: Vec<JobId> = engine
        .job_ids()
        .filter(|j| engine.caught_in(*j).any(|n| n == node))
        .collect();
    if everywhere {
        s += " Caught reporting a wrong result, against two other members besides the job's submitter: it gets no more tasks in any job, and its copies do not count.";
    } else if !jobs.is_empty() {
        let list = jobs
            .iter()
            .map(|j| j.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        s += &format!(
            " Caught reporting a wrong result in {list}: it gets no more tasks there, and its copies there do not count."
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn ranking_is_the_engines_and_ordinals_read_well() {
        // The order the page explains is the order the engine places by.
        let (e, job) = engine_with_job(1, &[2, 3, 4, 5, 6, 7]);
        let members = members(&e, job);
        assert_eq!(members.len(), 7);
        let mut firsts = std::collections::BTreeSet::new();
        for t in 0..8 {
            let task = TaskId(t);
            let placed = e.placement(job, task);
            assert!(!placed.is_empty());
            let r = Engine::ranked(job, task, &members);
            assert_eq!(r.len(), 7);
            assert_eq!(&r[..placed.len()], &placed[..], "task {t}");
            firsts.insert(r[0]);
        }
        assert!(firsts.len() > 1, "tasks spread over members: {firsts:?}");
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
                e.task_facts(job, *t)
                    .and_then(|f| f.author(NodeId(1)))
                    .is_some_and(|a| a.claimed)
            })
            .collect();
        assert!(!running.is_empty());
        let name = |n: NodeId| format!("node-{}", n.0);
        let words = task_words(&e, job, running[0], &[], name);
        assert!(
            words.contains("runs on node-1: placement chose it: it ranks"),
            "{words}"
        );
        let load = loads(&e, 1024)[&NodeId(1)];
        assert_eq!(load.running as usize, running.len());
        // A node that left and would rank first for some task is named as its first owner.
        e.handle_input(Millis(2), Input::PeerDown(NodeId(3)));
        let gone = [(NodeId(3), "its heartbeats stopped".to_string())];
        let owned_by_3 = (0..8)
            .map(TaskId)
            .find(|t| Engine::ranked(job, *t, &[NodeId(1), NodeId(2), NodeId(3)])[0] == NodeId(3));
        let t = owned_by_3.expect("node 3 ranks first for one of 8 tasks");
        let words = task_words(&e, job, t, &gone, name);
        assert!(
            words.contains("Its first owner, node-3, left (its heartbeats stopped)"),
            "{words}"
        );
    }

    /// Node 1 watching peer 2's job (q given, r = 2) with peers 2 to 5.
    fn watching(q: u8) -> (Engine, JobId) {
        let mut e = Engine::new(
            NodeId(1),
            EngineConfig {
                slots: 0,
                ..EngineConfig::default()
            },
            1,
            Millis(0),
        );
        for p in 2..=5 {
            e.handle_input(Millis(0), Input::PeerUp(NodeId(p)));
        }
        let spec = node_core::job::JobSpec {
            kernel: Kernel::MonteCarloPi(monte_carlo::Params {
                samples_per_task: 10,
                tasks: 4,
                seed: 1,
            }),
            replication: 2,
            quorum: q,
            pacing_ms: 0,
            submitter: NodeId(2),
            nonce: 0,
        };
        let job = spec.id();
        e.handle_input(
            Millis(1),
            Input::Message {
                from: NodeId(2),
                msg: node_core::wire::EngineMsg::Job { spec },
            },
        );
        (e, job)
    }

    fn says(e: &mut Engine, job: JobId, from: u64, facts: &[node_core::wire::Fact]) {
        let facts = facts
            .iter()
            .map(|f| node_core::wire::TaskFact {
                task: TaskId(0),
                fact: *f,
            })
            .collect();
        e.handle_input(
            Millis(5),
            Input::Message {
                from: NodeId(from),
                msg: node_core::wire::EngineMsg::Facts { job, facts },
            },
        );
    }

    #[test]
    fn at_q1_a_disagreement_is_said_as_one_and_nobody_is_called_a_liar() {
        use node_core::wire::Fact::{Claim, Report};
        let (mut e, job) = watching(1);
        says(&mut e, job, 3, &[Claim(Why::Stolen), Report(7)]);
        says(&mut e, job, 4, &[Claim(Why::Speculative), Report(8)]);
        let name = |n: NodeId| format!("node-{}", n.0);
        let words = task_words(&e, job, TaskId(0), &[], name);
        assert!(
            words.contains("q = 1, so the first result reported was accepted"),
            "{words}"
        );
        assert!(
            words.contains("node-3 computed it: it stole the task"),
            "{words}"
        );
        assert!(
            words.contains(
                "node-4 reported a different result: with q = 1 the first report is believed"
            ),
            "{words}"
        );
        assert!(!words.contains("caught lying"), "{words}");
        assert!(!words.contains("liar here"), "{words}");
        let load = Load::default();
        let state = MemberState::default();
        assert!(!node_words(&e, NodeId(4), load, "node-4", &state).contains("Caught"));
    }

    #[test]
    fn at_q2_the_liar_alone_is_named_caught_and_numbers_agree_in_grammar() {
        use node_core::wire::Fact::{Claim, Report};
        let (mut e, job) = watching(2);
        says(&mut e, job, 5, &[Claim(Why::Assigned), Report(9)]);
        says(&mut e, job, 3, &[Claim(Why::Assigned), Report(7)]);
        let name = |n: NodeId| format!("node-{}", n.0);
        let before = task_words(&e, job, TaskId(0), &[], name);
        assert!(
            before.contains("1 of the q = 2 matching results needed is in"),
            "{before}"
        );
        assert!(
            before.contains("accepted once 2 members agree on it"),
            "{before}"
        );
        says(&mut e, job, 4, &[Claim(Why::Helped), Report(7)]);
        let words = task_words(&e, job, TaskId(0), &[], name);
        assert!(
            words.contains("validated: 2 matching results (q = 2)"),
            "{words}"
        );
        assert!(
            words.contains("node-4 computed it: it was asked to help"),
            "{words}"
        );
        assert!(words.contains("node-5 reported a different result while two other members, besides the job's submitter"), "{words}");
        assert!(!words.contains("node-3 reported a different"), "{words}");
        let state = MemberState {
            gone: Some("left: its heartbeats stopped".into()),
            ..MemberState::default()
        };
        let liar = node_words(
            &e,
            NodeId(5),
            Load::default(),
            "node-5",
            &MemberState::default(),
        );
        assert!(liar.contains("gets no more tasks in any job"), "{liar}");
        let gone = node_words(
            &e,
            NodeId(3),
            Load {
                running: 0,
                done: 1,
                held: 1,
            },
            "node-3",
            &state,
        );
        assert!(
            gone.starts_with(
                "node-3: left: its heartbeats stopped. 0 tasks running, 1 result computed"
            ),
            "{gone}"
        );
        assert!(gone.contains("no longer count as live copies"), "{gone}");
        assert!(!gone.contains("Caught"), "{gone}");
    }
}
