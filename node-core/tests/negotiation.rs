//! The WebRTC negotiation policy (`transport::negotiation`) driven through scenarios, on
//! both targets: natively under `cargo test`, and on wasm32 in Node under
//! wasm-bindgen-test (`cargo test -p node-core --target wasm32-unknown-unknown`). The
//! policy is the only place either transport decides anything, so these checks hold for
//! the browser and the native node alike.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use node_core::signal::{ErrorCode, IceServer, PeerId, PeerInfo, PeerKind, ServerMsg, SignalData};
use node_core::transport::TransportEvent;
use node_core::transport::negotiation::{
    Alarm, Candidate, ConnId, Negotiation, NegotiationConfig, Step,
};

fn id(s: &str) -> PeerId {
    PeerId(s.into())
}

fn info(s: &str) -> PeerInfo {
    PeerInfo {
        id: id(s),
        kind: PeerKind::Browser,
        name: s.into(),
        presenter: false,
        colour: 0,
    }
}

/// The steps an input caused, without the alarms (the tests of timers look at those
/// with [`drain_all`]).
fn drain(n: &mut Negotiation) -> Vec<Step> {
    drain_all(n)
        .into_iter()
        .filter(|s| !matches!(s, Step::Alarm { .. }))
        .collect()
}

fn drain_all(n: &mut Negotiation) -> Vec<Step> {
    std::iter::from_fn(|| n.poll_step()).collect()
}

fn stun() -> Vec<IceServer> {
    vec![IceServer {
        urls: vec!["stun:127.0.0.1:3478".into()],
        username: None,
        credential: None,
    }]
}

fn welcome(peers: &[&str]) -> ServerMsg {
    ServerMsg::Welcome {
        id: id("me"),
        room: "r".into(),
        peers: peers.iter().map(|p| info(p)).collect(),
        ice_servers: stun(),
        presenter: false,
        limits: None,
        colour: 0,
    }
}

fn from(peer: &str, data: SignalData) -> ServerMsg {
    ServerMsg::Signal {
        from: id(peer),
        data,
    }
}

fn offer(sdp: &str) -> SignalData {
    SignalData::Offer { sdp: sdp.into() }
}

fn answer(sdp: &str) -> SignalData {
    SignalData::Answer { sdp: sdp.into() }
}

fn ice(c: &str, mid: Option<&str>, index: Option<u16>) -> SignalData {
    SignalData::Ice {
        candidate: c.into(),
        sdp_mid: mid.map(str::to_string),
        sdp_mline_index: index,
    }
}

fn cand(c: &str) -> Candidate {
    Candidate {
        candidate: c.into(),
        sdp_mid: None,
        sdp_mline_index: 0,
    }
}

/// A policy welcomed into a room with no one else in it.
fn alone() -> Negotiation {
    let mut n = Negotiation::new(
        NegotiationConfig::default(),
        PeerKind::Native,
        "me-name".into(),
    );
    n.handle_server(welcome(&[]));
    drain(&mut n);
    n
}

/// A policy with a channel open to `b`, which the server listed after our welcome and
/// which offered to us; the channel's attempt.
fn open_with_b() -> (Negotiation, ConnId) {
    let mut n = alone();
    n.handle_server(ServerMsg::PeerJoined { peer: info("b") });
    let conn = offered_by(&mut n, "b");
    n.remote_description_set(&id("b"), conn);
    n.channel_open(&id("b"), conn);
    drain(&mut n);
    (n, conn)
}

/// Feeds an offer from `peer` and returns the attempt it started.
fn offered_by(n: &mut Negotiation, peer: &str) -> ConnId {
    n.handle_server(from(peer, offer("remote-offer")));
    let steps = drain(n);
    let Some(Step::Answer { conn, .. }) = steps.last() else {
        panic!("no answer step: {steps:?}")
    };
    *conn
}

/// The waits of the retries the steps ask for.
fn retries_asked(steps: &[Step]) -> Vec<u64> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Alarm {
                after_ms,
                alarm: Alarm::Retry { .. },
            } => Some(*after_ms),
            _ => None,
        })
        .collect()
}

/// The retry alarm among the steps.
fn retry_alarm(steps: &[Step]) -> Alarm {
    steps
        .iter()
        .find_map(|s| match s {
            Step::Alarm { alarm, .. } if matches!(alarm, Alarm::Retry { .. }) => {
                Some(alarm.clone())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no retry asked for: {steps:?}"))
}

/// The grace alarm of a closed channel among the steps, after its wait.
fn closed_alarm(steps: &[Step]) -> Alarm {
    steps
        .iter()
        .find_map(|s| match s {
            Step::Alarm {
                after_ms: 1_000,
                alarm,
            } if matches!(alarm, Alarm::Closed { .. }) => Some(alarm.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no grace asked for: {steps:?}"))
}

fn channel_closed_count(steps: &[Step]) -> usize {
    steps
        .iter()
        .filter(|s| matches!(s, Step::Emit(TransportEvent::ChannelClosed(_))))
        .count()
}

#[test]
fn the_newcomer_offers_to_every_peer_in_the_welcome() {
    // The kind given to the policy is the one reported, whatever the platform.
    let mut n = Negotiation::new(
        NegotiationConfig::default(),
        PeerKind::Browser,
        "tab".into(),
    );
    n.handle_server(welcome(&["a", "b"]));
    let steps = drain(&mut n);
    let [
        Step::SetIceServers(servers),
        Step::Emit(TransportEvent::Joined { me, peers }),
        Step::Offer { peer: pa, conn: ca },
        Step::Offer { peer: pb, conn: cb },
    ] = &steps[..]
    else {
        panic!("{steps:?}")
    };
    assert_eq!(servers, &stun());
    assert_eq!(
        me,
        &PeerInfo {
            id: id("me"),
            kind: PeerKind::Browser,
            name: "tab".into(),
            presenter: false,
            colour: 0,
        }
    );
    assert_eq!(peers, &vec![info("a"), info("b")]);
    assert_eq!((pa, pb), (&id("a"), &id("b")));
    assert_ne!(ca, cb);
    assert_eq!(n.me(), Some(&id("me")));

    // Our offer is set locally: send it.
    n.local_description(&id("a"), *ca, "offer-a".into());
    assert_eq!(
        drain(&mut n),
        [Step::Signal {
            to: id("a"),
            data: offer("offer-a")
        }]
    );
    // The answer is applied to our offer; then its candidates go straight in.
    n.handle_server(from("a", answer("answer-a")));
    assert_eq!(
        drain(&mut n),
        [Step::ApplyAnswer {
            peer: id("a"),
            conn: *ca,
            sdp: "answer-a".into()
        }]
    );
    n.remote_description_set(&id("a"), *ca);
    assert_eq!(drain(&mut n), []);
    n.handle_server(from("a", ice("c1", Some("0"), Some(0))));
    assert_eq!(
        drain(&mut n),
        [Step::AddCandidate {
            peer: id("a"),
            conn: *ca,
            candidate: Candidate {
                candidate: "c1".into(),
                sdp_mid: Some("0".into()),
                sdp_mline_index: 0
            }
        }]
    );
}

#[test]
fn the_welcome_skips_ourselves_and_duplicates_and_a_second_one_is_dropped() {
    let mut n = Negotiation::new(NegotiationConfig::default(), PeerKind::Native, "".into());
    n.handle_server(welcome(&["a", "me", "a"]));
    let offers: Vec<_> = drain(&mut n)
        .into_iter()
        .filter_map(|s| match s {
            Step::Offer { peer, .. } => Some(peer),
            _ => None,
        })
        .collect();
    assert_eq!(offers, [id("a")]);
    // A second welcome under another id is not ours to act on.
    let mut other = welcome(&["b"]);
    if let ServerMsg::Welcome { id: ref mut i, .. } = other {
        *i = id("someone-else");
    }
    n.handle_server(other);
    assert_eq!(drain(&mut n), []);
    assert_eq!(n.stats().dropped_frames, 1);
}

#[test]
fn a_welcome_back_under_our_id_offers_only_to_members_we_have_no_connection_with() {
    let mut n = Negotiation::new(NegotiationConfig::default(), PeerKind::Native, "".into());
    n.handle_server(welcome(&["a"]));
    let _ = drain(&mut n);
    // The socket dropped; the server (restarted) takes us back: it knows a, which we
    // are connected to, and b, who joined while we were away.
    n.signaling_closed();
    assert_eq!(drain(&mut n), [Step::Emit(TransportEvent::SignalingClosed)]);
    n.handle_server(welcome(&["a", "b", "me"]));
    let steps = drain(&mut n);
    assert!(matches!(steps[0], Step::SetIceServers(_)), "{steps:?}");
    assert!(
        matches!(&steps[1], Step::Emit(TransportEvent::Rejoined { peers }) if peers.len() == 3),
        "{steps:?}"
    );
    let offers: Vec<_> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Offer { peer, .. } => Some(peer.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(offers, [id("b")], "not a (connected), not ourselves");
    assert_eq!(steps.len(), 3);
    assert_eq!(n.stats().dropped_frames, 0);
}

#[test]
fn a_restart_closes_every_attempt_quietly_and_the_next_welcome_offers_to_everyone() {
    let mut n = Negotiation::new(NegotiationConfig::default(), PeerKind::Native, "".into());
    n.handle_server(welcome(&["a"]));
    let _ = drain(&mut n);
    let from_b = offered_by(&mut n, "b");
    let to_a = n.conn(&id("a")).expect("we offered to a");
    // A presenter's revive reaches the policy as an event, nothing more.
    n.handle_server(ServerMsg::Revive { from: id("a") });
    assert_eq!(drain(&mut n), [Step::Emit(TransportEvent::Revive(id("a")))]);
    n.restart();
    let mut closed: Vec<_> = drain(&mut n)
        .into_iter()
        .map(|s| match s {
            Step::Close { peer, conn } => (peer, conn),
            other => panic!("a restart only closes: {other:?}"),
        })
        .collect();
    closed.sort();
    assert_eq!(closed, [(id("a"), to_a), (id("b"), from_b)]);
    assert_eq!(n.me(), None);
    // The welcome under the same id is a first one: offers to a and b, both connected
    // before, in new attempts.
    n.handle_server(welcome(&["a", "b"]));
    let steps = drain(&mut n);
    assert!(
        steps
            .iter()
            .any(|s| matches!(s, Step::Emit(TransportEvent::Joined { .. }))),
        "{steps:?}"
    );
    let offers: Vec<_> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Offer { peer, conn } => Some((peer.clone(), *conn)),
            _ => None,
        })
        .collect();
    assert_eq!(offers.len(), 2, "{steps:?}");
    assert!(offers.iter().all(|(_, c)| *c > to_a && *c > from_b));
    // A report from an attempt of before the restart is stale.
    n.channel_open(&id("b"), from_b);
    assert!(
        drain(&mut n)
            .iter()
            .all(|s| !matches!(s, Step::Emit(TransportEvent::ChannelOpen(_)))),
    );
}

#[test]
fn later_arrivals_are_reported_and_offer_to_us() {
    let mut n = alone();
    n.handle_server(ServerMsg::PeerJoined { peer: info("c") });
    assert_eq!(
        drain(&mut n),
        [Step::Emit(TransportEvent::PeerJoined(info("c")))]
    );
    n.handle_server(from("c", offer("offer-c")));
    let steps = drain(&mut n);
    let [Step::Answer { peer, conn, sdp }] = &steps[..] else {
        panic!("{steps:?}")
    };
    assert_eq!((peer, sdp.as_str()), (&id("c"), "offer-c"));
    n.remote_description_set(&id("c"), *conn);
    assert_eq!(drain(&mut n), []);
    n.local_description(&id("c"), *conn, "answer-c".into());
    assert_eq!(
        drain(&mut n),
        [Step::Signal {
            to: id("c"),
            data: answer("answer-c")
        }]
    );
    // Our own candidates trickle to the peer, normalised.
    n.local_candidate(
        &id("c"),
        *conn,
        Candidate::new("cand".into(), Some("".into()), None),
    );
    assert_eq!(
        drain(&mut n),
        [Step::Signal {
            to: id("c"),
            data: ice("cand", None, Some(0))
        }]
    );
}

#[test]
fn candidates_before_the_remote_description_are_held_then_added_in_order() {
    let mut n = alone();
    // Candidates can arrive before the offer they belong to...
    n.handle_server(from("b", ice("c1", None, None)));
    assert_eq!(drain(&mut n), []);
    let conn = offered_by(&mut n, "b");
    // ...and while the offer is being applied.
    n.handle_server(from("b", ice("c2", Some(""), Some(0))));
    n.handle_server(from("b", ice("c3", Some("data"), Some(1))));
    assert_eq!(drain(&mut n), []);
    assert_eq!(n.early_candidates(&id("b")), 3);

    n.remote_description_set(&id("b"), conn);
    let add = |c: &str, mid: Option<&str>, index: u16| Step::AddCandidate {
        peer: id("b"),
        conn,
        candidate: Candidate {
            candidate: c.into(),
            sdp_mid: mid.map(str::to_string),
            sdp_mline_index: index,
        },
    };
    // Flushed in arrival order, normalised: empty mid → none, missing index → 0.
    assert_eq!(
        drain(&mut n),
        [
            add("c1", None, 0),
            add("c2", None, 0),
            add("c3", Some("data"), 1)
        ]
    );
    assert_eq!(n.early_candidates(&id("b")), 0);
    // Once the description is set, a candidate goes straight in.
    n.handle_server(from("b", ice("c4", None, Some(0))));
    assert_eq!(drain(&mut n), [add("c4", None, 0)]);
    // A second report of the same description flushes nothing new.
    n.remote_description_set(&id("b"), conn);
    assert_eq!(drain(&mut n), []);
}

#[test]
fn early_candidates_are_bounded() {
    let mut n = Negotiation::new(
        NegotiationConfig {
            early_candidates_max: 3,
            ..NegotiationConfig::default()
        },
        PeerKind::Native,
        "".into(),
    );
    n.handle_server(welcome(&[]));
    drain(&mut n);
    let conn = offered_by(&mut n, "b");
    for i in 0..5 {
        n.handle_server(from("b", ice(&format!("c{i}"), None, None)));
    }
    assert_eq!(drain(&mut n), []);
    assert_eq!(n.early_candidates(&id("b")), 3);
    assert_eq!(n.stats().dropped_candidates, 2);
    n.remote_description_set(&id("b"), conn);
    let added: Vec<String> = drain(&mut n)
        .into_iter()
        .map(|s| match s {
            Step::AddCandidate { candidate, .. } => candidate.candidate,
            s => panic!("{s:?}"),
        })
        .collect();
    assert_eq!(added, ["c0", "c1", "c2"]);
    assert_eq!(NegotiationConfig::default().early_candidates_max, 64);
}

#[test]
fn a_failed_offer_to_a_listed_peer_closes_it_and_tries_again_without_a_report() {
    let mut n = Negotiation::new(NegotiationConfig::default(), PeerKind::Native, "".into());
    n.handle_server(welcome(&["a"]));
    let Some(Step::Offer { conn, .. }) = drain(&mut n).pop() else {
        panic!()
    };
    n.negotiation_failed(&id("a"), conn);
    // The peer never opened a channel and the server still lists it: it stays one
    // being connected to, and a new attempt is scheduled.
    assert_eq!(
        drain_all(&mut n),
        [
            Step::Close {
                peer: id("a"),
                conn
            },
            Step::Alarm {
                after_ms: 500,
                alarm: Alarm::Retry {
                    peer: id("a"),
                    round: 1
                }
            },
        ]
    );
    assert_eq!(n.conn(&id("a")), None);
    // The closing connection's own close signals are stale: nothing more.
    n.connection_closed(&id("a"), conn);
    n.local_description(&id("a"), conn, "late".into());
    let steps = drain_all(&mut n);
    assert!(
        steps.iter().all(|s| matches!(s, Step::Close { .. })),
        "{steps:?}"
    );
    assert_eq!(n.stats().stale_reports, 2);
}

#[test]
fn a_failed_answer_is_handled_the_same_way() {
    // A peer the server never listed to us (its offer came first) is reported closed,
    // and not tried again: we would not know whether it is still in the room.
    let mut n = alone();
    let conn = offered_by(&mut n, "b");
    n.negotiation_failed(&id("b"), conn);
    assert_eq!(
        drain_all(&mut n),
        [
            Step::Close {
                peer: id("b"),
                conn
            },
            Step::Emit(TransportEvent::ChannelClosed(id("b"))),
        ]
    );
    // A failure to apply the answer to our offer ends the attempt too.
    let mut n = Negotiation::new(NegotiationConfig::default(), PeerKind::Native, "".into());
    n.handle_server(welcome(&["a"]));
    let Some(Step::Offer { conn, .. }) = drain(&mut n).pop() else {
        panic!()
    };
    n.handle_server(from("a", answer("bad")));
    drain(&mut n);
    n.negotiation_failed(&id("a"), conn);
    let steps = drain_all(&mut n);
    assert_eq!(channel_closed_count(&steps), 0, "{steps:?}");
    assert_eq!(retries_asked(&steps), [500], "{steps:?}");
}

#[test]
fn peer_left_closes_the_connection_then_reports_the_departure() {
    let mut n = Negotiation::new(NegotiationConfig::default(), PeerKind::Native, "".into());
    n.handle_server(welcome(&["a"]));
    let Some(Step::Offer { conn, .. }) = drain(&mut n).pop() else {
        panic!()
    };
    n.handle_server(from("a", ice("c1", None, None)));
    n.handle_server(ServerMsg::PeerLeft { id: id("a") });
    assert_eq!(
        drain(&mut n),
        [
            Step::Close {
                peer: id("a"),
                conn
            },
            Step::Emit(TransportEvent::PeerLeft(id("a"))),
        ]
    );
    // Everything about the peer is forgotten, held candidates included, and the
    // connection's close signals that follow report nothing.
    assert_eq!(n.early_candidates(&id("a")), 0);
    n.connection_closed(&id("a"), conn);
    assert_eq!(channel_closed_count(&drain(&mut n)), 0);
    // A departure of a peer we never connected to is only reported.
    n.handle_server(ServerMsg::PeerLeft { id: id("z") });
    assert_eq!(
        drain(&mut n),
        [Step::Emit(TransportEvent::PeerLeft(id("z")))]
    );
}

#[test]
fn gathering_without_a_local_candidate_is_reported_once_and_only_then() {
    let no_address = |steps: &[Step]| {
        steps
            .iter()
            .filter(|s| matches!(s, Step::Emit(TransportEvent::NoLocalAddress(p)) if *p == id("b")))
            .count()
    };
    // No candidate at all: reported once, however often gathering is said to be done,
    // then the failure closes the attempt as usual.
    let mut n = alone();
    let conn = offered_by(&mut n, "b");
    n.gathering_done(&id("b"), conn);
    n.gathering_done(&id("b"), conn);
    let steps = drain(&mut n);
    assert_eq!(no_address(&steps), 1, "{steps:?}");
    n.connection_closed(&id("b"), conn);
    assert_eq!(channel_closed_count(&drain(&mut n)), 1);

    // One candidate, then done: nothing to report.
    let mut n = alone();
    let conn = offered_by(&mut n, "b");
    n.local_candidate(
        &id("b"),
        conn,
        cand("candidate:1 1 udp 1 127.0.0.1 5000 typ host"),
    );
    n.gathering_done(&id("b"), conn);
    assert_eq!(no_address(&drain(&mut n)), 0);

    // A stale attempt's report is not this attempt's.
    let mut n = alone();
    let old = offered_by(&mut n, "b");
    let new = offered_by(&mut n, "b");
    assert_ne!(old, new);
    n.gathering_done(&id("b"), old);
    assert_eq!(no_address(&drain(&mut n)), 0);
    n.gathering_done(&id("b"), new);
    assert_eq!(no_address(&drain(&mut n)), 1);
}

#[test]
fn several_close_signals_give_one_channel_closed() {
    let mut n = alone();
    let conn = offered_by(&mut n, "b");
    n.remote_description_set(&id("b"), conn);
    n.channel_open(&id("b"), conn);
    assert_eq!(
        drain(&mut n),
        [Step::Emit(TransportEvent::ChannelOpen(id("b")))]
    );
    // A second open report (a browser answerer's channel that arrived open) is ignored.
    n.channel_open(&id("b"), conn);
    assert_eq!(drain(&mut n), []);

    // The channel closes, then the connection goes to failed, then to closed, and a
    // negotiation call still in flight fails: one ChannelClosed in all.
    n.connection_closed(&id("b"), conn);
    let mut steps = drain(&mut n);
    assert_eq!(
        steps,
        [
            Step::Close {
                peer: id("b"),
                conn
            },
            Step::Emit(TransportEvent::ChannelClosed(id("b"))),
        ]
    );
    n.connection_closed(&id("b"), conn);
    n.connection_closed(&id("b"), conn);
    n.negotiation_failed(&id("b"), conn);
    n.channel_open(&id("b"), conn);
    steps.extend(drain(&mut n));
    assert_eq!(channel_closed_count(&steps), 1, "{steps:?}");
    assert!(
        !steps[2..].iter().any(|s| matches!(s, Step::Emit(_))),
        "a closed attempt reports nothing more, nor reopens: {steps:?}"
    );
}

#[test]
fn an_offer_from_a_peer_we_have_replaces_the_connection() {
    let mut n = alone();
    let old = offered_by(&mut n, "b");
    n.remote_description_set(&id("b"), old);
    n.channel_open(&id("b"), old);
    drain(&mut n);

    n.handle_server(from("b", offer("again")));
    let steps = drain(&mut n);
    let [
        Step::Close {
            peer: closed,
            conn: closed_conn,
        },
        Step::Answer { peer, conn, sdp },
    ] = &steps[..]
    else {
        panic!("{steps:?}")
    };
    assert_eq!((closed, *closed_conn), (&id("b"), old));
    assert_eq!((peer, sdp.as_str()), (&id("b"), "again"));
    assert_ne!(*conn, old);
    assert_eq!(n.conn(&id("b")), Some(*conn));
    // The replaced connection's close is stale: the peer is still there.
    n.connection_closed(&id("b"), old);
    assert_eq!(
        drain(&mut n),
        [Step::Close {
            peer: id("b"),
            conn: old
        }]
    );
    // The new attempt carries on: candidates wait for its description, its channel opens.
    n.handle_server(from("b", ice("c1", None, None)));
    assert_eq!(drain(&mut n), []);
    n.remote_description_set(&id("b"), *conn);
    assert!(matches!(
        &drain(&mut n)[..],
        [Step::AddCandidate { conn: c, .. }] if c == conn
    ));
    n.channel_open(&id("b"), *conn);
    assert_eq!(
        drain(&mut n),
        [Step::Emit(TransportEvent::ChannelOpen(id("b")))]
    );

    // The same when our own offer is still unanswered: theirs wins.
    let mut n = Negotiation::new(NegotiationConfig::default(), PeerKind::Native, "".into());
    n.handle_server(welcome(&["a"]));
    let Some(Step::Offer { conn: ours, .. }) = drain(&mut n).pop() else {
        panic!()
    };
    n.handle_server(from("a", offer("theirs")));
    let steps = drain(&mut n);
    assert!(
        matches!(
            &steps[..],
            [Step::Close { conn, .. }, Step::Answer { .. }] if *conn == ours
        ),
        "{steps:?}"
    );
}

#[test]
fn signaling_errors_and_the_socket_closing_pass_through() {
    let mut n = alone();
    n.handle_server(ServerMsg::error(ErrorCode::NoSuchPeer, "no such peer"));
    assert_eq!(
        drain(&mut n),
        [Step::Emit(TransportEvent::SignalingError {
            code: ErrorCode::NoSuchPeer,
            message: "no such peer".into(),
            retry_after_ms: None,
        })]
    );
    // A room taken away says when it is back.
    n.handle_server(ServerMsg::Error {
        code: ErrorCode::ServerAway,
        message: "away".into(),
        frame: Some(1),
        retry_after_ms: Some(41_500),
    });
    assert_eq!(
        drain(&mut n),
        [Step::Emit(TransportEvent::SignalingError {
            code: ErrorCode::ServerAway,
            message: "away".into(),
            retry_after_ms: Some(41_500),
        })]
    );
    n.signaling_closed();
    assert_eq!(drain(&mut n), [Step::Emit(TransportEvent::SignalingClosed)]);
}

#[test]
fn frames_that_make_no_sense_are_dropped_and_counted() {
    // Before the welcome nobody can signal us.
    let mut n = Negotiation::new(NegotiationConfig::default(), PeerKind::Native, "".into());
    n.handle_server(from("a", offer("early")));
    n.handle_server(from("a", ice("c", None, None)));
    assert_eq!(drain(&mut n), []);
    assert_eq!(n.stats().dropped_frames, 1);
    assert_eq!(n.stats().dropped_candidates, 1);

    let mut n = alone();
    // An answer to no offer, a signal claiming to be from ourselves.
    n.handle_server(from("x", answer("unasked")));
    n.handle_server(from("me", offer("loop")));
    assert_eq!(drain(&mut n), []);
    assert_eq!(n.conn(&id("x")), None);
    assert_eq!(n.conn(&id("me")), None);
    // An answer when we are the answerer.
    let conn = offered_by(&mut n, "b");
    n.handle_server(from("b", answer("wrong side")));
    assert_eq!(drain(&mut n), []);
    assert_eq!(
        n.conn(&id("b")),
        Some(conn),
        "the connection is not disturbed"
    );
    assert_eq!(n.stats().dropped_frames, 3);

    // A second answer to our offer once the first is applied.
    let mut n = Negotiation::new(NegotiationConfig::default(), PeerKind::Native, "".into());
    n.handle_server(welcome(&["a"]));
    let Some(Step::Offer { conn, .. }) = drain(&mut n).pop() else {
        panic!()
    };
    n.handle_server(from("a", answer("first")));
    assert_eq!(drain(&mut n).len(), 1);
    n.remote_description_set(&id("a"), conn);
    n.handle_server(from("a", answer("second")));
    assert_eq!(drain(&mut n), []);
    assert_eq!(n.stats().dropped_frames, 1);
}

#[test]
fn reports_about_an_unknown_attempt_only_close_it() {
    let mut n = alone();
    let conn = offered_by(&mut n, "b");
    n.connection_closed(&id("b"), conn);
    drain(&mut n);
    // The platform finished building the attempt after the policy gave up on it.
    n.local_description(&id("b"), conn, "late answer".into());
    n.remote_description_set(&id("b"), conn);
    n.local_candidate(&id("b"), conn, cand("late"));
    assert_eq!(
        drain(&mut n),
        vec![
            Step::Close {
                peer: id("b"),
                conn
            };
            3
        ]
    );
    // Reports naming a peer the policy never heard of are stale too.
    n.channel_open(&id("nobody"), conn);
    assert_eq!(
        drain(&mut n),
        [Step::Close {
            peer: id("nobody"),
            conn
        }]
    );
    assert_eq!(n.stats().stale_reports, 4);
}

#[test]
fn candidates_after_a_close_wait_for_the_next_attempt() {
    let mut n = alone();
    let conn = offered_by(&mut n, "b");
    n.remote_description_set(&id("b"), conn);
    n.connection_closed(&id("b"), conn);
    drain(&mut n);
    // A late candidate is held (bounded), not added to the closed connection...
    n.handle_server(from("b", ice("late", None, None)));
    assert_eq!(drain(&mut n), []);
    assert_eq!(n.early_candidates(&id("b")), 1);
    // ...and goes to the next attempt with the peer.
    let next = offered_by(&mut n, "b");
    n.remote_description_set(&id("b"), next);
    assert_eq!(
        drain(&mut n),
        [Step::AddCandidate {
            peer: id("b"),
            conn: next,
            candidate: cand("late")
        }]
    );
}

#[test]
fn closes_we_ask_for_report_nothing() {
    let mut n = Negotiation::new(NegotiationConfig::default(), PeerKind::Native, "".into());
    n.handle_server(welcome(&["a", "b", "c"]));
    let conns: Vec<ConnId> = drain(&mut n)
        .into_iter()
        .filter_map(|s| match s {
            Step::Offer { conn, .. } => Some(conn),
            _ => None,
        })
        .collect();
    // Membership gave up on `a`, connected and silent for a minute.
    n.handle_server(from("a", answer("answer")));
    n.remote_description_set(&id("a"), conns[0]);
    n.channel_open(&id("a"), conns[0]);
    drain(&mut n);
    n.close_peer(&id("a"));
    assert_eq!(
        drain(&mut n),
        [Step::Close {
            peer: id("a"),
            conn: conns[0]
        }]
    );
    n.close_peer(&id("a"));
    assert_eq!(drain(&mut n), []);
    // Shutdown closes the rest, and nothing is acted on afterwards.
    n.shutdown();
    assert_eq!(
        drain(&mut n),
        [
            Step::Close {
                peer: id("b"),
                conn: conns[1]
            },
            Step::Close {
                peer: id("c"),
                conn: conns[2]
            },
        ]
    );
    n.handle_server(from("d", offer("too late")));
    n.handle_server(ServerMsg::PeerJoined { peer: info("e") });
    n.connection_closed(&id("b"), conns[1]);
    n.signaling_closed();
    let steps = drain(&mut n);
    assert_eq!(channel_closed_count(&steps), 0);
    assert!(
        steps.iter().all(|s| matches!(s, Step::Close { .. })),
        "{steps:?}"
    );
}

#[test]
fn state_is_kept_for_a_bounded_number_of_peers() {
    let mut n = Negotiation::new(
        NegotiationConfig {
            peers_max: 2,
            ..NegotiationConfig::default()
        },
        PeerKind::Native,
        "".into(),
    );
    n.handle_server(welcome(&["a", "b", "c"]));
    let offers = drain(&mut n)
        .iter()
        .filter(|s| matches!(s, Step::Offer { .. }))
        .count();
    assert_eq!(offers, 2);
    n.handle_server(from("d", ice("c", None, None)));
    n.handle_server(from("e", offer("o")));
    assert_eq!(drain(&mut n), []);
    assert_eq!(n.early_candidates(&id("d")), 0);
    assert_eq!(n.conn(&id("e")), None);
    // Room again once a peer has gone.
    n.handle_server(ServerMsg::PeerLeft { id: id("a") });
    drain(&mut n);
    n.handle_server(from("e", offer("o")));
    assert!(matches!(&drain(&mut n)[..], [Step::Answer { .. }]));
}

#[test]
fn candidates_are_normalised_for_both_platforms() {
    assert_eq!(
        Candidate::new("c".into(), Some(String::new()), None),
        Candidate {
            candidate: "c".into(),
            sdp_mid: None,
            sdp_mline_index: 0
        }
    );
    assert_eq!(
        Candidate::new("c".into(), Some("0".into()), Some(2)),
        Candidate {
            candidate: "c".into(),
            sdp_mid: Some("0".into()),
            sdp_mline_index: 2
        }
    );
    assert_eq!(
        Candidate::new("c".into(), None, Some(1)).into_signal(),
        ice("c", None, Some(1))
    );
}

/// The attempt a step list starts with an offer, and the deadline alarm it asks for.
fn offer_in(steps: &[Step]) -> ConnId {
    steps
        .iter()
        .find_map(|s| match s {
            Step::Offer { conn, .. } => Some(*conn),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no offer: {steps:?}"))
}

#[test]
fn every_attempt_asks_for_a_deadline_and_one_not_open_by_then_is_tried_again() {
    let mut n = Negotiation::new(NegotiationConfig::default(), PeerKind::Native, "".into());
    n.handle_server(welcome(&["a"]));
    let steps = drain_all(&mut n);
    let conn = offer_in(&steps);
    let deadline = Alarm::Open {
        peer: id("a"),
        conn,
    };
    assert!(
        steps.contains(&Step::Alarm {
            after_ms: 15_000,
            alarm: deadline.clone()
        }),
        "{steps:?}"
    );
    // The offer went out while the server was down: no answer ever comes.
    n.local_description(&id("a"), conn, "offer".into());
    drain(&mut n);
    n.alarm(deadline.clone());
    let steps = drain_all(&mut n);
    assert_eq!(
        steps,
        [
            Step::Close {
                peer: id("a"),
                conn
            },
            Step::Alarm {
                after_ms: 500,
                alarm: Alarm::Retry {
                    peer: id("a"),
                    round: 1
                }
            },
        ]
    );
    assert_eq!(n.stats().attempts_timed_out, 1);
    // The retry offers again, in a new attempt with a deadline of its own; the driver
    // still tracks the peer (no ChannelClosed went out), so nothing is announced.
    n.alarm(retry_alarm(&steps));
    let steps = drain_all(&mut n);
    let again = offer_in(&steps);
    assert_ne!(again, conn);
    assert!(
        !steps.iter().any(|s| matches!(s, Step::Emit(_))),
        "{steps:?}"
    );
    assert_eq!(n.stats().retries, 1);
    // The old deadline, ringing again, is stale; so is the new one once the channel is
    // open.
    n.alarm(deadline);
    assert_eq!(drain_all(&mut n), []);
    n.handle_server(from("a", answer("answer")));
    n.remote_description_set(&id("a"), again);
    n.channel_open(&id("a"), again);
    drain(&mut n);
    n.alarm(Alarm::Open {
        peer: id("a"),
        conn: again,
    });
    assert_eq!(drain_all(&mut n), []);
    assert_eq!(n.conn(&id("a")), Some(again));
    assert_eq!(n.stats().attempts_timed_out, 1);
}

#[test]
fn retries_back_off_up_to_a_bound_and_start_over_once_a_channel_opens() {
    let mut n = Negotiation::new(NegotiationConfig::default(), PeerKind::Native, "".into());
    n.handle_server(welcome(&["a"]));
    let mut conn = offer_in(&drain_all(&mut n));
    let mut waits = Vec::new();
    for _ in 0..7 {
        n.connection_closed(&id("a"), conn);
        let steps = drain_all(&mut n);
        assert_eq!(channel_closed_count(&steps), 0, "never open: {steps:?}");
        waits.extend(retries_asked(&steps));
        n.alarm(retry_alarm(&steps));
        conn = offer_in(&drain_all(&mut n));
    }
    assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
    // An attempt that uses up its whole deadline starts the backoff over.
    n.alarm(Alarm::Open {
        peer: id("a"),
        conn,
    });
    let steps = drain_all(&mut n);
    assert_eq!(retries_asked(&steps), [500]);
    n.alarm(retry_alarm(&steps));
    let conn = offer_in(&drain_all(&mut n));
    // This one opens: the driver hears of it. The next loss is tried again after the
    // shortest wait, and reported after the grace (no fresh channel opened by then),
    // with the peer announced again at once for the attempt under way.
    n.handle_server(from("a", answer("answer")));
    n.remote_description_set(&id("a"), conn);
    drain(&mut n);
    n.channel_open(&id("a"), conn);
    assert_eq!(
        drain(&mut n),
        [Step::Emit(TransportEvent::ChannelOpen(id("a")))]
    );
    n.connection_closed(&id("a"), conn);
    let steps = drain_all(&mut n);
    assert_eq!(
        channel_closed_count(&steps),
        0,
        "not before the grace: {steps:?}"
    );
    assert_eq!(retries_asked(&steps), [500]);
    let grace = closed_alarm(&steps);
    n.alarm(retry_alarm(&steps));
    let steps = drain(&mut n);
    assert!(
        matches!(&steps[..], [Step::Offer { peer, .. }] if *peer == id("a")),
        "still known to the driver: {steps:?}"
    );
    n.alarm(grace);
    assert_eq!(
        drain(&mut n),
        [
            Step::Emit(TransportEvent::ChannelClosed(id("a"))),
            Step::Emit(TransportEvent::PeerJoined(info("a"))),
        ]
    );
}

#[test]
fn retries_stop_when_the_peer_leaves_and_stale_alarms_change_nothing() {
    let failed_once = || {
        let mut n = Negotiation::new(NegotiationConfig::default(), PeerKind::Native, "".into());
        n.handle_server(welcome(&["a"]));
        let conn = offer_in(&drain_all(&mut n));
        n.negotiation_failed(&id("a"), conn);
        let retry = retry_alarm(&drain_all(&mut n));
        (n, retry)
    };
    // The peer left the room: its retry does nothing.
    let (mut n, retry) = failed_once();
    n.handle_server(ServerMsg::PeerLeft { id: id("a") });
    drain_all(&mut n);
    n.alarm(retry);
    assert_eq!(drain_all(&mut n), []);
    // The peer offered to us in the meantime: the retry leaves that attempt alone.
    let (mut n, retry) = failed_once();
    let conn = offered_by(&mut n, "a");
    n.alarm(retry);
    assert_eq!(drain_all(&mut n), []);
    assert_eq!(n.conn(&id("a")), Some(conn));
    // An older round than the one due, a peer never listed, after a restart or a
    // shutdown: nothing.
    let (mut n, retry) = failed_once();
    n.alarm(Alarm::Retry {
        peer: id("a"),
        round: 0,
    });
    n.alarm(Alarm::Retry {
        peer: id("zz"),
        round: 1,
    });
    assert_eq!(drain_all(&mut n), []);
    n.restart();
    n.alarm(retry.clone());
    assert_eq!(drain_all(&mut n), []);
    let (mut n, retry) = failed_once();
    n.shutdown();
    n.alarm(retry);
    assert_eq!(drain_all(&mut n), []);
    assert_eq!(n.stats().retries, 0);
}

#[test]
fn a_peer_membership_gave_up_on_is_tried_again_while_the_server_lists_it() {
    let (mut n, _) = open_with_b();
    // A minute of silence (a link cut that long): membership forgot it and closes.
    n.close_peer(&id("b"));
    let steps = drain_all(&mut n);
    assert!(
        !steps.iter().any(|s| matches!(s, Step::Emit(_))),
        "{steps:?}"
    );
    assert_eq!(retries_asked(&steps), [500]);
    n.alarm(retry_alarm(&steps));
    let steps = drain(&mut n);
    assert!(
        matches!(
            &steps[..],
            [Step::Emit(TransportEvent::PeerJoined(p)), Step::Offer { .. }] if *p == info("b")
        ),
        "{steps:?}"
    );
}

#[test]
fn an_offer_from_a_peer_the_driver_forgot_announces_it_first() {
    let (mut n, conn) = open_with_b();
    n.connection_closed(&id("b"), conn);
    let grace = closed_alarm(&drain_all(&mut n));
    n.alarm(grace);
    assert_eq!(channel_closed_count(&drain(&mut n)), 1);
    // The peer tries again before we do: the driver, which forgot it on the
    // ChannelClosed, hears of it before the answer.
    n.handle_server(from("b", offer("again")));
    let steps = drain(&mut n);
    assert!(
        matches!(
            &steps[..],
            [Step::Emit(TransportEvent::PeerJoined(p)), Step::Answer { .. }] if *p == info("b")
        ),
        "{steps:?}"
    );
    // Once is enough: a further offer is answered without it.
    n.handle_server(from("b", offer("and again")));
    let steps = drain(&mut n);
    assert!(
        matches!(&steps[..], [Step::Close { .. }, Step::Answer { .. }]),
        "{steps:?}"
    );
}

#[test]
fn crossing_offers_meet_in_the_attempt_of_the_lower_id() {
    // "me" is lower than "x" and higher than "a".
    let crossed = |other: &str| {
        let mut n = Negotiation::new(NegotiationConfig::default(), PeerKind::Native, "".into());
        n.handle_server(welcome(&[other]));
        let conn = offer_in(&drain_all(&mut n));
        n.local_description(&id(other), conn, "ours".into());
        drain(&mut n);
        n.handle_server(from(other, offer("theirs")));
        (n, conn)
    };
    // Ours wins: their offer is ignored and counted; they answer ours.
    let (mut n, conn) = crossed("x");
    assert_eq!(drain_all(&mut n), []);
    assert_eq!(n.conn(&id("x")), Some(conn));
    assert_eq!(n.stats().offers_crossed, 1);
    n.handle_server(from("x", answer("theirs")));
    assert!(matches!(
        &drain(&mut n)[..],
        [Step::ApplyAnswer { conn: c, .. }] if *c == conn
    ));
    // Theirs wins: ours is closed and theirs answered.
    let (mut n, conn) = crossed("a");
    let steps = drain(&mut n);
    assert!(
        matches!(
            &steps[..],
            [Step::Close { conn: c, .. }, Step::Answer { .. }] if *c == conn
        ),
        "{steps:?}"
    );
    assert_eq!(n.stats().offers_crossed, 0);
}

/// Two policies over a simulated server and platform, on virtual time: signals lost
/// while the server is away, platform calls that fail, established links that break
/// (both sides told at once, so that both try again at the same moment). After the
/// faults stop, the two must be connected within a bound, in one attempt, and each
/// side's driver must know the other when its channel opens (membership ignores a
/// channel from a peer it forgot, the bug of two living members that never reconnect).
mod two_sides {
    use super::*;
    use std::cmp::Reverse;
    use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// Faults happen up to here.
    const FAULTS_END_MS: u64 = 60_000;
    /// Then the two are connected within this long: an attempt under way when the
    /// faults stop may still have to reach its deadline (15 s) and wait out the longest
    /// retry (8 s), plus the messages' way.
    const CONNECTED_WITHIN_MS: u64 = 15_000 + 8_000 + 1_000;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
    }

    #[derive(Debug)]
    enum Report {
        Local(ConnId, String),
        RemoteSet(ConnId),
        Failed(ConnId),
        Open(ConnId),
        Closed(ConnId),
    }

    #[derive(Debug)]
    enum Ev {
        Server(ServerMsg),
        Alarm(Alarm),
        Platform(Report),
        /// A fault: the link between the two breaks, if it is up.
        Break,
    }

    /// A connection the simulated platform holds: its own SDP tag and the remote one.
    struct Held {
        local: String,
        remote: Option<String>,
        opening: bool,
    }

    struct Side {
        n: Negotiation,
        me: PeerId,
        driver_knows: BTreeSet<PeerId>,
        held: BTreeMap<ConnId, Held>,
        open: Option<ConnId>,
    }

    struct World {
        rng: Rng,
        now: u64,
        seq: u64,
        queue: BinaryHeap<Reverse<(u64, u64, usize, usize)>>,
        events: Vec<Option<Ev>>,
        sides: [Side; 2],
        /// When the server delivers the next frame to each side, in order.
        wire_free: [u64; 2],
        drop_percent: u64,
        fail_percent: u64,
        trace: Vec<String>,
    }

    fn tag(side: usize, conn: ConnId) -> String {
        format!("{side}/{conn}")
    }

    impl World {
        fn at(&mut self, after: u64, side: usize, ev: Ev) {
            self.seq += 1;
            self.events.push(Some(ev));
            self.queue.push(Reverse((
                self.now + after,
                self.seq,
                side,
                self.events.len() - 1,
            )));
        }

        fn faulty(&self) -> bool {
            self.now < FAULTS_END_MS
        }

        fn deliver(&mut self, to: usize, msg: ServerMsg) {
            if self.faulty() && self.rng.chance(self.drop_percent) {
                self.trace
                    .push(format!("{} lost to {to}: {msg:?}", self.now));
                return;
            }
            let at = self.wire_free[to].max(self.now + 1 + self.rng.below(10));
            self.wire_free[to] = at;
            self.at(at - self.now, to, Ev::Server(msg));
        }

        fn input(&mut self, i: usize, f: impl FnOnce(&mut Negotiation)) {
            f(&mut self.sides[i].n);
            let steps: Vec<Step> = std::iter::from_fn(|| self.sides[i].n.poll_step()).collect();
            for s in steps {
                self.step(i, s);
            }
        }

        fn fails(&mut self) -> bool {
            self.faulty() && self.rng.chance(self.fail_percent)
        }

        fn step(&mut self, i: usize, step: Step) {
            let other = 1 - i;
            match step {
                Step::SetIceServers(_) | Step::AddCandidate { .. } => {}
                Step::Offer { conn, .. } => {
                    let local = tag(i, conn);
                    self.sides[i].held.insert(
                        conn,
                        Held {
                            local: local.clone(),
                            remote: None,
                            opening: false,
                        },
                    );
                    let r = if self.fails() {
                        Report::Failed(conn)
                    } else {
                        Report::Local(conn, local)
                    };
                    self.at(1, i, Ev::Platform(r));
                }
                Step::Answer { conn, sdp, .. } => {
                    let local = tag(i, conn);
                    self.sides[i].held.insert(
                        conn,
                        Held {
                            local: local.clone(),
                            remote: Some(sdp),
                            opening: false,
                        },
                    );
                    if self.fails() {
                        self.at(1, i, Ev::Platform(Report::Failed(conn)));
                    } else {
                        self.at(1, i, Ev::Platform(Report::RemoteSet(conn)));
                        self.at(2, i, Ev::Platform(Report::Local(conn, local)));
                    }
                }
                Step::ApplyAnswer { conn, sdp, .. } => {
                    if let Some(h) = self.sides[i].held.get_mut(&conn) {
                        h.remote = Some(sdp);
                        self.at(1, i, Ev::Platform(Report::RemoteSet(conn)));
                    }
                }
                Step::Close { conn, .. } => {
                    if let Some(h) = self.sides[i].held.remove(&conn) {
                        // The other end of an established link hears of it (a connection
                        // still being set up goes away without a word).
                        let peer = self.sides[other]
                            .held
                            .iter()
                            .find(|(_, o)| o.remote.as_ref() == Some(&h.local))
                            .map(|(c, _)| *c);
                        if let Some(c) = peer
                            && h.opening
                        {
                            self.at(30, other, Ev::Platform(Report::Closed(c)));
                        }
                    }
                    if self.sides[i].open == Some(conn) {
                        self.sides[i].open = None;
                    }
                }
                Step::Signal { data, .. } => {
                    let from = self.sides[i].me.clone();
                    self.deliver(other, ServerMsg::Signal { from, data });
                }
                Step::Emit(ev) => self.emitted(i, ev),
                Step::Alarm { after_ms, alarm } => self.at(after_ms, i, Ev::Alarm(alarm)),
            }
        }

        fn emitted(&mut self, i: usize, ev: TransportEvent) {
            let knows = &mut self.sides[i].driver_knows;
            match ev {
                TransportEvent::Joined { peers, .. } | TransportEvent::Rejoined { peers } => {
                    knows.extend(peers.into_iter().map(|p| p.id));
                }
                TransportEvent::PeerJoined(p) => {
                    knows.insert(p.id);
                }
                TransportEvent::ChannelClosed(p) | TransportEvent::PeerLeft(p) => {
                    knows.remove(&p);
                }
                TransportEvent::ChannelOpen(p) => {
                    assert!(
                        knows.contains(&p),
                        "side {i} opened a channel with {p} that its driver forgot"
                    );
                }
                _ => {}
            }
        }

        /// Both ends of a link hold each other's description: it opens soon.
        fn check_link(&mut self) {
            let pairs: Vec<(ConnId, ConnId)> = self.sides[0]
                .held
                .iter()
                .filter_map(|(c0, h0)| {
                    let (c1, h1) = self.sides[1]
                        .held
                        .iter()
                        .find(|(_, h1)| h0.remote.as_ref() == Some(&h1.local))?;
                    (h1.remote.as_ref() == Some(&h0.local) && !h0.opening && !h1.opening)
                        .then_some((*c0, *c1))
                })
                .collect();
            for (c0, c1) in pairs {
                self.sides[0].held.get_mut(&c0).unwrap().opening = true;
                self.sides[1].held.get_mut(&c1).unwrap().opening = true;
                self.at(20, 0, Ev::Platform(Report::Open(c0)));
                self.at(20, 1, Ev::Platform(Report::Open(c1)));
            }
        }

        fn handle(&mut self, i: usize, ev: Ev) {
            let peer = self.sides[1 - i].me.clone();
            match ev {
                Ev::Server(msg) => self.input(i, |n| n.handle_server(msg)),
                Ev::Alarm(a) => self.input(i, |n| n.alarm(a)),
                Ev::Break => {
                    if self.faulty()
                        && let (Some(c0), Some(c1)) = (self.sides[0].open, self.sides[1].open)
                    {
                        self.trace.push(format!("{} link breaks", self.now));
                        self.at(1, 0, Ev::Platform(Report::Closed(c0)));
                        self.at(1, 1, Ev::Platform(Report::Closed(c1)));
                    }
                }
                Ev::Platform(r) => {
                    let held = |c: &ConnId| self.sides[i].held.contains_key(c);
                    match r {
                        Report::Local(c, sdp) if held(&c) => {
                            self.input(i, |n| n.local_description(&peer, c, sdp))
                        }
                        Report::RemoteSet(c) if held(&c) => {
                            self.input(i, |n| n.remote_description_set(&peer, c))
                        }
                        Report::Failed(c) if held(&c) => {
                            self.input(i, |n| n.negotiation_failed(&peer, c))
                        }
                        Report::Open(c) if held(&c) => {
                            self.sides[i].open = Some(c);
                            self.input(i, |n| n.channel_open(&peer, c));
                        }
                        Report::Closed(c) if held(&c) => {
                            self.input(i, |n| n.connection_closed(&peer, c))
                        }
                        _ => {}
                    }
                }
            }
            self.check_link();
        }

        fn connected(&self) -> bool {
            let [a, b] = &self.sides;
            let (Some(ca), Some(cb)) = (a.open, b.open) else {
                return false;
            };
            a.n.conn(&b.me) == Some(ca)
                && b.n.conn(&a.me) == Some(cb)
                && a.held[&ca].remote.as_ref() == Some(&b.held[&cb].local)
                && a.driver_knows.contains(&b.me)
                && b.driver_knows.contains(&a.me)
        }
    }

    fn run(seed: u64) -> Result<(), String> {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        // Which of the two has the lower id, and so wins crossing offers, varies.
        let names = if rng.chance(50) {
            ["p1", "p2"]
        } else {
            ["p2", "p1"]
        };
        let side = |name: &str| Side {
            n: Negotiation::new(NegotiationConfig::default(), PeerKind::Native, name.into()),
            me: id(name),
            driver_knows: BTreeSet::new(),
            held: BTreeMap::new(),
            open: None,
        };
        let drop_percent = rng.below(40);
        let fail_percent = rng.below(25);
        let mut w = World {
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: Vec::new(),
            sides: [side(names[0]), side(names[1])],
            wire_free: [0, 0],
            drop_percent,
            fail_percent,
            trace: Vec::new(),
        };
        let welcome_as = |me: &str, peers: Vec<PeerInfo>| ServerMsg::Welcome {
            id: id(me),
            room: "r".into(),
            peers,
            ice_servers: Vec::new(),
            presenter: false,
            limits: None,
            colour: 0,
        };
        // Side 0 is in the room; side 1 joins (the server tells side 0 first).
        w.at(0, 0, Ev::Server(welcome_as(names[0], Vec::new())));
        w.at(
            5,
            0,
            Ev::Server(ServerMsg::PeerJoined {
                peer: info(names[1]),
            }),
        );
        w.at(6, 1, Ev::Server(welcome_as(names[1], vec![info(names[0])])));
        let breaks = w.rng.below(12);
        for _ in 0..breaks {
            let at = w.rng.below(FAULTS_END_MS);
            w.at(at, 0, Ev::Break);
        }
        let mut connected_at = None;
        while let Some(Reverse((t, _, i, e))) = w.queue.pop() {
            if t > FAULTS_END_MS + 2 * CONNECTED_WITHIN_MS {
                break;
            }
            // The state between two events holds from the first to the second.
            if t >= FAULTS_END_MS && connected_at.is_none() && w.connected() {
                connected_at = Some(w.now.max(FAULTS_END_MS));
            }
            w.now = t;
            let ev = w.events[e].take().expect("each event once");
            w.handle(i, ev);
        }
        if connected_at.is_none() && w.connected() {
            connected_at = Some(w.now.max(FAULTS_END_MS));
        }
        let why = match connected_at {
            None => "never connected after the faults".to_string(),
            Some(t) if t > FAULTS_END_MS + CONNECTED_WITHIN_MS => {
                format!("connected only at {t} ms")
            }
            Some(_) if !w.connected() => "connected, then apart again".to_string(),
            Some(_) => return Ok(()),
        };
        let tail: Vec<&String> = w.trace.iter().rev().take(20).collect();
        Err(format!(
            "seed {seed} (drop {drop_percent} %, fail {fail_percent} %, {breaks} breaks): {why}; \
             last faults, newest first: {tail:?}"
        ))
    }

    #[test]
    fn two_living_members_always_connect_again_once_faults_stop() {
        let failures: Vec<String> = (0..300).filter_map(|s| run(s).err()).collect();
        assert!(
            failures.is_empty(),
            "{} of 300 seeds:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

#[test]
fn a_fresh_connection_on_membership_s_word_replaces_an_open_one_quietly() {
    let (mut n, conn) = open_with_b();
    n.reconnect(&id("b"));
    let steps = drain(&mut n);
    assert!(
        matches!(
            &steps[..],
            [Step::Close { conn: c, .. }, Step::Offer { conn: fresh, .. }] if *c == conn && *fresh != conn
        ),
        "{steps:?}"
    );
    let fresh = n.conn(&id("b")).unwrap();
    assert_eq!(n.stats().reconnects, 1);
    // Asked again while the fresh attempt is under way: it is left to finish.
    n.reconnect(&id("b"));
    assert_eq!(drain_all(&mut n), []);
    assert_eq!(n.conn(&id("b")), Some(fresh));
    // The old attempt's late close is stale: no ChannelClosed.
    n.connection_closed(&id("b"), conn);
    assert_eq!(channel_closed_count(&drain(&mut n)), 0);
    // With no attempt at all (a retry pending), it offers at once, and the pending
    // retry then finds the attempt and does nothing.
    n.negotiation_failed(&id("b"), fresh);
    let retry = retry_alarm(&drain_all(&mut n));
    n.reconnect(&id("b"));
    let offered = offer_in(&drain_all(&mut n));
    n.alarm(retry);
    assert_eq!(drain_all(&mut n), []);
    assert_eq!(n.conn(&id("b")), Some(offered));
    // A peer the server does not list, or after a shutdown: nothing.
    n.reconnect(&id("zz"));
    assert_eq!(drain_all(&mut n), []);
    n.shutdown();
    drain_all(&mut n);
    n.reconnect(&id("b"));
    assert_eq!(drain_all(&mut n), []);
}

#[test]
fn a_peer_that_replaces_its_connection_is_not_shown_leaving() {
    // The peer closed the old connection, and its fresh offer comes after the close
    // (they travel different ways): answered, opened within the grace, nothing to report.
    let (mut n, conn) = open_with_b();
    n.connection_closed(&id("b"), conn);
    let grace = closed_alarm(&drain_all(&mut n));
    let fresh = offered_by(&mut n, "b");
    n.remote_description_set(&id("b"), fresh);
    n.channel_open(&id("b"), fresh);
    assert_eq!(
        drain(&mut n),
        [Step::Emit(TransportEvent::ChannelOpen(id("b")))]
    );
    n.alarm(grace);
    assert_eq!(drain_all(&mut n), []);
    // No fresh channel in time, and the peer still listed: reported once the grace is
    // over; the driver forgets it, and a later attempt announces it again.
    let (mut n, conn) = open_with_b();
    n.connection_closed(&id("b"), conn);
    let grace = closed_alarm(&drain_all(&mut n));
    n.alarm(grace.clone());
    assert_eq!(
        drain_all(&mut n),
        [Step::Emit(TransportEvent::ChannelClosed(id("b")))]
    );
    n.alarm(grace);
    assert_eq!(drain_all(&mut n), [], "once");
    // The peer left the room meanwhile: the server's word reports it, the grace nothing.
    let (mut n, conn) = open_with_b();
    n.connection_closed(&id("b"), conn);
    let grace = closed_alarm(&drain_all(&mut n));
    n.handle_server(ServerMsg::PeerLeft { id: id("b") });
    assert_eq!(
        drain(&mut n),
        [Step::Emit(TransportEvent::PeerLeft(id("b")))]
    );
    n.alarm(grace);
    assert_eq!(drain_all(&mut n), []);
}

#[test]
fn when_membership_gives_up_on_a_peer_a_fresh_attempt_goes_on() {
    let mut n = Negotiation::new(NegotiationConfig::default(), PeerKind::Native, "".into());
    n.handle_server(welcome(&["a"]));
    let conn = offer_in(&drain_all(&mut n));
    // A minute of silence ends in membership forgetting the peer while an attempt is
    // checking (the link is still cut): the attempt is kept, and the peer announced
    // again so that the driver knows it when the attempt opens.
    n.close_peer(&id("a"));
    assert_eq!(
        drain_all(&mut n),
        [Step::Emit(TransportEvent::PeerJoined(info("a")))]
    );
    assert_eq!(n.conn(&id("a")), Some(conn));
}
