//! Whole nodes ([`MeshNode`]: membership, the engine, chunking and the bulk queue
//! together) wired back to back in memory, on virtual time ([`node_core::testkit::Net`]):
//! a job whose results are several data-channel messages each runs to the one-process
//! output, through a departure and a peer that sends broken chunk streams.

use node_core::chunk::CHUNK_DATA_MAX;
use node_core::engine::{Command, DropReason, Event};
use node_core::job::TaskId;
use node_core::kernels::{Kernel, mandelbrot};
use node_core::membership::{LeftReason, MembershipConfig, MeshEvent, Micros};
use node_core::node::{Action, BULK_QUEUED_MAX, NodeEvent};
use node_core::signal::{PeerId, PeerKind};
use node_core::testkit::{Net, info};
use node_core::transport::TransportEvent;
use node_core::wire::{self, ConsoleCmd, ConsoleState, EngineMsg, MESSAGE_LEN_MAX, WireMsg};

/// 256×256 in 2×2 tiles: every result is 64 KiB (packed, a few KiB).
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

/// Twice the size deep in the seahorse valley, where nearly every pixel differs from
/// its neighbours: every result is 64 KiB (a byte a pixel) and, even packed, more than
/// one data-channel message but one.
fn detailed_job() -> Kernel {
    Kernel::Mandelbrot(mandelbrot::Params {
        x_min: -0.7465,
        x_max: -0.7435,
        y_min: 0.1125,
        y_max: 0.1155,
        width: 512,
        height: 512,
        max_iter: 300,
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
    let kernel = detailed_job();
    assert!(kernel.task_output_len_max() > 3 * MESSAGE_LEN_MAX);
    let mut net = Net::new(3);
    net.run_until(500); // the Hello exchange
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
fn results_travel_packed_and_fewer_bytes_cross_the_wire_than_the_results_hold() {
    // Each of 4 results of 64 KiB goes to the holders that lack it and to node 0, which
    // assembles: unpacked, more than the 256 KiB of the results cross the wire; packed,
    // a small part of it (these tiles shrink more than ten times).
    let kernel = image_job();
    let mut net = Net::new(3);
    net.run_until(500);
    submit(&mut net, &kernel, 2, 1);
    net.run(1, 60_000);
    assert_eq!(net.done, vec![kernel.run_all().unwrap()]);
    let raw = kernel.task_count() as u64 * kernel.task_output_len_max() as u64;
    assert!(
        net.sent_bytes * 4 < raw,
        "{} bytes crossed the wire for {raw} bytes of results",
        net.sent_bytes
    );
}

#[test]
fn a_node_computes_only_with_workers_and_starts_when_given_some() {
    let kernel = image_job();
    let mut net = Net::with_workers(&[0, 0]);
    net.run_until(500);
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
    net.run_until(500);
    submit(&mut net, &kernel, 2, 1);
    // Until some results exist, then kill a node that computed (node 0 submits).
    let start = net.now.0;
    net.run_until((start + 30_000) / 1000);
    net.kill(2);
    net.run(1, 60_000);
    assert_eq!(net.done, vec![kernel.run_all().unwrap()]);
}

/// The copies' count a checker reads (`NodeEvent::CopiesShort`, `Engine::copies_short`):
/// after a holder departs, re-replication copies its results to the next ranked members
/// (within a few hundred milliseconds here, between two counts, so no short count may
/// be told at all), and every living node's count, as counted and as told, ends at
/// nothing. With `rereplicate` skipped,
/// five results stay short, told by every node.
#[test]
fn a_departed_holders_copies_are_made_again_and_the_count_says_so() {
    // Sixteen tasks, so that the departed node is a wanted holder of some whose next
    // ranked member holds no copy yet (the submitter, node 0, holds every one).
    let Kernel::Mandelbrot(p) = image_job() else {
        unreachable!("a picture")
    };
    let kernel = Kernel::Mandelbrot(mandelbrot::Params {
        tiles_x: 4,
        tiles_y: 4,
        ..p
    });
    let mut net = Net::new(5);
    for n in &mut net.nodes {
        n.watch_copies();
    }
    net.run_until(500);
    submit(&mut net, &kernel, 2, 1);
    net.run(1, 60_000);
    assert_eq!(net.done, vec![kernel.run_all().unwrap()]);
    let told = |net: &Net, i: usize| {
        net.events
            .iter()
            .rev()
            .find_map(|(at, e)| match e {
                NodeEvent::CopiesShort(short) if *at == i => Some(short.clone()),
                _ => None,
            })
            .unwrap_or_default()
    };
    let short = |net: &Net, i: usize| net.nodes[i].engine().map(|e| e.copies_short());
    net.run_until(net.now.0 / 1000 + 5_000);
    for i in 0..5 {
        assert_eq!(short(&net, i), Some(Default::default()), "node {i} before");
        assert_eq!(
            told(&net, i),
            Default::default(),
            "node {i} before, as told"
        );
    }
    let before = net.events.len();
    // Node 2 computed and holds some of the results.
    net.kill(2);
    net.run_until(net.now.0 / 1000 + 10_000);
    let copied = net.events[before..]
        .iter()
        .filter(|(_, e)| matches!(e, NodeEvent::Engine(Event::ResultReplicated { .. })))
        .count();
    assert!(
        copied > 0,
        "the departure left results short of a copy, and they were copied"
    );
    for i in [0, 1, 3, 4] {
        assert_eq!(
            short(&net, i),
            Some(Default::default()),
            "node {i}: every copy made again"
        );
        assert_eq!(told(&net, i), Default::default(), "node {i}, as told");
    }
}

#[test]
fn broken_chunk_streams_are_counted_and_ignored_while_the_job_completes() {
    let kernel = detailed_job();
    let mut net = Net::new(3);
    net.run_until(500);
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
    // Streams 1, 3 (its junk reassembles to nothing), 4 and 5 refused, and the chunks
    // of stream 2 and the extra one of 3; stream 6 is cut off by the next stream node 2
    // sends, if it sends one, or dropped when it stalls.
    assert!(r.refused >= 4, "{r:?}");
    assert!(r.completed > 0, "{r:?}");
    net.run_until(net.now.0 / 1000 + 6_000);
    assert_eq!(net.nodes[0].reassembly().reserved(), 0);
}

#[test]
fn hostile_packed_messages_are_counted_and_ignored_while_the_job_completes() {
    let kernel = detailed_job();
    let mut net = Net::new(3);
    net.run_until(500);
    submit(&mut net, &kernel, 2, 1);
    let job = net.nodes[0].engine().unwrap().job_ids().next().unwrap();
    let to = net.ids[0].clone();
    // A real tile's store, packed as node 2 would pack it.
    let mut tile = Vec::new();
    kernel.run_task(0, &mut tile).unwrap();
    let store = |payload: Vec<u8>, hash| {
        WireMsg::Engine(EngineMsg::Store {
            job,
            task: TaskId(0),
            hash,
            payload,
        })
    };
    let good_hash = node_core::job::result_hash(&kernel, TaskId(0), &tile);
    let WireMsg::Packed { len, data } = wire::pack(store(tile.clone(), good_hash)) else {
        panic!("a tile packs")
    };
    let packed = |len, data: Vec<u8>| WireMsg::Packed { len, data };
    let bad = [
        // Truncated.
        packed(len, data[..data.len() / 2].to_vec()),
        // Decompresses past its declared size.
        packed(len - 100, data.clone()),
        // A bomb: 64 bytes that claim 4 MiB.
        packed(4 << 20, data[..64].to_vec()),
        // Packed inside packed.
        {
            let inner = wire::encode(&wire::pack(store(tile.clone(), good_hash)));
            packed(inner.len() as u32, lz4_flex::block::compress(&inner))
        },
    ];
    // And a valid stream whose bytes do not hash to the hash it names.
    let mut wrong = tile.clone();
    wrong[1000] ^= 1;
    let lying = wire::pack(store(wrong, good_hash));
    assert!(matches!(lying, WireMsg::Packed { .. }));
    for msg in bad.into_iter().chain([lying]) {
        let pieces = node_core::chunk::split(&msg, 900 + net.sent as u32).unwrap();
        for bytes in pieces {
            net.send(2, &to, bytes);
        }
    }
    net.run(1, 60_000);
    assert_eq!(net.done, vec![kernel.run_all().unwrap()]);
    assert_eq!(net.nodes[0].stats().unpack_refused, 4);
    let mismatches = net
        .events
        .iter()
        .filter(|(i, e)| {
            *i == 0
                && matches!(
                    e,
                    NodeEvent::Engine(Event::Dropped {
                        why: DropReason::StoreHashMismatch,
                        ..
                    })
                )
        })
        .count();
    assert_eq!(mismatches, 1);
    // Every refusal is in the log with its reason.
    let refusals = net
        .events
        .iter()
        .filter(|(i, e)| {
            *i == 0
                && matches!(e, NodeEvent::Mesh(MeshEvent::Dropped { why, .. }) if why.contains("packed") || why.contains("over the limit"))
        })
        .count();
    assert_eq!(refusals, 4);
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
    // all, many times, by a peer that never takes its bytes off the queue: ten times a
    // second, within the bytes it may be served per sync interval (the results travel
    // packed, so it takes a few seconds to fill the queue).
    let kernel = detailed_job();
    let (mut net, peer) = node_and_peer(&kernel);
    let now = net.now;
    let n = &mut net.nodes[0];
    let job = n.engine().unwrap().job_ids().next().unwrap();
    let tasks = kernel.task_count();
    for round in 0..200u64 {
        let at = Micros(now.0 + round * 100_000);
        for t in 0..tasks {
            let task = node_core::job::TaskId(t);
            let hash = node_core::job::result_hash(
                &kernel,
                task,
                n.engine().unwrap().held(job, task).unwrap(),
            );
            let fetch = wire::encode(&WireMsg::Engine(node_core::wire::EngineMsg::Fetch {
                job,
                task,
                hash,
            }));
            n.handle_transport(at, TransportEvent::Message(peer.clone(), fetch));
        }
        // A heartbeat answer is an action at once, whatever waits in the bulk queue.
        let ping = wire::encode(&WireMsg::Ping { seq: round as u32 });
        n.handle_transport(at, TransportEvent::Message(peer.clone(), ping));
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
    // The queue stopped at its bound; the rest was dropped and counted. (Taken off a
    // read window at a time, the peer reporting each read whole.)
    let mut queued = 0;
    let end = Micros(now.0 + 200 * 100_000);
    loop {
        while let Some(b) = n.pop_bulk(&peer) {
            queued += b.len();
        }
        let read = wire::encode(&WireMsg::Read { bytes: u64::MAX });
        n.handle_transport(end, TransportEvent::Message(peer.clone(), read));
        while n.poll_action().is_some() {}
        if n.bulk_waiting().is_empty() {
            break;
        }
    }
    assert!(queued <= BULK_QUEUED_MAX, "{queued}");
    assert!(queued > BULK_QUEUED_MAX / 2, "{queued}");
    assert!(n.stats().bulk_dropped > 0, "{:?}", n.stats());
}

#[test]
fn a_bulk_stream_goes_after_waiting_results_in_bounded_messages_and_its_ack_is_reported() {
    let kernel = image_job();
    let (mut net, peer) = node_and_peer(&kernel);
    let now = net.now;
    let n = &mut net.nodes[0];
    let job = n.engine().unwrap().job_ids().next().unwrap();
    let task = TaskId(0);
    let hash =
        node_core::job::result_hash(&kernel, task, n.engine().unwrap().held(job, task).unwrap());
    let fetch = wire::encode(&WireMsg::Engine(EngineMsg::Fetch { job, task, hash }));
    n.handle_transport(now, TransportEvent::Message(peer.clone(), fetch));
    while n.poll_action().is_some() {}
    let total = 100_000u64;
    n.start_bulk(now, peer.clone(), total);
    assert_eq!(n.bulk_waiting(), vec![peer.clone()]);
    let mut kinds = Vec::new();
    let mut bulk_bytes = 0;
    while let Some(bytes) = n.pop_bulk(&peer) {
        assert!(bytes.len() <= MESSAGE_LEN_MAX);
        match wire::decode(&bytes).unwrap() {
            WireMsg::Bulk { data } => {
                bulk_bytes += data.len() as u64;
                kinds.push("bulk");
            }
            WireMsg::BulkEnd { .. } => kinds.push("end"),
            _ => kinds.push("result"),
        }
    }
    kinds.dedup();
    assert_eq!(kinds, ["result", "bulk", "end"]);
    assert_eq!(bulk_bytes, total);
    assert!(n.bulk_waiting().is_empty());
    // The peer counted every byte: the stream is reported done, once.
    let ack = wire::encode(&WireMsg::BulkAck {
        seq: 1,
        bytes: total,
    });
    let later = Micros(now.0 + 250_000);
    n.handle_transport(later, TransportEvent::Message(peer.clone(), ack.clone()));
    n.handle_transport(later, TransportEvent::Message(peer.clone(), ack));
    let done: Vec<(u64, f64)> = std::iter::from_fn(|| n.poll_action())
        .filter_map(|a| match a {
            Action::Event(NodeEvent::BulkDone { bytes, secs, .. }) => Some((bytes, secs)),
            _ => None,
        })
        .collect();
    assert_eq!(done, [(total, 0.25)]);
}

// ---- the presenter's console ----

/// Node `from` gives `cmd` to node `to` from its console.
fn console(net: &mut Net, from: usize, to: usize, cmd: ConsoleCmd) {
    let (now, target) = (net.now, net.ids[to].clone());
    net.nodes[from]
        .console(now, &target, cmd)
        .expect("a member");
    net.drain(from);
}

fn left_by_heartbeat(net: &Net, watcher: usize, gone: usize) -> bool {
    net.events.iter().any(|(i, e)| {
        *i == watcher
            && matches!(e, NodeEvent::Mesh(MeshEvent::PeerLeft { peer, reason: LeftReason::Heartbeat, .. })
                if peer.id == net.ids[gone])
    })
}

#[test]
fn a_presenter_fails_a_node_and_the_others_notice_its_silence() {
    let kernel = image_job();
    let mut net = Net::new(4);
    net.run_until(500);
    submit(&mut net, &kernel, 2, 1);
    let start = net.now.0;
    net.run_until((start + 30_000) / 1000);
    console(&mut net, 0, 2, ConsoleCmd::Fail);
    let failed_at_ms = net.now.0 / 1000;
    net.run_until((net.now.0 + 100_000) / 1000);
    assert!(net.nodes[2].is_failed());
    // Silent: no timer, and nothing it is sent makes it answer.
    assert_eq!(net.nodes[2].poll_timeout(), None);
    let sent = net.sent;
    let (now, from) = (net.now, net.ids[1].clone());
    let ping = wire::encode(&WireMsg::Ping { seq: 9 });
    net.nodes[2].handle_transport(now, TransportEvent::Message(from, ping));
    assert!(net.nodes[2].poll_action().is_none());
    assert_eq!(net.sent, sent);
    net.run(1, 60_000);
    assert_eq!(net.done, vec![kernel.run_all().unwrap()]);
    // The job may finish without node 2 (when nothing it held was still needed); its
    // silence is noticed within the dead-after time in any case.
    let m = MembershipConfig::default();
    net.run_until(failed_at_ms + m.dead_after_ms + 2 * m.heartbeat_ms);
    for watcher in [0, 1, 3] {
        assert!(
            left_by_heartbeat(&net, watcher, 2),
            "node {watcher} did not see node 2 go silent"
        );
    }
}

#[test]
fn console_commands_from_a_member_without_the_key_are_ignored_and_counted() {
    let mut net = Net::new(3);
    net.run_until(500);
    // Node 1 has no presenter key; node 2 must not obey it.
    for cmd in [
        ConsoleCmd::Fail,
        ConsoleCmd::Leave,
        ConsoleCmd::Lie { on: true },
        ConsoleCmd::Pause { on: true },
        ConsoleCmd::Cut {
            peer: net.ids[0].clone(),
        },
    ] {
        console(&mut net, 1, 2, cmd);
    }
    net.run_until(net.now.0 / 1000 + 3_000);
    let n = &net.nodes[2];
    assert!(!n.is_failed() && !n.is_lying());
    assert!(!n.engine().unwrap().is_paused());
    assert_eq!(n.stats().console_refused, 5);
    assert_eq!(n.membership().unwrap().connected().count(), 2);
    let refused = net
        .events
        .iter()
        .filter(|(i, e)| *i == 2 && matches!(e, NodeEvent::Console { obeyed: false, .. }))
        .count();
    assert_eq!(refused, 5);
    assert!(
        !net.events
            .iter()
            .any(|(_, e)| matches!(e, NodeEvent::Mesh(MeshEvent::PeerLeft { .. })))
    );
}

#[test]
fn a_member_that_serves_changed_bytes_is_kept_out_by_the_hash_checks() {
    // Node 2 reports honestly (no quorum can catch it) but changes every copy it
    // stores and every payload it serves. Node 0 assembles the job from the others, or
    // computes again what only node 2 held, and its output is the true one.
    let kernel = image_job();
    let mut net = Net::new(3);
    let hostile = std::mem::replace(
        &mut net.nodes[2],
        node_core::node::MeshNode::new(MembershipConfig::default(), String::new(), 1),
    );
    net.nodes[2] = hostile.serving_lies();
    net.run_until(500);
    submit(&mut net, &kernel, 2, 1);
    net.run(1, 60_000);
    assert_eq!(net.done, vec![kernel.run_all().unwrap()]);
    let hostile = node_core::node::node_id(&net.ids[2]);
    let kept_out = net
        .events
        .iter()
        .filter(|(i, e)| {
            *i != 2
                && matches!(e, NodeEvent::Engine(Event::Dropped { from, why })
                    if *from == hostile
                        && matches!(why, DropReason::StoreHashMismatch | DropReason::PayloadHashMismatch))
        })
        .count();
    assert!(kept_out > 0, "nothing node 2 changed was ever sent");
    assert!(
        !net.events
            .iter()
            .any(|(_, e)| matches!(e, NodeEvent::Engine(Event::LiarMarked { .. }))),
        "its reports are honest: nobody may mark it a liar"
    );
}

#[test]
fn a_liar_made_by_the_console_is_caught_by_the_quorum() {
    let kernel = image_job();
    let mut net = Net::new(3);
    net.run_until(500);
    console(&mut net, 0, 1, ConsoleCmd::Lie { on: true });
    submit(&mut net, &kernel, 2, 2);
    net.run(1, 60_000);
    assert!(net.nodes[1].is_lying());
    assert_eq!(net.done, vec![kernel.run_all().unwrap()]);
    let liar = node_core::node::node_id(&net.ids[1]);
    assert!(
        net.events.iter().any(|(i, e)| *i == 0
            && matches!(e, NodeEvent::Engine(Event::LiarMarked { node, .. }) if *node == liar)),
        "node 0 never marked the liar"
    );
    // A reset: it stops lying, and every member forgets whom it caught; a job after it
    // places tasks on the former liar again, and its results count.
    console(&mut net, 0, 1, ConsoleCmd::Lie { on: false });
    for i in 0..3 {
        console(&mut net, 0, i, ConsoleCmd::Forgive);
    }
    net.run_until(net.now.0 / 1000 + 100);
    for n in &net.nodes {
        let e = n.engine().unwrap();
        assert_eq!(e.liars().count(), 0);
        assert!(e.job_ids().all(|j| e.caught_in(j).next().is_none()));
    }
    let from = net.events.len();
    submit(&mut net, &kernel, 3, 3);
    net.run(2, 60_000);
    assert_eq!(net.done.len(), 2);
    let computed_by_1 = net.events[from..]
        .iter()
        .any(|(i, e)| *i == 1 && matches!(e, NodeEvent::Engine(Event::TaskComputed { .. })));
    let marked_again = net.events[from..]
        .iter()
        .any(|(_, e)| matches!(e, NodeEvent::Engine(Event::LiarMarked { .. })));
    assert!(computed_by_1 && !marked_again);
}

#[test]
fn a_cut_link_is_a_partition_for_its_two_ends_and_heals_when_restored() {
    let kernel = image_job();
    let mut net = Net::new(3);
    net.run_until(500);
    let (a, b) = (net.ids[1].clone(), net.ids[2].clone());
    console(&mut net, 0, 1, ConsoleCmd::Cut { peer: b.clone() });
    console(&mut net, 0, 2, ConsoleCmd::Cut { peer: a.clone() });
    // Once both ends have the command (what was already on its way is dropped),
    // nothing crosses the cut.
    net.run_until(net.now.0 / 1000 + 100);
    let dropped = net.nodes[1].membership().unwrap().stats().dropped_cut;
    submit(&mut net, &kernel, 2, 1);
    net.run(1, 60_000);
    assert_eq!(net.done, vec![kernel.run_all().unwrap()]);
    // Each end lost the other, without a departure, and both still see node 0.
    let m1 = net.nodes[1].membership().unwrap();
    assert!(m1.peer(&b).is_some_and(|p| p.cut));
    assert!(
        !net.nodes[1]
            .engine()
            .unwrap()
            .peers()
            .any(|n| n == node_core::node::node_id(&b))
    );
    assert_eq!(
        m1.stats().dropped_cut,
        dropped,
        "node 2 sent across the cut"
    );
    assert!(!left_by_heartbeat(&net, 1, 2) && !left_by_heartbeat(&net, 2, 1));
    assert!(
        net.events
            .iter()
            .any(|(i, e)| *i == 1 && matches!(e, NodeEvent::Mesh(MeshEvent::LinkCut { .. })))
    );
    console(&mut net, 0, 1, ConsoleCmd::Restore { peer: b.clone() });
    console(&mut net, 0, 2, ConsoleCmd::Restore { peer: a.clone() });
    net.run_until(net.now.0 / 1000 + 3_000);
    for (i, other) in [(1, &b), (2, &a)] {
        let n = &net.nodes[i];
        assert!(!n.membership().unwrap().peer(other).unwrap().cut);
        assert!(
            n.engine()
                .unwrap()
                .peers()
                .any(|p| p == node_core::node::node_id(other))
        );
    }
    assert!(!left_by_heartbeat(&net, 1, 2) && !left_by_heartbeat(&net, 2, 1));
}

#[test]
fn a_paused_mesh_starts_nothing_and_a_step_starts_one_task_per_node() {
    let kernel = image_job();
    let mut net = Net::new(2);
    net.run_until(500);
    for i in 0..2 {
        console(&mut net, 0, i, ConsoleCmd::Pause { on: true });
    }
    submit(&mut net, &kernel, 1, 1);
    net.run(1, net.now.0 / 1000 + 2_000);
    let started = |net: &Net| {
        net.events
            .iter()
            .filter(|(_, e)| matches!(e, NodeEvent::Engine(Event::TaskStarted { .. })))
            .count()
    };
    assert_eq!(started(&net), 0);
    for i in 0..2 {
        console(&mut net, 0, i, ConsoleCmd::Step);
    }
    net.run(1, net.now.0 / 1000 + 2_000);
    assert_eq!(started(&net), 2);
    assert!(net.done.is_empty());
    for i in 0..2 {
        console(&mut net, 0, i, ConsoleCmd::Pause { on: false });
    }
    net.run(1, net.now.0 / 1000 + 60_000);
    assert_eq!(net.done, vec![kernel.run_all().unwrap()]);
}

#[test]
fn slow_motion_spaces_every_task_out_and_leave_ends_the_node() {
    let kernel = image_job();
    let mut net = Net::new(2);
    net.run_until(500);
    for i in 0..2 {
        console(&mut net, 0, i, ConsoleCmd::Pacing { ms: 1_000 });
    }
    let start = net.now.0;
    submit(&mut net, &kernel, 1, 1);
    net.run(1, 60_000);
    assert_eq!(net.done, vec![kernel.run_all().unwrap()]);
    // 4 tasks on 2 one-slot nodes, a second's pause after each: at least 1 s more
    // than the 2 × 20 ms of computing.
    assert!(net.now.0 - start >= 1_000_000, "{} µs", net.now.0 - start);
    console(&mut net, 0, 1, ConsoleCmd::Leave);
    net.run_until(net.now.0 / 1000 + 1_000);
    assert!(!net.alive[1], "node 1 did not leave");
    assert!(net.events.iter().any(|(i, e)| *i == 0
        && matches!(e, NodeEvent::Mesh(MeshEvent::PeerLeft { peer, .. }) if peer.id == net.ids[1])));
}

/// What node `at` holds of node `of`'s console state (plain when it holds none).
fn state_of(net: &Net, at: usize, of: usize) -> ConsoleState {
    net.nodes[at]
        .member_states()
        .get(&net.ids[of])
        .cloned()
        .unwrap_or_default()
}

#[test]
fn every_member_and_a_newcomer_learn_a_members_console_state_and_its_reset() {
    let mut net = Net::new(3);
    net.run_until(500); // the Hello exchange
    console(&mut net, 0, 1, ConsoleCmd::Pause { on: true });
    console(&mut net, 0, 1, ConsoleCmd::Lie { on: true });
    console(&mut net, 0, 1, ConsoleCmd::Pacing { ms: 600 });
    let two = net.ids[2].clone();
    console(&mut net, 0, 1, ConsoleCmd::Cut { peer: two.clone() });
    net.run_until(1_000);
    let told = ConsoleState {
        paused: true,
        pacing_ms: 600,
        lying: true,
        cut: vec![net.ids[2].clone()],
    };
    assert_eq!(net.nodes[1].console_state(), told);
    assert_eq!(state_of(&net, 0, 1), told, "the presenter hears it");
    // Node 2's link to node 1 was cut last: it holds what it heard before.
    let before_cut = ConsoleState {
        cut: Vec::new(),
        ..told.clone()
    };
    assert_eq!(state_of(&net, 2, 1), before_cut);
    // A member that joins later (a reloaded tab) learns it as it connects.
    let late = net.add(1);
    net.run_until(1_500);
    assert_eq!(state_of(&net, late, 1), told, "the newcomer learns it");
    let said = net.events.iter().any(|(i, e)| {
        *i == late && matches!(e, NodeEvent::ConsoleState { peer, state } if *peer == net.ids[1] && *state == told)
    });
    assert!(said, "the newcomer's shell is told");
    // Undone command by command, it is plain again everywhere that heard it.
    console(&mut net, 0, 1, ConsoleCmd::Pause { on: false });
    console(&mut net, 0, 1, ConsoleCmd::Lie { on: false });
    console(&mut net, 0, 1, ConsoleCmd::Pacing { ms: 0 });
    console(&mut net, 0, 1, ConsoleCmd::Restore { peer: two });
    net.run_until(2_000);
    for at in [0, 2, late] {
        assert_eq!(
            state_of(&net, at, 1),
            ConsoleState::default(),
            "at node {at}"
        );
    }
    assert!(net.nodes[0].member_states().is_empty());
    // A member gone for good takes its state with it.
    console(&mut net, 0, 2, ConsoleCmd::Pause { on: true });
    net.run_until(2_500);
    assert!(state_of(&net, 0, 2).paused);
    net.kill(2);
    net.run_until(3_000);
    assert_eq!(state_of(&net, 0, 2), ConsoleState::default());
}

#[test]
fn a_failed_member_hears_only_a_revive_then_comes_back_and_computes_again() {
    let mut net = Net::new(3);
    net.run_until(500);
    console(&mut net, 0, 2, ConsoleCmd::Lie { on: true });
    // It fails in the middle of a computation, whose output it then throws away.
    submit(&mut net, &image_job(), 1, 1);
    let computing = |net: &Net| {
        net.events
            .iter()
            .any(|(i, e)| *i == 2 && matches!(e, NodeEvent::Engine(Event::TaskStarted { .. })))
    };
    let mut t = net.now.0 / 1000;
    while !computing(&net) && t < 5_000 {
        t += 1;
        net.run_until(t);
    }
    assert!(computing(&net), "node 2 started a task");
    console(&mut net, 0, 2, ConsoleCmd::Fail);
    // Silent: the others take it for gone, and finish the job without it.
    net.run(1, 10_000);
    assert_eq!(net.done.len(), 1);
    net.run_until(net.now.0 / 1000 + 5_000);
    let gone = |net: &Net, at: usize| {
        net.nodes[at]
            .membership()
            .and_then(|m| m.peer(&net.ids[2]))
            .is_none_or(|p| p.state != node_core::membership::PeerState::Connected)
    };
    assert!(gone(&net, 0) && gone(&net, 1));
    // A revive of a member that is not failed changes nothing there.
    let presenter = net.ids[0].clone();
    net.input(1, TransportEvent::Revive(presenter.clone()));
    assert!(
        !net.events
            .iter()
            .any(|(i, e)| *i == 1 && matches!(e, NodeEvent::Revived { .. }))
    );
    // Anything but a revive leaves the failed member silent.
    let before = net.sent;
    net.input(2, TransportEvent::ChannelOpen(net.ids[1].clone()));
    assert_eq!(net.sent, before, "a failed member says nothing");
    net.input(2, TransportEvent::Revive(presenter));
    assert!(!net.nodes[2].is_failed());
    assert!(
        !net.nodes[2].is_lying(),
        "a revive ends the lie it was told before"
    );
    assert!(
        net.events
            .iter()
            .any(|(i, e)| *i == 2 && matches!(e, NodeEvent::Revived { .. }))
    );
    let revived_at = net.events.len();
    net.run_until(net.now.0 / 1000 + 1_000);
    assert!(!gone(&net, 0) && !gone(&net, 1), "the others see it back");
    // It computes again, with the slot its lost computation held: a job that needs
    // every member's result completes.
    submit(&mut net, &image_job(), 3, 3);
    net.run(2, 120_000);
    let want = image_job().run_all().unwrap();
    assert!(
        net.done.len() == 2 && net.done.iter().all(|o| *o == want),
        "{} of 2 jobs done, every output the one-process output: {}",
        net.done.len(),
        net.done.iter().all(|o| *o == want)
    );
    let computed_by_2 = net.events[revived_at..]
        .iter()
        .any(|(i, e)| *i == 2 && matches!(e, NodeEvent::Engine(Event::TaskComputed { .. })));
    assert!(computed_by_2, "the revived member computed");
}

// ---- the steal grace ----

#[test]
fn the_steal_grace_follows_the_slowest_round_trip() {
    use node_core::node::steal_grace_ms;
    assert_eq!(steal_grace_ms(0.0, 200), 200, "nothing measured");
    assert_eq!(steal_grace_ms(f64::NAN, 200), 200);
    assert_eq!(steal_grace_ms(0.4, 200), 20, "loopback: the floor");
    assert_eq!(steal_grace_ms(30.0, 200), 120, "four round trips");
    assert_eq!(steal_grace_ms(80.0, 200), 200, "no more than configured");
    assert_eq!(steal_grace_ms(0.4, 10), 10);
    // Whole nodes lower it once they have measured each other.
    let mut net = Net::new(3);
    let configured = net.nodes[0].engine().map(|e| e.steal_after_ms());
    net.run_until(5_000);
    for (i, n) in net.nodes.iter().enumerate() {
        let grace = n.engine().map(|e| e.steal_after_ms());
        assert!(
            grace.is_some_and(|g| (20..200).contains(&g)),
            "node {i}: {grace:?} (at the start {configured:?})"
        );
    }
}
