//! The WebRTC negotiation policy (`transport::negotiation`) driven through scenarios, on
//! both targets: natively under `cargo test`, and on wasm32 in Node under
//! wasm-bindgen-test (`cargo test -p node-core --target wasm32-unknown-unknown`). The
//! policy is the only place either transport decides anything, so these checks hold for
//! the browser and the native node alike.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use node_core::signal::{ErrorCode, IceServer, PeerId, PeerInfo, PeerKind, ServerMsg, SignalData};
use node_core::transport::TransportEvent;
use node_core::transport::negotiation::{Candidate, ConnId, Negotiation, NegotiationConfig, Step};

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

fn drain(n: &mut Negotiation) -> Vec<Step> {
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

/// Feeds an offer from `peer` and returns the attempt it started.
fn offered_by(n: &mut Negotiation, peer: &str) -> ConnId {
    n.handle_server(from(peer, offer("remote-offer")));
    let steps = drain(n);
    let Some(Step::Answer { conn, .. }) = steps.last() else {
        panic!("no answer step: {steps:?}")
    };
    *conn
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
fn a_failed_offer_closes_the_connection_and_reports_one_channel_closed() {
    let mut n = Negotiation::new(NegotiationConfig::default(), PeerKind::Native, "".into());
    n.handle_server(welcome(&["a"]));
    let Some(Step::Offer { conn, .. }) = drain(&mut n).pop() else {
        panic!()
    };
    n.negotiation_failed(&id("a"), conn);
    assert_eq!(
        drain(&mut n),
        [
            Step::Close {
                peer: id("a"),
                conn
            },
            Step::Emit(TransportEvent::ChannelClosed(id("a"))),
        ]
    );
    assert_eq!(n.conn(&id("a")), None);
    // The closing connection's own close signals are stale: no second ChannelClosed.
    n.connection_closed(&id("a"), conn);
    n.local_description(&id("a"), conn, "late".into());
    let steps = drain(&mut n);
    assert_eq!(channel_closed_count(&steps), 0, "{steps:?}");
    assert!(
        steps.iter().all(|s| matches!(s, Step::Close { .. })),
        "{steps:?}"
    );
    assert_eq!(n.stats().stale_reports, 2);
}

#[test]
fn a_failed_answer_is_handled_the_same_way() {
    let mut n = alone();
    let conn = offered_by(&mut n, "b");
    n.negotiation_failed(&id("b"), conn);
    assert_eq!(
        drain(&mut n),
        [
            Step::Close {
                peer: id("b"),
                conn
            },
            Step::Emit(TransportEvent::ChannelClosed(id("b"))),
        ]
    );
    // So is a failure to apply the answer to our offer.
    let mut n = Negotiation::new(NegotiationConfig::default(), PeerKind::Native, "".into());
    n.handle_server(welcome(&["a"]));
    let Some(Step::Offer { conn, .. }) = drain(&mut n).pop() else {
        panic!()
    };
    n.handle_server(from("a", answer("bad")));
    drain(&mut n);
    n.negotiation_failed(&id("a"), conn);
    assert_eq!(channel_closed_count(&drain(&mut n)), 1);
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
    // Membership declared `a` dead.
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
