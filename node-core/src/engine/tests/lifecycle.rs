//! A job's life on one node: computing and assembling alone, cancel, pacing, timers,
//! claims and digests.

use super::*;
use crate::wire::{Fact, TaskFact};

#[test]
fn a_lone_node_computes_and_assembles_its_job() {
    let mut e = Engine::new(NodeId(1), EngineConfig::default(), 1, Millis(0));
    let job = submit(&mut e, 4, 0);
    let mut now = 0;
    let mut done = None;
    for _ in 0..100 {
        for out in drain(&mut e) {
            match out {
                Output::RunTask { job, task, kernel } => {
                    let mut bytes = Vec::new();
                    kernel.run_task(task.0, &mut bytes).expect("valid");
                    e.handle_input(
                        Millis(now),
                        Input::ComputeFinished {
                            job,
                            task,
                            output: bytes,
                        },
                    );
                }
                Output::Event(Event::JobDone {
                    output, timings, ..
                }) => done = Some((output, timings)),
                _ => {}
            }
        }
        if done.is_some() {
            break;
        }
        now += 10;
        e.handle_input(Millis(now), Input::Timeout);
    }
    let (output, timings) = done.expect("job done");
    assert_eq!(output, kernel(4).run_all().expect("valid"));
    assert_eq!(timings.computed_here, 4);
    assert!(e.is_assembled(job));
}

#[test]
fn the_submitter_cancels_everywhere_and_late_specs_do_not_revive() {
    let mut a = Engine::new(NodeId(1), EngineConfig::default(), 1, Millis(0));
    let mut b = Engine::new(NodeId(2), EngineConfig::default(), 2, Millis(0));
    a.handle_input(Millis(0), Input::PeerUp(NodeId(2)));
    let job = submit(&mut a, 8, 0);
    let spec = drain(&mut a)
        .into_iter()
        .find_map(|o| match o {
            Output::Broadcast {
                msg: m @ EngineMsg::Job { .. },
            } => Some(m),
            _ => None,
        })
        .expect("spec broadcast");
    b.handle_input(
        Millis(1),
        Input::Message {
            from: NodeId(1),
            msg: spec.clone(),
        },
    );
    assert!(b.job_ids().any(|j| j == job));
    a.handle_input(Millis(2), Input::Command(Command::Cancel { job }));
    let cancel = drain(&mut a)
        .into_iter()
        .find_map(|o| match o {
            Output::Broadcast {
                msg: m @ EngineMsg::Cancel { .. },
            } => Some(m),
            _ => None,
        })
        .expect("cancel broadcast");
    b.handle_input(
        Millis(3),
        Input::Message {
            from: NodeId(1),
            msg: cancel,
        },
    );
    assert_eq!(b.job_ids().count(), 0);
    b.handle_input(
        Millis(4),
        Input::Message {
            from: NodeId(1),
            msg: spec,
        },
    );
    assert_eq!(
        b.job_ids().count(),
        0,
        "a late copy of the spec does not bring it back"
    );
}

#[test]
fn pacing_spaces_out_tasks() {
    let mut e = Engine::new(NodeId(1), EngineConfig::default(), 1, Millis(0));
    let _job = submit(&mut e, 3, 1_000);
    let started = |out: &[Output]| {
        out.iter()
            .filter(|o| matches!(o, Output::RunTask { .. }))
            .count()
    };
    let out = drain(&mut e);
    assert_eq!(started(&out), 1);
    let Some(Output::RunTask { job, task, kernel }) = out
        .into_iter()
        .find(|o| matches!(o, Output::RunTask { .. }))
    else {
        unreachable!()
    };
    let mut bytes = Vec::new();
    kernel.run_task(task.0, &mut bytes).expect("valid");
    e.handle_input(
        Millis(10),
        Input::ComputeFinished {
            job,
            task,
            output: bytes,
        },
    );
    assert_eq!(started(&drain(&mut e)), 0, "paced: nothing starts at once");
    assert!(e.poll_timeout().is_some_and(|t| t <= Millis(1_010)));
    e.handle_input(Millis(1_010), Input::Timeout);
    assert_eq!(
        started(&drain(&mut e)),
        1,
        "the next task starts after the pacing delay"
    );
}

#[test]
fn tasks_ahead_are_handed_out_only_to_unpaced_jobs_running_freely() {
    let started = |e: &mut Engine| {
        drain(e)
            .iter()
            .filter(|o| matches!(o, Output::RunTask { .. }))
            .count()
    };
    let config = EngineConfig {
        slots: 2,
        ahead: 2,
        ..EngineConfig::default()
    };
    // Free running: the slots and the tasks ahead.
    let mut e = Engine::new(NodeId(1), config.clone(), 1, Millis(0));
    submit(&mut e, 10, 0);
    assert_eq!(started(&mut e), 4);
    // A paced job (slow motion people watch): the slots only.
    let mut e = Engine::new(NodeId(1), config.clone(), 1, Millis(0));
    submit(&mut e, 10, 500);
    assert_eq!(started(&mut e), 2);
    // So under a presenter's pacing floor too, and while stepping.
    let mut e = Engine::new(NodeId(1), config.clone(), 1, Millis(0));
    e.set_pacing_floor(300);
    submit(&mut e, 10, 0);
    assert_eq!(started(&mut e), 2);
    let mut e = Engine::new(NodeId(1), config, 1, Millis(0));
    e.set_paused(true);
    submit(&mut e, 10, 0);
    assert_eq!(started(&mut e), 0);
    e.step();
    e.handle_input(Millis(1), Input::Timeout);
    assert_eq!(started(&mut e), 1);
}

#[test]
fn the_pacing_timer_says_why_the_node_wakes() {
    let mut e = Engine::new(NodeId(1), EngineConfig::default(), 1, Millis(0));
    let job = submit(&mut e, 3, 1_000);
    let Some(Output::RunTask { task, kernel, .. }) = drain(&mut e)
        .into_iter()
        .find(|o| matches!(o, Output::RunTask { .. }))
    else {
        panic!("a task starts")
    };
    let mut output = Vec::new();
    kernel.run_task(task.0, &mut output).expect("valid");
    e.handle_input(Millis(300), Input::ComputeFinished { job, task, output });
    drain(&mut e);
    // Due at 600: the steal grace (200), the flush of the report (305), the sync (500),
    // which comes back a sync interval later.
    e.handle_input(Millis(600), Input::Timeout);
    assert_eq!(e.next_timer(), Some((Timer::Sync, Millis(1_100))));
    e.handle_input(Millis(1_100), Input::Timeout);
    assert_eq!(e.next_timer(), Some((Timer::Paced(job), Millis(1_300))));
}

#[test]
fn a_claim_goes_out_with_the_task_not_a_flush_later() {
    let mut e = Engine::new(NodeId(1), EngineConfig::default(), 1, Millis(0));
    e.handle_input(Millis(0), Input::PeerUp(NodeId(2)));
    submit(&mut e, 4, 0);
    let claimed = drain(&mut e).into_iter().any(|o| {
        matches!(o, Output::Broadcast { msg: EngineMsg::Facts { facts, .. } }
            if facts.iter().any(|f| matches!(f.fact, Fact::Claim(_))))
    });
    assert!(claimed, "the claim is broadcast in the same step");
}

#[test]
fn facts_in_flight_cause_no_resend_but_lost_ones_do() {
    let mut e = Engine::new(NodeId(1), EngineConfig::default(), 1, Millis(0));
    e.handle_input(Millis(0), Input::PeerUp(NodeId(2)));
    let job = submit(&mut e, 8, 0);
    drain(&mut e);
    let from = NodeId(2);
    let resends = |out: Vec<Output>| {
        out.iter()
            .filter(
                |o| matches!(o, Output::Send { to, msg: EngineMsg::Resend { .. } } if *to == from),
            )
            .count()
    };
    let digest = |e: &mut Engine, at: u64, facts: u64| {
        e.handle_input(
            Millis(at),
            Input::Message {
                from,
                msg: EngineMsg::Digest { job, facts },
            },
        );
        drain(e)
    };
    let claims = |tasks: std::ops::Range<u32>| EngineMsg::Facts {
        job,
        facts: tasks
            .map(|t| TaskFact {
                task: TaskId(t),
                fact: Fact::Claim(Why::Assigned),
            })
            .collect(),
    };
    // The peer claims 3 facts; they arrive after its digest.
    assert_eq!(resends(digest(&mut e, 0, 3)), 0, "in flight: no resend yet");
    e.handle_input(
        Millis(5),
        Input::Message {
            from,
            msg: claims(0..3),
        },
    );
    // A sync later the peer is busier (5 facts); we have all that it had a sync ago.
    assert_eq!(
        resends(digest(&mut e, 500, 5)),
        0,
        "behind only by facts sent since the last digest"
    );
    // Another sync later we still lack 2 of the 5 it claimed then: they were lost.
    assert_eq!(
        resends(digest(&mut e, 1_000, 5)),
        1,
        "lost facts are asked for"
    );
    e.handle_input(
        Millis(1_010),
        Input::Message {
            from,
            msg: claims(3..5),
        },
    );
    assert_eq!(resends(digest(&mut e, 1_500, 5)), 0, "caught up");
}

/// A grace shortened while a job's runs (the first round trip to a peer measured after
/// its job arrived) ends that job's grace early too: a node done with its own tasks
/// steals its peer's instead of idling out the 200 ms it started with.
#[test]
fn a_shorter_steal_grace_opens_stealing_in_a_running_job() {
    let mut e = node_with(1, 1, [2]);
    let job = peer_job(&mut e, 0, 2, kernel(20), 1, 1, 0);
    // Node 1 computes every task of its own (all at 1 ms); node 2 starts none.
    let (mine, _) = compute_handed_out(&mut e, job, 1, 0);
    assert!((1..20).contains(&mine), "node 1 owned {mine} of 20 tasks");
    let stolen_at = |e: &mut Engine, at: u64| {
        e.handle_input(Millis(at), Input::Timeout);
        drain(e)
            .into_iter()
            .filter(|o| matches!(o, Output::RunTask { .. }))
            .count()
    };
    assert_eq!(stolen_at(&mut e, 19), 0, "the grace runs");
    e.set_steal_after_ms(20);
    assert_eq!(stolen_at(&mut e, 20), 1, "one slot, one stolen task");
}
