//! The signaling protocol over real sockets: joining, relaying, isolation, bad input,
//! limits, leaving and shutdown.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use node_core::signal::{
    ClientMsg, ErrorCode, IceServer, PeerId, PeerKind, ServerMsg, SignalData, encode_client,
};
use signaling::Config;
use support::{Client, Server, WAIT, offer};
use tokio_tungstenite::tungstenite::{self, Message};

fn is_peer_id(id: &PeerId) -> bool {
    id.as_str().len() == 16
        && id
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::test]
async fn join_gets_welcome_with_id_peers_and_ice_servers() {
    let ice = vec![IceServer {
        urls: vec!["stun:127.0.0.1:3478".into()],
        username: Some("u".into()),
        credential: Some("p".into()),
    }];
    let server = Server::start(Config {
        ice_servers: ice.clone(),
        ..Config::default()
    })
    .await;

    let mut a = server.client().await;
    let wa = a.join_as("demo", PeerKind::Browser, "tab one").await;
    assert!(is_peer_id(&wa.id), "{}", wa.id);
    assert!(wa.peers.is_empty());
    assert_eq!(wa.ice_servers, ice);

    let mut b = server.client().await;
    let wb = b.join_as("demo", PeerKind::Native, "cli").await;
    assert!(is_peer_id(&wb.id));
    assert_ne!(wa.id, wb.id);
    assert_eq!(wb.peers.len(), 1, "the newcomer is not listed");
    assert_eq!(wb.peers[0].id, wa.id);
    assert_eq!(wb.peers[0].kind, PeerKind::Browser);
    assert_eq!(wb.peers[0].name, "tab one");
    assert_eq!(wb.ice_servers, ice);
}

#[tokio::test]
async fn ice_servers_are_empty_by_default() {
    let server = Server::default().await;
    let mut a = server.client().await;
    assert!(a.join("r").await.ice_servers.is_empty());
}

#[tokio::test]
async fn joining_is_announced_to_everyone_else() {
    let server = Server::default().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    let wa = a.join("r").await;
    let wb = b.join("r").await;
    let mut c = server.client().await;
    let wc = c.join_as("r", PeerKind::Browser, "see").await;
    let listed: Vec<PeerId> = wc.peers.iter().map(|p| p.id.clone()).collect();
    assert_eq!(listed, vec![wa.id.clone(), wb.id.clone()], "in join order");

    match a.recv().await {
        ServerMsg::PeerJoined { peer } => assert_eq!(peer.id, wb.id),
        other => panic!("{other:?}"),
    }
    for client in [&mut a, &mut b] {
        match client.recv().await {
            ServerMsg::PeerJoined { peer } => {
                assert_eq!(peer.id, wc.id);
                assert_eq!(peer.kind, PeerKind::Browser);
                assert_eq!(peer.name, "see");
            }
            other => panic!("{other:?}"),
        }
    }
    // The newcomer is not told about itself: the next thing c hears is a's signal.
    a.signal(&wc.id, offer("probe")).await;
    assert_eq!(
        c.recv().await,
        ServerMsg::Signal {
            from: wa.id,
            data: offer("probe")
        }
    );
}

#[tokio::test]
async fn relays_offer_answer_and_ice_with_the_true_sender() {
    let server = Server::default().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    let wa = a.join("r").await;
    let wb = b.join("r").await;
    a.recv().await; // peer_joined(b)

    let answer = SignalData::Answer {
        sdp: "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\n".into(),
    };
    let ice = SignalData::Ice {
        candidate: "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
    };

    a.signal(&wb.id, offer("v=0\r\n")).await;
    assert_eq!(
        b.recv().await,
        ServerMsg::Signal {
            from: wa.id.clone(),
            data: offer("v=0\r\n")
        }
    );
    b.signal(&wa.id, answer.clone()).await;
    assert_eq!(
        a.recv().await,
        ServerMsg::Signal {
            from: wb.id.clone(),
            data: answer
        }
    );
    a.signal(&wb.id, ice.clone()).await;
    b.signal(&wa.id, ice.clone()).await;
    assert_eq!(
        b.recv().await,
        ServerMsg::Signal {
            from: wa.id.clone(),
            data: ice.clone()
        }
    );
    assert_eq!(
        a.recv().await,
        ServerMsg::Signal {
            from: wb.id.clone(),
            data: ice
        }
    );
}

#[tokio::test]
async fn a_client_cannot_choose_or_spoof_an_id() {
    let server = Server::default().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    let mut c = server.client().await;
    a.send_text(r#"{"v":1,"type":"join","room":"r","kind":"native","id":"0000000000000000"}"#)
        .await;
    let wa = match a.recv().await {
        ServerMsg::Welcome { id, .. } => id,
        other => panic!("{other:?}"),
    };
    assert_ne!(wa.as_str(), "0000000000000000");
    let wb = b.join("r").await.id;
    let wc = c.join("r").await.id;
    a.recv().await;
    a.recv().await;
    b.recv().await;

    // a claims to be c in the frame; the server says who really sent it.
    let frame = format!(
        r#"{{"v":1,"type":"signal","from":"{wc}","to":"{wb}","data":{{"kind":"offer","sdp":"x"}}}}"#
    );
    a.send_text(frame).await;
    assert_eq!(
        b.recv().await,
        ServerMsg::Signal {
            from: wa,
            data: offer("x")
        }
    );
}

#[tokio::test]
async fn rooms_are_isolated() {
    let server = Server::default().await;
    let (mut a1, mut a2) = (server.client().await, server.client().await);
    let (mut b1, mut b2) = (server.client().await, server.client().await);
    let a1_id = a1.join("a").await.id;
    let wb1 = b1.join("b").await;
    assert!(wb1.peers.is_empty(), "b1 must not see room a");
    let wa2 = a2.join("a").await;
    assert_eq!(wa2.peers.len(), 1, "a2 sees only a1: {:?}", wa2.peers);
    let wb2 = b2.join("b").await;
    assert_eq!(wb2.peers.len(), 1);
    assert_eq!(wb2.peers[0].id, wb1.id);

    // a1 hears of a2 and nobody from b.
    match a1.recv().await {
        ServerMsg::PeerJoined { peer } => assert_eq!(peer.id, wa2.id),
        other => panic!("{other:?}"),
    }

    // a1 cannot reach b1, and gets the same answer as for an id that exists nowhere.
    a1.signal(&wb1.id, offer("leak")).await;
    let other_room = a1.expect_error(ErrorCode::NoSuchPeer).await;
    a1.signal(&PeerId("ffffffffffffffff".into()), offer("leak"))
        .await;
    let nowhere = a1.expect_error(ErrorCode::NoSuchPeer).await;
    assert_eq!(other_room, nowhere, "the error must not tell the two apart");

    // a2 leaving is told to a1 only.
    drop(a2);
    assert_eq!(a1.recv().await, ServerMsg::PeerLeft { id: wa2.id });

    // Probe: b1's queue is FIFO, so b2's signal arriving first proves nothing from room
    // a (a2's join, a1's attempt, a2's leaving) ever reached b1.
    match b1.recv().await {
        ServerMsg::PeerJoined { peer } => assert_eq!(peer.id, wb2.id),
        other => panic!("{other:?}"),
    }
    b2.signal(&wb1.id, offer("probe")).await;
    assert_eq!(
        b1.recv().await,
        ServerMsg::Signal {
            from: wb2.id.clone(),
            data: offer("probe")
        }
    );

    // And b leaving is not told to a.
    drop(b2);
    assert_eq!(b1.recv().await, ServerMsg::PeerLeft { id: wb2.id });
    let mut a3 = server.client().await;
    let wa3 = a3.join("a").await;
    match a1.recv().await {
        ServerMsg::PeerJoined { peer } => assert_eq!(peer.id, wa3.id),
        other => panic!("{other:?}"),
    }
    assert_eq!(wa3.peers.len(), 1);
    assert_eq!(wa3.peers[0].id, a1_id);
}

#[tokio::test]
async fn bad_input_gets_an_error_and_the_connection_survives() {
    let server = Server::default().await;
    let mut c = server.client().await;

    let before_join: &[(&str, ErrorCode)] = &[
        ("not json at all", ErrorCode::BadJson),
        ("[1,2,3]", ErrorCode::BadJson),
        (r#"{"v":1}"#, ErrorCode::BadJson),
        (r#"{"v":1,"type":"join","room":"r"}"#, ErrorCode::BadJson),
        (
            r#"{"v":1,"type":"join","room":"r","kind":"toaster"}"#,
            ErrorCode::BadJson,
        ),
        (r#"{"v":1,"type":"dance"}"#, ErrorCode::UnknownType),
        (
            r#"{"v":2,"type":"join","room":"r","kind":"native"}"#,
            ErrorCode::BadVersion,
        ),
        (
            r#"{"type":"join","room":"r","kind":"native"}"#,
            ErrorCode::BadVersion,
        ),
        (
            r#"{"v":1,"type":"join","room":"no spaces","kind":"native"}"#,
            ErrorCode::BadRoom,
        ),
        (
            r#"{"v":1,"type":"join","room":"../etc","kind":"native"}"#,
            ErrorCode::BadRoom,
        ),
        (
            r#"{"v":1,"type":"join","room":"","kind":"native"}"#,
            ErrorCode::BadRoom,
        ),
        (
            r#"{"v":1,"type":"signal","to":"abc","data":{"kind":"offer","sdp":"x"}}"#,
            ErrorCode::NotJoined,
        ),
    ];
    for (frame, code) in before_join {
        c.send_text(*frame).await;
        let (got, message) = c.recv_error().await;
        assert_eq!(got, *code, "frame {frame} got {message}");
        assert!(!message.is_empty());
    }
    c.send_raw(Message::binary(vec![0u8, 1, 2])).await;
    c.expect_error(ErrorCode::Binary).await;

    // The error frame itself is a versioned protocol frame.
    c.send_text("{").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let raw = loop {
        match tokio::time::timeout_at(deadline, c.ws.next())
            .await
            .unwrap()
        {
            // The server's heartbeat may come first.
            Some(Ok(Message::Ping(_))) => continue,
            other => break other,
        }
    };
    let Some(Ok(Message::Text(text))) = raw else {
        panic!("{raw:?}")
    };
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["v"], 1);
    assert_eq!(json["type"], "error");
    assert_eq!(json["code"], "bad_json");
    assert!(json["message"].is_string());

    // Still usable: join, then the errors that need a joined connection.
    let me = c.join("r").await.id;
    c.send_join("other").await;
    c.expect_error(ErrorCode::AlreadyJoined).await;
    c.signal(&PeerId("0123456789abcdef".into()), offer("x"))
        .await;
    c.expect_error(ErrorCode::NoSuchPeer).await;

    let mut d = server.client().await;
    let wd = d.join("r").await;
    assert_eq!(
        wd.peers.len(),
        1,
        "the first join stuck, the second did not"
    );
    assert_eq!(wd.peers[0].id, me);
    c.recv().await; // peer_joined(d)
    c.signal(&wd.id, offer("ok")).await;
    assert_eq!(
        d.recv().await,
        ServerMsg::Signal {
            from: me,
            data: offer("ok")
        }
    );
}

#[tokio::test]
async fn display_names_are_cleaned() {
    let server = Server::default().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    a.join_as("r", PeerKind::Browser, "  ann\u{7}\u{1b}ie  ")
        .await;
    let wb = b.join("r").await;
    assert_eq!(wb.peers[0].name, "annie");
}

#[tokio::test]
async fn an_oversized_frame_gets_too_big_and_one_past_the_hard_cap_closes() {
    let server = Server::start(Config {
        message_bytes_max: 1024,
        ..Config::default()
    })
    .await;
    let mut c = server.client().await;
    let mut d = server.client().await;
    let wc = c.join("r").await;
    let wd = d.join("r").await;
    c.recv().await;

    // Just under the limit is relayed, just over is refused.
    let fits = encode_client(ClientMsg::Signal {
        to: wd.id.clone(),
        data: offer(""),
    });
    let pad = 1024 - fits.len();
    c.signal(&wd.id, offer(&"a".repeat(pad))).await;
    match d.recv().await {
        ServerMsg::Signal { from, .. } => assert_eq!(from, wc.id),
        other => panic!("{other:?}"),
    }
    c.signal(&wd.id, offer(&"a".repeat(pad + 1))).await;
    c.expect_error(ErrorCode::TooBig).await;
    c.send_text("x".repeat(5000)).await;
    c.expect_error(ErrorCode::TooBig).await;

    // Still works.
    c.signal(&wd.id, offer("small")).await;
    assert_eq!(
        d.recv().await,
        ServerMsg::Signal {
            from: wc.id.clone(),
            data: offer("small")
        }
    );

    // Far past the limit the server may hang up; the room hears of it.
    let _ = c.ws.send(Message::text("x".repeat(1 << 20))).await;
    assert_eq!(c.expect_closed().await, Some(1009), "message too big");
    assert_eq!(d.recv().await, ServerMsg::PeerLeft { id: wc.id });
}

#[tokio::test]
async fn a_full_room_and_too_many_rooms_are_refused() {
    let server = Server::start(Config {
        peers_per_room_max: 2,
        rooms_max: 2,
        ..Config::default()
    })
    .await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    let mut c = server.client().await;
    let wa = a.join("one").await;
    b.join("one").await;
    a.recv().await;

    c.send_join("one").await;
    c.expect_error(ErrorCode::RoomFull).await;

    let mut d = server.client().await;
    d.join("two").await;
    c.send_join("three").await;
    c.expect_error(ErrorCode::TooManyRooms).await;

    // A refused client can still join once there is room, and the members saw nothing.
    drop(b);
    match a.recv().await {
        ServerMsg::PeerLeft { .. } => {}
        other => panic!("{other:?}"),
    }
    let wc = c.join("one").await;
    assert_eq!(wc.peers.len(), 1);
    assert_eq!(wc.peers[0].id, wa.id);
}

#[tokio::test]
async fn frames_over_the_rate_are_dropped_then_the_rate_recovers() {
    let server = Server::start(Config {
        messages_per_second_max: 1,
        messages_burst_max: 3,
        ..Config::default()
    })
    .await;
    let mut c = server.client().await;
    let not_joined = encode_client(ClientMsg::Signal {
        to: PeerId("x".into()),
        data: offer("x"),
    });
    for _ in 0..6 {
        c.send_text(not_joined.clone()).await;
    }
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(c.recv_error().await.0);
    }
    assert_eq!(&codes[..3], &[ErrorCode::NotJoined; 3], "the burst passes");
    assert!(codes[3..].contains(&ErrorCode::RateLimited), "{codes:?}");
    let accepted = codes.iter().filter(|c| **c == ErrorCode::NotJoined).count();
    assert!(
        accepted <= 4,
        "at most one token refills meanwhile: {codes:?}"
    );

    // Rate-limited frames are dropped, not queued: once a token refills (one per second
    // here) a join goes through.
    let join = encode_client(ClientMsg::Join {
        room: "r".into(),
        kind: PeerKind::Native,
        name: String::new(),
        presenter_key: None,
    });
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        c.send_text(join.clone()).await;
        match c.recv().await {
            ServerMsg::Welcome { .. } => break,
            ServerMsg::Error {
                code: ErrorCode::RateLimited,
                ..
            } => {}
            other => panic!("{other:?}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rate never recovered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn peer_left_is_sent_when_a_socket_drops_or_closes() {
    let server = Server::default().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    let mut c = server.client().await;
    a.join("r").await;
    let wb = b.join("r").await;
    let wc = c.join("r").await;
    for _ in 0..2 {
        a.recv().await;
    }
    b.recv().await;

    // Dropped without a closing handshake, like a killed tab.
    drop(b);
    assert_eq!(a.recv().await, ServerMsg::PeerLeft { id: wb.id.clone() });
    assert_eq!(c.recv().await, ServerMsg::PeerLeft { id: wb.id });

    // Closed politely.
    c.ws.close(None).await.unwrap();
    assert_eq!(a.recv().await, ServerMsg::PeerLeft { id: wc.id });
}

#[tokio::test]
async fn a_client_sending_only_bad_frames_is_hung_up_on() {
    let server = Server::start(Config {
        messages_per_second_max: 10_000,
        messages_burst_max: 10_000,
        ..Config::default()
    })
    .await;
    let mut c = server.client().await;
    let mut watcher = server.client().await;
    let wc = c.join("r").await;
    watcher.join("r").await;

    // A good frame in between resets the count.
    for _ in 0..60 {
        c.send_text("bad").await;
    }
    c.send(ClientMsg::Signal {
        to: wc.id.clone(),
        data: offer("self"),
    })
    .await;
    for _ in 0..signaling::ERRORS_IN_A_ROW_MAX {
        c.send_text("bad").await;
    }
    let mut errors = 0;
    let deadline = tokio::time::Instant::now() + WAIT;
    let code = loop {
        let next = tokio::time::timeout_at(deadline, c.ws.next())
            .await
            .unwrap();
        match next {
            Some(Ok(Message::Text(t))) if t.contains("bad_json") => errors += 1,
            Some(Ok(Message::Text(_))) => {} // peer_joined, the signal to itself
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {} // the server's heartbeat
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(errors, 60 + signaling::ERRORS_IN_A_ROW_MAX - 1);
    assert_eq!(code, Some(1008), "policy violation");
    assert_eq!(watcher.recv().await, ServerMsg::PeerLeft { id: wc.id });
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_with_503() {
    let server = Server::start(Config {
        connections_max: 1,
        ..Config::default()
    })
    .await;
    let mut first = server.client().await;
    first.join("r").await;
    match tokio_tungstenite::connect_async(server.ws_url()).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("expected 503, got {other:?}"),
    }
    assert_eq!(server.stats().await["connections_refused"], 1);

    // The slot comes back when the first connection has closed.
    first.ws.close(None).await.unwrap();
    first.expect_closed().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut second = loop {
        match tokio_tungstenite::connect_async(server.ws_url()).await {
            Ok((ws, _)) => break Client::from(ws),
            Err(tungstenite::Error::Http(r)) if r.status() == 503 => {
                assert!(tokio::time::Instant::now() < deadline, "slot never freed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    second.join("r").await;
}

#[tokio::test]
async fn a_client_that_does_not_read_is_dropped_and_counted() {
    let server = Server::start(Config {
        outbox_messages_max: 4,
        messages_per_second_max: 100_000,
        messages_burst_max: 100_000,
        ..Config::default()
    })
    .await;
    let mut slow = server.client().await;
    let mut fast = server.client().await;
    let ws = slow.join("r").await;
    let wf = fast.join("r").await;

    // Flood the slow client with large signals it never reads, until the kernel's
    // buffers and then its queue are full. After each one, fast signals itself and
    // waits for the echo: its queue is FIFO, so a peer_left caused by the big frame
    // arrives before the echo, and fast stops before sending to a peer that is gone.
    let big = offer(&"s".repeat(60_000));
    let mut sent = 0;
    let left = loop {
        assert!(sent < 5_000, "the slow client was never dropped");
        fast.signal(&ws.id, big.clone()).await;
        fast.signal(&wf.id, offer("tick")).await;
        sent += 1;
        match fast.recv().await {
            ServerMsg::Signal { from, .. } if from == wf.id => {}
            ServerMsg::PeerLeft { id } => break id,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(left, ws.id);
    assert_eq!(server.stats().await["slow_clients_dropped"], 1);

    // Its socket is closed: after whatever the kernel still buffered, the stream ends.
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(Ok(_)) = slow.ws.next().await {}
    })
    .await
    .expect("the slow client's socket stayed open");
}

#[tokio::test]
async fn shutdown_returns_while_clients_are_connected() {
    let mut server = Server::default().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    a.join("r").await;
    b.join("r").await;
    // b stays silent and unread: shutdown must not wait on it forever.

    server.shut_down();
    let result = tokio::time::timeout(Duration::from_secs(10), &mut server.task)
        .await
        .expect("serve did not return after shutdown")
        .expect("serve panicked");
    assert!(result.is_ok(), "{result:?}");

    // a is told the server is going away (after the peer_joined still queued for it).
    assert_eq!(a.expect_closed().await, Some(1001));
    // New connections are refused now.
    assert!(
        tokio_tungstenite::connect_async(server.ws_url())
            .await
            .is_err()
    );
}

/// A server with presenter key `key`.
async fn presenter_server(key: &str) -> Server {
    Server::start(Config {
        presenter_key: Some(key.into()),
        ..Config::default()
    })
    .await
}

/// Joins with a presenter key and returns the welcome frame's presenter flag.
async fn join_with_key(c: &mut Client, room: &str, key: Option<&str>) -> (PeerId, bool) {
    c.send(ClientMsg::Join {
        room: room.into(),
        kind: PeerKind::Browser,
        name: "presenter?".into(),
        presenter_key: key.map(str::to_string),
    })
    .await;
    match c.recv().await {
        ServerMsg::Welcome { id, presenter, .. } => (id, presenter),
        other => panic!("expected a welcome, got {other:?}"),
    }
}

#[tokio::test]
async fn only_the_servers_presenter_key_makes_a_presenter_and_others_are_told() {
    let key = "k3y-0123456789abcdef";
    let server = presenter_server(key).await;
    let mut watcher = server.client().await;
    watcher.join("talk").await;

    let mut keyless = server.client().await;
    assert!(!join_with_key(&mut keyless, "talk", None).await.1);
    let mut wrong = server.client().await;
    assert!(
        !join_with_key(&mut wrong, "talk", Some("k3y-0123456789abcdeX"))
            .await
            .1
    );
    let mut short = server.client().await;
    assert!(!join_with_key(&mut short, "talk", Some("k3y")).await.1);
    let mut presenter = server.client().await;
    let (id, is_presenter) = join_with_key(&mut presenter, "talk", Some(key)).await;
    assert!(is_presenter);

    // The watcher hears of all four, and only the last as a presenter.
    let mut flags = Vec::new();
    for _ in 0..4 {
        match watcher.recv().await {
            ServerMsg::PeerJoined { peer } => flags.push((peer.id == id, peer.presenter)),
            other => panic!("expected peer_joined, got {other:?}"),
        }
    }
    assert_eq!(
        flags,
        [(false, false), (false, false), (false, false), (true, true)]
    );
    // A later member finds it marked in its welcome; nobody else is.
    let mut late = server.client().await;
    let w = late.join("talk").await;
    let marked: Vec<bool> = w.peers.iter().map(|p| p.presenter).collect();
    assert_eq!(marked, [false, false, false, false, true]);

    assert_eq!(server.stats().await["presenter_keys_refused"], 2);
    // The key is nowhere to be read.
    for path in ["/api/rooms", "/api/stats", "/api/info"] {
        let body = server.get(path).await.body;
        assert!(!body.contains(key), "{path} shows the key: {body}");
    }
}

#[tokio::test]
async fn without_a_configured_key_nobody_is_a_presenter() {
    let server = Server::default().await;
    let mut c = server.client().await;
    assert!(
        !join_with_key(&mut c, "talk", Some("anything-at-all"))
            .await
            .1
    );
}

/// Frames until the server closes the connection: the close code and every
/// `peer_left` seen on the way.
async fn until_closed(c: &mut Client) -> (Option<u16>, Vec<PeerId>) {
    let mut left = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let next = tokio::time::timeout_at(deadline, c.ws.next())
            .await
            .expect("connection was not closed");
        match next {
            Some(Ok(Message::Close(frame))) => return (frame.map(|f| f.code.into()), left),
            Some(Ok(Message::Text(t))) => {
                if let Ok(ServerMsg::PeerLeft { id }) = node_core::signal::decode_server(&t) {
                    left.push(id);
                }
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return (None, left),
        }
    }
}

#[tokio::test]
async fn a_presenter_takes_the_server_away_from_a_room_and_nobody_is_told_anyone_left() {
    let key = "outage-key-0123456789";
    let server = presenter_server(key).await;
    let mut a = server.client().await;
    a.join("talk").await;
    let mut elsewhere = server.client().await;
    elsewhere.join("other-room").await;
    let mut p = server.client().await;
    assert!(join_with_key(&mut p, "talk", Some(key)).await.1);
    assert!(matches!(a.recv().await, ServerMsg::PeerJoined { .. }));

    // Only a presenter may.
    a.send(ClientMsg::Outage { secs: 2 }).await;
    a.expect_error(ErrorCode::NotPresenter).await;

    p.send(ClientMsg::Outage { secs: 2 }).await;
    for c in [&mut a, &mut p] {
        let (code, left) = until_closed(c).await;
        assert_eq!(code, Some(1001), "going away");
        assert!(left.is_empty(), "told that {left:?} left");
    }
    // The other room is untouched, and the room is gone from the listing.
    elsewhere
        .signal(&PeerId("0000000000000000".into()), offer("v=0"))
        .await;
    elsewhere.expect_error(ErrorCode::NoSuchPeer).await;
    let rooms = server.get("/api/rooms").await.body;
    assert!(!rooms.contains("\"talk\""), "{rooms}");
    // Nobody joins the room meanwhile, and is told when it comes back.
    let mut late = server.client().await;
    late.send_join("talk").await;
    match late.recv().await {
        ServerMsg::Error {
            code: ErrorCode::ServerAway,
            message,
            retry_after_ms: Some(ms),
            ..
        } => assert!(message.contains("back in") && ms <= 2_000, "{message} {ms}"),
        other => panic!("{other:?}"),
    }
    // Only the presenter key brings it back early; then anyone joins at once.
    let back = |key: &str| format!(r#"{{"presenter_key":"{key}"}}"#);
    let refused = server
        .post_json("/api/rooms/talk/back", &back("not-the-key"))
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    // A body that is not the request is refused, and the room stays away.
    for garbage in ["not json", "{}", r#"{"presenter_key": 7}"#] {
        let res = server.post_json("/api/rooms/talk/back", garbage).await;
        assert!(
            (400..500).contains(&res.status),
            "{garbage}: {}",
            res.status
        );
    }
    let mut still_away = server.client().await;
    still_away.send_join("talk").await;
    still_away.expect_error(ErrorCode::ServerAway).await;
    let ended = server.post_json("/api/rooms/talk/back", &back(key)).await;
    assert_eq!(
        (ended.status, ended.body.as_str()),
        (200, r#"{"back":true}"#)
    );
    let mut now = server.client().await;
    now.send_join("talk").await;
    assert!(matches!(now.recv().await, ServerMsg::Welcome { .. }));
    let again = server.post_json("/api/rooms/talk/back", &back(key)).await;
    assert_eq!(
        (again.status, again.body.as_str()),
        (200, r#"{"back":false}"#)
    );
    // Once the time is up (taken away again), they join again by themselves.
    let mut p2 = server.client().await;
    assert!(join_with_key(&mut p2, "talk", Some(key)).await.1);
    p2.send(ClientMsg::Outage { secs: 1 }).await;
    // Its own socket closes once the room is away.
    until_closed(&mut p2).await;
    let mut away = server.client().await;
    away.send_join("talk").await;
    away.expect_error(ErrorCode::ServerAway).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut c = server.client().await;
        c.send_join("talk").await;
        match c.recv().await {
            ServerMsg::Welcome { .. } => break,
            ServerMsg::Error {
                code: ErrorCode::ServerAway,
                ..
            } => {
                assert!(tokio::time::Instant::now() < deadline, "still away");
                // The outage is a timer on the server: ask again a little later.
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_presenters_revive_reaches_every_other_member_of_the_room_only() {
    let key = "revive-key-0123456789";
    let server = presenter_server(key).await;
    let mut a = server.client().await;
    a.join("talk").await;
    let mut b = server.client().await;
    b.join("talk").await;
    assert!(matches!(a.recv().await, ServerMsg::PeerJoined { .. }));
    let mut elsewhere = server.client().await;
    elsewhere.join("other-room").await;
    let mut p = server.client().await;
    let (presenter, yes) = join_with_key(&mut p, "talk", Some(key)).await;
    assert!(yes);
    for c in [&mut a, &mut b] {
        assert!(matches!(c.recv().await, ServerMsg::PeerJoined { .. }));
    }
    // Only a presenter may.
    a.send(ClientMsg::Revive).await;
    a.expect_error(ErrorCode::NotPresenter).await;
    p.send(ClientMsg::Revive).await;
    for c in [&mut a, &mut b] {
        match c.recv().await {
            ServerMsg::Revive { from } => assert_eq!(from, presenter),
            other => panic!("{other:?}"),
        }
    }
    // Not the presenter itself, not another room: their next frame is an answer to
    // their own next request.
    for c in [&mut p, &mut elsewhere] {
        c.signal(&PeerId("0000000000000000".into()), offer("v=0"))
            .await;
        c.expect_error(ErrorCode::NoSuchPeer).await;
    }
}

#[tokio::test]
async fn a_client_that_never_reads_is_dropped_and_its_queue_freed() {
    let server = Server::start(Config {
        messages_per_second_max: 10_000,
        messages_burst_max: 10_000,
        ..Config::default()
    })
    .await;
    let mut reader = server.client().await;
    let victim = reader.join("r").await.id;
    // From here on `reader` never reads its socket.
    let mut sender = server.client().await;
    sender.join("r").await;
    let sdp = "x".repeat(60_000);
    let stats = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap_or(0);
    let mut dropped = false;
    // 12 MB at most: far more than the loopback socket buffers and the queue budget.
    for _ in 0..200 {
        sender.signal(&victim, offer(&sdp)).await;
        let s = server.stats().await;
        if stats(&s, "slow_clients_dropped") + stats(&s, "writers_stalled") > 0 {
            dropped = true;
            break;
        }
    }
    assert!(
        dropped,
        "a client that never reads was kept: {}",
        server.stats().await
    );
    // Its room forgets it and its queue's bytes are given back.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = server.stats().await;
        let rooms = server.get("/api/rooms").await.body;
        if stats(&s, "queued_bytes") == 0 && !rooms.contains(victim.as_str()) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still held: {s} {rooms}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_peer_that_vanished_leaves_its_room_when_its_pongs_stop() {
    let server = Server::start(Config {
        ping_interval_ms: 100,
        dead_after_ms: 600,
        ..Config::default()
    })
    .await;
    let mut watcher = server.client().await;
    watcher.join("r").await;
    let mut vanished = server.client().await;
    let gone = vanished.join("r").await.id;
    assert!(matches!(watcher.recv().await, ServerMsg::PeerJoined { .. }));
    // `vanished` never reads again, so it never answers a ping; `watcher` reads (and its
    // client answers pings), and must be told, well within the bounded wait.
    let started = std::time::Instant::now();
    match watcher.recv().await {
        ServerMsg::PeerLeft { id } => assert_eq!(id, gone),
        other => panic!("expected peer_left, got {other:?}"),
    }
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(3), "{took:?}");
    assert_eq!(
        server.stats().await["silent_dropped"],
        1,
        "the watcher stays"
    );
    drop(vanished);
}

#[tokio::test]
async fn protocol_violations_close_with_their_codes() {
    use tungstenite::protocol::frame::Frame;
    use tungstenite::protocol::frame::coding::{Data, OpCode};
    let server = Server::default().await;
    // Text that is not UTF-8: 1007.
    let mut c = server.client().await;
    c.join("r").await;
    let bad = Frame::message(vec![0xff, 0xfe, 0x80], OpCode::Data(Data::Text), true);
    let _ = c.ws.send(Message::Frame(bad)).await;
    assert_eq!(c.expect_closed().await, Some(1007));
    // A reserved opcode: 1002.
    let mut c = server.client().await;
    c.join("r").await;
    let bad = Frame::message(vec![1, 2, 3], OpCode::Data(Data::Reserved(3)), true);
    let _ = c.ws.send(Message::Frame(bad)).await;
    assert_eq!(c.expect_closed().await, Some(1002));
}

#[tokio::test]
async fn a_client_hung_up_on_while_still_sending_reads_its_errors_and_the_close_code() {
    let server = Server::default().await;
    let mut c = server.client().await;
    c.join("r").await;
    // Three times the limit, sent before reading anything: the server hangs up while
    // bad frames are still arriving.
    for _ in 0..3 * signaling::ERRORS_IN_A_ROW_MAX {
        c.send_text("bad").await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut errors = 0;
    let code = loop {
        match tokio::time::timeout_at(deadline, c.ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Text(t))) if t.contains("bad_json") => errors += 1,
            Some(Ok(Message::Text(_) | Message::Ping(_))) => {}
            Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
            other => panic!("after {errors} error frames: {other:?}"),
        }
    };
    assert_eq!(code, Some(1008));
    assert_eq!(errors, signaling::ERRORS_IN_A_ROW_MAX - 1);
}

#[tokio::test]
async fn names_are_cleaned_and_joins_and_pings_are_paced() {
    let server = Server::start(Config {
        joins_per_second_max: 1,
        joins_burst_max: 4,
        ..Config::default()
    })
    .await;
    // A name that would read as another: what others see has nothing invisible in it.
    let mut a = server.client().await;
    a.join_as("r", PeerKind::Browser, "ad\u{200b}min\u{202e}")
        .await;
    let mut b = server.client().await;
    let wb = b.join("r").await;
    assert_eq!(wb.peers[0].name, "admin");
    // Joins from one address: the burst, then refused until the bucket refills.
    let mut refused = 0;
    let mut clients = Vec::new();
    for _ in 0..6 {
        let mut c = server.client().await;
        c.send_join("churn").await;
        match c.recv().await {
            ServerMsg::Welcome { .. } => {}
            ServerMsg::Error {
                code: ErrorCode::RateLimited,
                message,
                ..
            } => {
                assert!(message.contains("joins from your address"), "{message}");
                refused += 1;
            }
            other => panic!("{other:?}"),
        }
        clients.push(c);
    }
    // Two joins above were a's and b's: 4 in the burst leaves 2 for these 6.
    assert_eq!(refused, 4);
    // Pings cost what frames cost: a flood of them is refused like any other.
    let burst = Config::default().messages_burst_max;
    for _ in 0..burst + 50 {
        a.ws.send(Message::Ping(Default::default())).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    let (code, _) = loop {
        match tokio::time::timeout_at(deadline, a.ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Text(t))) => {
                if let Ok(ServerMsg::Error { code, message, .. }) =
                    node_core::signal::decode_server(&t)
                {
                    break (code, message);
                }
            }
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(code, ErrorCode::RateLimited);
}

#[tokio::test]
async fn a_socket_that_never_joins_is_closed_and_frees_its_slot() {
    let server = Server::start(Config {
        join_deadline_ms: 300,
        connections_max: 1,
        ..Config::default()
    })
    .await;
    let mut idle = server.client().await;
    // The only slot is taken: another socket is refused while it is.
    let refused = tokio_tungstenite::connect_async(server.ws_url()).await;
    assert!(refused.is_err(), "a second socket got in");
    assert_eq!(idle.expect_closed().await, Some(1008));
    // The slot is free again (the close is seen just before the slot is given back).
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio_tungstenite::connect_async(server.ws_url())
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot was not freed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_refusal_for_pace_names_the_frame_and_when_to_send_it_again() {
    let server = Server::start(Config {
        messages_per_second_max: 2,
        messages_burst_max: 3,
        ..Config::default()
    })
    .await;
    let mut c = server.client().await;
    let welcome_limits = {
        c.send_join("r").await;
        match c.recv().await {
            ServerMsg::Welcome { limits, .. } => limits,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        welcome_limits,
        Some(node_core::signal::RateLimits {
            messages_per_second: 2,
            messages_burst: 3
        }),
        "the welcome tells the pace"
    );
    let to_nobody = encode_client(ClientMsg::Signal {
        to: PeerId("nobody".into()),
        data: offer("x"),
    });
    for _ in 0..3 {
        c.send_text(to_nobody.clone()).await;
    }
    // Frames 2 and 3 are answered (no such peer); frame 4 is over the burst.
    let mut seen = Vec::new();
    for _ in 0..3 {
        match c.recv().await {
            ServerMsg::Error {
                code,
                frame,
                retry_after_ms,
                ..
            } => seen.push((code, frame, retry_after_ms)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen[0], (ErrorCode::NoSuchPeer, Some(2), None));
    assert_eq!(seen[1], (ErrorCode::NoSuchPeer, Some(3), None));
    let (code, frame, retry) = seen[2];
    assert_eq!((code, frame), (ErrorCode::RateLimited, Some(4)));
    // Two per second: the next token in at most 500 ms.
    let retry = retry.expect("a retry hint");
    assert!((1..=500).contains(&retry), "{retry}");
}

#[tokio::test]
async fn frames_are_paced_per_address_over_all_its_connections() {
    let server = Server::start(Config {
        address_messages_per_second_max: 1,
        address_messages_burst_max: 6,
        ..Config::default()
    })
    .await;
    // Three connections from 127.0.0.1, each well within its own pace.
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut c = server.client().await;
        c.join("r").await;
        clients.push(c);
    }
    let to_nobody = encode_client(ClientMsg::Signal {
        to: PeerId("nobody".into()),
        data: offer("x"),
    });
    let mut limited = 0;
    for c in &mut clients {
        for _ in 0..2 {
            c.send_text(to_nobody.clone()).await;
        }
    }
    for c in &mut clients {
        // Drain the peer_joined notices before the errors.
        for _ in 0..2 {
            loop {
                match c.recv().await {
                    ServerMsg::PeerJoined { .. } => continue,
                    ServerMsg::Error {
                        code: ErrorCode::RateLimited,
                        retry_after_ms,
                        ..
                    } => {
                        assert!(retry_after_ms.is_some_and(|ms| ms <= 1_000));
                        limited += 1;
                    }
                    ServerMsg::Error {
                        code: ErrorCode::NoSuchPeer,
                        ..
                    } => {}
                    other => panic!("{other:?}"),
                }
                break;
            }
        }
    }
    // 3 joins and 3 signals fit the address's burst of 6; the other 3 do not (give or
    // take the one token that may refill meanwhile).
    assert!((2..=3).contains(&limited), "{limited}");
}

/// Sends a resume for `room` with `token` (a native node named `n`).
async fn send_resume(c: &mut Client, room: &str, token: &str) {
    c.send(ClientMsg::Resume {
        room: room.into(),
        token: token.into(),
        kind: PeerKind::Native,
        name: "n".into(),
        presenter_key: None,
        colour: None,
    })
    .await;
}

/// A server signing tokens with `key`.
async fn server_with_key(key: [u8; 32]) -> Server {
    Server::start(Config {
        resume_key: Some(signaling::ResumeKey::new(key)),
        ..Config::default()
    })
    .await
}

#[tokio::test]
async fn a_member_gets_its_id_back_from_a_restarted_server_with_its_token() {
    let mut first = server_with_key([7; 32]).await;
    let mut a = first.client().await;
    let mut b = first.client().await;
    let wa = a.join("r").await;
    // The token follows the welcome.
    let token = match a.recv_any().await {
        ServerMsg::ResumeToken {
            token,
            expires_in_s,
        } => {
            assert_eq!(expires_in_s, 3_600);
            token
        }
        other => panic!("{other:?}"),
    };
    let wb = b.join("r").await;
    let b_token = match b.recv_any().await {
        ServerMsg::ResumeToken { token, .. } => token,
        other => panic!("{other:?}"),
    };
    // The token is nowhere a server shows.
    for path in ["/api/rooms", "/api/stats", "/metrics", "/api/info"] {
        let body = first.get(path).await.body;
        assert!(
            !body.contains(&token[token.len() - 16..]),
            "{path} shows a token"
        );
    }
    first.shut_down();
    first.task.await.unwrap().unwrap();

    // Another server, the same key: both come back with their ids.
    let second = server_with_key([7; 32]).await;
    let mut a2 = second.client().await;
    send_resume(&mut a2, "r", &token).await;
    match a2.recv().await {
        ServerMsg::Welcome { id, peers, .. } => {
            assert_eq!(id, wa.id);
            assert!(peers.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert!(a2.token.is_none());
    let mut b2 = second.client().await;
    send_resume(&mut b2, "r", &b_token).await;
    match b2.recv().await {
        ServerMsg::Welcome { id, peers, .. } => {
            assert_eq!(id, wb.id);
            assert_eq!(peers.iter().map(|p| &p.id).collect::<Vec<_>>(), [&wa.id]);
        }
        other => panic!("{other:?}"),
    }
    match a2.recv().await {
        ServerMsg::PeerJoined { peer } => assert_eq!(peer.id, wb.id),
        other => panic!("{other:?}"),
    }
    assert!(a2.token.is_some(), "a fresh token after the resume");
    assert_ne!(a2.token.as_deref(), Some(token.as_str()));
    // A newcomer sees both under their old ids.
    let mut c = second.client().await;
    let wc = c.join("r").await;
    let ids: Vec<_> = wc.peers.iter().map(|p| p.id.clone()).collect();
    assert_eq!(ids, [wa.id, wb.id]);
}

#[tokio::test]
async fn forged_expired_foreign_and_other_rooms_tokens_are_refused() {
    let server = server_with_key([9; 32]).await;
    let mut a = server.client().await;
    let wa = a.join("r").await;
    let key = signaling::ResumeKey::new([9; 32]);
    let id = PeerId("00000000000000f1".into());
    let far = u64::MAX / 2;
    let good = key.issue(&id, "r", far);
    let cases = [
        // Signed with another key (another server's, or made up).
        (
            signaling::ResumeKey::new([1; 32]).issue(&id, "r", far),
            "r",
            ErrorCode::BadToken,
        ),
        // One character of the MAC changed.
        (
            format!(
                "{}{}",
                &good[..good.len() - 1],
                if good.ends_with('0') { '1' } else { '0' }
            ),
            "r",
            ErrorCode::BadToken,
        ),
        // The id changed to someone else's.
        (
            good.replace("00000000000000f1", wa.id.as_str()),
            "r",
            ErrorCode::BadToken,
        ),
        ("not a token".to_string(), "r", ErrorCode::BadToken),
        // Good, but for another room.
        (good.clone(), "elsewhere", ErrorCode::BadToken),
        // Good, but expired.
        (key.issue(&id, "r", 1), "r", ErrorCode::TokenExpired),
    ];
    let mut kept = Vec::new();
    for (token, room, code) in cases {
        let mut c = server.client().await;
        send_resume(&mut c, room, &token).await;
        let message = c.expect_error(code).await;
        assert!(
            token.len() < 20 || !message.contains(&token[token.len() - 16..]),
            "the error repeats the token"
        );
        // Refused, the connection may still join afresh.
        c.join(room).await;
        kept.push(c);
    }
    let stats = server.stats().await;
    assert_eq!(stats["peers"], 7, "{stats}");
    // A good token works.
    let mut ok = server.client().await;
    send_resume(&mut ok, "r", &good).await;
    match ok.recv().await {
        ServerMsg::Welcome { id: got, .. } => assert_eq!(got, id),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_token_for_an_id_held_by_a_connected_member_is_refused_until_it_has_gone() {
    let server = server_with_key([3; 32]).await;
    let mut a = server.client().await;
    let wa = a.join("r").await;
    let token = match a.recv_any().await {
        ServerMsg::ResumeToken { token, .. } => token,
        other => panic!("{other:?}"),
    };
    // Someone else with a's token while a is connected.
    let mut thief = server.client().await;
    send_resume(&mut thief, "r", &token).await;
    thief.expect_error(ErrorCode::IdInUse).await;
    // A resume on a connection that joined already is refused like a second join.
    send_resume(&mut a, "r", &token).await;
    a.expect_error(ErrorCode::AlreadyJoined).await;
    // Once a's connection is gone the id can be taken back (by whoever holds the token:
    // it is the member's secret).
    let mut watcher = server.client().await;
    watcher.join("r").await;
    drop(a);
    assert_eq!(
        watcher.recv().await,
        ServerMsg::PeerLeft { id: wa.id.clone() }
    );
    let mut back = server.client().await;
    send_resume(&mut back, "r", &token).await;
    match back.recv().await {
        ServerMsg::Welcome { id, .. } => assert_eq!(id, wa.id),
        other => panic!("{other:?}"),
    }
    match watcher.recv().await {
        ServerMsg::PeerJoined { peer } => assert_eq!(peer.id, wa.id),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.stats().await["tokens_refused"], 1);
}

#[tokio::test]
async fn each_welcome_carries_fresh_turn_credentials_when_a_secret_is_set() {
    let turn = IceServer {
        urls: vec!["turn:192.0.2.9:3478".into()],
        username: None,
        credential: None,
    };
    let server = Server::start(Config {
        ice_servers: vec![turn.clone()],
        turn_secret: Some("shared-with-coturn".into()),
        turn_credential_secs: 600,
        ..Config::default()
    })
    .await;
    let mut a = server.client().await;
    let w = a.join("r").await;
    let got = &w.ice_servers[0];
    assert_eq!(got.urls, turn.urls);
    let user = got.username.as_deref().expect("a user name");
    let (expiry, label) = user.split_once(':').expect("EXPIRY:LABEL");
    assert_eq!(label, "r");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!(
        (now + 590..=now + 610).contains(&expiry),
        "{expiry} vs {now}"
    );
    // 20 bytes of HMAC-SHA1 in Base64.
    assert_eq!(got.credential.as_deref().map(str::len), Some(28));
    // Without a secret, the server hands out what it was given.
    let plain = Server::start(Config {
        ice_servers: vec![turn.clone()],
        ..Config::default()
    })
    .await;
    let mut b = plain.client().await;
    assert_eq!(b.join("r").await.ice_servers, vec![turn]);
}
