//! The signaling protocol: JSON frames over the WebSocket at `/ws`.
//!
//! JSON (not binary) so that a person can read it in the browser's devtools. Every frame
//! carries the protocol version `v`; a frame with another version is answered with an
//! [`ErrorCode::BadVersion`] error. This module is plain data shared by `signaling/`
//! (the server) and the node transports (the clients); it does no IO.
//!
//! Flow: a client sends [`ClientMsg::Join`]; the server answers [`ServerMsg::Welcome`]
//! with the id it chose for the client (a client can neither choose nor spoof its id),
//! the peers already in the room and the ICE servers to use. Everyone in the room then
//! gets [`ServerMsg::PeerJoined`] / [`ServerMsg::PeerLeft`]. Offers, answers and ICE
//! candidates travel as [`ClientMsg::Signal`] → [`ServerMsg::Signal`], only between
//! peers of the same room.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The version every frame carries in its `v` field.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest room name accepted.
pub const ROOM_NAME_LEN_MAX: usize = 64;
/// Longest display name accepted; longer names are cut, not refused.
pub const DISPLAY_NAME_LEN_MAX: usize = 48;

/// A peer id, assigned by the signaling server.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PeerId(pub String);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PeerId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What kind of node a peer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerKind {
    /// A browser tab running the web UI.
    Browser,
    /// A `meshwork node` process.
    Native,
}

impl PeerKind {
    /// The kind as the protocol spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerKind::Browser => "browser",
            PeerKind::Native => "native",
        }
    }
}

impl fmt::Display for PeerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A member of a room as the server describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub id: PeerId,
    pub kind: PeerKind,
    /// Display name, for people; not unique.
    pub name: String,
    /// The member joined with the server's presenter key: its console commands are
    /// obeyed. Only the server sets this (from the key), so a member cannot claim it.
    /// Always written: a page hands `PeerInfo`s to its node worker in postcard, which
    /// has no field names to tell a skipped field by.
    #[serde(default)]
    pub presenter: bool,
    /// The member's colour: a slot of the page's palette, the lowest free among the
    /// room's members when it joined, so that no two live members share one and every
    /// tab draws a member alike. Only the server sets it.
    #[serde(default)]
    pub colour: u8,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One ICE server (STUN or TURN), handed out by the signaling server's configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// The WebRTC negotiation payload relayed between two peers. The server never looks
/// inside beyond checking that it is well-formed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignalData {
    Offer {
        sdp: String,
    },
    Answer {
        sdp: String,
    },
    Ice {
        candidate: String,
        #[serde(default)]
        sdp_mid: Option<String>,
        #[serde(default)]
        sdp_mline_index: Option<u16>,
    },
}

/// Frames a client sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    /// Enter a room. Allowed once per connection.
    Join {
        room: String,
        kind: PeerKind,
        #[serde(default)]
        name: String,
        /// The presenter key `meshwork serve` printed, to run the presenter's console.
        /// A wrong key is not an error: the member joins without the console's powers
        /// and its Welcome says so.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        presenter_key: Option<String>,
    },
    /// Relay `data` to peer `to` of the same room.
    Signal { to: PeerId, data: SignalData },
    /// A presenter's demonstration: the server leaves this room for `secs` seconds (at
    /// most [`OUTAGE_SECS_MAX`]). Every member's socket closes at once, nobody is told
    /// anyone left (the mesh carries on over its data channels), and joins to the room
    /// are refused with [`ErrorCode::ServerAway`] until the time is up.
    Outage { secs: u32 },
    /// A presenter's reset: every other member of the room is told
    /// ([`ServerMsg::Revive`]), so that a member a presenter failed, which hears nothing
    /// on its data channels any more, comes back. Members that are not failed ignore it.
    /// Refused with [`ErrorCode::NotPresenter`] from anyone else.
    Revive,
    /// Enter `room` again under the id a resume token names (a socket that dropped, a
    /// restarted server, a reloaded tab). Instead of a first `join`, once per
    /// connection; refused with [`ErrorCode::BadToken`], [`ErrorCode::TokenExpired`] or
    /// [`ErrorCode::IdInUse`], after which the client may join afresh.
    Resume {
        room: String,
        token: String,
        kind: PeerKind,
        #[serde(default)]
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        presenter_key: Option<String>,
        /// The colour the member had (its welcome's), kept if still free in the room, so
        /// that a member keeps its colour for its session across a server restart.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        colour: Option<u8>,
    },
}

/// Longest outage a presenter can ask for, in seconds.
pub const OUTAGE_SECS_MAX: u32 = 300;

impl ClientMsg {
    /// A connection's first frame: a resume with `token` once the member has one, or
    /// else a join.
    pub fn enter(
        room: &str,
        token: Option<String>,
        kind: PeerKind,
        name: &str,
        presenter_key: Option<String>,
        colour: Option<u8>,
    ) -> ClientMsg {
        let (room, name) = (room.to_string(), name.to_string());
        match token {
            Some(token) => ClientMsg::Resume {
                room,
                token,
                kind,
                name,
                presenter_key,
                colour,
            },
            None => ClientMsg::Join {
                room,
                kind,
                name,
                presenter_key,
            },
        }
    }

    /// The `type` tags this version understands, to tell an unknown type from a
    /// malformed known one.
    pub const TYPES: &'static [&'static str] = &["join", "signal", "outage", "revive", "resume"];
}

/// Frames the server sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    Welcome {
        id: PeerId,
        room: String,
        peers: Vec<PeerInfo>,
        ice_servers: Vec<IceServer>,
        /// Whether the Join's presenter key was the server's.
        #[serde(default, skip_serializing_if = "is_false")]
        presenter: bool,
        /// How fast this connection may send frames, so that a client can pace itself
        /// instead of being refused. Absent from older servers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limits: Option<RateLimits>,
        /// This member's colour ([`PeerInfo::colour`]).
        #[serde(default)]
        colour: u8,
    },
    PeerJoined {
        peer: PeerInfo,
    },
    PeerLeft {
        id: PeerId,
    },
    Signal {
        from: PeerId,
        data: SignalData,
    },
    /// Presenter `from` asked the room to revive ([`ClientMsg::Revive`]): a member a
    /// presenter failed comes back (it enters the room again and reconnects); any other
    /// member ignores it.
    Revive {
        from: PeerId,
    },
    /// A resume token for this member (after every welcome, and again before the last
    /// one expires): presented in a [`ClientMsg::Resume`], it gets this member's id back
    /// in this room, from this server or a restarted one, for `expires_in_s` seconds.
    /// A secret: whoever holds it can take the id while the member is away.
    ResumeToken {
        token: String,
        expires_in_s: u64,
    },
    Error {
        code: ErrorCode,
        message: String,
        /// Which of the connection's text frames was refused, counting from 1 (the
        /// join), so that a client can send it again; absent where no one frame is meant.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        frame: Option<u64>,
        /// For [`ErrorCode::RateLimited`]: how long until a frame would be accepted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

/// The pace a server holds a connection to: `messages_per_second` on average, bursts of
/// `messages_burst` after a quiet spell (a token bucket that starts full).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimits {
    pub messages_per_second: u32,
    pub messages_burst: u32,
}

impl ServerMsg {
    /// An error frame about no frame in particular.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> ServerMsg {
        ServerMsg::Error {
            code,
            message: message.into(),
            frame: None,
            retry_after_ms: None,
        }
    }
}

impl ServerMsg {
    /// The `type` tags this version understands.
    pub const TYPES: &'static [&'static str] = &[
        "welcome",
        "peer_joined",
        "peer_left",
        "signal",
        "revive",
        "resume_token",
        "error",
    ];
}

/// Why the server refused a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// Not JSON, or a known type with missing or ill-typed fields.
    BadJson,
    UnknownType,
    BadVersion,
    BadRoom,
    TooBig,
    /// The target of a signal is not in the sender's room.
    NoSuchPeer,
    NotJoined,
    AlreadyJoined,
    RoomFull,
    TooManyRooms,
    RateLimited,
    /// A binary frame; the protocol is text only.
    Binary,
    /// A presenter's command from a member that did not join with the presenter key.
    NotPresenter,
    /// A presenter took the server away from this room for a while.
    ServerAway,
    /// A resume token that is malformed, not signed by this server's key, or for
    /// another room.
    BadToken,
    /// A resume token past its expiry.
    TokenExpired,
    /// A resume token for an id a connected member holds: only once that connection is
    /// gone (closed, or silent past the server's deadline) can the id be taken back.
    IdInUse,
    /// A code this version does not know (sent by a newer server): still an error.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it appears on the wire (`rate_limited`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::BadVersion => "bad_version",
            ErrorCode::BadRoom => "bad_room",
            ErrorCode::TooBig => "too_big",
            ErrorCode::NoSuchPeer => "no_such_peer",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::AlreadyJoined => "already_joined",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::TooManyRooms => "too_many_rooms",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Binary => "binary",
            ErrorCode::NotPresenter => "not_presenter",
            ErrorCode::ServerAway => "server_away",
            ErrorCode::BadToken => "bad_token",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::IdInUse => "id_in_use",
            ErrorCode::Unknown => "unknown",
        }
    }

    /// Every code this version knows.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::BadJson,
        ErrorCode::UnknownType,
        ErrorCode::BadVersion,
        ErrorCode::BadRoom,
        ErrorCode::TooBig,
        ErrorCode::NoSuchPeer,
        ErrorCode::NotJoined,
        ErrorCode::AlreadyJoined,
        ErrorCode::RoomFull,
        ErrorCode::TooManyRooms,
        ErrorCode::RateLimited,
        ErrorCode::Binary,
        ErrorCode::NotPresenter,
        ErrorCode::ServerAway,
        ErrorCode::BadToken,
        ErrorCode::TokenExpired,
        ErrorCode::IdInUse,
    ];
}

/// A frame on the wire: the version plus the message, flattened into one JSON object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame<M> {
    pub v: u32,
    #[serde(flatten)]
    pub msg: M,
}

impl<M: Serialize> Frame<M> {
    pub fn new(msg: M) -> Self {
        Frame {
            v: PROTOCOL_VERSION,
            msg,
        }
    }

    pub fn to_json(&self) -> String {
        // Serialising these plain types cannot fail: no maps with non-string keys.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Serialises a server message as a versioned frame.
pub fn encode_server(msg: ServerMsg) -> String {
    Frame::new(msg).to_json()
}

/// Serialises a client message as a versioned frame.
pub fn encode_client(msg: ClientMsg) -> String {
    Frame::new(msg).to_json()
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct DecodeError {
    pub code: ErrorCode,
    pub message: String,
}

#[derive(Deserialize)]
struct Envelope {
    v: Option<serde_json::Value>,
    #[serde(rename = "type")]
    ty: Option<serde_json::Value>,
}

fn decode<M: serde::de::DeserializeOwned>(text: &str, types: &[&str]) -> Result<M, DecodeError> {
    let err = |code, message: String| DecodeError { code, message };
    let env: Envelope = serde_json::from_str(text)
        .map_err(|e| err(ErrorCode::BadJson, format!("not a JSON object: {e}")))?;
    match env.v {
        Some(serde_json::Value::Number(n)) if n.as_u64() == Some(u64::from(PROTOCOL_VERSION)) => {}
        Some(other) => {
            return Err(err(
                ErrorCode::BadVersion,
                format!(
                    "protocol version {other} is not supported; this server speaks v{PROTOCOL_VERSION}"
                ),
            ));
        }
        None => {
            return Err(err(
                ErrorCode::BadVersion,
                format!("missing protocol version field \"v\" (expected {PROTOCOL_VERSION})"),
            ));
        }
    }
    match env.ty {
        Some(serde_json::Value::String(t)) if types.contains(&t.as_str()) => {}
        Some(serde_json::Value::String(t)) => {
            let t: String = t.chars().take(32).collect();
            return Err(err(
                ErrorCode::UnknownType,
                format!("unknown message type {t:?}"),
            ));
        }
        _ => {
            return Err(err(
                ErrorCode::BadJson,
                "missing string field \"type\"".into(),
            ));
        }
    }
    let frame: Frame<M> = serde_json::from_str(text)
        .map_err(|e| err(ErrorCode::BadJson, format!("malformed message: {e}")))?;
    Ok(frame.msg)
}

/// Decodes a client frame, telling apart bad JSON, a wrong version and an unknown type.
pub fn decode_client(text: &str) -> Result<ClientMsg, DecodeError> {
    decode(text, ClientMsg::TYPES)
}

/// Decodes a server frame.
pub fn decode_server(text: &str) -> Result<ServerMsg, DecodeError> {
    decode(text, ServerMsg::TYPES)
}

/// Whether `room` is an acceptable room name: 1 to [`ROOM_NAME_LEN_MAX`] characters of
/// ASCII letters, digits, `-` and `_`. Keeps names safe in URLs, logs and file names.
pub fn valid_room_name(room: &str) -> bool {
    !room.is_empty()
        && room.len() <= ROOM_NAME_LEN_MAX
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether a character shows nothing or changes how others read (zero-width spaces and
/// joiners, soft hyphens, fillers, bidirectional controls, tags): such characters let
/// `ad\u{200b}min` pass for `admin`.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00ad}' | '\u{034f}' | '\u{061c}' | '\u{115f}' | '\u{1160}' | '\u{17b4}' | '\u{17b5}'
        | '\u{180b}'..='\u{180f}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}' | '\u{3164}' | '\u{feff}' | '\u{ffa0}' | '\u{fff0}'..='\u{fffb}'
        | '\u{1d173}'..='\u{1d17a}' | '\u{e0000}'..='\u{e007f}')
}

/// A display name made safe to show: control characters and invisible ones (see
/// [`invisible`]) dropped, runs of white space made one space, at most
/// [`DISPLAY_NAME_LEN_MAX`] characters.
pub fn clean_display_name(name: &str) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut space = false;
    for c in name.chars().filter(|c| !c.is_control() && !invisible(*c)) {
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if count + usize::from(space) + 1 > DISPLAY_NAME_LEN_MAX {
            break;
        }
        if space {
            out.push(' ');
            count += 1;
            space = false;
        }
        out.push(c);
        count += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_what_cannot_be_seen_and_keep_what_can() {
        assert_eq!(clean_display_name("ad\u{200b}min"), "admin");
        assert_eq!(clean_display_name("\u{202e}nimda\u{202c}"), "nimda");
        assert_eq!(
            clean_display_name("a\u{feff}b\u{00ad}c\u{2060}d\u{e0041}"),
            "abcd"
        );
        assert_eq!(clean_display_name("  tab\t\n one  "), "tab one");
        assert_eq!(clean_display_name("\u{200b}\u{200d}"), "");
        assert_eq!(clean_display_name("Zoë 😀 lab-2"), "Zoë 😀 lab-2");
        let long = "é".repeat(DISPLAY_NAME_LEN_MAX + 10);
        assert_eq!(
            clean_display_name(&long).chars().count(),
            DISPLAY_NAME_LEN_MAX
        );
    }

    #[test]
    fn client_frames_round_trip_with_version() {
        let msg = ClientMsg::Join {
            room: "demo".into(),
            kind: PeerKind::Browser,
            name: "tab".into(),
            presenter_key: None,
        };
        let text = encode_client(msg.clone());
        assert!(text.contains("\"v\":1"), "{text}");
        assert!(text.contains("\"type\":\"join\""), "{text}");
        assert_eq!(decode_client(&text).unwrap(), msg);

        let sig = ClientMsg::Signal {
            to: PeerId("abc".into()),
            data: SignalData::Ice {
                candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host".into(),
                sdp_mid: None,
                sdp_mline_index: Some(0),
            },
        };
        assert_eq!(decode_client(&encode_client(sig.clone())).unwrap(), sig);
    }

    #[test]
    fn server_frames_round_trip() {
        let msg = ServerMsg::Welcome {
            id: PeerId("p1".into()),
            room: "r".into(),
            peers: vec![PeerInfo {
                id: PeerId("p0".into()),
                kind: PeerKind::Native,
                name: "n".into(),
                presenter: false,
                colour: 0,
            }],
            ice_servers: vec![IceServer {
                urls: vec!["stun:127.0.0.1:3478".into()],
                username: None,
                credential: None,
            }],
            presenter: false,
            limits: Some(RateLimits {
                messages_per_second: 50,
                messages_burst: 320,
            }),
            colour: 3,
        };
        assert_eq!(decode_server(&encode_server(msg.clone())).unwrap(), msg);
        let refused = ServerMsg::Error {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            frame: Some(7),
            retry_after_ms: Some(20),
        };
        assert_eq!(
            decode_server(&encode_server(refused.clone())).unwrap(),
            refused
        );
    }

    #[test]
    fn decode_errors_are_classified() {
        let code = |t: &str| decode_client(t).unwrap_err().code;
        assert_eq!(code("not json"), ErrorCode::BadJson);
        assert_eq!(code("[1,2]"), ErrorCode::BadJson);
        assert_eq!(
            code(r#"{"type":"join","room":"a","kind":"native"}"#),
            ErrorCode::BadVersion
        );
        assert_eq!(
            code(r#"{"v":2,"type":"join","room":"a","kind":"native"}"#),
            ErrorCode::BadVersion
        );
        assert_eq!(code(r#"{"v":"1","type":"join"}"#), ErrorCode::BadVersion);
        assert_eq!(code(r#"{"v":1,"type":"dance"}"#), ErrorCode::UnknownType);
        assert_eq!(code(r#"{"v":1}"#), ErrorCode::BadJson);
        assert_eq!(
            code(r#"{"v":1,"type":"join","room":"a","kind":"robot"}"#),
            ErrorCode::BadJson
        );
        assert_eq!(
            code(r#"{"v":1,"type":"signal","to":"x"}"#),
            ErrorCode::BadJson
        );
    }

    #[test]
    fn error_code_names_are_the_wire_names() {
        for code in ErrorCode::ALL.iter().chain([&ErrorCode::Unknown]) {
            let wire = serde_json::to_string(code).unwrap();
            assert_eq!(wire, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn an_unknown_error_code_still_decodes() {
        let msg =
            decode_server(r#"{"v":1,"type":"error","code":"brand_new","message":"m"}"#).unwrap();
        assert_eq!(msg, ServerMsg::error(ErrorCode::Unknown, "m"));
    }

    #[test]
    fn room_names() {
        assert!(valid_room_name("demo"));
        assert!(valid_room_name("Class_2-b"));
        assert!(!valid_room_name(""));
        assert!(!valid_room_name("a b"));
        assert!(!valid_room_name("../etc"));
        assert!(!valid_room_name(&"x".repeat(ROOM_NAME_LEN_MAX + 1)));
    }

    #[test]
    fn display_names_are_cleaned() {
        assert_eq!(clean_display_name("  ann\u{7}ie "), "annie");
        assert_eq!(clean_display_name("evil\u{202e}gnp.exe"), "evilgnp.exe");
        assert_eq!(
            clean_display_name(&"y".repeat(100)).len(),
            DISPLAY_NAME_LEN_MAX
        );
    }
}
