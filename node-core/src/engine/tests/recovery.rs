//! How a node recovers work the mesh lost: help requests, pacing changes, eviction of
//! finished jobs, and the counters and getters the shells read.

use super::*;

/// Drains `e`, computing every task it starts at `now`; returns the other outputs.
fn step(e: &mut Engine, now: u64) -> Vec<Output> {
    let mut rest = Vec::new();
    for _ in 0..10 {
        let out = drain(e);
        if out.is_empty() {
            break;
        }
        for o in out {
            match o {
                Output::RunTask { job, task, kernel } => {
                    let mut output = Vec::new();
                    kernel.run_task(task.0, &mut output).expect("valid");
                    e.handle_input(Millis(now), Input::ComputeFinished { job, task, output });
                }
                o => rest.push(o),
            }
        }
    }
    rest
}

/// Runs `e`'s timers in order up to `to` (as a run loop would), computing what it
/// starts; returns the other outputs.
fn advance(e: &mut Engine, to: u64) -> Vec<Output> {
    let mut out = Vec::new();
    while let Some(Millis(t)) = e.poll_timeout()
        && t <= to
    {
        e.handle_input(Millis(t), Input::Timeout);
        out.extend(step(e, t));
    }
    out
}

/// Help messages in `out`: (to, task).
fn helps(out: &[Output]) -> Vec<(NodeId, TaskId)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send {
                to,
                msg: EngineMsg::Help { task, .. },
            } => Some((*to, *task)),
            _ => None,
        })
        .collect()
}

/// Node 1 with peers 2, 3 and 4 and a one-task job (q = 2) it has computed and
/// reported, while no other node said anything about the task.
fn reported_alone() -> (Engine, JobId) {
    // The first nonce whose ranking puts node 1 among the task's first two (q = 2).
    for nonce in 0.. {
        let mut e = Engine::new(NodeId(1), EngineConfig::default(), 1, Millis(0));
        for n in 2..=4 {
            e.handle_input(Millis(0), Input::PeerUp(NodeId(n)));
        }
        submit_kernel(&mut e, 0, kernel(1), 2, 2, nonce);
        let job = e.job_ids().next().expect("accepted");
        if !e.jobs[&job]
            .ranking
            .top(TaskId(0))
            .take(2)
            .any(|n| n == NodeId(1))
        {
            continue;
        }
        step(&mut e, 0);
        let entry = e.task_entry(job, TaskId(0)).expect("task");
        assert!(
            entry
                .facts_of(NodeId(1))
                .is_some_and(|f| !f.reports.is_empty())
        );
        assert_eq!(e.validated_hash(job, TaskId(0)), None);
        return (e, job);
    }
    unreachable!()
}

fn report_from(e: &mut Engine, now: u64, from: u64, job: JobId, fact: Fact) {
    e.handle_input(
        Millis(now),
        Input::Message {
            from: NodeId(from),
            msg: EngineMsg::Facts {
                job,
                facts: vec![TaskFact {
                    task: TaskId(0),
                    fact,
                }],
            },
        },
    );
}

use super::super::config::STORE_TRIES_MAX;
use crate::job::{JobSpec, content_hash};
use crate::wire::{Fact, TaskFact};

#[test]
fn help_goes_to_the_next_fresh_node_once_per_straggler_interval() {
    let (mut e, job) = reported_alone();
    let fresh: Vec<NodeId> = e.jobs[&job]
        .ranking
        .top(TaskId(0))
        .filter(|n| *n != NodeId(1))
        .collect();
    let straggler = EngineConfig::default().straggler_ms;
    let sync = EngineConfig::default().sync_ms;
    // The first sync asks the first fresh node in ranking order, and only it.
    let first = helps(&advance(&mut e, sync));
    assert_eq!(first, vec![(fresh[0], TaskId(0))]);
    assert_eq!(e.footprint().task_marks, 2, "reported, asked");
    // Not again before a straggler interval has passed.
    let mut t = sync;
    while t + sync < sync + straggler {
        t += sync;
        assert_eq!(helps(&advance(&mut e, t)), vec![], "asked again at {t} ms");
    }
    // Then the next candidate: a helper that does not help is not asked forever.
    t += sync;
    assert_eq!(helps(&advance(&mut e, t)), vec![(fresh[1], TaskId(0))]);
    // A claim by another node is work in flight: no help while it is fresh...
    report_from(&mut e, t + 1, 4, job, Fact::Claim(Why::Assigned));
    for k in 1..=4 {
        let at = t + k * straggler;
        assert_eq!(helps(&advance(&mut e, at)), vec![], "asked despite a claim");
    }
    // ...and once it expired, help resumes, not from the claimer.
    let expired = t + 1 + EngineConfig::default().claim_expire_ms + sync;
    let again = helps(&advance(&mut e, expired));
    assert_eq!(again.len(), 1, "{again:?}");
    // A report from a peer validates the task: no help after that.
    let hash = e
        .task_entry(job, TaskId(0))
        .unwrap()
        .facts_of(NodeId(1))
        .unwrap()
        .reports[0];
    report_from(&mut e, expired + 1, 2, job, Fact::Report(hash));
    assert_eq!(e.validated_hash(job, TaskId(0)), Some(hash));
    let later = expired + 2 * straggler;
    assert_eq!(helps(&advance(&mut e, later)), vec![]);
}

#[test]
fn help_is_never_asked_of_a_node_that_reported_or_a_liar() {
    let (mut e, job) = reported_alone();
    let hash = e
        .task_entry(job, TaskId(0))
        .unwrap()
        .facts_of(NodeId(1))
        .unwrap()
        .reports[0];
    // Node 2 reported another hash (a disagreement); nodes 3 and 4 said nothing.
    report_from(&mut e, 1, 2, job, Fact::Report(hash ^ 1));
    let mut asked = BTreeSet::new();
    let straggler = EngineConfig::default().straggler_ms;
    for k in 1..=6 {
        for (to, _) in helps(&advance(&mut e, k * straggler)) {
            asked.insert(to);
        }
    }
    assert_eq!(asked, BTreeSet::from([NodeId(3), NodeId(4)]));
}

/// A 3-task image whose tiles are of unequal sizes (4, 3 and 3 columns of 10), so that
/// some outputs are shorter than the longest an output may be.
fn uneven_image() -> Kernel {
    Kernel::Mandelbrot(crate::kernels::mandelbrot::Params {
        x_min: -2.0,
        x_max: 1.0,
        y_min: -1.0,
        y_max: 1.0,
        width: 10,
        height: 4,
        max_iter: 20,
        tiles_x: 3,
        tiles_y: 1,
    })
}

/// The hash the engine names task `task`'s result `bytes` of [`uneven_image`] by.
fn image_hash(task: u32, bytes: &[u8]) -> u64 {
    crate::job::result_hash(&uneven_image(), TaskId(task), bytes)
}

/// Fetches in `out`: (to, task).
fn fetches(out: &[Output]) -> Vec<(NodeId, TaskId)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send {
                to,
                msg: EngineMsg::Fetch { task, .. },
            } => Some((*to, *task)),
            _ => None,
        })
        .collect()
}

/// Node 1, which computes nothing, with peers 2 and 3, submitted an uneven image with
/// `r` copies; the job's true task outputs.
fn assembler_of_uneven_image(fetches_max: usize, r: u8) -> (Engine, JobId, Vec<Vec<u8>>) {
    assembler_of_uneven_image_nonce(fetches_max, r, 1)
}

/// [`assembler_of_uneven_image`] with the job's nonce given.
fn assembler_of_uneven_image_nonce(
    fetches_max: usize,
    r: u8,
    nonce: u64,
) -> (Engine, JobId, Vec<Vec<u8>>) {
    let k = uneven_image();
    let truth: Vec<Vec<u8>> = (0..3)
        .map(|t| {
            let mut b = Vec::new();
            k.run_task(t, &mut b).expect("valid");
            b
        })
        .collect();
    let mut e = watcher(1, &[2, 3]);
    e.config.fetches_max = fetches_max;
    submit_kernel(&mut e, 0, k, r, 1, nonce);
    let job = e.job_ids().next().unwrap();
    drain(&mut e);
    (e, job, truth)
}

/// Node 1, which computes nothing, submitted an uneven image; nodes 2 and 3 reported
/// and hold every result. `before` runs before their facts arrive. The fetches the
/// facts caused are left in the engine's output.
fn fetching_assembler(
    fetches_max: usize,
    before: impl FnOnce(&mut Engine, JobId, &[Vec<u8>]),
) -> (Engine, JobId, Vec<Vec<u8>>) {
    let (mut e, job, truth) = assembler_of_uneven_image(fetches_max, 1);
    before(&mut e, job, &truth);
    for from in [2, 3] {
        report_and_hold(&mut e, 1, from, job, &truth);
    }
    (e, job, truth)
}

#[test]
fn an_assembler_fetches_in_a_window_moves_on_from_holders_that_do_not_serve() {
    let k = uneven_image();
    let (mut e, job, truth) = fetching_assembler(2, |_, _, _| {});
    assert!(truth.iter().any(|b| b.len() < k.task_output_len_max()));
    // Two fetches in flight (the window), each to node 2: node 3's facts (which make
    // it a holder too) come after them.
    let out = drain(&mut e);
    assert_eq!(
        fetches(&out),
        [(NodeId(2), TaskId(0)), (NodeId(2), TaskId(1))]
    );
    assert_eq!((e.stats().fetches_sent, e.footprint().fetches), (2, 2));
    let payload = |task: u32, payload: Vec<u8>| Input::Message {
        from: NodeId(2),
        msg: EngineMsg::Payload {
            job,
            task: TaskId(task),
            hash: image_hash(task, &truth[task as usize]),
            payload,
        },
    };
    // An answer (short or not) is taken and reported, and the window moves on.
    e.handle_input(Millis(2), payload(0, truth[0].clone()));
    let out = drain(&mut e);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Event(Event::AssemblyProgress {
            fetched: 1,
            tasks: 3,
            ..
        })
    )));
    // Node 2 has one of ours in flight, node 3 none: task 2 is fetched from node 3.
    assert_eq!(fetches(&out), [(NodeId(3), TaskId(2))]);
    e.handle_input(Millis(2), payload(0, truth[0].clone()));
    assert_eq!(dropped(&drain(&mut e)), [DropReason::PayloadUnsolicited]);
    // Bytes longer than any output of the job are refused as such.
    let mut long = truth[1].clone();
    long.resize(k.task_output_len_max() + 1, 0);
    e.handle_input(Millis(3), payload(1, long));
    assert_eq!(dropped(&drain(&mut e)), [DropReason::PayloadTooBig]);
    // Nobody serves any more: after the fetch timeout each is asked of the other
    // holder.
    let out = advance(&mut e, 1_500);
    let mut got = fetches(&out);
    got.sort();
    assert_eq!(got, [(NodeId(2), TaskId(2)), (NodeId(3), TaskId(1))]);
    assert_eq!(
        e.footprint().per_author,
        2,
        "one unserved fetch each, by node 2 (task 1) and node 3 (task 2)"
    );
    // Node 3 leaves: its fetch goes back to node 2 at once (the last chance for it).
    e.handle_input(Millis(1_600), Input::PeerDown(NodeId(3)));
    assert_eq!(fetches(&drain(&mut e)), [(NodeId(2), TaskId(1))]);
    assert_eq!(e.stats().fetches_sent, 6);
    // Node 2, the only holder left, gets its second try at task 2 too...
    assert_eq!(fetches(&advance(&mut e, 3_000)), [(NodeId(2), TaskId(2))]);
    // ...and fails it: having failed both twice, it no longer counts as a holder of
    // those tasks, which are now to be computed again.
    let out = advance(&mut e, 3_600);
    assert_eq!(fetches(&out), []);
    let j = &e.jobs[&job];
    assert!(j.assembly.gave_up_on(TaskId(1), NodeId(2)));
    assert!(!j.assembly.gave_up_on(TaskId(0), NodeId(2)));
    assert_eq!(
        j.assembly.unfetchable,
        BTreeSet::from([TaskId(1), TaskId(2)])
    );
    assert_eq!(e.runnable(j, TaskId(1), true), Some(Why::Recompute));
    assert_eq!(e.runnable(j, TaskId(0), true), None);
    assert!(!e.is_assembled(job));
    assert_eq!(e.footprint().task_marks, 2, "two unfetchable results");
}

#[test]
fn an_assembler_fetches_each_result_as_soon_as_it_is_validated() {
    // A job whose task 1 ranks another node first and whose task 2 ranks node 1 (the
    // assembler) first, among nodes 1-3.
    let spec = spec_where(
        JobSpec {
            kernel: uneven_image(),
            replication: 1,
            quorum: 1,
            pacing_ms: 0,
            submitter: NodeId(1),
            nonce: 1,
        },
        |j| !ranks_first(j, 1, 1, &[1, 2, 3]) && ranks_first(j, 2, 1, &[1, 2, 3]),
    );
    let (mut e, job, truth) = assembler_of_uneven_image_nonce(8, 1, spec.nonce);
    assert_eq!(job, spec.id());
    // Nothing is reported before the facts below arrive one task at a time.
    let facts = |task: u32| {
        let h = image_hash(task, &truth[task as usize]);
        let facts = [Fact::Report(h), Fact::Holding(h)]
            .map(|fact| TaskFact {
                task: TaskId(task),
                fact,
            })
            .to_vec();
        Input::Message {
            from: NodeId(2),
            msg: EngineMsg::Facts { job, facts },
        }
    };
    // Task 1 validated (q = 1) before task 0: fetched at once, long before the job is
    // done, whatever is still to be validated before it.
    e.handle_input(Millis(1), facts(1));
    assert_eq!(fetches(&drain(&mut e)), [(NodeId(2), TaskId(1))]);
    assert_eq!(e.progress(job), Some((1, 3)));
    // Task 2 ranks this node first: its copy comes here anyway, not fetched yet.
    assert_eq!(e.jobs[&job].ranking.top(TaskId(2)).next(), Some(NodeId(1)));
    e.handle_input(Millis(1), facts(2));
    assert_eq!(fetches(&drain(&mut e)), []);
    // All validated: the last walk fetches what is still missing, task 2 too.
    e.handle_input(Millis(1), facts(0));
    assert_eq!(
        fetches(&drain(&mut e)),
        [(NodeId(2), TaskId(0)), (NodeId(2), TaskId(2))]
    );
    for from in [2, 3] {
        report_and_hold(&mut e, 1, from, job, &truth);
    }
    // Node 3's facts (after) change nothing: every result is being fetched already.
    assert_eq!(fetches(&drain(&mut e)), []);
    for (t, bytes) in truth.iter().enumerate() {
        e.handle_input(
            Millis(2),
            Input::Message {
                from: NodeId(2),
                msg: EngineMsg::Payload {
                    job,
                    task: TaskId(t as u32),
                    hash: image_hash(t as u32, bytes),
                    payload: bytes.clone(),
                },
            },
        );
    }
    assert!(e.is_assembled(job));
}

#[test]
fn an_assembler_that_will_hold_a_copy_fetches_it_only_at_the_end() {
    // Three members and r = 3: node 1 ranks among every task's holders, so copies come
    // to it; while the job runs it fetches nothing, and once all is validated it
    // fetches what has not come.
    let (mut e, job, truth) = assembler_of_uneven_image(EngineConfig::default().fetches_max, 3);
    report_and_hold(&mut e, 1, 2, job, &truth[..2]);
    assert_eq!(e.progress(job), Some((2, 3)));
    assert_eq!(fetches(&drain(&mut e)), []);
    report_and_hold(&mut e, 2, 2, job, &truth);
    assert_eq!(
        fetches(&drain(&mut e)),
        [
            (NodeId(2), TaskId(0)),
            (NodeId(2), TaskId(1)),
            (NodeId(2), TaskId(2))
        ]
    );
}

#[test]
fn validated_bytes_that_do_not_assemble_fail_the_job_once_and_count() {
    // A peer reports and serves a short output for the only task of an image (q = 1, so
    // its report alone validates it): the bytes match their hash but cannot be merged.
    let k = uneven_image();
    let mut e = watcher(1, &[2]);
    submit_kernel(&mut e, 0, k, 1, 1, 1);
    let job = e.job_ids().next().unwrap();
    let short = vec![7u8; 4];
    let h = |t: u32| image_hash(t, &short);
    let facts = (0..3)
        .flat_map(|t| {
            [Fact::Report(h(t)), Fact::Holding(h(t))].map(|fact| TaskFact {
                task: TaskId(t),
                fact,
            })
        })
        .collect();
    e.handle_input(
        Millis(1),
        Input::Message {
            from: NodeId(2),
            msg: EngineMsg::Facts { job, facts },
        },
    );
    drain(&mut e);
    let before = e.stats().dropped;
    for t in 0..3 {
        e.handle_input(
            Millis(2),
            Input::Message {
                from: NodeId(2),
                msg: EngineMsg::Payload {
                    job,
                    task: TaskId(t),
                    hash: h(t),
                    payload: short.clone(),
                },
            },
        );
    }
    let out = drain(&mut e);
    let failed = out
        .iter()
        .filter(|o| matches!(o, Output::Event(Event::JobFailed { .. })))
        .count();
    assert_eq!(failed, 1);
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::Event(Event::JobDone { .. })))
    );
    assert_eq!(e.stats().dropped, before + 1);
    // Finished here: it may be evicted, and nothing is fetched for it any more.
    assert!(e.jobs[&job].finished_here());
    assert_eq!(fetches(&advance(&mut e, 5_000)), []);
}

#[test]
fn a_node_that_does_not_assemble_never_merges_the_output() {
    // Node 2 computes every task of node 1's job alone and holds every result.
    let mut e = Engine::new(NodeId(2), EngineConfig::default(), 2, Millis(0));
    e.handle_input(Millis(0), Input::PeerUp(NodeId(1)));
    let job = peer_job(&mut e, 0, 1, kernel(3), 1, 1, 0);
    let mut out = Vec::new();
    for t in (0..40).map(|k| k * 100) {
        out.extend(step(&mut e, t));
        out.extend(advance(&mut e, t));
    }
    assert_eq!(e.progress(job), Some((3, 3)));
    assert_eq!(e.stats().tasks_run, 3);
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::Event(Event::JobDone { .. })))
    );
    assert!(!e.is_assembled(job));
}

#[test]
fn a_node_that_does_not_assemble_fetches_nothing() {
    // Node 2 computes nothing; node 3 computed and holds every result of node 1's job.
    let mut e = watcher(2, &[1, 3]);
    let job = peer_job(&mut e, 0, 1, kernel(3), 1, 1, 0);
    let truth: Vec<Vec<u8>> = (0..3)
        .map(|t| {
            let mut b = Vec::new();
            kernel(3).run_task(t, &mut b).expect("valid");
            b
        })
        .collect();
    report_and_hold(&mut e, 1, 3, job, &truth);
    assert_eq!(e.progress(job), Some((3, 3)));
    let mut out = drain(&mut e);
    out.extend(advance(&mut e, 3_000));
    assert_eq!(fetches(&out), []);
    assert_eq!(e.stats().fetches_sent, 0);
}

/// Submits a one-task job with `nonce` on a lone node; computes it if `finish`.
fn lone_job(e: &mut Engine, nonce: u64, finish: bool, now: u64) -> (JobId, Vec<Output>) {
    let before: BTreeSet<JobId> = e.job_ids().collect();
    submit_kernel(e, now, kernel(1), 1, 1, nonce);
    let out = if finish { step(e, now) } else { drain(e) };
    let job = e
        .job_ids()
        .find(|j| !before.contains(j))
        .unwrap_or(JobId(0));
    (job, out)
}

#[test]
fn only_finished_jobs_are_evicted_oldest_first_and_never_taken_up_again() {
    let config = EngineConfig {
        jobs_max: 3,
        slots: 0,
        ..EngineConfig::default()
    };
    let mut e = Engine::new(NodeId(1), config.clone(), 1, Millis(0));
    // slots 0: jobs are submitted unfinished; a second engine with slots computes.
    let mut busy = Engine::new(NodeId(1), EngineConfig { slots: 1, ..config }, 1, Millis(0));
    let (a, _) = lone_job(&mut busy, 1, true, 0);
    let (b, _) = lone_job(&mut busy, 2, true, 10);
    let (c, _) = lone_job(&mut busy, 3, false, 20);
    assert!(busy.is_assembled(a) && busy.is_assembled(b) && !busy.is_assembled(c));
    // Full: a fourth job evicts the oldest finished one (a), then b; never c.
    let (d, _) = lone_job(&mut busy, 4, false, 30);
    let ids: BTreeSet<JobId> = busy.job_ids().collect();
    assert_eq!(ids, BTreeSet::from([b, c, d]));
    let (e5, _) = lone_job(&mut busy, 5, false, 40);
    assert_eq!(
        busy.job_ids().collect::<BTreeSet<_>>(),
        BTreeSet::from([c, d, e5])
    );
    let (_, out) = lone_job(&mut busy, 6, false, 50);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Event(Event::JobRefused { .. })))
    );
    assert_eq!(busy.footprint().jobs, 3);
    assert_eq!(busy.footprint().retired, 2);
    // An evicted job's spec, relayed by a peer, is not taken up again.
    busy.handle_input(Millis(60), Input::PeerUp(NodeId(2)));
    let spec = JobSpec {
        kernel: kernel(1),
        replication: 1,
        quorum: 1,
        pacing_ms: 0,
        submitter: NodeId(1),
        nonce: 1,
    };
    assert_eq!(spec.id(), a);
    busy.handle_input(
        Millis(61),
        Input::Message {
            from: NodeId(2),
            msg: EngineMsg::Job { spec },
        },
    );
    assert!(!busy.job_ids().any(|j| j == a));
    // A node that computes nothing never finishes, so it never evicts.
    for n in 0..3 {
        lone_job(&mut e, n, false, 0);
    }
    let (_, out) = lone_job(&mut e, 9, false, 1);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Event(Event::JobRefused { .. })))
    );
}

#[test]
fn cancelling_one_job_leaves_the_others_running() {
    let mut e = node_with(1, 2, []);
    let (a, out_a) = lone_job(&mut e, 1, false, 0);
    let (b, out_b) = lone_job(&mut e, 2, false, 0);
    let started = |out: &[Output]| out.iter().any(|o| matches!(o, Output::RunTask { .. }));
    assert!(started(&out_a) && started(&out_b));
    e.handle_input(Millis(1), Input::Command(Command::Cancel { job: a }));
    drain(&mut e);
    assert!(!e.running.iter().any(|(j, _)| *j == a));
    assert!(
        e.running.iter().any(|(j, _)| *j == b),
        "b's task still runs"
    );
    // The same job submitted again is not taken up: its id is retired.
    let (again, _) = lone_job(&mut e, 1, false, 1);
    assert_eq!(again, JobId(0), "a cancelled job came back");
    assert!(!e.job_ids().any(|j| j == a));
    // Retired ids are remembered, one per cancel, up to their bound.
    for n in 10..20 {
        let (j, _) = lone_job(&mut e, n, false, 2);
        e.handle_input(Millis(3), Input::Command(Command::Cancel { job: j }));
    }
    assert_eq!(e.footprint().retired, 11);
}

#[test]
fn unknown_jobs_are_asked_for_once_a_sync_interval_within_a_bound() {
    let mut e = Engine::new(NodeId(1), EngineConfig::default(), 1, Millis(0));
    e.handle_input(Millis(0), Input::PeerUp(NodeId(2)));
    drain(&mut e);
    let sync = EngineConfig::default().sync_ms;
    let facts_about = |e: &mut Engine, at: u64, job: u64| {
        e.handle_input(
            Millis(at),
            Input::Message {
                from: NodeId(2),
                msg: EngineMsg::Facts {
                    job: JobId(job),
                    facts: vec![TaskFact {
                        task: TaskId(0),
                        fact: Fact::Claim(Why::Assigned),
                    }],
                },
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
    assert_eq!(facts_about(&mut e, 10, 77), 1);
    assert_eq!(facts_about(&mut e, 10 + sync - 1, 77), 0);
    assert_eq!(facts_about(&mut e, 10 + sync, 77), 1);
    // The ids asked for stay within their bound (cleared when full).
    for job in 0..100 {
        facts_about(&mut e, 20 + sync, 1_000 + job);
    }
    assert_eq!(e.footprint().asked, 101 % super::super::config::RETIRED_MAX);
}

#[test]
fn only_the_submitter_changes_pacing_and_a_shorter_delay_takes_effect_at_once() {
    let mut e = Engine::new(NodeId(2), EngineConfig::default(), 2, Millis(0));
    e.handle_input(Millis(0), Input::PeerUp(NodeId(1)));
    e.handle_input(Millis(0), Input::PeerUp(NodeId(3)));
    // A job of node 1 of which node 2 ranks first for a task.
    let spec = spec_where(
        JobSpec {
            kernel: kernel(8),
            replication: 1,
            quorum: 1,
            pacing_ms: 30_000,
            submitter: NodeId(1),
            nonce: 0,
        },
        |j| (0..8).any(|t| ranks_first(j, t, 2, &[1, 2, 3])),
    );
    let job = send_job(&mut e, 0, spec);
    // Compute what starts: the node is then paced for 30 s.
    step(&mut e, 10);
    assert!(e.jobs[&job].paced_until > Millis(20_000));
    let pacing = |e: &mut Engine, from: u64, ms: u32| {
        e.handle_input(
            Millis(100),
            Input::Message {
                from: NodeId(from),
                msg: EngineMsg::Pacing { job, pacing_ms: ms },
            },
        );
        dropped(&drain(e))
    };
    assert_eq!(pacing(&mut e, 3, 0), [DropReason::PacingNotFromSubmitter]);
    assert_eq!(e.jobs[&job].pacing_ms, 30_000);
    assert_eq!(pacing(&mut e, 1, 1_000), []);
    assert_eq!(e.jobs[&job].pacing_ms, 1_000);
    // The wait shrank to a second from now, and a timer wakes the node then.
    assert_eq!(e.jobs[&job].paced_until, Millis(1_100));
    assert!(e.timers.is_set(Timer::Paced(job)));
    // The next task starts then, not at the next sync after it.
    let mut out = Vec::new();
    while let Some(Millis(t)) = e.poll_timeout()
        && t <= 1_100
    {
        e.handle_input(Millis(t), Input::Timeout);
        out.extend(drain(&mut e));
    }
    assert!(
        out.iter().any(|o| matches!(o, Output::RunTask { .. })),
        "nothing started at 1.1 s: {out:?}"
    );
}

#[test]
fn a_job_is_placed_on_a_few_more_nodes_than_it_needs_and_thieves_start_late() {
    let mut e = Engine::new(NodeId(1), EngineConfig::default(), 1, Millis(0));
    for n in 2..=8 {
        e.handle_input(Millis(0), Input::PeerUp(NodeId(n)));
    }
    let job = submit(&mut e, 40, 0);
    let j = &e.jobs[&job];
    // r = q = 1: each task ranks 1 + 2 nodes.
    assert!((0..40).all(|t| j.ranking.top(TaskId(t)).count() == 3));
    // Thieves start in the last quarter of the tasks.
    assert!(
        (30..40).contains(&j.sched.steal_cursor),
        "{}",
        j.sched.steal_cursor
    );
}

#[test]
fn an_invalid_spec_from_a_peer_is_refused_and_counted_once() {
    let mut e = Engine::new(NodeId(1), EngineConfig::default(), 1, Millis(0));
    e.handle_input(Millis(0), Input::PeerUp(NodeId(2)));
    let spec = JobSpec {
        kernel: kernel(2),
        replication: 1,
        quorum: 2,
        pacing_ms: 0,
        submitter: NodeId(2),
        nonce: 0,
    };
    e.handle_input(
        Millis(1),
        Input::Message {
            from: NodeId(2),
            msg: EngineMsg::Job { spec },
        },
    );
    let out = drain(&mut e);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Event(Event::JobRefused { .. })))
    );
    assert_eq!(e.stats().dropped, 1);
    assert_eq!(e.stats().messages_in, 1);
    assert_eq!(e.job_ids().count(), 0);
}

/// `from`'s digest of `job` (no facts): it holds the job.
fn digest_from(e: &mut Engine, at: u64, from: NodeId, job: JobId) {
    e.handle_input(
        Millis(at),
        Input::Message {
            from,
            msg: EngineMsg::Digest { job, facts: 0 },
        },
    );
}

/// A member that joins after a job's submitter left cannot learn the job (a spec is
/// taken only from its submitter, or relayed while the submitter is live): it drops
/// every copy sent to it, and the sender gives up on it after `STORE_TRIES_MAX` tries.
/// A view does not count it as a wanted holder until it shows the job, so the task is
/// not shown short of a copy for good. A chaos run found every native counting such a
/// member as a wanted holder, for good.
#[test]
fn a_member_that_joined_after_the_submitter_left_is_no_wanted_holder() {
    // Node 1 holds task 0 of node 2's job with nodes 2 to 4 up.
    let (mut e, job) = ranked_first_then_node_5(4);
    step(&mut e, 0);
    // The submitter leaves; node 5, the task's second ranked, joins.
    e.handle_input(Millis(10), Input::PeerDown(NodeId(2)));
    e.handle_input(Millis(20), Input::PeerUp(NodeId(5)));
    let wanted = e.holders_wanted(job, TaskId(0));
    assert_eq!(wanted[0], NodeId(1));
    assert!(!wanted.contains(&NodeId(5)), "{wanted:?}");
    // It shows the job after all (it heard of it before): wanted.
    digest_from(&mut e, 30, NodeId(5), job);
    assert_eq!(e.holders_wanted(job, TaskId(0)), [NodeId(1), NodeId(5)]);
    // Having shown the job, its asks for the facts again change nothing.
    resend_from(&mut e, 40, NodeId(5), job);
    assert_eq!(e.holders_wanted(job, TaskId(0)), [NodeId(1), NodeId(5)]);
    // It leaves and comes back while the submitter is still gone: not wanted again.
    e.handle_input(Millis(50), Input::PeerDown(NodeId(5)));
    e.handle_input(Millis(60), Input::PeerUp(NodeId(5)));
    assert!(!e.holders_wanted(job, TaskId(0)).contains(&NodeId(5)));
}

/// Node 1 with peers 2 to `last` up, and node 2's one-task job (r = 2, q = 1) whose
/// task ranks node 1 first and node 5 second among nodes 1 to 5.
fn ranked_first_then_node_5(last: u64) -> (Engine, JobId) {
    let mut e = Engine::new(NodeId(1), EngineConfig::default(), 1, Millis(0));
    for n in 2..=last {
        e.handle_input(Millis(0), Input::PeerUp(NodeId(n)));
    }
    let spec = spec_where(
        JobSpec {
            kernel: kernel(1),
            replication: 2,
            quorum: 1,
            pacing_ms: 0,
            submitter: NodeId(2),
            nonce: 0,
        },
        |id| {
            let ranked = Engine::ranked(id, TaskId(0), &[1, 2, 3, 4, 5].map(NodeId));
            ranked[0] == NodeId(1) && ranked[1] == NodeId(5)
        },
    );
    let job = send_job(&mut e, 0, spec);
    (e, job)
}

/// `from` asks for `job` (what a member that does not have it does when it hears of
/// it, and what a member behind on the facts does).
fn resend_from(e: &mut Engine, at: u64, from: NodeId, job: JobId) {
    e.handle_input(
        Millis(at),
        Input::Message {
            from,
            msg: EngineMsg::Resend { job },
        },
    );
}

/// A member that asks for a job it never showed does not have it (its table was full
/// when the job came, and it refused it): no wanted holder until it shows the job, and
/// the task is not counted short for its sake. A chaos run found a busy tab that had
/// refused a job counted as its wanted holder by every native, for good.
#[test]
fn a_member_that_asks_for_the_job_is_no_wanted_holder() {
    let (mut e, job) = ranked_first_then_node_5(5);
    resend_from(&mut e, 1, NodeId(5), job);
    step(&mut e, 1);
    let wanted = e.holders_wanted(job, TaskId(0));
    assert!(!wanted.contains(&NodeId(5)), "{wanted:?}");
    // The next ranked holds a copy: nothing is short.
    let next = wanted[1];
    let hash = e
        .validated_hash(job, TaskId(0))
        .expect("validated at q = 1");
    report_from(&mut e, 2, next.0, job, Fact::Holding(hash));
    assert_eq!(e.copies_short(), Default::default());
    // The submitter asking (behind on facts) is never taken for a member without it,
    // even when it has shown nothing since it came back.
    e.handle_input(Millis(500), Input::PeerDown(NodeId(2)));
    e.handle_input(Millis(550), Input::PeerUp(NodeId(2)));
    resend_from(&mut e, 600, NodeId(2), job);
    assert!(!e.jobs[&job].unaware.contains(&NodeId(2)));
    // Node 5 took the job after all: its digest says so, it is wanted again, and the
    // task is short until it holds a copy.
    digest_from(&mut e, 700, NodeId(5), job);
    assert_eq!(e.holders_wanted(job, TaskId(0)), [NodeId(1), NodeId(5)]);
    assert_eq!(e.copies_short().get(&job), Some(&1));
}

/// Stores in `out`: (to, task).
fn stores(out: &[Output]) -> Vec<NodeId> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send {
                to,
                msg: EngineMsg::Store { .. },
            } => Some(*to),
            _ => None,
        })
        .collect()
}

#[test]
fn a_member_that_joins_among_a_tasks_top_ranked_gets_a_copy_at_the_next_syncs() {
    // Node 1 alone computes a one-task job (r = 2): nobody to copy to, and
    // re-replication, having found the copies complete, passes the result by.
    let mut e = Engine::new(NodeId(1), EngineConfig::default(), 1, Millis(0));
    submit_kernel(&mut e, 0, kernel(1), 2, 1, 0);
    step(&mut e, 0);
    let sync = e.config.sync_ms;
    assert_eq!(stores(&advance(&mut e, 4 * sync)), []);
    // Node 2 joins: it ranks among the task's top 2, and gets the copy.
    e.handle_input(Millis(4 * sync), Input::PeerUp(NodeId(2)));
    let turn = sync * super::super::config::TURN_SYNCS;
    let sent = stores(&advance(&mut e, 4 * sync + 2 * turn));
    assert!(
        !sent.is_empty() && sent.iter().all(|n| *n == NodeId(2)),
        "{sent:?}"
    );
}

#[test]
fn a_holder_caught_lying_is_replaced_by_the_next_ranked_at_the_next_syncs() {
    // Node 1 submits a two-task job (r = q = 2) among nodes 1-5 and ranks first for
    // task 0, which it computes.
    let members = [1, 2, 3, 4, 5];
    let spec = spec_where(
        JobSpec {
            kernel: kernel(2),
            replication: 2,
            quorum: 2,
            pacing_ms: 0,
            submitter: NodeId(1),
            nonce: 0,
        },
        |j| ranks_first(j, 0, 1, &members) && !ranks_first(j, 1, 1, &members),
    );
    let mut e = node_with(1, 1, 2..=5);
    submit_kernel(&mut e, 0, spec.kernel.clone(), 2, 2, spec.nonce);
    let job = spec.id();
    step(&mut e, 0);
    let hash = e.jobs[&job].held.payloads[&TaskId(0)].0;
    let ranked: Vec<NodeId> = e.jobs[&job].ranking.top(TaskId(0)).collect();
    let second = ranked[1];
    let fact = |e: &mut Engine, at: u64, from: NodeId, task: u32, fact: Fact| {
        e.handle_input(
            Millis(at),
            Input::Message {
                from,
                msg: EngineMsg::Facts {
                    job,
                    facts: vec![TaskFact {
                        task: TaskId(task),
                        fact,
                    }],
                },
            },
        );
    };
    // The second ranked backs the result and holds a copy: validated, and complete.
    fact(&mut e, 1, second, 0, Fact::Report(hash));
    fact(&mut e, 1, second, 0, Fact::Holding(hash));
    assert_eq!(e.validated_hash(job, TaskId(0)), Some(hash));
    let sync = e.config.sync_ms;
    assert!(!stores(&advance(&mut e, 4 * sync)).contains(&ranked[2]));
    // It is caught lying about task 1 (two others back the true result): its copy
    // counts for nothing now, and the next ranked gets one.
    let others: Vec<NodeId> = members
        .iter()
        .map(|n| NodeId(*n))
        .filter(|n| *n != NodeId(1) && *n != second)
        .collect();
    fact(&mut e, 4 * sync, second, 1, Fact::Report(0xbad));
    fact(&mut e, 4 * sync, others[0], 1, Fact::Report(0x7777));
    fact(&mut e, 4 * sync, others[1], 1, Fact::Report(0x7777));
    assert!(e.caught_in(job).any(|n| n == second));
    let turn = sync * super::super::config::TURN_SYNCS;
    let sent = stores(&advance(&mut e, 4 * sync + 2 * turn));
    assert!(sent.contains(&ranked[2]), "{sent:?}, ranked {ranked:?}");
}

#[test]
fn copies_go_to_the_top_ranked_until_confirmed_and_past_holders_that_never_confirm() {
    // Node 1 first in the ranking of a one-task job (r = 2) among five nodes.
    let (mut e, job, ranked) = (0..)
        .find_map(|nonce| {
            let mut e = Engine::new(NodeId(1), EngineConfig::default(), 1, Millis(0));
            for n in 2..=5 {
                e.handle_input(Millis(0), Input::PeerUp(NodeId(n)));
            }
            submit_kernel(&mut e, 0, kernel(1), 2, 1, nonce);
            let job = e.job_ids().next()?;
            let ranked: Vec<NodeId> = e.jobs[&job].ranking.top(TaskId(0)).collect();
            (ranked[0] == NodeId(1)).then_some((e, job, ranked))
        })
        .unwrap();
    let out = step(&mut e, 0);
    // One copy, to the second ranked node.
    assert_eq!(stores(&out), [ranked[1]]);
    assert_eq!(e.stats().stores_sent, 1);
    // It never confirms: sent again every store_retry_ms, STORE_TRIES_MAX times, then
    // the third ranked node gets the copy instead.
    let retry = EngineConfig::default().store_retry_ms;
    let mut to_second = 0;
    let mut t = 0;
    let mut third_at = None;
    while t < 20 * retry && third_at.is_none() {
        t += 100;
        let sent = stores(&advance(&mut e, t));
        to_second += sent.iter().filter(|n| **n == ranked[1]).count();
        if sent.contains(&ranked[2]) {
            third_at = Some(t);
        }
    }
    assert_eq!(to_second, STORE_TRIES_MAX as usize);
    let third_at = third_at.expect("the next ranked node got a copy");
    assert!(third_at > u64::from(STORE_TRIES_MAX) * retry);
    assert_eq!(e.stats().stores_sent, 2 + u64::from(STORE_TRIES_MAX));
    // It confirms: nothing more is sent, to anyone, for a long while.
    let hash = content_hash(e.held(job, TaskId(0)).unwrap());
    report_from(&mut e, t + 1, ranked[2].0, job, Fact::Holding(hash));
    assert_eq!(stores(&advance(&mut e, t + 30 * retry)), []);
    t += 30 * retry;
    // The confirmed holder leaves: said at once, and the fourth ranked node gets a copy
    // (the second stays passed over).
    e.handle_input(Millis(t + 1), Input::PeerDown(ranked[2]));
    let out = drain(&mut e);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Event(Event::HolderLost { holder, .. }) if *holder == ranked[2]
    )));
    assert_eq!(stores(&out), [ranked[3]]);
    assert_eq!(
        e.footprint().per_author,
        2,
        "a copy in flight, a holder passed over"
    );
}

#[test]
fn only_a_node_ranked_for_a_task_keeps_a_copy_sent_to_it() {
    let mut e = Engine::new(NodeId(9), EngineConfig::default(), 9, Millis(0));
    for n in 1..=8 {
        e.handle_input(Millis(0), Input::PeerUp(NodeId(n)));
    }
    let job = peer_job(&mut e, 0, 1, kernel(16), 1, 1, 0);
    drain(&mut e);
    let ranked_here: Vec<bool> = (0..16)
        .map(|t| e.jobs[&job].ranking.top(TaskId(t)).any(|n| n == NodeId(9)))
        .collect();
    assert!(ranked_here.iter().any(|r| *r) && ranked_here.iter().any(|r| !*r));
    for (t, ranked) in ranked_here.iter().enumerate() {
        let mut bytes = Vec::new();
        kernel(16).run_task(t as u32, &mut bytes).unwrap();
        e.handle_input(
            Millis(1),
            Input::Message {
                from: NodeId(2),
                msg: EngineMsg::Store {
                    job,
                    task: TaskId(t as u32),
                    hash: content_hash(&bytes),
                    payload: bytes,
                },
            },
        );
        let refused = dropped(&drain(&mut e));
        if *ranked {
            assert_eq!(refused, [], "t{t}");
            assert!(e.held(job, TaskId(t as u32)).is_some());
        } else {
            assert_eq!(refused, [DropReason::StoreNotRankedHere], "t{t}");
        }
    }
}

/// Node 1 with peers 2..=n and a one-task job (r = q = 1) that node 2 ranks first for.
fn second_in_line(n: u64, slots: usize) -> (Engine, JobId) {
    for nonce in 0.. {
        let mut e = node_with(1, slots, 2..=n);
        submit_kernel(&mut e, 0, kernel(1), 1, 1, nonce);
        let job = e.job_ids().next().unwrap();
        if e.jobs[&job].ranking.top(TaskId(0)).next() == Some(NodeId(2)) {
            return (e, job);
        }
    }
    unreachable!()
}

/// Why each task `e` started in `out`.
fn started(out: &[Output]) -> Vec<Why> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(Event::TaskStarted { why, .. }) => Some(*why),
            _ => None,
        })
        .collect()
}

#[test]
fn a_straggling_claim_gets_one_backup_after_the_straggler_delay() {
    let (mut e, job) = second_in_line(2, 1);
    assert_eq!(started(&drain(&mut e)), []);
    report_from(&mut e, 10, 2, job, Fact::Claim(Why::Assigned));
    let straggler = EngineConfig::default().straggler_ms;
    assert_eq!(started(&advance(&mut e, straggler)), []);
    let out = advance(&mut e, straggler + EngineConfig::default().sync_ms + 10);
    assert_eq!(started(&out), [Why::Speculative]);
    assert_eq!(e.stats().tasks_run, 1);
    // Only one: the backup's result validates the task (q = 1).
    assert_eq!(started(&advance(&mut e, 3 * straggler)), []);
}

#[test]
fn no_backup_while_the_claimer_delivers_in_time() {
    let (mut e, job) = second_in_line(2, 1);
    drain(&mut e);
    report_from(&mut e, 10, 2, job, Fact::Claim(Why::Assigned));
    let mut bytes = Vec::new();
    kernel(1).run_task(0, &mut bytes).unwrap();
    report_from(&mut e, 1_000, 2, job, Fact::Report(content_hash(&bytes)));
    report_from(&mut e, 1_000, 2, job, Fact::Holding(content_hash(&bytes)));
    assert_eq!(started(&advance(&mut e, 1_900)), []);
    // Node 2 never serves the result: after two unanswered fetches node 1 computes it.
    let out = advance(&mut e, 10_000);
    assert_eq!(started(&out), [Why::Recompute]);
    assert_eq!(e.stats().tasks_run, 1);
}

#[test]
fn claims_past_the_quorum_block_backups_until_they_expire() {
    // Nodes 2 and 3 both claim the task (q = 1) and go silent: too many claimers for a
    // backup; once their claims expire, node 1 computes it.
    let (mut e, job) = second_in_line(3, 1);
    drain(&mut e);
    report_from(&mut e, 10, 2, job, Fact::Claim(Why::Assigned));
    report_from(&mut e, 10, 3, job, Fact::Claim(Why::Assigned));
    let expire = EngineConfig::default().claim_expire_ms;
    assert_eq!(started(&advance(&mut e, expire)), []);
    let out = advance(&mut e, expire + EngineConfig::default().sync_ms + 10);
    assert_eq!(started(&out).len(), 1, "{out:?}");
}

#[test]
fn a_claimer_that_leaves_is_no_longer_work_in_flight() {
    let (mut e, job) = second_in_line(2, 1);
    drain(&mut e);
    report_from(&mut e, 10, 2, job, Fact::Claim(Why::Assigned));
    assert_eq!(started(&advance(&mut e, 500)), []);
    e.handle_input(Millis(600), Input::PeerDown(NodeId(2)));
    let out = step(&mut e, 600);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Event(Event::PeerDead { node }) if *node == NodeId(2)))
    );
    assert_eq!(started(&out).len(), 1, "the task moves at once: {out:?}");
    assert_eq!(e.peers().count(), 0);
    // A departure heard twice is news once.
    e.handle_input(Millis(700), Input::PeerDown(NodeId(2)));
    assert_eq!(drain(&mut e), []);
}

#[test]
fn a_pacing_delay_sets_a_timer_and_none_without_pacing() {
    let mut e = Engine::new(NodeId(1), EngineConfig::default(), 1, Millis(0));
    let job = submit(&mut e, 4, 0);
    step(&mut e, 5);
    assert!(!e.timers.is_set(Timer::Paced(job)));
    assert_eq!(e.stats().tasks_run, 4);
    let mut p = Engine::new(NodeId(1), EngineConfig::default(), 1, Millis(0));
    let paced = submit(&mut p, 4, 700);
    step(&mut p, 5);
    assert!(p.timers.is_set(Timer::Paced(paced)));
    assert_eq!(p.jobs[&paced].paced_until, Millis(705));
}

#[test]
fn a_help_request_waits_for_a_free_slot() {
    // A node that computes nothing keeps the request: one mark, nothing started.
    let mut e = watcher(2, &[1]);
    let job = peer_job(&mut e, 0, 1, kernel(2), 1, 1, 0);
    drain(&mut e);
    assert_eq!(e.footprint().task_marks, 0);
    e.handle_input(
        Millis(1),
        Input::Message {
            from: NodeId(1),
            msg: EngineMsg::Help {
                job,
                task: TaskId(1),
            },
        },
    );
    assert_eq!(started(&drain(&mut e)), []);
    assert_eq!(e.footprint().task_marks, 1);
}

#[test]
fn results_held_already_take_no_place_in_the_fetch_window() {
    // A copy of task 0 arrived before validation: the window of two fetches goes to
    // tasks 1 and 2.
    let (mut e, _, _) = fetching_assembler(2, |e, job, truth| {
        e.handle_input(
            Millis(1),
            Input::Message {
                from: NodeId(3),
                msg: EngineMsg::Store {
                    job,
                    task: TaskId(0),
                    hash: image_hash(0, &truth[0]),
                    payload: truth[0].clone(),
                },
            },
        );
    });
    let mut got: Vec<TaskId> = fetches(&drain(&mut e))
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    got.sort();
    assert_eq!(got, [TaskId(1), TaskId(2)]);
}

#[test]
fn a_holder_that_failed_is_forgotten_once_the_result_arrives() {
    let (mut e, job, truth) = fetching_assembler(1, |_, _, _| {});
    assert_eq!(fetches(&drain(&mut e)), [(NodeId(2), TaskId(0))]);
    // Node 2 does not answer; the retry goes to node 3, which does.
    assert_eq!(fetches(&advance(&mut e, 1_500)), [(NodeId(3), TaskId(0))]);
    assert_eq!(e.footprint().per_author, 1);
    e.handle_input(
        Millis(1_600),
        Input::Message {
            from: NodeId(3),
            msg: EngineMsg::Payload {
                job,
                task: TaskId(0),
                hash: image_hash(0, &truth[0]),
                payload: truth[0].clone(),
            },
        },
    );
    // The next fetch goes round to node 3 (neither has one of ours in flight).
    assert_eq!(fetches(&drain(&mut e)), [(NodeId(3), TaskId(1))]);
    assert_eq!(
        e.footprint().per_author,
        0,
        "task 0's unserved mark is gone"
    );
}

#[test]
fn a_result_that_came_twice_is_counted_once() {
    let (mut e, job, truth) = fetching_assembler(1, |_, _, _| {});
    assert_eq!(fetches(&drain(&mut e)), [(NodeId(2), TaskId(0))]);
    let hash = image_hash(0, &truth[0]);
    // Node 3 sends a copy while node 2's answer is on its way: both are taken, one
    // step of progress is said.
    e.handle_input(
        Millis(2),
        Input::Message {
            from: NodeId(3),
            msg: EngineMsg::Store {
                job,
                task: TaskId(0),
                hash,
                payload: truth[0].clone(),
            },
        },
    );
    drain(&mut e);
    e.handle_input(
        Millis(3),
        Input::Message {
            from: NodeId(2),
            msg: EngineMsg::Payload {
                job,
                task: TaskId(0),
                hash,
                payload: truth[0].clone(),
            },
        },
    );
    let progress = drain(&mut e)
        .iter()
        .filter(|o| matches!(o, Output::Event(Event::AssemblyProgress { .. })))
        .count();
    assert_eq!(progress, 0, "the payload brought nothing new");
}

/// Node 1 among `n` nodes, in the first two of the ranking of every task of a job of
/// `tasks` tasks (q = r = 2), with `slots`; nothing computed yet.
fn owner_of_all(n: u64, tasks: u32, slots: usize) -> (Engine, JobId) {
    for nonce in 0.. {
        let mut e = node_with(1, slots, 2..=n);
        submit_kernel(&mut e, 0, kernel(tasks), 2, 2, nonce);
        let job = e.job_ids().next().unwrap();
        if (0..tasks).all(|t| {
            e.jobs[&job]
                .ranking
                .top(TaskId(t))
                .take(2)
                .any(|n| n == NodeId(1))
        }) {
            return (e, job);
        }
    }
    unreachable!()
}

#[test]
fn help_is_asked_of_every_fresh_peer_in_turn_not_only_the_ranked_ones() {
    // Six nodes, q = r = 2: each task ranks four; two peers are outside its ranking.
    let (mut e, job) = owner_of_all(6, 1, 1);
    step(&mut e, 0);
    assert!(e.jobs[&job].ranking.top(TaskId(0)).count() < 6);
    let straggler = EngineConfig::default().straggler_ms;
    let mut asked = Vec::new();
    for k in 1..=5 {
        for (to, _) in helps(&advance(&mut e, k * straggler + 100)) {
            asked.push(to);
        }
    }
    let distinct: BTreeSet<NodeId> = asked.iter().copied().collect();
    assert_eq!(distinct.len(), 5, "every other node in turn: {asked:?}");
}

#[test]
fn no_help_is_asked_while_the_node_has_work_of_the_job() {
    let (mut e, job) = owner_of_all(4, 2, 1);
    // The first task is computed; the second is left running.
    let first = drain(&mut e)
        .into_iter()
        .find_map(|o| match o {
            Output::RunTask { job, task, kernel } => Some((job, task, kernel)),
            _ => None,
        })
        .expect("a task starts");
    let mut out = Vec::new();
    first.2.run_task(first.1.0, &mut out).unwrap();
    e.handle_input(
        Millis(5),
        Input::ComputeFinished {
            job,
            task: first.1,
            output: out,
        },
    );
    let second = drain(&mut e)
        .into_iter()
        .find_map(|o| match o {
            Output::RunTask { task, kernel, .. } => Some((task, kernel)),
            _ => None,
        })
        .expect("the second task starts");
    let straggler = EngineConfig::default().straggler_ms;
    assert_eq!(
        helps(&advance(&mut e, 3 * straggler)),
        [],
        "asked while busy"
    );
    let mut out = Vec::new();
    second.1.run_task(second.0.0, &mut out).unwrap();
    let at = 3 * straggler + 1;
    e.handle_input(
        Millis(at),
        Input::ComputeFinished {
            job,
            task: second.0,
            output: out,
        },
    );
    drain(&mut e);
    assert!(
        !helps(&advance(&mut e, at + straggler)).is_empty(),
        "idle now, and stuck"
    );
}

#[test]
fn a_help_request_is_taken_unless_the_task_was_reported_here_or_asked_already() {
    // Node 1 computes task 0 of node 2's job (claimed, running, not reported).
    let (mut e, job) = {
        let mut e = Engine::new(NodeId(1), EngineConfig::default(), 1, Millis(0));
        e.handle_input(Millis(0), Input::PeerUp(NodeId(2)));
        let job = peer_job(&mut e, 0, 2, kernel(2), 1, 1, 0);
        (e, job)
    };
    // Until node 1 starts a task (its own, or one it steals once stealing opens),
    // without finishing it.
    let mut out = drain(&mut e);
    while let Some(Millis(t)) = e.poll_timeout()
        && t <= 1_000
        && !out.iter().any(|o| matches!(o, Output::RunTask { .. }))
    {
        e.handle_input(Millis(t), Input::Timeout);
        out.extend(drain(&mut e));
    }
    let running: Vec<TaskId> = out
        .iter()
        .filter_map(|o| match o {
            Output::RunTask { task, .. } => Some(*task),
            _ => None,
        })
        .collect();
    assert_eq!(running.len(), 1);
    let help = |e: &mut Engine, task: TaskId| {
        e.handle_input(
            Millis(1),
            Input::Message {
                from: NodeId(2),
                msg: EngineMsg::Help { job, task },
            },
        );
        drain(e);
        e.footprint().task_marks
    };
    let marks = e.footprint().task_marks;
    // Claimed, not reported: the request is news.
    assert_eq!(help(&mut e, running[0]), marks + 1);
    // Asked again: not news.
    assert_eq!(help(&mut e, running[0]), marks + 1);
}

#[test]
fn a_finished_job_of_a_peer_is_evicted_for_this_node_s_own() {
    let config = EngineConfig {
        jobs_max: 2,
        ..EngineConfig::default()
    };
    let mut e = Engine::new(NodeId(2), config, 2, Millis(0));
    e.handle_input(Millis(0), Input::PeerUp(NodeId(1)));
    // Node 1's job of one task, which ranks node 2 first.
    let spec = spec_where(
        JobSpec {
            kernel: kernel(1),
            replication: 1,
            quorum: 1,
            pacing_ms: 0,
            submitter: NodeId(1),
            nonce: 0,
        },
        |j| ranks_first(j, 0, 2, &[1, 2]),
    );
    let theirs = send_job(&mut e, 0, spec);
    step(&mut e, 0);
    assert_eq!(e.progress(theirs), Some((1, 1)));
    assert!(
        !e.is_assembled(theirs),
        "node 2 does not assemble node 1's job"
    );
    let (a, _) = lone_job(&mut e, 1, false, 10);
    let (b, out) = lone_job(&mut e, 2, false, 20);
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::Event(Event::JobRefused { .. })))
    );
    assert_eq!(e.job_ids().collect::<BTreeSet<_>>(), BTreeSet::from([a, b]));
}
