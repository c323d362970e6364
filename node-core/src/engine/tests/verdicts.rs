//! Verdicts: who is marked a liar, on what evidence, and in which jobs
//! ([`super::super::quorum::verdict`]). No honest member is ever marked at `q = 1`, and
//! a hostile submitter cannot have an honest member shut out of a third party's jobs.

use super::*;
use crate::wire::{Fact, TaskFact};

/// Node 1, which computes nothing, with peers 2 to 6 up.
fn watcher_node() -> Engine {
    let mut e = watcher(1, &[2, 3, 4, 5, 6]);
    drain(&mut e);
    e
}

/// Node `from` says `fact` of `task` of `job`; what the engine did.
fn says(e: &mut Engine, from: u64, job: JobId, task: u32, fact: Fact) -> Vec<Output> {
    e.handle_input(
        Millis(10),
        Input::Message {
            from: NodeId(from),
            msg: EngineMsg::Facts {
                job,
                facts: vec![TaskFact {
                    task: TaskId(task),
                    fact,
                }],
            },
        },
    );
    drain(e)
}

/// Node `from` reports `hash` for `task` of `job`.
fn reports(e: &mut Engine, from: u64, job: JobId, task: u32, hash: u64) -> Vec<Output> {
    says(e, from, job, task, Fact::Report(hash))
}

fn marks(out: &[Output]) -> Vec<(NodeId, bool)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(Event::LiarMarked {
                node, everywhere, ..
            }) => Some((*node, *everywhere)),
            _ => None,
        })
        .collect()
}

fn mismatches(out: &[Output]) -> usize {
    out.iter()
        .filter(|o| matches!(o, Output::Event(Event::TaskMismatch { .. })))
        .count()
}

const TRUE: u64 = 0x7777;
const FAKE: u64 = 0xbad;

#[test]
fn at_q1_a_later_different_report_is_a_disagreement_and_marks_nobody() {
    let mut e = watcher_node();
    let job = peer_job(&mut e, 1, 2, kernel(4), 1, 1, 0);
    drain(&mut e);
    let before: Vec<Vec<NodeId>> = (0..4).map(|t| e.placement(job, TaskId(t))).collect();
    assert!(marks(&reports(&mut e, 2, job, 0, FAKE)).is_empty());
    assert_eq!(
        e.validated_hash(job, TaskId(0)),
        Some(FAKE),
        "q = 1 believes it"
    );
    // Three honest members computed it too: each only disagrees.
    for n in [3, 4, 5] {
        let out = reports(&mut e, n, job, 0, TRUE);
        assert!(marks(&out).is_empty(), "{n} marked at q = 1");
        assert_eq!(
            e.verdict(job, TaskId(0), NodeId(n)),
            Some(Verdict::Disagreed)
        );
    }
    assert_eq!(
        e.verdict(job, TaskId(0), NodeId(2)),
        None,
        "its report was believed"
    );
    assert_eq!(e.caught_in(job).count(), 0);
    assert_eq!(e.liars().count(), 0);
    assert_eq!(e.footprint().liars, 0);
    assert!(e.placed_members(job).contains(&NodeId(3)));
    let after: Vec<Vec<NodeId>> = (0..4).map(|t| e.placement(job, TaskId(t))).collect();
    assert_eq!(before, after, "members that disagreed stay placed");
}

/// What a view reads of the board ([`Engine::task_facts`]): each author's claim, and
/// its reports and copies against the accepted result, before and after one is accepted.
#[test]
fn task_facts_read_each_author_against_the_accepted_result() {
    let mut e = watcher_node();
    let job = peer_job(&mut e, 1, 2, kernel(4), 1, 1, 0);
    drain(&mut e);
    says(&mut e, 6, job, 1, Fact::Claim(Why::Stolen));
    says(&mut e, 3, job, 1, Fact::Report(TRUE));
    // Task 1 is accepted at once (q = 1); task 0 gets a claim and nothing else yet.
    says(&mut e, 5, job, 0, Fact::Claim(Why::Assigned));
    let open = e.task_facts(job, TaskId(0)).expect("task 0");
    assert_eq!(open.accepted(), None);
    let five = open.author(NodeId(5)).expect("node 5 claimed");
    assert!(five.claimed && five.reported_nothing && !five.reported_other);
    assert_eq!(five.why, Some(Why::Assigned));
    assert_eq!(open.holders().count(), 0);
    assert!(!open.has_mismatch());
    // Task 0: node 2's FAKE is believed (q = 1); 3 and 4 contradict it; 6 copies FAKE.
    says(&mut e, 2, job, 0, Fact::Report(FAKE));
    says(&mut e, 3, job, 0, Fact::Report(TRUE));
    says(&mut e, 4, job, 0, Fact::Report(TRUE));
    says(&mut e, 6, job, 0, Fact::Holding(FAKE));
    let f = e.task_facts(job, TaskId(0)).expect("task 0");
    assert_eq!(f.accepted(), Some(FAKE));
    assert_eq!(f.reporters().collect::<Vec<_>>(), [NodeId(2)]);
    assert_eq!(f.holders().collect::<Vec<_>>(), [NodeId(2), NodeId(6)]);
    let other: Vec<NodeId> = f
        .authors()
        .filter(|a| a.reported_other)
        .map(|a| a.node)
        .collect();
    assert_eq!(other, [NodeId(3), NodeId(4)]);
    let six = f.author(NodeId(6)).expect("node 6 holds a copy");
    assert!(six.holding_accepted && !six.reported_accepted && six.holds_accepted());
    let two = f.author(NodeId(2)).expect("node 2 reported");
    assert!(two.reported_accepted && !two.holding_accepted && !two.reported_nothing);
    assert!(f.author(NodeId(5)).unwrap().claimed);
    assert_eq!(f.best_agreement(), 2, "3 and 4 agree");
    assert!(f.has_mismatch());
    assert!(f.author(NodeId(9)).is_none());
    // Task 1: one report, no disagreement; its claimant's reason kept.
    let one = e.task_facts(job, TaskId(1)).expect("task 1");
    assert_eq!(one.accepted(), Some(TRUE));
    assert!(!one.has_mismatch() && one.authors().all(|a| !a.reported_other));
    assert_eq!(one.author(NodeId(6)).and_then(|a| a.why), Some(Why::Stolen));
    assert!(e.task_facts(job, TaskId(4)).is_none(), "out of range");
    assert!(e.task_facts(JobId(999), TaskId(0)).is_none(), "unknown job");
}

#[test]
fn a_disagreement_after_validation_is_said_once_per_task() {
    let mut e = watcher_node();
    let job = peer_job(&mut e, 1, 2, kernel(4), 1, 1, 0);
    drain(&mut e);
    assert_eq!(mismatches(&reports(&mut e, 2, job, 0, TRUE)), 0);
    assert_eq!(mismatches(&reports(&mut e, 3, job, 0, FAKE)), 1);
    assert_eq!(
        mismatches(&reports(&mut e, 4, job, 0, FAKE)),
        0,
        "said already"
    );
}

/// The hostile submitter of a `q = 1` job front-runs every honest report with a fake
/// hash: under the old rule every honest member that computed a task was marked by
/// every node, and dropped out of other submitters' `q = 2` jobs.
#[test]
fn a_front_running_submitter_gets_no_honest_member_marked() {
    let mut e = watcher_node();
    let hostile = peer_job(&mut e, 1, 2, kernel(4), 1, 1, 0);
    let other = peer_job(&mut e, 1, 4, kernel(4), 2, 2, 0);
    drain(&mut e);
    for t in 0..4 {
        reports(&mut e, 2, hostile, t, FAKE + u64::from(t));
    }
    for honest in [3, 5] {
        for t in 0..4 {
            let out = reports(&mut e, honest, hostile, t, TRUE + u64::from(t));
            assert!(marks(&out).is_empty(), "{honest} marked in {t}");
        }
    }
    assert_eq!(e.footprint().liars, 0);
    let placed = e.placed_members(other);
    assert!(placed.contains(&NodeId(3)) && placed.contains(&NodeId(5)));
}

/// With one accomplice and `q = 2`, the hostile pair makes its fake hash the validated
/// one in its own job: the honest member that disagrees is caught in that job only,
/// because one of the two backers is the submitter. Third parties' jobs still place it.
#[test]
fn a_hostile_submitter_and_one_accomplice_cannot_shut_a_member_out_of_other_jobs() {
    let mut e = watcher_node();
    let hostile = peer_job(&mut e, 1, 2, kernel(4), 2, 2, 0);
    let other = peer_job(&mut e, 1, 4, kernel(4), 2, 2, 0);
    drain(&mut e);
    reports(&mut e, 2, hostile, 0, FAKE);
    reports(&mut e, 6, hostile, 0, FAKE);
    assert_eq!(e.validated_hash(hostile, TaskId(0)), Some(FAKE));
    let out = reports(&mut e, 3, hostile, 0, TRUE);
    assert_eq!(marks(&out), [(NodeId(3), false)]);
    assert_eq!(
        e.verdict(hostile, TaskId(0), NodeId(3)),
        Some(Verdict::CaughtInJob)
    );
    assert_eq!(e.caught_in(hostile).collect::<Vec<_>>(), [NodeId(3)]);
    assert_eq!(e.caught_in(other).count(), 0);
    assert_eq!(e.liars().count(), 0);
    assert!(!e.placed_members(hostile).contains(&NodeId(3)));
    assert!(e.placed_members(other).contains(&NodeId(3)));
    for t in 0..4 {
        assert!(!e.placement(hostile, TaskId(t)).contains(&NodeId(3)));
    }
    // Caught again in the same job: not news.
    reports(&mut e, 2, hostile, 1, FAKE);
    reports(&mut e, 6, hostile, 1, FAKE);
    assert!(marks(&reports(&mut e, 3, hostile, 1, TRUE)).is_empty());
}

#[test]
fn a_liar_with_two_backers_besides_the_submitter_is_out_of_every_job() {
    let mut e = watcher_node();
    let job = peer_job(&mut e, 1, 2, kernel(4), 2, 2, 0);
    let other = peer_job(&mut e, 1, 4, kernel(4), 2, 2, 0);
    drain(&mut e);
    // Backed by the submitter and node 3: caught in this job.
    reports(&mut e, 6, job, 0, FAKE);
    reports(&mut e, 2, job, 0, TRUE);
    let out = reports(&mut e, 3, job, 0, TRUE);
    assert_eq!(marks(&out), [(NodeId(6), false)]);
    assert!(e.placed_members(other).contains(&NodeId(6)));
    // A third backer, not the submitter: the evidence now holds everywhere.
    let out = reports(&mut e, 5, job, 0, TRUE);
    assert_eq!(marks(&out), [(NodeId(6), true)]);
    assert_eq!(
        e.verdict(job, TaskId(0), NodeId(6)),
        Some(Verdict::CaughtEverywhere)
    );
    assert_eq!(e.liars().collect::<Vec<_>>(), [NodeId(6)]);
    assert!(!e.placed_members(other).contains(&NodeId(6)));
    assert_eq!(e.footprint().liars, 1, "one node, however many marks");
    // A job taken up later does not place it either.
    let later = peer_job(&mut e, 20, 5, kernel(4), 1, 1, 0);
    assert!(!e.placed_members(later).contains(&NodeId(6)));
    for t in 0..4 {
        assert!(!e.placement(later, TaskId(t)).contains(&NodeId(6)));
    }
}

#[test]
fn an_author_that_backs_both_hashes_is_unproven_until_two_others_back_one() {
    let mut e = watcher_node();
    let job = peer_job(&mut e, 1, 2, kernel(4), 2, 2, 0);
    drain(&mut e);
    reports(&mut e, 6, job, 0, TRUE);
    reports(&mut e, 6, job, 0, FAKE);
    let out = reports(&mut e, 3, job, 0, TRUE);
    assert_eq!(e.validated_hash(job, TaskId(0)), Some(TRUE));
    assert!(marks(&out).is_empty());
    assert_eq!(
        e.verdict(job, TaskId(0), NodeId(6)),
        Some(Verdict::Unproven)
    );
    let out = reports(&mut e, 4, job, 0, TRUE);
    assert_eq!(marks(&out), [(NodeId(6), true)]);
}

/// A member that comes back after being cut off is placed again unless caught.
#[test]
fn a_caught_member_stays_out_of_its_job_across_a_departure_and_return() {
    let mut e = watcher_node();
    let job = peer_job(&mut e, 1, 2, kernel(4), 2, 2, 0);
    drain(&mut e);
    reports(&mut e, 6, job, 0, FAKE);
    reports(&mut e, 2, job, 0, TRUE);
    reports(&mut e, 3, job, 0, TRUE);
    assert!(!e.placed_members(job).contains(&NodeId(6)));
    e.handle_input(Millis(30), Input::PeerDown(NodeId(6)));
    e.handle_input(Millis(40), Input::PeerUp(NodeId(6)));
    drain(&mut e);
    for t in 0..4 {
        assert!(!e.placement(job, TaskId(t)).contains(&NodeId(6)));
    }
    // Node 3 left and came back: placed again.
    e.handle_input(Millis(50), Input::PeerDown(NodeId(3)));
    assert!(!e.placed_members(job).contains(&NodeId(3)));
    e.handle_input(Millis(60), Input::PeerUp(NodeId(3)));
    assert!(e.placed_members(job).contains(&NodeId(3)));
}

#[test]
fn a_forgiven_liar_is_placed_again_and_its_old_lie_marks_it_no_more() {
    let mut e = watcher_node();
    let job = peer_job(&mut e, 1, 2, kernel(4), 2, 2, 0);
    drain(&mut e);
    reports(&mut e, 6, job, 0, FAKE);
    reports(&mut e, 3, job, 0, TRUE);
    reports(&mut e, 4, job, 0, TRUE);
    assert_eq!(e.liars().collect::<Vec<_>>(), [NodeId(6)]);
    assert!(!e.placed_members(job).contains(&NodeId(6)));
    // A presenter's reset.
    e.forget_liars();
    drain(&mut e);
    assert_eq!(e.liars().count(), 0);
    assert_eq!(e.caught_in(job).count(), 0);
    assert!(e.placed_members(job).contains(&NodeId(6)), "placed again");
    // A later report of that task (another backer of the accepted hash) does not bring
    // the old lie back.
    let out = reports(&mut e, 5, job, 0, TRUE);
    assert_eq!(marks(&out), []);
    assert_eq!(e.liars().count(), 0);
    // A lie in a job taken up after the reset is caught as any lie is.
    let later = peer_job(&mut e, 20, 2, kernel(4), 3, 2, 0);
    assert_ne!(later, job);
    drain(&mut e);
    reports(&mut e, 6, later, 1, FAKE);
    reports(&mut e, 3, later, 1, TRUE);
    let out = reports(&mut e, 4, later, 1, TRUE);
    assert_eq!(marks(&out), [(NodeId(6), true)]);
}

/// What a newcomer hears of node 1's reports of `job`'s task 0, as node 1 greets it.
fn reports_told_to(e: &mut Engine, newcomer: u64, job: JobId) -> Vec<u64> {
    e.handle_input(Millis(40), Input::PeerUp(NodeId(newcomer)));
    drain(e)
        .into_iter()
        .filter_map(|o| match o {
            Output::Send {
                to,
                msg: EngineMsg::Facts { job: j, facts },
            } if to == NodeId(newcomer) && j == job => Some(facts),
            _ => None,
        })
        .flatten()
        .filter_map(|f| match f.fact {
            Fact::Report(h) if f.task == TaskId(0) => Some(h),
            _ => None,
        })
        .collect()
}

/// A presenter made this node lie, then reset the demo: the others forgive it, and it
/// takes its lies back, so that a member joining later (which hears this node's facts
/// from this node) does not catch it on them. A chaos run found a tab that reopened
/// after a reset showing the forgiven member as lying for good.
#[test]
fn a_forgiven_liar_takes_its_lies_back_and_a_newcomer_does_not_hear_them() {
    let mut e = watcher_node();
    let job = peer_job(&mut e, 1, 2, kernel(4), 2, 2, 0);
    drain(&mut e);
    e.say(job, TaskId(0), Fact::Report(FAKE));
    reports(&mut e, 3, job, 0, TRUE);
    reports(&mut e, 4, job, 0, TRUE);
    assert_eq!(e.validated_hash(job, TaskId(0)), Some(TRUE));
    assert_eq!(reports_told_to(&mut e, 7, job), [FAKE], "before the reset");
    e.forget_liars();
    drain(&mut e);
    assert_eq!(
        reports_told_to(&mut e, 8, job),
        Vec::<u64>::new(),
        "after it"
    );
    // Its digests count the facts it has left (none), and the lie, still waiting in
    // its outbox, never goes out.
    assert_eq!(e.jobs[&job].board.count(NodeId(1)), 0);
    e.handle_input(Millis(5_000), Input::Timeout);
    let told: Vec<Fact> = drain(&mut e)
        .into_iter()
        .filter_map(|o| match o {
            Output::Broadcast {
                msg: EngineMsg::Facts { job: j, facts },
            } if j == job => Some(facts),
            _ => None,
        })
        .flatten()
        .map(|f| f.fact)
        .collect();
    assert!(!told.contains(&Fact::Report(FAKE)), "{told:?}");
}
