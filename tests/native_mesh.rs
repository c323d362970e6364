//! Native mesh over real WebRTC on loopback: a signaling server and four
//! `meshwork node` processes form a full mesh; one is killed with SIGKILL and every
//! survivor reports its departure within 2 s.

mod common;

use std::time::{Duration, Instant};

use common::{node, server, wait_connected};

#[test]
fn four_native_nodes_form_a_full_mesh_and_notice_a_kill() {
    let (_server, addr) = server(&[]);
    let room = "native-mesh";
    let mut nodes: Vec<_> = (0..4)
        .map(|i| node(&addr, room, &format!("n{i}"), &[]))
        .collect();
    let ids: Vec<String> = nodes
        .iter_mut()
        .map(|n| {
            n.wait_event(Duration::from_secs(20), "joined")["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for (i, n) in nodes.iter_mut().enumerate() {
        let mut peers = wait_connected(n, 3, Duration::from_secs(60));
        peers.sort();
        let mut want: Vec<String> = ids
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, id)| id.clone())
            .collect();
        want.sort();
        assert_eq!(
            peers, want,
            "{} is connected to exactly the other three",
            n.name
        );
        let connected = n.wait_event(Duration::from_secs(1), "peer_connected");
        assert_eq!(connected["kind"], "native");
    }
    // Heartbeats measure a round trip to every peer.
    for n in nodes.iter_mut() {
        let rtt = n.wait_event(Duration::from_secs(10), "rtt");
        assert!(rtt["ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{rtt}");
    }

    let mut victim = nodes.remove(0);
    let victim_id = ids[0].clone();
    let killed_at = Instant::now();
    victim.kill();
    for n in nodes.iter_mut() {
        let left_by = killed_at + Duration::from_secs(2);
        let ev = n
            .wait_for(left_by.saturating_duration_since(Instant::now()), |v| {
                v["event"] == "peer_left" && v["peer"] == victim_id.as_str()
            })
            .unwrap_or_else(|| {
                panic!(
                    "{} did not report peer_left for {victim_id} within 2 s; saw {:?}",
                    n.name, n.seen
                )
            });
        let reason = ev["reason"].as_str().unwrap_or_default();
        assert!(
            ["signaling", "channel_closed", "heartbeat"].contains(&reason),
            "{ev}"
        );
        assert!(ev["detect_ms"].as_f64().is_some(), "{ev}");
        assert_eq!(ev["was_connected"], true);
    }
    // The survivors still form a full mesh among themselves.
    for n in nodes.iter_mut() {
        assert_eq!(
            common::connected_peers(n).len(),
            2,
            "{}: {:?}",
            n.name,
            n.seen
        );
    }
}

#[test]
fn a_node_started_after_its_peers_connects_and_shutdown_is_noticed_at_once() {
    let (_server, addr) = server(&[]);
    let room = "late-joiner";
    let mut a = node(&addr, room, "a", &[]);
    a.wait_event(Duration::from_secs(20), "joined");
    let mut b = node(&addr, room, "b", &[]);
    let b_id = b.wait_event(Duration::from_secs(20), "joined")["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_connected(&mut a, 1, Duration::from_secs(60));
    wait_connected(&mut b, 1, Duration::from_secs(60));
    // SIGTERM: the node closes its connections before exiting.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &b.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let ev = a
        .wait_for(Duration::from_secs(2), |v| {
            v["event"] == "peer_left" && v["peer"] == b_id.as_str()
        })
        .unwrap_or_else(|| panic!("a did not see b leave; saw {:?}", a.seen));
    assert!(
        ev["reason"] == "signaling" || ev["reason"] == "channel_closed",
        "{ev}"
    );
}

#[test]
fn bad_arguments_are_refused_with_a_clear_message() {
    let cases: [(&[&str], &str); 3] = [
        (
            &["--server", "127.0.0.1:1", "--room", "x"],
            "needs a scheme",
        ),
        (
            &["--server", "http://127.0.0.1:1", "--room", "no spaces"],
            "not valid",
        ),
        (
            &["--server", "http://127.0.0.1:1", "--ice-bind", "nowhere"],
            "bad ICE bind",
        ),
    ];
    for (args, says) in cases {
        let out = common::meshwork().arg("node").args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{args:?}: {out:?}"
        );
    }
    // The server refuses a bad presenter key, audience address, resume key file or TURN
    // setting before it binds.
    let bad_key = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bad-resume-key");
    std::fs::write(&bad_key, "not a key\n").unwrap();
    let bad_key = bad_key.to_str().unwrap();
    let serve: [(&[&str], &str); 8] = [
        (
            &["--resume-key-file", bad_key],
            "is not a resume key (64 hex digits)",
        ),
        (&["--resume-token-secs", "5"], "--resume-token-secs"),
        (
            &["--turn-secret", "s3cret"],
            "--turn-secret needs a TURN server",
        ),
        (
            &["--ice-server", "turn:192.0.2.1:3478", "--turn-secret", ""],
            "--turn-secret must not be empty",
        ),
        (&["--turn-credential-secs", "10"], "--turn-credential-secs"),
        (
            &["--presenter-key", "short"],
            "--presenter-key must be 8 to 128",
        ),
        (&["--presenter-key", "has spaces in it"], "without spaces"),
        (
            &["--public-url", "ftp://192.0.2.1"],
            "must start with http:// or https://",
        ),
    ];
    for (args, says) in serve {
        // A server that took the arguments would run for ever: give it 10 s to refuse.
        let mut child = common::meshwork()
            .args(["serve", "--bind", "127.0.0.1:0"])
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{args:?} was accepted: the server is running");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{args:?}: {out:?}"
        );
    }
    let out = common::meshwork().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "node", "demo"] {
        assert!(help.contains(cmd), "{help}");
    }
}

/// Joins `room` as a bare signaling client, says so on `joined`, and waits (until
/// `deadline`) for an offer; it never answers: only the newcomer's frames getting through
/// matter here. Returns whether an offer came.
async fn offered(
    url: String,
    room: String,
    joined: tokio::sync::mpsc::Sender<()>,
    deadline: tokio::time::Instant,
) -> bool {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let Ok(Ok((mut ws, _))) =
        tokio::time::timeout_at(deadline, tokio_tungstenite::connect_async(url)).await
    else {
        return false;
    };
    let join = format!(r#"{{"v":1,"type":"join","room":"{room}","kind":"browser","name":"fake"}}"#);
    if ws.send(Message::text(join)).await.is_err() {
        return false;
    }
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.next()).await {
        let Message::Text(t) = msg else { continue };
        if t.contains(r#""type":"welcome""#) {
            let _ = joined.send(()).await;
        } else if t.contains(r#""kind":"offer""#) {
            return true;
        }
    }
    false
}

/// `members` bare clients join `room`, then a native node; returns the node (joined)
/// and how many members got its offer.
fn newcomer_among(addr: &str, room: &str, members: usize) -> (common::Proc, usize) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let url = format!("ws://{addr}/ws");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (tx, mut rx) = tokio::sync::mpsc::channel(members.max(1));
    let tasks: Vec<_> = (0..members)
        .map(|_| rt.spawn(offered(url.clone(), room.into(), tx.clone(), deadline)))
        .collect();
    let all_in = rt.block_on(async {
        for _ in 0..members {
            if tokio::time::timeout_at(deadline, rx.recv()).await.is_err() {
                return false;
            }
        }
        true
    });
    assert!(all_in, "the {members} members did not all join");
    let mut n = node(addr, room, "newcomer", &[]);
    n.wait_event(Duration::from_secs(20), "joined");
    let reached = tasks
        .into_iter()
        .map(|m| rt.block_on(m).unwrap_or(false))
        .filter(|got| *got)
        .count();
    (n, reached)
}

#[test]
fn a_node_joining_a_full_room_gets_an_offer_to_every_member() {
    let (_server, addr) = server(&[]);
    let room = "full-room";
    // 63 members (bare WebSocket clients), then a native node makes 64.
    let (mut n, reached) = newcomer_among(&addr, room, 63);
    assert_eq!(reached, 63, "members that got the newcomer's offer");
    // Members that got their offer leave (their candidates then find no such peer);
    // what must not happen is the server pacing the newcomer.
    let paced = n.wait_for(Duration::from_millis(500), |v| {
        v["event"] == "signaling_error" && v["code"] == "rate_limited"
    });
    assert!(
        paced.is_none(),
        "the server refused the newcomer's frames: {paced:?}"
    );
}

#[test]
fn a_node_whose_frames_the_server_refuses_sends_them_again() {
    // Every connection here comes from 127.0.0.1, and the server paces each address:
    // 24 members' joins leave 16 frames of a burst of 40, then 40 per second. The
    // newcomer's own pace (told in its welcome) allows its ~75 frames at once, so the
    // address's budget refuses some; the node must send them again, later.
    let (_server, addr) = server(&[
        "--address-messages-per-second-max",
        "40",
        "--address-messages-burst-max",
        "40",
    ]);
    let room = "paced";
    let (mut n, reached) = newcomer_among(&addr, room, 24);
    assert_eq!(reached, 24, "members that got the newcomer's offer");
    // The server did refuse some of the node's frames: the test tried what it meant to.
    assert!(
        n.wait_for(Duration::from_secs(5), |v| {
            v["event"] == "signaling_error" && v["code"] == "rate_limited"
        })
        .is_some(),
        "nothing was refused: the test did not exercise sending again"
    );
}

/// `/api/rooms` of the server at `addr`: each member's id, by room.
fn room_members(addr: &str, room: &str) -> Vec<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /api/rooms HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let body = text.split_once("\r\n\r\n").expect("a body").1;
    let v: serde_json::Value = serde_json::from_str(body).expect("JSON");
    let mut ids: Vec<String> = v["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == room)
        .flat_map(|r| r["peers"].as_array().unwrap().clone())
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn native_members_outlive_a_server_restart_and_come_back_with_their_ids() {
    let key = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("restart-resume-key");
    let _ = std::fs::remove_file(&key);
    let key = key.to_str().unwrap().to_string();
    let (mut server, addr) = server(&["--resume-key-file", &key]);
    let room = "restart";
    let mut a = node(&addr, room, "a", &[]);
    let mut b = node(&addr, room, "b", &[]);
    let ida = a.wait_event(Duration::from_secs(20), "joined")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let idb = b.wait_event(Duration::from_secs(20), "joined")["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_connected(&mut a, 1, Duration::from_secs(30));
    wait_connected(&mut b, 1, Duration::from_secs(30));

    // SIGKILL: no goodbye to anyone.
    server.kill();
    a.wait_event(Duration::from_secs(20), "signaling_closed");
    b.wait_event(Duration::from_secs(20), "signaling_closed");
    // Started again on the same port with the same key.
    let mut cmd = common::meshwork();
    cmd.args([
        "serve",
        "--bind",
        &addr,
        "--json",
        "--resume-key-file",
        &key,
    ]);
    let mut again = common::Proc::spawn("server-again", cmd);
    again.wait_event(Duration::from_secs(20), "listening");
    for p in [&mut a, &mut b] {
        p.wait_event(Duration::from_secs(20), "signaling_back");
    }
    let mut want = vec![ida.clone(), idb.clone()];
    want.sort();
    assert_eq!(room_members(&addr, room), want, "both back under their ids");
    // The mesh never broke: nobody left.
    for p in [&a, &b] {
        assert!(
            !p.seen.iter().any(|v| v["event"] == "peer_left"),
            "{}: {:?}",
            p.name,
            p.seen
        );
    }
    // A newcomer finds both and connects to both.
    let mut c = node(&addr, room, "c", &[]);
    c.wait_event(Duration::from_secs(20), "joined");
    let mut peers = wait_connected(&mut c, 2, Duration::from_secs(30));
    peers.sort();
    assert_eq!(peers, want);
}
