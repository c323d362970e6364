//! The plain HTTP side over real sockets: health, room listing, the UI and static files,
//! and the bounds on connections that are not WebSockets.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use node_core::signal::{PeerKind, ServerMsg};
use signaling::Config;
use support::{Server, WAIT, offer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A fresh directory under Cargo's per-target scratch space.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("signaling-http")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

#[tokio::test]
async fn healthz_says_ok() {
    let server = Server::default().await;
    let res = server.get("/healthz").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body, "ok");
}

#[tokio::test]
async fn api_rooms_lists_rooms_and_their_peers() {
    let server = Server::default().await;
    let res = server.get("/api/rooms").await;
    assert_eq!(res.status, 200);
    assert!(
        res.headers
            .iter()
            .any(|h| h.starts_with("content-type: application/json")),
        "{:?}",
        res.headers
    );
    let json: serde_json::Value = serde_json::from_str(&res.body).unwrap();
    assert_eq!(
        json,
        serde_json::json!({ "rooms": [], "rooms_total": 0, "peers_total": 0 })
    );

    let mut a = server.client().await;
    let mut b = server.client().await;
    let mut c = server.client().await;
    let wa = a.join_as("zeta", PeerKind::Browser, "tab").await;
    let wb = b.join_as("alpha", PeerKind::Native, "cli").await;
    let wc = c.join_as("zeta", PeerKind::Native, "").await;

    let json: serde_json::Value =
        serde_json::from_str(&server.get("/api/rooms").await.body).unwrap();
    let expected = serde_json::json!({ "rooms": [
        { "name": "alpha", "peers": [
            { "id": wb.id.as_str(), "kind": "native", "name": "cli", "presenter": false, "colour": 0 },
        ]},
        { "name": "zeta", "peers": [
            { "id": wa.id.as_str(), "kind": "browser", "name": "tab", "presenter": false, "colour": 0 },
            { "id": wc.id.as_str(), "kind": "native", "name": "", "presenter": false, "colour": 1 },
        ]},
    ], "rooms_total": 2, "peers_total": 3 });
    assert_eq!(json, expected);

    // A member that left is no longer listed; a's peer_left says the server is done.
    drop(c);
    assert!(matches!(a.recv().await, ServerMsg::PeerJoined { .. }));
    assert_eq!(a.recv().await, ServerMsg::PeerLeft { id: wc.id });
    let json: serde_json::Value =
        serde_json::from_str(&server.get("/api/rooms").await.body).unwrap();
    assert_eq!(json["rooms"][1]["peers"].as_array().unwrap().len(), 1);

    // When a room's last member goes, so does the room. Nobody is left to be told, so
    // poll the listing (bounded) instead of awaiting a frame.
    drop(b);
    let deadline = tokio::time::Instant::now() + support::WAIT;
    loop {
        let json: serde_json::Value =
            serde_json::from_str(&server.get("/api/rooms").await.body).unwrap();
        let names: Vec<&str> = json["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        if names == ["zeta"] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "rooms: {names:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn without_a_built_ui_the_root_says_how_to_build_it() {
    let server = Server::start(Config {
        dist_dir: scratch_dir("missing").join("dist"),
        ..Config::default()
    })
    .await;
    for path in ["/", "/index.html", "/some/page"] {
        let res = server.get(path).await;
        assert_eq!(res.status, 503, "{path}");
        assert!(res.body.contains("not built"), "{}", res.body);
        assert!(res.body.contains("cargo xtask demo"), "{}", res.body);
    }
    // The rest of the server works without it.
    assert_eq!(server.get("/healthz").await.status, 200);
}

#[tokio::test]
async fn serves_the_built_ui_and_static_files() {
    let root = scratch_dir("served");
    let dist = root.join("dist");
    let statics = root.join("static");
    std::fs::create_dir_all(dist.join("assets")).unwrap();
    std::fs::create_dir_all(&statics).unwrap();
    std::fs::write(
        dist.join("index.html"),
        "<!doctype html><title>Meshwork</title>",
    )
    .unwrap();
    std::fs::write(dist.join("assets/app.js"), "console.log(1)").unwrap();
    std::fs::write(statics.join("style.css"), "body{}").unwrap();

    let server = Server::start(Config {
        dist_dir: dist,
        static_dir: statics,
        ..Config::default()
    })
    .await;

    let index = server.get("/").await;
    assert_eq!(index.status, 200);
    assert!(index.body.contains("<title>Meshwork</title>"));
    assert!(
        index
            .headers
            .iter()
            .any(|h| h.starts_with("content-type: text/html"))
    );
    let js = server.get("/assets/app.js").await;
    assert_eq!(js.status, 200);
    assert_eq!(js.body, "console.log(1)");
    // The UI's files are revalidated on every load (the worker's are not hashed).
    for res in [&index, &js] {
        assert!(
            res.headers.iter().any(|h| h == "cache-control: no-cache"),
            "{:?}",
            res.headers
        );
    }
    let css = server.get("/static/style.css").await;
    assert_eq!(css.status, 200);
    assert_eq!(css.body, "body{}");

    assert_eq!(server.get("/nope.js").await.status, 404);
    assert_eq!(server.get("/static/nope.css").await.status, 404);
    assert_eq!(server.get("/static/../dist/index.html").await.status, 404);
}

#[tokio::test]
async fn a_plain_get_on_the_websocket_path_is_refused_politely() {
    let server = Server::default().await;
    let res = server.get("/ws").await;
    assert!((400..500).contains(&res.status), "{}", res.status);
}

#[tokio::test]
async fn stats_count_connections() {
    let server = Server::default().await;
    let mut a = server.client().await;
    a.join("r").await;
    let stats = server.stats().await;
    assert_eq!(stats["connections_open"], 1);
    assert_eq!(stats["rooms"], 1);
    assert_eq!(stats["peers"], 1);
    a.send_text("nonsense").await;
    a.recv_error().await;
    assert_eq!(server.stats().await["frames_refused"], 1);
}

#[tokio::test]
async fn api_info_gives_the_audiences_address_when_known_and_says_loopback_only() {
    let info = |body: &str| -> serde_json::Value { serde_json::from_str(body).unwrap() };
    let server = Server::default().await;
    let res = server.get("/api/info").await;
    assert_eq!(res.status, 200);
    assert_eq!(info(&res.body)["public_url"], serde_json::Value::Null);
    assert_eq!(info(&res.body)["loopback_only"], false);
    let server = Server::start(Config {
        public_url: Some("http://192.0.2.7:8080".into()),
        ..Config::default()
    })
    .await;
    assert_eq!(
        info(&server.get("/api/info").await.body)["public_url"],
        "http://192.0.2.7:8080"
    );
    let server = Server::start(Config {
        loopback_only: true,
        ..Config::default()
    })
    .await;
    assert_eq!(
        info(&server.get("/api/info").await.body)["loopback_only"],
        true
    );
}

/// Reads until the server closes `stream`; `Err` if it is still open after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Result<Vec<u8>, ()> {
    let mut got = Vec::new();
    tokio::time::timeout(within, async {
        // A reset is a close too.
        let _ = stream.read_to_end(&mut got).await;
    })
    .await
    .map_err(|_| ())?;
    Ok(got)
}

#[tokio::test]
async fn silent_and_half_sent_requests_are_closed_at_the_deadline_and_free_their_places() {
    let server = Server::start(Config {
        request_deadline_ms: 300,
        ..Config::default()
    })
    .await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut half = TcpStream::connect(server.addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // An idle keep-alive connection after one full request is held no longer either.
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let stats = server.stats().await;
    assert_eq!(
        stats["handshakes_open"], 4,
        "three sockets and this request"
    );

    let started = tokio::time::Instant::now();
    for (what, stream) in [("silent", &mut silent), ("half-sent", &mut half)] {
        let got = closed_within(stream, WAIT).await;
        assert!(got.is_ok(), "the {what} socket was not closed");
    }
    let answered = closed_within(&mut idle, WAIT)
        .await
        .expect("idle kept open");
    assert!(
        String::from_utf8_lossy(&answered).contains("200 OK"),
        "the full request was answered first"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        server.stats().await["handshakes_open"],
        1,
        "only this request"
    );
}

#[tokio::test]
async fn a_flood_of_silent_sockets_neither_silences_healthz_nor_evicts_members() {
    let server = Server::start(Config {
        handshakes_max: 8,
        // Only eviction can free places in this test.
        request_deadline_ms: 120_000,
        ..Config::default()
    })
    .await;
    let mut member = server.client().await;
    let me = member.join("r").await;
    let mut flood = Vec::new();
    for _ in 0..200 {
        flood.push(TcpStream::connect(server.addr).await.expect("connect"));
    }
    let res = server.get("/healthz").await;
    assert_eq!((res.status, res.body.as_str()), (200, "ok"));
    let stats = server.stats().await;
    assert!(stats["handshakes_open"].as_u64().unwrap() <= 8, "{stats}");
    assert!(
        stats["handshakes_evicted"].as_u64().unwrap() >= 190,
        "{stats}"
    );
    // The oldest silent sockets were closed by the server.
    let got = closed_within(&mut flood[0], WAIT).await;
    assert!(got.is_ok(), "the oldest flood socket is still open");

    // A newcomer still joins, and the member joined before the flood is still there.
    let mut newcomer = server.client().await;
    let welcome = newcomer.join("r").await;
    assert!(welcome.peers.iter().any(|p| p.id == me.id));
    newcomer.signal(&me.id, offer("still here?")).await;
    match member.recv().await {
        ServerMsg::PeerJoined { .. } => {}
        other => panic!("{other:?}"),
    }
    match member.recv().await {
        ServerMsg::Signal { from, .. } => assert_eq!(from, welcome.id),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn api_rooms_comes_in_pages() {
    let server = Server::default().await;
    let mut clients = Vec::new();
    for room in ["e", "c", "a", "d", "b"] {
        let mut c = server.client().await;
        c.join(room).await;
        clients.push(c);
    }
    let page = |query: &'static str| {
        let server = &server;
        async move {
            let res = server.get(&format!("/api/rooms{query}")).await;
            assert_eq!(res.status, 200, "{query}: {}", res.body);
            let json: serde_json::Value = serde_json::from_str(&res.body).unwrap();
            let names: Vec<String> = json["rooms"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["name"].as_str().unwrap().to_string())
                .collect();
            assert_eq!(
                (json["rooms_total"].as_u64(), json["peers_total"].as_u64()),
                (Some(5), Some(5))
            );
            (names, json["next"].as_str().map(str::to_string))
        }
    };
    assert_eq!(
        page("?limit=2").await,
        (vec!["a".into(), "b".into()], Some("b".into()))
    );
    assert_eq!(
        page("?after=b&limit=2").await,
        (vec!["c".into(), "d".into()], Some("d".into()))
    );
    assert_eq!(page("?after=d&limit=2").await, (vec!["e".into()], None));
    assert_eq!(page("?after=e").await, (vec![], None));
    // A cursor need not be a room that exists; a limit of 0 is taken as 1.
    assert_eq!(
        page("?after=bb&limit=0").await,
        (vec!["c".into()], Some("c".into()))
    );
    assert_eq!(page("").await.0.len(), 5);
    for bad in ["?limit=many", "?limit=-1"] {
        let res = server.get(&format!("/api/rooms{bad}")).await;
        assert_eq!(res.status, 400, "{bad}");
    }
}

/// The value of the sample `series` (name and labels exactly as written) in a
/// Prometheus text exposition, checking the format of every line on the way.
fn sample(text: &str, series: &str) -> Option<u64> {
    let mut found = None;
    let mut described = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
        {
            described.insert(rest.split_whitespace().next().unwrap().to_string());
            continue;
        }
        let (name, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: u64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let family = name.split('{').next().unwrap();
        assert!(family.starts_with("meshwork_"), "{line}");
        assert!(
            described.contains(family),
            "{family} has no HELP/TYPE before it"
        );
        if name == series {
            found = Some(value);
        }
    }
    found
}

#[tokio::test]
async fn metrics_count_frames_errors_and_drops_in_prometheus_text() {
    let server = Server::start(Config {
        join_deadline_ms: 200,
        ..Config::default()
    })
    .await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    let wa = a.join("r").await;
    b.join("r").await;
    b.signal(&wa.id, offer("x")).await;
    assert!(matches!(a.recv().await, ServerMsg::PeerJoined { .. }));
    assert!(matches!(a.recv().await, ServerMsg::Signal { .. }));
    b.send_text("not json").await;
    b.recv_error().await;
    let mut idle = server.client().await;
    assert_eq!(idle.expect_closed().await, Some(1008));

    let res = server.get("/metrics").await;
    assert_eq!(res.status, 200);
    assert!(
        res.headers
            .iter()
            .any(|h| h.starts_with("content-type: text/plain; version=0.0.4")),
        "{:?}",
        res.headers
    );
    let m = |series: &str| sample(&res.body, series);
    assert_eq!(m("meshwork_rooms"), Some(1));
    assert_eq!(m("meshwork_peers"), Some(2));
    assert_eq!(m("meshwork_connections_opened_total"), Some(3));
    assert_eq!(m("meshwork_frames_in_total{type=\"join\"}"), Some(2));
    assert_eq!(m("meshwork_frames_in_total{type=\"signal\"}"), Some(1));
    assert_eq!(m("meshwork_frames_in_total{type=\"invalid\"}"), Some(1));
    assert_eq!(m("meshwork_frames_out_total{type=\"welcome\"}"), Some(2));
    assert_eq!(
        m("meshwork_frames_out_total{type=\"peer_joined\"}"),
        Some(1)
    );
    assert_eq!(m("meshwork_frames_out_total{type=\"signal\"}"), Some(1));
    assert_eq!(m("meshwork_frames_out_total{type=\"error\"}"), Some(1));
    assert_eq!(m("meshwork_errors_total{code=\"bad_json\"}"), Some(1));
    assert_eq!(m("meshwork_errors_total{code=\"rate_limited\"}"), Some(0));
    assert_eq!(m("meshwork_drops_total{reason=\"never_joined\"}"), Some(1));
    assert_eq!(m("meshwork_drops_total{reason=\"slow_reader\"}"), Some(0));
    assert!(m("meshwork_queued_bytes").is_some());
    assert!(
        m("meshwork_handshakes_open").is_some_and(|n| n >= 1),
        "this request"
    );
}
