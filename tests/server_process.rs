//! `meshwork serve` as an operator runs it, as a process: a flood of silent connections
//! under a small open-files limit leaves `/healthz` answering, and SIGTERM ends the
//! server within a bound while a client holds a half-sent request.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Proc, meshwork};

/// Starts `meshwork serve` on loopback through `prefix` (e.g. `prlimit`), returns it and
/// its address.
fn serve_via(prefix: &[&str]) -> (Proc, SocketAddr) {
    let mut cmd = if let Some((first, rest)) = prefix.split_first() {
        let mut c = Command::new(first);
        c.args(rest).arg(meshwork().get_program());
        c
    } else {
        meshwork()
    };
    cmd.args(["serve", "--bind", "127.0.0.1:0", "--json"]);
    let mut p = Proc::spawn("server", cmd);
    let ev = p.wait_event(Duration::from_secs(20), "listening");
    let addr = ev["addr"]
        .as_str()
        .expect("addr")
        .parse()
        .expect("an address");
    (p, addr)
}

/// `GET path` with `Connection: close`; the whole response, or an error if there is
/// none within `within`.
fn get(addr: SocketAddr, path: &str, within: Duration) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, within)?;
    s.set_read_timeout(Some(within))?;
    s.set_write_timeout(Some(within))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[test]
fn a_flood_of_silent_connections_under_a_small_file_limit_leaves_healthz_answering() {
    // 256 descriptors in all: before the server bounded its handshakes, about 250
    // silent sockets exhausted them, `accept` failed in a loop and `/healthz` went
    // unanswered.
    let (_server, addr) = serve_via(&["prlimit", "--nofile=256:256", "--"]);
    let mut flood = Vec::new();
    let mut refused = 0;
    for _ in 0..1_100 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(s) => flood.push(s),
            // A server that stopped accepting lets its listen backlog fill up.
            Err(_) => {
                refused += 1;
                if refused == 20 {
                    break;
                }
            }
        }
    }
    assert!(
        flood.len() >= 300,
        "only {} connected ({refused} not)",
        flood.len()
    );
    let started = Instant::now();
    let mut answered = None;
    while started.elapsed() < Duration::from_secs(5) {
        if let Ok(r) = get(addr, "/healthz", Duration::from_secs(2)) {
            answered = Some(r);
            break;
        }
    }
    let answered = answered.expect("/healthz did not answer within 5 s of the flood");
    assert!(
        answered.starts_with("HTTP/1.1 200") && answered.ends_with("ok"),
        "{answered}"
    );
    let stats = get(addr, "/api/stats", Duration::from_secs(2)).expect("stats");
    let body = stats.split_once("\r\n\r\n").expect("a body").1;
    let stats: serde_json::Value = serde_json::from_str(body).expect("JSON");
    assert!(
        stats["handshakes_evicted"].as_u64().unwrap_or(0) >= 500,
        "the flood was not evicted: {stats}"
    );
}

#[test]
fn sigterm_ends_the_server_within_a_bound_while_a_request_is_half_sent() {
    let (mut server, addr) = serve_via(&[]);
    let mut half = TcpStream::connect(addr).expect("connect");
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    // A slow client keeps sending its head a byte at a time, as a slowloris would.
    half.write_all(b"X").expect("write");
    let mut ws = tokio_tungstenite::tungstenite::connect(format!("ws://{addr}/ws"))
        .expect("websocket")
        .0;
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        r#"{"type":"join","v":1,"room":"r","kind":"native","name":"n"}"#,
    ))
    .expect("join");
    let kill = Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let started = Instant::now();
    let status = server.wait_exit(Duration::from_secs(15));
    let took = started.elapsed();
    let status = status.unwrap_or_else(|| panic!("still running {took:?} after SIGTERM"));
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    drop(half);
}
