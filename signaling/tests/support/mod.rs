//! Test harness: a real server on `127.0.0.1:0`, WebSocket clients, and raw HTTP.
//!
//! Every wait is bounded by [`WAIT`], so a missing frame fails the test instead of
//! hanging it; no test sleeps to synchronise.

#![allow(dead_code)] // each test binary uses part of the harness

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use node_core::signal::{
    ClientMsg, ErrorCode, IceServer, PeerId, PeerInfo, PeerKind, ServerMsg, SignalData,
    decode_server, encode_client,
};
use signaling::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// The longest any single wait may take.
pub const WAIT: Duration = Duration::from_secs(5);

/// A running server.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Resolves the server's shutdown future.
    shutdown: Option<oneshot::Sender<()>>,
    /// The task running `signaling::serve`.
    pub task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    pub async fn start(config: Config) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = rx.await;
        };
        let task = tokio::spawn(signaling::serve(listener, config, shutdown));
        Server {
            addr,
            shutdown: Some(tx),
            task,
        }
    }

    /// A server with default limits and no UI.
    pub async fn default() -> Server {
        Server::start(Config::default()).await
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.ws_url()).await
    }

    /// Begins shutdown; await `task` to see it finish.
    pub fn shut_down(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    pub async fn get(&self, path: &str) -> HttpResponse {
        http_get(self.addr, path).await
    }

    pub async fn post_json(&self, path: &str, json: &str) -> HttpResponse {
        http_post_json(self.addr, path, json).await
    }

    /// `/api/stats` as JSON.
    pub async fn stats(&self) -> serde_json::Value {
        let res = self.get("/api/stats").await;
        assert_eq!(res.status, 200, "{}", res.body);
        serde_json::from_str(&res.body).expect("stats are JSON")
    }
}

/// A WebSocket client speaking the signaling protocol.
pub struct Client {
    /// The socket.
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The last resume token the server gave (`recv` takes them in as a client does).
    pub token: Option<String>,
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio::time::timeout(WAIT, connect_async(url))
            .await
            .expect("connect timed out")
            .expect("connect failed");
        Client::from(ws)
    }

    pub async fn send_raw(&mut self, msg: Message) {
        tokio::time::timeout(WAIT, self.ws.send(msg))
            .await
            .expect("send timed out")
            .expect("send failed");
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.send_raw(Message::text(text.into())).await;
    }

    pub async fn send(&mut self, msg: ClientMsg) {
        self.send_text(encode_client(msg)).await;
    }

    /// The next protocol frame, skipping control frames and resume tokens (kept in
    /// `token`).
    pub async fn recv(&mut self) -> ServerMsg {
        loop {
            match self.recv_any().await {
                ServerMsg::ResumeToken { token, .. } => self.token = Some(token),
                other => return other,
            }
        }
    }

    /// The next protocol frame, skipping control frames.
    pub async fn recv_any(&mut self) -> ServerMsg {
        // One deadline for the whole wait: the server's pings must not extend it.
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("timed out waiting for a frame");
            match next {
                Some(Ok(Message::Text(text))) => {
                    return decode_server(&text).unwrap_or_else(|e| {
                        panic!("server sent an undecodable frame {text}: {e}")
                    });
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next frame, which must be an error; returns its code and message.
    pub async fn recv_error(&mut self) -> (ErrorCode, String) {
        match self.recv().await {
            ServerMsg::Error { code, message, .. } => (code, message),
            other => panic!("expected an error frame, got {other:?}"),
        }
    }

    pub async fn expect_error(&mut self, code: ErrorCode) -> String {
        let (got, message) = self.recv_error().await;
        assert_eq!(got, code, "wrong error code; message: {message}");
        message
    }

    /// Sends a join for `room` (a native node, no name, no key) without waiting for
    /// the answer: for joins that may be refused.
    pub async fn send_join(&mut self, room: &str) {
        self.send(ClientMsg::Join {
            room: room.into(),
            kind: PeerKind::Native,
            name: String::new(),
            presenter_key: None,
        })
        .await;
    }

    /// Joins `room` as a native node named `name`; returns the welcome's fields.
    pub async fn join_as(&mut self, room: &str, kind: PeerKind, name: &str) -> Welcome {
        self.send(ClientMsg::Join {
            room: room.into(),
            kind,
            name: name.into(),
            presenter_key: None,
        })
        .await;
        match self.recv().await {
            ServerMsg::Welcome {
                id,
                room: joined,
                peers,
                ice_servers,
                ..
            } => {
                assert_eq!(joined, room);
                Welcome {
                    id,
                    peers,
                    ice_servers,
                }
            }
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    pub async fn join(&mut self, room: &str) -> Welcome {
        self.join_as(room, PeerKind::Native, "node").await
    }

    pub async fn signal(&mut self, to: &PeerId, data: SignalData) {
        self.send(ClientMsg::Signal {
            to: to.clone(),
            data,
        })
        .await;
    }

    /// Waits until the server ends the connection: a close frame, an error or the end of
    /// the stream. Text frames still queued before the end are skipped.
    pub async fn expect_closed(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("connection was not closed");
            match next {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code.into()),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }
}

impl From<WebSocketStream<MaybeTlsStream<TcpStream>>> for Client {
    fn from(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        Client { ws, token: None }
    }
}

/// What a `welcome` said.
#[derive(Debug)]
pub struct Welcome {
    pub id: PeerId,
    pub peers: Vec<PeerInfo>,
    pub ice_servers: Vec<IceServer>,
}

pub fn offer(sdp: &str) -> SignalData {
    SignalData::Offer { sdp: sdp.into() }
}

/// A response read off a raw HTTP/1.1 connection.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header lines, lowercased.
    pub headers: Vec<String>,
    pub body: String,
}

/// `GET path` over a fresh connection with `Connection: close`, so the body ends where
/// the stream does.
pub async fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    http_exchange(addr, request).await
}

/// POSTs a JSON body.
pub async fn http_post_json(addr: SocketAddr, path: &str, json: &str) -> HttpResponse {
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
        json.len()
    );
    http_exchange(addr, request).await
}

async fn http_exchange(addr: SocketAddr, request: String) -> HttpResponse {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        raw
    };
    let raw = tokio::time::timeout(WAIT, exchange)
        .await
        .expect("HTTP request timed out");
    let text = String::from_utf8(raw).expect("response is UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("response has a head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .expect("status line");
    let headers = lines.map(str::to_ascii_lowercase).collect::<Vec<_>>();
    assert!(
        !headers
            .iter()
            .any(|h| h.starts_with("transfer-encoding: chunked")),
        "harness does not decode chunked bodies"
    );
    HttpResponse {
        status,
        headers,
        body: body.to_string(),
    }
}
