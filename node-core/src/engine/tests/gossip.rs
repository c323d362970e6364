//! Facts between nodes: limits per message, digests and resends, disagreements and
//! liars, and what the getters say of them.

use super::*;
use crate::engine::view::TaskState;
use crate::job::content_hash;
use crate::wire::{Fact, TaskFact};

/// Node 1 with peers 2, 3 and 4, and node 1's job of `tasks` tasks (q = 2, r = 2).
fn node_with_job(tasks: u32) -> (Engine, JobId) {
    let mut e = Engine::new(
        NodeId(1),
        EngineConfig {
            slots: 0,
            ..EngineConfig::default()
        },
        1,
        Millis(0),
    );
    for n in 2..=4 {
        e.handle_input(Millis(0), Input::PeerUp(NodeId(n)));
    }
    submit_kernel(&mut e, 0, kernel(tasks), 2, 2, 0);
    let job = e.job_ids().next().unwrap();
    drain(&mut e);
    (e, job)
}

fn facts(e: &mut Engine, at: u64, from: u64, job: JobId, facts: Vec<TaskFact>) -> Vec<Output> {
    e.handle_input(
        Millis(at),
        Input::Message {
            from: NodeId(from),
            msg: EngineMsg::Facts { job, facts },
        },
    );
    drain(e)
}

fn report(task: u32, hash: u64) -> TaskFact {
    TaskFact {
        task: TaskId(task),
        fact: Fact::Report(hash),
    }
}

#[test]
fn a_message_of_exactly_the_most_facts_is_taken_one_more_is_refused() {
    let config = EngineConfig::default();
    let max = config.facts_per_msg_max;
    let (mut e, job) = node_with_job(max as u32 + 1);
    let claims = |n: usize| {
        (0..n)
            .map(|t| TaskFact {
                task: TaskId(t as u32),
                fact: Fact::Claim(Why::Assigned),
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(dropped(&facts(&mut e, 1, 2, job, claims(max))), []);
    assert_eq!(
        dropped(&facts(&mut e, 1, 3, job, claims(max + 1))),
        [DropReason::TooManyFacts]
    );
    assert_eq!(e.footprint().facts, max as u64);
}

#[test]
fn a_disagreement_is_said_once_and_a_lie_after_validation_marks_its_author_once() {
    let (mut e, job) = node_with_job(2);
    let (good, bad) = (11u64, 22u64);
    let out = facts(&mut e, 1, 2, job, vec![report(0, good), report(1, good)]);
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::Event(Event::TaskMismatch { .. })))
    );
    let mismatches = |out: &[Output]| {
        out.iter()
            .filter(|o| matches!(o, Output::Event(Event::TaskMismatch { .. })))
            .count()
    };
    assert_eq!(
        mismatches(&facts(&mut e, 2, 3, job, vec![report(0, bad)])),
        1
    );
    assert_eq!(e.reporters(job, TaskId(0), good), 1);
    assert_eq!(e.reporters(job, TaskId(0), bad), 1);
    // Node 4 agrees with node 2: validated; node 3 is the liar.
    let out = facts(&mut e, 3, 4, job, vec![report(0, good)]);
    assert_eq!(mismatches(&out), 0);
    assert_eq!(e.validated_hash(job, TaskId(0)), Some(good));
    assert_eq!(e.reporters(job, TaskId(0), good), 2);
    let marked = |out: &[Output]| {
        out.iter()
            .filter(|o| matches!(o, Output::Event(Event::LiarMarked { node, .. }) if *node == NodeId(3)))
            .count()
    };
    assert_eq!(marked(&out), 1, "the earlier disagreement now proves a lie");
    assert_eq!(e.liars().collect::<Vec<_>>(), [NodeId(3)]);
    // Another lie by the same node is not news.
    assert_eq!(marked(&facts(&mut e, 4, 3, job, vec![report(1, bad)])), 0);
    assert_eq!(e.footprint().liars, 1);
    // A liar is out of every ranking.
    assert!((0..2).all(|t| !e.jobs[&job].ranking.top(TaskId(t)).any(|n| n == NodeId(3))));
}

#[test]
fn lost_facts_are_asked_again_a_sync_later_and_resends_are_rate_limited() {
    let (mut e, job) = node_with_job(4);
    let sync = EngineConfig::default().sync_ms;
    let digest = |e: &mut Engine, at: u64, n: u64| {
        e.handle_input(
            Millis(at),
            Input::Message {
                from: NodeId(2),
                msg: EngineMsg::Digest { job, facts: n },
            },
        );
        drain(e)
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    Output::Send {
                        msg: EngineMsg::Resend { .. },
                        ..
                    }
                )
            })
            .count()
    };
    // Node 2 says it authored 3 facts; none arrived. Not asked at once (they may be in
    // flight), nor within a sync interval, but a sync interval later.
    assert_eq!(digest(&mut e, 10, 3), 0);
    assert_eq!(digest(&mut e, 10 + sync - 1, 3), 0);
    assert_eq!(digest(&mut e, 10 + sync, 3), 1);
    // Caught up: nothing asked.
    facts(
        &mut e,
        10 + sync + 1,
        2,
        job,
        (0..3).map(|t| report(t, 5)).collect(),
    );
    assert_eq!(digest(&mut e, 10 + 3 * sync, 3), 0);
    // Node 3 asks for our facts: answered once per sync interval.
    let resend = |e: &mut Engine, at: u64| {
        e.handle_input(
            Millis(at),
            Input::Message {
                from: NodeId(3),
                msg: EngineMsg::Resend { job },
            },
        );
        drain(e)
    };
    let first = resend(&mut e, 5_000);
    assert!(first.iter().any(|o| matches!(
        o,
        Output::Send {
            msg: EngineMsg::Job { .. },
            ..
        }
    )));
    assert_eq!(
        dropped(&resend(&mut e, 5_000 + sync - 1)),
        [DropReason::ResendTooSoon]
    );
    assert_eq!(dropped(&resend(&mut e, 5_000 + sync)), []);
}

#[test]
fn every_drop_reason_and_event_reads_as_words() {
    use DropReason::*;
    let reasons = [
        FactsForUnknownJob,
        TooManyFacts,
        FactTaskOutOfRange,
        ResendTooSoon,
        CancelNotFromSubmitter,
        PacingNotFromSubmitter,
        StoreForUnknownJob,
        StoreTaskOutOfRange,
        StoreTooBig,
        StoreHashMismatch,
        StoreNotRankedHere,
        StoreLostValidation,
        PayloadUnsolicited,
        PayloadTaskOutOfRange,
        PayloadTooBig,
        PayloadNotValidated,
        PayloadHashMismatch,
        OwnOutputTooBig,
        JobForged,
        JobSubmitterNotHere,
        JobOverSubmitterShare,
        FetchOverBudget,
        HelpTaskOutOfRange,
        HelpTooSoon,
    ];
    let texts: BTreeSet<String> = reasons.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        texts.len(),
        reasons.len(),
        "each reason says something of its own"
    );
    assert!(texts.iter().all(|t| t.len() > 10));
    let e = Event::Dropped {
        from: NodeId(0x1234),
        why: StoreHashMismatch,
    };
    assert_eq!(e.kind(), "engine_dropped");
    let text = e.to_string();
    assert!(
        text.contains("n1234") && text.contains("do not match"),
        "{text}"
    );
    let v = Event::TaskValidated {
        job: JobId(1),
        task: TaskId(7),
        hash: content_hash(b"x"),
    };
    assert!(v.to_string().contains("t7 validated"), "{v}");
}

#[test]
fn seeds_spread_thieves_over_the_last_quarter() {
    let cursors: BTreeSet<u32> = (1..=16)
        .map(|seed| {
            let mut e = Engine::new(NodeId(1), EngineConfig::default(), seed, Millis(0));
            let job = submit(&mut e, 64, 0);
            e.jobs[&job].sched.steal_cursor
        })
        .collect();
    assert!(cursors.len() > 4, "{cursors:?}");
    assert!(cursors.iter().all(|c| (48..64).contains(c)), "{cursors:?}");
}

/// The view's rules, decided once in the engine: a task is running on a live member that
/// claimed it and has reported nothing; a claim with a report (waiting for its quorum)
/// is not running; a departed claimer's unfinished claim is still its work, running on
/// nobody; a validated task counts copies at the holders the engine wants, and shows the
/// top-ranked of its reporters.
#[test]
fn the_view_says_what_runs_where_and_counts_only_wanted_copies() {
    let (mut e, job) = node_with_job(16);
    let claim = |task: u32| TaskFact {
        task: TaskId(task),
        fact: Fact::Claim(Why::Assigned),
    };
    facts(&mut e, 10, 2, job, vec![claim(0)]);
    facts(&mut e, 10, 3, job, vec![claim(1), report(1, 77)]);
    facts(&mut e, 10, 4, job, vec![claim(2)]);
    let view = |e: &Engine, t: u32| e.task_view(job, TaskId(t));
    assert_eq!(e.running_on(job, TaskId(0)), Some(NodeId(2)));
    assert_eq!(view(&e, 0).state, TaskState::Running);
    assert_eq!(view(&e, 0).by, Some(NodeId(2)));
    // Reported, not validated (q = 2): computed, not running.
    assert_eq!(e.running_on(job, TaskId(1)), None);
    assert_eq!(view(&e, 1).state, TaskState::Waiting);
    // Node 4 leaves: its claim is its unfinished work, and runs on nobody.
    e.handle_input(Millis(20), Input::PeerDown(NodeId(4)));
    drain(&mut e);
    assert_eq!(e.running_on(job, TaskId(2)), None);
    assert_eq!(
        e.unreported_claims(job, TaskId(2)).collect::<Vec<_>>(),
        vec![NodeId(4)]
    );
    // A task that nodes 2 and 3 validate and hold, where this node (1) ranks among the
    // top r = 2: only one of the two copies is where the engine wants it.
    let live = [NodeId(1), NodeId(2), NodeId(3)];
    let t = (3..16)
        .find(|t| Engine::ranked(job, TaskId(*t), &live)[..2].contains(&NodeId(1)))
        .expect("node 1 ranks in the top two of some task");
    facts(&mut e, 30, 2, job, vec![claim(t), report(t, 55)]);
    facts(&mut e, 30, 3, job, vec![claim(t), report(t, 55)]);
    let v = view(&e, t);
    assert_eq!(v.state, TaskState::Validated);
    let wanted = e.holders_wanted(job, TaskId(t));
    assert_eq!(wanted, Engine::ranked(job, TaskId(t), &live)[..2].to_vec());
    assert_eq!(v.copies, 1, "copies at {wanted:?} of those held by 2 and 3");
    assert_eq!(
        e.copies_short(),
        std::collections::BTreeMap::from([(job, 1)]),
        "that task, the only one validated, is short of a copy"
    );
    let top = Engine::ranked(job, TaskId(t), &[NodeId(2), NodeId(3)])[0];
    assert_eq!(v.by, Some(top));
    assert_eq!(e.running_on(job, TaskId(t)), None);
    assert_eq!(e.unreported_claims(job, TaskId(t)).count(), 0);
}
