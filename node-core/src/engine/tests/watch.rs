//! Watching a job from previews: what a watcher asks for, what it accepts, and what a
//! holder answers.

use super::*;
use crate::job::{content_hash, sealed_hash};
use crate::kernels::{JobOutput, mandelbrot, preview};

/// A 3 × 2-tile image of 24 × 16 pixels: tiles of 8 × 8, previews of 2 × 2.
fn image() -> Kernel {
    Kernel::Mandelbrot(mandelbrot::Params {
        width: 24,
        height: 16,
        max_iter: 30,
        tiles_x: 3,
        tiles_y: 2,
        ..mandelbrot::Params::default()
    })
}

fn tiles(k: &Kernel) -> Vec<Vec<u8>> {
    (0..k.task_count())
        .map(|t| {
            let mut b = Vec::new();
            k.run_task(t, &mut b).expect("valid");
            b
        })
        .collect()
}

fn params(k: &Kernel) -> &mandelbrot::Params {
    k.image().expect("an image")
}

/// Preview requests in `out`: (to, task).
fn asked(out: &[Output]) -> Vec<(NodeId, TaskId)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send {
                to,
                msg: EngineMsg::FetchPreview { task, .. },
            } => Some((*to, *task)),
            _ => None,
        })
        .collect()
}

fn no_full_fetch(out: &[Output]) -> bool {
    !out.iter().any(|o| {
        matches!(
            o,
            Output::Send {
                msg: EngineMsg::Fetch { .. },
                ..
            }
        )
    })
}

/// Node 1 (computing nothing, peers 2 and 3) watches node 2's image job, which nodes 2
/// and 3 reported and hold whole; at most `window` requests in flight.
fn watching(window: usize) -> (Engine, JobId, Vec<Vec<u8>>) {
    let k = image();
    let truth = tiles(&k);
    let mut e = watcher(1, &[2, 3]);
    e.config.fetches_max = window;
    let job = peer_job(&mut e, 0, 2, k, 2, 1, 0);
    e.handle_input(Millis(0), Input::Command(Command::Watch { job }));
    drain(&mut e);
    for from in [2, 3] {
        report_and_hold(&mut e, 1, from, job, &truth);
    }
    (e, job, truth)
}

fn preview_msg(job: JobId, task: u32, hash: u64, full: u64, preview: Vec<u8>) -> Input {
    Input::Message {
        from: NodeId(2),
        msg: EngineMsg::Preview {
            job,
            task: TaskId(task),
            hash,
            full,
            preview,
        },
    }
}

#[test]
fn a_watcher_takes_only_previews_that_seal_to_the_validated_hash() {
    let (mut e, job, truth) = watching(2);
    let k = image();
    let p = params(&k);
    let out = drain(&mut e);
    assert!(no_full_fetch(&out), "a watcher fetches no tile");
    assert_eq!(
        asked(&out),
        [(NodeId(2), TaskId(0)), (NodeId(2), TaskId(1))],
        "two in flight (node 3's facts, which make it a holder too, come after them)"
    );
    let true_preview = |t: u32| preview::make(p, t, &truth[t as usize]);
    let hashes: Vec<u64> = (0..6)
        .map(|t| hash_of(&e, job, t, &truth[t as usize]))
        .collect();
    let hash = |t: u32| hashes[t as usize];
    let full = |t: u32| content_hash(&truth[t as usize]);
    let (h0, f0) = (hash(0), full(0));
    assert_eq!(h0, sealed_hash(f0, content_hash(&true_preview(0))));
    // A preview of other pixels with the true tile hash; the true preview named by
    // another hash; the true preview beside a wrong tile hash; one past the size a
    // preview can have; one for a task not asked for.
    let mut junk = true_preview(0);
    junk[1] ^= 1;
    let mut long = true_preview(0);
    long.extend_from_slice(&[0; 64]);
    e.handle_input(Millis(2), preview_msg(job, 0, h0, f0, junk));
    e.handle_input(Millis(2), preview_msg(job, 0, h0 ^ 1, f0, true_preview(0)));
    e.handle_input(Millis(2), preview_msg(job, 0, h0, f0 ^ 1, true_preview(0)));
    e.handle_input(Millis(2), preview_msg(job, 0, h0, f0, long));
    e.handle_input(
        Millis(2),
        preview_msg(job, 4, hash(4), full(4), true_preview(4)),
    );
    let out = drain(&mut e);
    assert_eq!(
        dropped(&out),
        [
            DropReason::PreviewHashMismatch,
            DropReason::PreviewNotValidated,
            DropReason::PreviewHashMismatch,
            DropReason::PreviewTooBig,
            DropReason::PreviewUnsolicited,
        ]
    );
    assert_eq!(e.preview(job, TaskId(0)), None);
    assert_eq!(e.stats().previews_received, 0);
    // True answers are taken, each moving the window on, until every task has one.
    let mut answered = vec![0u32, 1];
    let mut t = 0;
    while t < answered.len() {
        let task = answered[t];
        e.handle_input(
            Millis(3),
            preview_msg(job, task, hash(task), full(task), true_preview(task)),
        );
        let out = drain(&mut e);
        assert!(no_full_fetch(&out));
        answered.extend(asked(&out).into_iter().map(|(_, task)| task.0));
        t += 1;
    }
    answered.sort_unstable();
    assert_eq!(answered, (0..6).collect::<Vec<_>>(), "each asked once");
    for t in 0..6 {
        assert_eq!(e.preview(job, TaskId(t)), Some(&true_preview(t)[..]));
    }
    assert!(e.is_previewed(job));
    assert!(!e.is_assembled(job));
    let bytes: usize = (0..6).map(|t| true_preview(t).len()).sum();
    assert_eq!(e.stats().previews_received, 6);
    assert_eq!(e.stats().preview_bytes, bytes as u64);
    assert!(bytes * 16 <= truth.iter().map(Vec::len).sum::<usize>());
}

#[test]
fn a_preview_request_left_unanswered_goes_to_another_holder() {
    let (mut e, _, _) = watching(1);
    assert_eq!(asked(&drain(&mut e)), [(NodeId(2), TaskId(0))]);
    let timeout = e.config.fetch_timeout_ms;
    e.handle_input(Millis(1 + timeout), Input::Timeout);
    assert_eq!(asked(&drain(&mut e)), [(NodeId(3), TaskId(0))]);
    // The holder asked leaves: its request is due again at once, elsewhere.
    e.handle_input(Millis(2 + timeout), Input::PeerDown(NodeId(3)));
    assert_eq!(asked(&drain(&mut e)), [(NodeId(2), TaskId(0))]);
}

/// A node computing alone (node 2) ran every task of its job `k`; then peer 1 came up.
fn holder(k: Kernel) -> (Engine, JobId) {
    let mut e = node_with(2, 1, []);
    submit_kernel(&mut e, 0, k, 1, 1, 1);
    let job = e.job_ids().next().unwrap();
    let (_, now) = compute_handed_out(&mut e, job, 0, 1);
    e.handle_input(Millis(now + 1), Input::PeerUp(NodeId(1)));
    drain(&mut e);
    (e, job)
}

#[test]
fn a_holder_answers_with_the_preview_of_its_bytes_and_their_own_hash() {
    let k = image();
    let truth = tiles(&k);
    let (mut e, job) = holder(k.clone());
    for t in 0..6 {
        let hash = hash_of(&e, job, t, &truth[t as usize]);
        let ask = |hash| Input::Message {
            from: NodeId(1),
            msg: EngineMsg::FetchPreview {
                job,
                task: TaskId(t),
                hash,
            },
        };
        // Another hash than the one held: nothing.
        e.handle_input(Millis(100), ask(hash ^ 1));
        assert!(
            drain(&mut e)
                .iter()
                .all(|o| !matches!(o, Output::Send { .. }))
        );
        e.handle_input(Millis(100), ask(hash));
        let answer = drain(&mut e).into_iter().find_map(|o| match o {
            Output::Send {
                to,
                msg:
                    EngineMsg::Preview {
                        hash: h,
                        full,
                        preview,
                        ..
                    },
            } => Some((to, h, full, preview)),
            _ => None,
        });
        let want = preview::make(params(&k), t, &truth[t as usize]);
        assert_eq!(
            answer,
            Some((NodeId(1), hash, content_hash(&truth[t as usize]), want))
        );
    }
    // A job without pictures has no previews: asked for one, the holder refuses.
    let (mut e, job) = holder(kernel(2));
    let mut bytes = Vec::new();
    kernel(2).run_task(0, &mut bytes).unwrap();
    let hash = hash_of(&e, job, 0, &bytes);
    assert_eq!(hash, content_hash(&bytes), "no seal without a preview");
    e.handle_input(
        Millis(100),
        Input::Message {
            from: NodeId(1),
            msg: EngineMsg::FetchPreview {
                job,
                task: TaskId(0),
                hash,
            },
        },
    );
    assert_eq!(dropped(&drain(&mut e)), [DropReason::PreviewOfNoImage]);
}

#[test]
fn watching_a_job_without_pictures_assembles_it() {
    let mut e = watcher(1, &[2]);
    let job = peer_job(&mut e, 0, 2, kernel(2), 1, 1, 0);
    e.handle_input(Millis(0), Input::Command(Command::Watch { job }));
    let truth = tiles(&kernel(2));
    report_and_hold(&mut e, 1, 2, job, &truth);
    let out = drain(&mut e);
    assert!(asked(&out).is_empty());
    assert_eq!(
        out.iter()
            .filter(|o| matches!(
                o,
                Output::Send {
                    msg: EngineMsg::Fetch { .. },
                    ..
                }
            ))
            .count(),
        2
    );
}

#[test]
fn a_task_nobody_can_serve_takes_no_place_in_the_window() {
    // Task 0 is held only by node 4, which then leaves; every other task by node 2.
    let k = image();
    let truth = tiles(&k);
    let mut e = watcher(1, &[2, 4]);
    e.config.fetches_max = 1;
    let job = peer_job(&mut e, 0, 2, k, 1, 1, 0);
    e.handle_input(Millis(0), Input::Command(Command::Watch { job }));
    let facts = |tasks: std::ops::Range<u32>| {
        use crate::wire::{Fact, TaskFact};
        tasks
            .flat_map(|t| {
                let h = hash_of(&e, job, t, &truth[t as usize]);
                [Fact::Report(h), Fact::Holding(h)].map(|fact| TaskFact {
                    task: TaskId(t),
                    fact,
                })
            })
            .collect::<Vec<_>>()
    };
    let (only_4, the_rest) = (facts(0..1), facts(1..6));
    for (from, facts) in [(4, only_4), (2, the_rest)] {
        e.handle_input(
            Millis(1),
            Input::Message {
                from: NodeId(from),
                msg: EngineMsg::Facts { job, facts },
            },
        );
    }
    drain(&mut e);
    e.handle_input(Millis(2), Input::PeerDown(NodeId(4)));
    // Task 0's request to node 4 is due elsewhere, and there is no elsewhere: the
    // window goes to task 1.
    let timeout = e.config.fetch_timeout_ms;
    e.handle_input(Millis(3 + timeout), Input::Timeout);
    let out = drain(&mut e);
    assert_eq!(asked(&out), [(NodeId(2), TaskId(1))]);
}

#[test]
fn holders_that_failed_a_task_twice_are_all_asked_again() {
    let mut e = watcher(1, &[2]);
    e.config.fetches_max = 1;
    let k = image();
    let truth = tiles(&k);
    let job = peer_job(&mut e, 0, 2, k, 1, 1, 0);
    e.handle_input(Millis(0), Input::Command(Command::Watch { job }));
    report_and_hold(&mut e, 1, 2, job, &truth);
    assert_eq!(asked(&drain(&mut e)), [(NodeId(2), TaskId(0))]);
    let timeout = e.config.fetch_timeout_ms;
    let mut now = 1;
    let mut asked_again = 0;
    // Node 2 never answers: it is asked, given up on after two failures, asked again.
    for _ in 0..8 {
        now += timeout;
        e.handle_input(Millis(now), Input::Timeout);
        asked_again += asked(&drain(&mut e))
            .iter()
            .filter(|(to, t)| *to == NodeId(2) && *t == TaskId(0))
            .count();
    }
    assert!(
        asked_again >= 4,
        "asked again {asked_again} times in 8 timeouts"
    );
}

#[test]
fn preview_requests_are_answered_within_the_askers_byte_budget() {
    let k = image();
    let truth = tiles(&k);
    let (mut e, job) = holder(k.clone());
    // Room for one 2 × 2 preview (4 bytes) per sync interval.
    e.config.served_bytes_per_sync_max = 4;
    let ask = |e: &mut Engine, at: u64, t: u32| {
        let hash = hash_of(e, job, t, &truth[t as usize]);
        e.handle_input(
            Millis(at),
            Input::Message {
                from: NodeId(1),
                msg: EngineMsg::FetchPreview {
                    job,
                    task: TaskId(t),
                    hash,
                },
            },
        );
        drain(e)
    };
    let answered = |out: &[Output]| {
        out.iter()
            .filter(|o| {
                matches!(
                    o,
                    Output::Send {
                        msg: EngineMsg::Preview { .. },
                        ..
                    }
                )
            })
            .count()
    };
    assert_eq!(answered(&ask(&mut e, 100, 0)), 1);
    // Over budget, the request waits (neither answered nor dropped)...
    let out = ask(&mut e, 100, 1);
    assert_eq!((answered(&out), dropped(&out)), (0, vec![]));
    // ...and is answered when the budget renews, a sync interval later.
    let sync = e.config.sync_ms;
    e.handle_input(Millis(99 + sync), Input::Timeout);
    assert_eq!(answered(&drain(&mut e)), 0);
    e.handle_input(Millis(100 + sync), Input::Timeout);
    assert_eq!(answered(&drain(&mut e)), 1);
}

/// A member told to assemble a job merges the validated results it already holds
/// (copies stored with it) with those it fetches; holding them all, it merges at once.
#[test]
fn told_to_assemble_it_merges_what_it_holds_with_what_it_fetches() {
    let k = image();
    let truth = tiles(&k);
    let reference = k.run_all().expect("valid");
    let done = |out: &[Output]| -> Vec<JobOutput> {
        out.iter()
            .filter_map(|o| match o {
                Output::Event(Event::JobDone { output, .. }) => Some(output.clone()),
                _ => None,
            })
            .collect()
    };
    for held in [3, 6] {
        // Node 1 and the submitter, node 2: with r = 2 node 1 may keep every result.
        let mut e = watcher(1, &[2]);
        let job = peer_job(&mut e, 0, 2, k.clone(), 2, 1, 0);
        report_and_hold(&mut e, 1, 2, job, &truth);
        // Task `t`'s result as sent: its id, hash and bytes.
        let sent = |t: u32, e: &Engine| {
            let bytes = truth[t as usize].clone();
            (TaskId(t), hash_of(e, job, t, &bytes), bytes)
        };
        let from_2 = |e: &mut Engine, at: u64, msg: EngineMsg| {
            e.handle_input(
                Millis(at),
                Input::Message {
                    from: NodeId(2),
                    msg,
                },
            );
        };
        for t in 0..held {
            let (task, hash, payload) = sent(t, &e);
            from_2(
                &mut e,
                2,
                EngineMsg::Store {
                    job,
                    task,
                    hash,
                    payload,
                },
            );
        }
        assert!(dropped(&drain(&mut e)).is_empty());
        e.handle_input(Millis(3), Input::Command(Command::Assemble { job }));
        let out = drain(&mut e);
        let fetched: Vec<u32> = out
            .iter()
            .filter_map(|o| match o {
                Output::Send {
                    msg: EngineMsg::Fetch { task, .. },
                    ..
                } => Some(task.0),
                _ => None,
            })
            .collect();
        assert_eq!(fetched, (held..6).collect::<Vec<_>>());
        if held == 6 {
            assert_eq!(done(&out), std::slice::from_ref(&reference));
            continue;
        }
        assert!(done(&out).is_empty());
        for t in held..6 {
            let (task, hash, payload) = sent(t, &e);
            from_2(
                &mut e,
                4,
                EngineMsg::Payload {
                    job,
                    task,
                    hash,
                    payload,
                },
            );
        }
        assert_eq!(done(&drain(&mut e)), std::slice::from_ref(&reference));
    }
}
