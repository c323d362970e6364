//! What a hostile peer sends: bad messages (each with its own drop reason), junk
//! under true hashes, other nodes' jobs, fetch floods and help with validated tasks.

use super::*;
use crate::job::{JobSpec, content_hash};
use crate::wire::{Fact, TaskFact};

#[test]
fn bad_messages_are_dropped_and_counted_never_trusted() {
    let mut e = Engine::new(NodeId(1), EngineConfig::default(), 1, Millis(0));
    e.handle_input(Millis(0), Input::PeerUp(NodeId(2)));
    let job = submit(&mut e, 4, 0);
    drain(&mut e);
    let from = NodeId(2);
    let msgs = vec![
        // A task out of range.
        EngineMsg::Facts {
            job,
            facts: vec![TaskFact {
                task: TaskId(99),
                fact: Fact::Claim(Why::Assigned),
            }],
        },
        // Bytes that do not match their hash.
        EngineMsg::Store {
            job,
            task: TaskId(0),
            hash: 1,
            payload: vec![1, 2, 3],
        },
        EngineMsg::Store {
            job,
            task: TaskId(99),
            hash: 1,
            payload: vec![],
        },
        // Payloads nobody fetched.
        EngineMsg::Payload {
            job,
            task: TaskId(0),
            hash: 5,
            payload: vec![0],
        },
        EngineMsg::Payload {
            job,
            task: TaskId(77),
            hash: 5,
            payload: vec![0],
        },
        // Facts about a job nobody submitted.
        EngineMsg::Facts {
            job: JobId(12345),
            facts: vec![],
        },
        // Over the bound of facts per message.
        EngineMsg::Facts {
            job,
            facts: vec![
                TaskFact {
                    task: TaskId(0),
                    fact: Fact::Claim(Why::Assigned),
                };
                EngineConfig::default().facts_per_msg_max + 1
            ],
        },
        EngineMsg::Store {
            job: JobId(12345),
            task: TaskId(0),
            hash: 1,
            payload: vec![],
        },
        // Larger than a Monte Carlo task's output can be.
        EngineMsg::Store {
            job,
            task: TaskId(0),
            hash: 1,
            payload: vec![0; 1 << 20],
        },
        // Cancel from a node that did not submit.
        EngineMsg::Cancel { job },
        EngineMsg::Help {
            job,
            task: TaskId(1_000),
        },
        // Only the submitter may slow a job down.
        EngineMsg::Pacing {
            job,
            pacing_ms: 60_000,
        },
        // Resending costs O(tasks): once per sync interval per peer.
        EngineMsg::Resend { job },
        EngineMsg::Resend { job },
        EngineMsg::Fetch {
            job,
            task: TaskId(1_000),
            hash: 0,
        },
    ];
    for msg in msgs {
        e.handle_input(Millis(1), Input::Message { from, msg });
    }
    let out = drain(&mut e);
    let dropped: Vec<DropReason> = out
        .iter()
        .filter_map(|o| match o {
            Output::Event(Event::Dropped { why, .. }) => Some(*why),
            _ => None,
        })
        .collect();
    use DropReason::*;
    assert_eq!(
        dropped,
        [
            FactTaskOutOfRange,
            StoreHashMismatch,
            StoreTaskOutOfRange,
            PayloadUnsolicited,
            PayloadUnsolicited,
            FactsForUnknownJob,
            TooManyFacts,
            StoreForUnknownJob,
            StoreTooBig,
            CancelNotFromSubmitter,
            HelpTaskOutOfRange,
            PacingNotFromSubmitter,
            ResendTooSoon,
        ]
    );
    assert_eq!(e.stats().dropped, dropped.len() as u64);
    assert!(e.job_ids().any(|j| j == job), "a stranger cannot cancel");
    assert!(
        e.task_entry(job, TaskId(99)).is_none(),
        "no task out of range"
    );
    // A help request out of range starts nothing, a fetch out of range is not answered,
    // and one resend answer went out (the spec and this node's facts), not two.
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::RunTask { task, .. } if task.0 >= 4))
    );
    assert!(!out.iter().any(|o| matches!(
        o,
        Output::Send {
            msg: EngineMsg::Payload { .. },
            ..
        }
    )));
    let specs_resent = out
        .iter()
        .filter(|o| {
            matches!(
                o,
                Output::Send {
                    msg: EngineMsg::Job { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(specs_resent, 1);
    // Asking for the unknown job's spec (once), and nothing else.
    let asked = out
        .iter()
        .filter(|o| matches!(o, Output::Send { msg: EngineMsg::Resend { job: j }, .. } if *j == JobId(12345)))
        .count();
    assert_eq!(asked, 1);
    // An invalid spec from the network is refused.
    let bad = JobSpec {
        kernel: kernel(0),
        replication: 1,
        quorum: 1,
        pacing_ms: 0,
        submitter: from,
        nonce: 0,
    };
    e.handle_input(
        Millis(2),
        Input::Message {
            from,
            msg: EngineMsg::Job { spec: bad },
        },
    );
    assert!(
        drain(&mut e)
            .iter()
            .any(|o| matches!(o, Output::Event(Event::JobRefused { .. })))
    );
}

/// Node 1 (computing nothing) sees node 2 report and hold every task of a job node 1
/// submitted: every task validates, and node 1 fetches each result from node 2.
fn assembler_fed_by_a_peer(tasks: u32) -> (Engine, JobId, Vec<Vec<u8>>) {
    let config = EngineConfig {
        slots: 0,
        ..EngineConfig::default()
    };
    let mut e = Engine::new(NodeId(1), config, 1, Millis(0));
    e.handle_input(Millis(0), Input::PeerUp(NodeId(2)));
    let job = submit(&mut e, tasks, 0);
    let truth: Vec<Vec<u8>> = (0..tasks)
        .map(|t| {
            let mut b = Vec::new();
            kernel(tasks).run_task(t, &mut b).expect("valid");
            b
        })
        .collect();
    report_and_hold(&mut e, 1, 2, job, &truth);
    (e, job, truth)
}

#[test]
fn fetched_bytes_are_checked_against_the_validated_hash() {
    let (mut e, job, truth) = assembler_fed_by_a_peer(2);
    let fetched = drain(&mut e)
        .iter()
        .filter(
            |o| matches!(o, Output::Send { to, msg: EngineMsg::Fetch { .. } } if *to == NodeId(2)),
        )
        .count();
    assert_eq!(fetched, 2, "every result is fetched from its holder");
    let h0 = content_hash(&truth[0]);
    let payload = |task: u32, hash: u64, payload: Vec<u8>| Input::Message {
        from: NodeId(2),
        msg: EngineMsg::Payload {
            job,
            task: TaskId(task),
            hash,
            payload,
        },
    };
    // Junk labelled with the validated hash; true bytes named by another hash.
    let mut junk = truth[0].clone();
    junk[0] ^= 1;
    e.handle_input(Millis(2), payload(0, h0, junk));
    e.handle_input(Millis(2), payload(0, h0 ^ 1, truth[0].clone()));
    let out = drain(&mut e);
    assert_eq!(
        dropped(&out),
        [
            DropReason::PayloadHashMismatch,
            DropReason::PayloadNotValidated
        ]
    );
    assert!(!e.is_assembled(job));
    // The true bytes are taken, and the output is the one-process output.
    e.handle_input(Millis(3), payload(0, h0, truth[0].clone()));
    e.handle_input(
        Millis(3),
        payload(1, content_hash(&truth[1]), truth[1].clone()),
    );
    let done = drain(&mut e).into_iter().find_map(|o| match o {
        Output::Event(Event::JobDone { output, .. }) => Some(output),
        _ => None,
    });
    assert_eq!(done, Some(kernel(2).run_all().expect("valid")));
}

#[test]
fn stored_bytes_are_checked_against_their_hash() {
    let (mut e, job, truth) = assembler_fed_by_a_peer(2);
    drain(&mut e);
    let h0 = content_hash(&truth[0]);
    let mut junk = truth[0].clone();
    junk[0] ^= 1;
    e.handle_input(
        Millis(2),
        Input::Message {
            from: NodeId(2),
            msg: EngineMsg::Store {
                job,
                task: TaskId(0),
                hash: h0,
                payload: junk,
            },
        },
    );
    e.handle_input(Millis(10), Input::Timeout);
    let out = drain(&mut e);
    assert_eq!(dropped(&out), [DropReason::StoreHashMismatch]);
    let holding = out.iter().any(|o| {
        matches!(o, Output::Broadcast { msg: EngineMsg::Facts { facts, .. } }
            if facts.iter().any(|f| matches!(f.fact, Fact::Holding(_))))
    });
    assert!(
        !holding,
        "junk is not kept, so this node does not say it holds it"
    );
    // The true bytes are kept, and fill in the assembly.
    e.handle_input(
        Millis(11),
        Input::Message {
            from: NodeId(2),
            msg: EngineMsg::Store {
                job,
                task: TaskId(0),
                hash: h0,
                payload: truth[0].clone(),
            },
        },
    );
    e.handle_input(Millis(20), Input::Timeout);
    let out = drain(&mut e);
    assert_eq!(dropped(&out), []);
    let holding = out.iter().any(|o| {
        matches!(o, Output::Broadcast { msg: EngineMsg::Facts { facts, .. } }
            if facts.iter().any(|f| f.task == TaskId(0) && f.fact == Fact::Holding(h0)))
    });
    assert!(holding, "the true bytes are kept and announced");
}

fn spec_of(submitter: NodeId, nonce: u64) -> JobSpec {
    JobSpec {
        kernel: kernel(2),
        replication: 1,
        quorum: 1,
        pacing_ms: 0,
        submitter,
        nonce,
    }
}

fn send_spec(e: &mut Engine, from: NodeId, spec: JobSpec) -> Vec<Output> {
    e.handle_input(
        Millis(1),
        Input::Message {
            from,
            msg: EngineMsg::Job { spec },
        },
    );
    drain(e)
}

#[test]
fn a_job_belongs_to_its_submitter_and_no_peer_fills_the_table() {
    let mut e = node_with(1, 0, 2..=6);
    drain(&mut e);
    // One submitter gets `jobs_per_submitter_max` (4) unfinished jobs here, no more.
    for nonce in 0..4 {
        assert_eq!(
            dropped(&send_spec(&mut e, NodeId(2), spec_of(NodeId(2), nonce))),
            []
        );
    }
    assert_eq!(
        dropped(&send_spec(&mut e, NodeId(2), spec_of(NodeId(2), 4))),
        [DropReason::JobOverSubmitterShare]
    );
    // A relayed spec is taken only while its submitter is a live peer.
    assert_eq!(
        dropped(&send_spec(&mut e, NodeId(2), spec_of(NodeId(9), 0))),
        [DropReason::JobSubmitterNotHere]
    );
    assert_eq!(
        dropped(&send_spec(&mut e, NodeId(2), spec_of(NodeId(3), 0))),
        []
    );
    // A spec in this node's name that it never submitted is disowned everywhere.
    let forged = spec_of(NodeId(1), 77);
    let out = send_spec(&mut e, NodeId(2), forged.clone());
    assert_eq!(dropped(&out), [DropReason::JobForged]);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Broadcast { msg: EngineMsg::Cancel { job } } if *job == forged.id()
    )));
    assert!(!e.job_ids().any(|j| j == forged.id()));
    // Peers' jobs leave a place for this node's own: 4 + 4 + 4 + 3 = 15 of 16.
    for (p, n) in [(3, 3), (4, 4), (5, 4)] {
        for nonce in 1..=n {
            send_spec(&mut e, NodeId(p), spec_of(NodeId(p), nonce));
        }
    }
    assert_eq!(e.job_ids().count(), 15);
    let refused = send_spec(&mut e, NodeId(6), spec_of(NodeId(6), 0));
    assert!(
        refused
            .iter()
            .any(|o| matches!(o, Output::Event(Event::JobRefused { .. })))
    );
    assert_eq!(e.job_ids().count(), 15);
    submit(&mut e, 2, 0);
    assert_eq!(e.job_ids().count(), 16, "this node's own job is taken");
}

/// A lone node that computed every task of a 4-task job; `config` as given.
fn holder_of_a_finished_job(config: EngineConfig, tasks: u32) -> (Engine, JobId) {
    let mut e = Engine::new(NodeId(1), config, 1, Millis(0));
    let job = submit(&mut e, tasks, 0);
    for _ in 0..10 + 2 * tasks {
        if e.is_assembled(job) {
            break;
        }
        for out in drain(&mut e) {
            if let Output::RunTask { job, task, kernel } = out {
                let mut output = Vec::new();
                kernel.run_task(task.0, &mut output).expect("valid");
                e.handle_input(Millis(1), Input::ComputeFinished { job, task, output });
            }
        }
    }
    assert!(e.is_assembled(job));
    (e, job)
}

/// A holder of every result of a finished job of `tasks` tasks, serving node 2 (up)
/// `budget(len)` bytes per sync interval, `len` being one result's length.
fn holder_serving_node_2(tasks: u32, budget: impl FnOnce(usize) -> usize) -> (Engine, JobId) {
    let mut one = Vec::new();
    kernel(tasks).run_task(0, &mut one).expect("valid");
    let config = EngineConfig {
        served_bytes_per_sync_max: budget(one.len()),
        ..EngineConfig::default()
    };
    let (mut e, job) = holder_of_a_finished_job(config, tasks);
    e.handle_input(Millis(2), Input::PeerUp(NodeId(2)));
    drain(&mut e);
    (e, job)
}

/// Node 2 fetches the validated result of `task` at `at`; what the engine did.
fn fetch_from_2(e: &mut Engine, at: u64, job: JobId, task: u32) -> Vec<Output> {
    let hash = e.validated_hash(job, TaskId(task)).expect("validated");
    e.handle_input(
        Millis(at),
        Input::Message {
            from: NodeId(2),
            msg: EngineMsg::Fetch {
                job,
                task: TaskId(task),
                hash,
            },
        },
    );
    drain(e)
}

#[test]
fn fetches_over_the_byte_budget_wait_for_it_and_a_flood_is_dropped() {
    let (mut e, job) = holder_serving_node_2(4, |len| 2 * len);
    let answered = |out: &[Output]| -> Vec<u32> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send {
                    msg: EngineMsg::Payload { task, .. },
                    ..
                } => Some(task.0),
                _ => None,
            })
            .collect()
    };
    let fetch = |e: &mut Engine, at: u64, task: u32| {
        let out = fetch_from_2(e, at, job, task);
        (answered(&out), dropped(&out))
    };
    assert_eq!(fetch(&mut e, 10, 0), (vec![0], vec![]));
    assert_eq!(fetch(&mut e, 10, 1), (vec![1], vec![]));
    // Over the budget: neither answered nor dropped, but kept.
    assert_eq!(fetch(&mut e, 10, 2), (vec![], vec![]));
    assert_eq!(fetch(&mut e, 11, 3), (vec![], vec![]));
    assert_eq!(e.footprint().deferred, 2);
    // Not before the budget renews; then in the order asked, as far as it goes.
    let sync = e.config.sync_ms;
    e.handle_input(Millis(9 + sync), Input::Timeout);
    assert!(answered(&drain(&mut e)).is_empty());
    e.handle_input(Millis(10 + sync), Input::Timeout);
    assert_eq!(answered(&drain(&mut e)), vec![2, 3]);
    assert_eq!(e.footprint().deferred, 0);
    assert_eq!(e.stats().asks_deferred, 2);
    // A request asked again while it waits (an asker's timeout) waits once, and is
    // answered once. (A new interval: 0 and 1 are answered at once.)
    let now = 10 + 2 * sync;
    for task in [0, 1, 2, 2, 2] {
        fetch(&mut e, now, task);
    }
    assert_eq!(e.footprint().deferred, 1);
    e.handle_input(Millis(now + sync), Input::Timeout);
    assert_eq!(answered(&drain(&mut e)), vec![2]);
    // The queue is forgotten with the peer.
    for task in [3, 0] {
        fetch(&mut e, now + sync, task);
    }
    assert_eq!(e.footprint().deferred, 1);
    e.handle_input(Millis(now + sync), Input::PeerDown(NodeId(2)));
    assert_eq!(e.footprint().deferred, 0);
}

#[test]
fn a_flood_of_fetches_past_the_queue_is_dropped_and_counted() {
    let tasks = serve::DEFERRED_PER_PEER_MAX as u32 + 8;
    let (mut e, job) = holder_serving_node_2(tasks, |len| 2 * len);
    let mut drops = Vec::new();
    for task in 0..tasks {
        drops.extend(dropped(&fetch_from_2(&mut e, 10, job, task)));
    }
    // A few answered at once, within the budget; then the queue fills, and past it
    // every request is dropped and counted.
    let answered_at_once = tasks as usize - serve::DEFERRED_PER_PEER_MAX - drops.len();
    assert!(
        answered_at_once > 0 && !drops.is_empty(),
        "{answered_at_once}"
    );
    assert!(drops.iter().all(|d| *d == DropReason::FetchOverBudget));
    assert_eq!(e.footprint().deferred, serve::DEFERRED_PER_PEER_MAX);
}

#[test]
fn a_fetch_larger_than_a_whole_budget_is_dropped_at_once() {
    let (mut e, job) = holder_serving_node_2(4, |len| len - 1);
    assert_eq!(
        dropped(&fetch_from_2(&mut e, 10, job, 0)),
        vec![DropReason::FetchOverBudget]
    );
    assert_eq!(e.footprint().deferred, 0);
}

#[test]
fn help_with_a_validated_task_is_honoured_once_per_straggler_interval() {
    let (mut e, job) = holder_of_a_finished_job(EngineConfig::default(), 4);
    // A second node, which has not computed anything, is asked for help by node 2. It
    // may have started tasks when the spec arrived: give it slots to spare.
    let config = EngineConfig {
        slots: 8,
        ..EngineConfig::default()
    };
    let mut b = Engine::new(NodeId(3), config, 3, Millis(0));
    b.handle_input(Millis(0), Input::PeerUp(NodeId(1)));
    b.handle_input(Millis(0), Input::PeerUp(NodeId(2)));
    e.handle_input(Millis(0), Input::PeerUp(NodeId(3)));
    for out in drain(&mut e) {
        if let Output::Send { to, msg } = out
            && to == NodeId(3)
        {
            b.handle_input(
                Millis(1),
                Input::Message {
                    from: NodeId(1),
                    msg,
                },
            );
        }
    }
    drain(&mut b);
    assert!(b.validated_hash(job, TaskId(0)).is_some());
    let help = |b: &mut Engine, at: u64, task: u32| {
        b.handle_input(
            Millis(at),
            Input::Message {
                from: NodeId(2),
                msg: EngineMsg::Help {
                    job,
                    task: TaskId(task),
                },
            },
        );
        let out = drain(b);
        let started = out
            .iter()
            .any(|o| matches!(o, Output::RunTask { task: t, .. } if t.0 == task));
        (started, dropped(&out))
    };
    assert_eq!(help(&mut b, 10, 0), (true, vec![]));
    assert_eq!(b.footprint().peer_budgets, 1, "node 2's help budget");
    assert_eq!(help(&mut b, 20, 1), (false, vec![DropReason::HelpTooSoon]));
    // Exactly a straggler interval after the first: honoured again.
    assert_eq!(
        help(&mut b, 10 + EngineConfig::default().straggler_ms, 1).1,
        vec![]
    );
    // The job's submitter (node 1) is not held to the interval: it may lack many
    // reports at once (from a member it cut off), and needs them to assemble.
    let submitter_help = |b: &mut Engine, at: u64, task: u32| {
        b.handle_input(
            Millis(at),
            Input::Message {
                from: NodeId(1),
                msg: EngineMsg::Help {
                    job,
                    task: TaskId(task),
                },
            },
        );
        dropped(&drain(b))
    };
    let at = 20 + EngineConfig::default().straggler_ms;
    assert_eq!(submitter_help(&mut b, at, 2), vec![]);
    assert_eq!(submitter_help(&mut b, at + 1, 3), vec![]);
    assert_eq!(
        b.footprint().peer_budgets,
        1,
        "no budget kept for the submitter"
    );
}
