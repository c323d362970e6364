//! Every message that crosses a data channel.
//!
//! A data-channel message is one byte of [`WIRE_VERSION`] followed by a postcard-encoded
//! [`WireMsg`]. Binary and compact because payloads (result tiles, bulk data) ride the
//! same channel as heartbeats. Decoding is total: any byte string gives either a message
//! or a [`WireError`], never a panic, so a peer cannot crash a node with garbage.

use serde::{Deserialize, Serialize};

use crate::job::{JobId, JobSpec, TaskId};
use crate::signal::{PeerId, PeerKind};

/// The version byte that starts every data-channel message.
pub const WIRE_VERSION: u8 = 5;

/// Largest message a node sends or accepts on a data channel, in bytes. 16 KiB is what
/// every browser delivers unfragmented; larger messages travel as [`WireMsg::Chunk`]s
/// (see [`crate::chunk`]).
pub const MESSAGE_LEN_MAX: usize = 16 * 1024;

/// Largest message sent in chunks, in bytes of its encoding.
pub const CHUNKED_LEN_MAX: usize = 4 << 20;

/// Messages whose encoding is at least this long are sent packed ([`pack`]) when that
/// saves at least an eighth of them; shorter ones (heartbeats, most facts) never are.
pub const PACK_MIN_LEN: usize = 1024;

/// Most bytes one byte of a packed message may stand for. LZ4 cannot do better than
/// about 255:1, so a packed message that claims more is a decompression bomb and is
/// refused before anything is allocated for it.
pub const PACK_RATIO_MAX: usize = 255;

/// Longest name accepted in a [`WireMsg::Hello`].
pub const HELLO_NAME_LEN_MAX: usize = 64;

/// A data-channel message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WireMsg {
    /// The first message on a channel, in both directions: who I am. A peer is a member
    /// only after its Hello has arrived.
    Hello {
        id: PeerId,
        kind: PeerKind,
        name: String,
        /// Cores this node offers for compute.
        cores: u16,
    },
    /// Heartbeat; the receiver answers with a [`WireMsg::Pong`] echoing `seq`.
    Ping { seq: u32 },
    /// Answer to a [`WireMsg::Ping`].
    Pong { seq: u32 },
    /// Bulk bytes, used to measure channel throughput (`cargo xtask bench mesh`).
    Bulk {
        #[serde(with = "bytes")]
        data: Vec<u8>,
    },
    /// End of a bulk transfer; the receiver answers with [`WireMsg::BulkAck`].
    BulkEnd { seq: u32 },
    /// How many bulk payload bytes arrived since the last ack.
    BulkAck { seq: u32, bytes: u64 },
    /// A message of the compute engine.
    Engine(EngineMsg),
    /// One piece of a message too big for one data-channel message: piece `index` of
    /// `count` of the encoding of that message (see [`crate::chunk`]).
    Chunk {
        stream: u32,
        index: u32,
        count: u32,
        #[serde(with = "bytes")]
        data: Vec<u8>,
    },
    /// A presenter's console command for the receiver. Obeyed only when the signaling
    /// server marked the sender a presenter ([`crate::signal::PeerInfo::presenter`]);
    /// anyone else's is dropped and counted.
    Console(ConsoleCmd),
    /// The sender went to the background (a hidden tab, a phone about to lock) or came
    /// back: its timers may run late, so the receiver waits longer before it takes its
    /// silence for a departure.
    Background { on: bool },
    /// What a presenter's console set on the sender, now: sent to every member when it
    /// changes and to each member as it connects, so that every tab (a reloaded one
    /// too) shows who is paused, slowed, lying or cut off.
    State(ConsoleState),
    /// Another message, compressed: `data` is an LZ4 block that decompresses to exactly
    /// `len` bytes, the [`encode`]d message (never a chunk or another packed message).
    /// Result tiles shrink 10 to 30 times this way. Made by [`pack`], opened by
    /// [`unpack`]; hashes are always over the result bytes themselves, never these.
    Packed {
        len: u32,
        #[serde(with = "bytes")]
        data: Vec<u8>,
    },
    /// The bytes of data-channel messages its sender has read from the receiver since
    /// their channel opened: flow control at the reading program, whatever the
    /// transport buffers between. The receiver of this report hands that peer result
    /// bytes only while fewer than [`crate::node::READ_WINDOW`] of those it sent are
    /// unread, so a slow reader's backlog stays small and its heartbeats never wait
    /// behind a transfer.
    Read { bytes: u64 },
}

/// Most members a [`ConsoleState`] names as cut off; a state naming more is refused.
pub const STATE_CUTS_MAX: usize = 64;

/// A member's console state, as it announces it ([`WireMsg::State`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsoleState {
    /// It starts no new task ([`ConsoleCmd::Pause`]).
    pub paused: bool,
    /// Its slow-motion wait after each task, in ms (0: off).
    pub pacing_ms: u32,
    /// It reports wrong results on purpose ([`ConsoleCmd::Lie`]).
    pub lying: bool,
    /// Members its link is cut to ([`ConsoleCmd::Cut`]), at most [`STATE_CUTS_MAX`].
    pub cut: Vec<PeerId>,
}

impl ConsoleState {
    /// Nothing set: what a member that announced nothing is taken to be.
    pub fn is_plain(&self) -> bool {
        *self == ConsoleState::default()
    }
}

/// What a presenter can make a member do, to show the mesh coping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsoleCmd {
    /// Stop answering anything, as a crashed or frozen machine would: the others notice
    /// only by its silence.
    Fail,
    /// Leave the mesh gracefully: close every connection and the signaling socket.
    Leave,
    /// Stop exchanging anything with `peer`, as if the link between the two were cut;
    /// each side treats the other as gone until [`ConsoleCmd::Restore`].
    Cut { peer: PeerId },
    /// Undo a [`ConsoleCmd::Cut`].
    Restore { peer: PeerId },
    /// Report wrong results from now on (or stop), to show a quorum catching a liar.
    Lie { on: bool },
    /// Slow motion: wait at least this long after each task (0: off).
    Pacing { ms: u32 },
    /// Stop starting tasks (or start again). Everything else goes on.
    Pause { on: bool },
    /// While paused, start one more task.
    Step,
    /// Forget every member caught lying (a presenter's reset: the demonstration starts
    /// over).
    Forgive,
}

/// Why a node computes a task. It travels with the node's claim ([`Fact::Claim`]), so
/// every member can say why a task ran where it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Why {
    /// Placement chose this node.
    Assigned,
    /// Another node asked for this node's result ([`EngineMsg::Help`]).
    Helped,
    /// Nobody live had started it and this node was idle.
    Stolen,
    /// Backup copy of a straggling task.
    Speculative,
    /// Its validated result was lost with every holder.
    Recompute,
}

/// One fact about a task, authored by the node that sends it. Facts are only accepted
/// from their author (the data channel vouches for the sender), so a lying node cannot
/// speak for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Fact {
    /// "I am computing this task, for this reason."
    Claim(Why),
    /// "My result for this task hashes to this."
    Report(u64),
    /// "I hold the bytes of a result with this hash."
    Holding(u64),
}

/// A fact and the task it is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskFact {
    pub task: TaskId,
    pub fact: Fact,
}

/// Messages between compute engines.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum EngineMsg {
    /// A job's spec. Relayed by anyone: its id is its hash, so it cannot be altered.
    Job { spec: JobSpec },
    /// New facts of the sender's about one job.
    Facts { job: JobId, facts: Vec<TaskFact> },
    /// How many facts the sender has authored (and sent) for a job; a receiver that,
    /// a sync interval later, still knows fewer than this asks for them again
    /// ([`EngineMsg::Resend`]). Repairs lost messages.
    Digest { job: JobId, facts: u64 },
    /// "Send me all your facts about this job."
    Resend { job: JobId },
    /// A result's bytes for a holder to keep.
    Store {
        job: JobId,
        task: TaskId,
        hash: u64,
        #[serde(with = "bytes")]
        payload: Vec<u8>,
    },
    /// "Send me the bytes of this result."
    Fetch { job: JobId, task: TaskId, hash: u64 },
    /// The answer to a [`EngineMsg::Fetch`].
    Payload {
        job: JobId,
        task: TaskId,
        hash: u64,
        #[serde(with = "bytes")]
        payload: Vec<u8>,
    },
    /// "In my view this task still needs your result": sent by a node that cannot see
    /// a quorum others may have seen (e.g. a report from a node that died before it
    /// arrived). The receiver computes the task if it has not reported it yet.
    Help { job: JobId, task: TaskId },
    /// The submitter cancelled the job.
    Cancel { job: JobId },
    /// Someone changed the job's pacing delay (a presenter's slow motion).
    Pacing { job: JobId, pacing_ms: u32 },
    /// "Send me the preview of this image result" (a node that only shows the job).
    FetchPreview { job: JobId, task: TaskId, hash: u64 },
    /// The answer to a [`EngineMsg::FetchPreview`]: the preview, and `full`, the hash of
    /// the result's own bytes; the two seal to `hash` ([`crate::job::sealed_hash`]).
    Preview {
        job: JobId,
        task: TaskId,
        hash: u64,
        full: u64,
        #[serde(with = "bytes")]
        preview: Vec<u8>,
    },
}

impl std::fmt::Display for ConsoleCmd {
    /// The command in plain words, for logs and the page.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConsoleCmd::Fail => f.write_str("fail: go silent, as a crashed machine would"),
            ConsoleCmd::Leave => f.write_str("leave the mesh"),
            ConsoleCmd::Cut { peer } => write!(f, "cut the link to {peer}"),
            ConsoleCmd::Restore { peer } => write!(f, "restore the link to {peer}"),
            ConsoleCmd::Lie { on: true } => f.write_str("lie: report wrong results from now on"),
            ConsoleCmd::Lie { on: false } => f.write_str("stop lying"),
            ConsoleCmd::Pacing { ms: 0 } => f.write_str("slow motion off"),
            ConsoleCmd::Pacing { ms } => write!(f, "slow motion: wait {ms} ms after each task"),
            ConsoleCmd::Pause { on: true } => f.write_str("pause: start no new task"),
            ConsoleCmd::Pause { on: false } => f.write_str("resume"),
            ConsoleCmd::Step => f.write_str("step: start one more task"),
            ConsoleCmd::Forgive => f.write_str("forget who was caught lying (a reset)"),
        }
    }
}

/// Byte strings as one length and the bytes (the same encoding postcard gives a
/// `Vec<u8>`), copied in one go instead of decoded byte by byte: result tiles and chunks
/// are most of what crosses a channel.
mod bytes {
    use serde::{Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Bytes;
        impl<'de> de::Visitor<'de> for Bytes {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            // Formats that write bytes as a list of numbers (JSON) give them back so.
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut v = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
                while let Some(b) = seq.next_element()? {
                    v.push(b);
                }
                Ok(v)
            }
        }
        d.deserialize_byte_buf(Bytes)
    }
}

/// Why bytes from a peer were not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    #[error("empty message")]
    Empty,
    #[error("wire version {0} is not supported (expected {WIRE_VERSION})")]
    Version(u8),
    #[error("message of {0} bytes is over the limit")]
    TooBig(usize),
    #[error("undecodable message: {0}")]
    Decode(String),
    #[error("hello name of {0} bytes is over the limit")]
    NameTooLong(usize),
    #[error("packed message refused: {0}")]
    Unpack(String),
}

/// Encodes a message with its version byte.
pub fn encode(msg: &WireMsg) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(msg, &mut out);
    out
}

/// [`encode`] into `out` (cleared first), keeping its allocation.
fn encode_into(msg: &WireMsg, out: &mut Vec<u8>) {
    out.clear();
    out.push(WIRE_VERSION);
    // postcard serialisation of these types into a Vec cannot fail.
    match postcard::to_extend(msg, std::mem::take(out)) {
        Ok(v) => *out = v,
        Err(_) => out.push(WIRE_VERSION),
    }
}

/// Decodes and checks a message from a peer.
pub fn decode(bytes: &[u8]) -> Result<WireMsg, WireError> {
    decode_within(bytes, MESSAGE_LEN_MAX)
}

/// Decodes and checks a message put back together from chunks: larger, and never a
/// chunk itself.
pub fn decode_reassembled(bytes: &[u8]) -> Result<WireMsg, WireError> {
    match decode_within(bytes, CHUNKED_LEN_MAX)? {
        WireMsg::Chunk { .. } => Err(WireError::Decode("a chunk inside chunks".into())),
        msg => Ok(msg),
    }
}

fn decode_within(bytes: &[u8], len_max: usize) -> Result<WireMsg, WireError> {
    let (&version, body) = bytes.split_first().ok_or(WireError::Empty)?;
    if version != WIRE_VERSION {
        return Err(WireError::Version(version));
    }
    if bytes.len() > len_max {
        return Err(WireError::TooBig(bytes.len()));
    }
    let (msg, rest) =
        postcard::take_from_bytes::<WireMsg>(body).map_err(|e| WireError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::Decode(format!("{} trailing bytes", rest.len())));
    }
    if let WireMsg::Hello { name, id, .. } = &msg
        && (name.len() > HELLO_NAME_LEN_MAX || id.0.len() > HELLO_NAME_LEN_MAX)
    {
        return Err(WireError::NameTooLong(name.len().max(id.0.len())));
    }
    if let WireMsg::Console(ConsoleCmd::Cut { peer } | ConsoleCmd::Restore { peer }) = &msg
        && peer.0.len() > HELLO_NAME_LEN_MAX
    {
        return Err(WireError::NameTooLong(peer.0.len()));
    }
    if let WireMsg::State(state) = &msg {
        if state.cut.len() > STATE_CUTS_MAX {
            return Err(WireError::Decode(format!(
                "a state naming {} cut links (at most {STATE_CUTS_MAX})",
                state.cut.len()
            )));
        }
        if let Some(long) = state.cut.iter().find(|p| p.0.len() > HELLO_NAME_LEN_MAX) {
            return Err(WireError::NameTooLong(long.0.len()));
        }
    }
    Ok(msg)
}

/// `msg`, packed if its encoding is [`PACK_MIN_LEN`] bytes or more and LZ4 makes it
/// at least an eighth smaller; otherwise `msg` itself.
pub fn pack(msg: WireMsg) -> WireMsg {
    if matches!(msg, WireMsg::Packed { .. } | WireMsg::Chunk { .. }) {
        return msg;
    }
    // The encoding and the block are made in buffers kept for the next message: a
    // tile's 64 KiB allocated (and zeroed) twice per send showed as page faults.
    let packed = SCRATCH.with(|s| {
        let (bytes, block) = &mut *s.borrow_mut();
        encode_into(&msg, bytes);
        if bytes.len() < PACK_MIN_LEN || bytes.len() > CHUNKED_LEN_MAX {
            return None;
        }
        block.resize(lz4_flex::block::get_maximum_output_size(bytes.len()), 0);
        let n = lz4_flex::block::compress_into(bytes, block).ok()?;
        let packed = (n <= bytes.len() - bytes.len() / 8).then(|| WireMsg::Packed {
            len: bytes.len() as u32,
            data: block[..n].to_vec(),
        });
        shrink(bytes);
        shrink(block);
        packed
    });
    packed.unwrap_or(msg)
}

thread_local! {
    /// [`pack`]'s and [`unpack`]'s buffers: an encoding and an LZ4 block.
    static SCRATCH: std::cell::RefCell<(Vec<u8>, Vec<u8>)> = const {
        std::cell::RefCell::new((Vec::new(), Vec::new()))
    };
}

/// Lets a buffer that held a rare large message go, so that what stays is a tile's worth.
fn shrink(buf: &mut Vec<u8>) {
    if buf.capacity() > 1 << 20 {
        *buf = Vec::new();
    }
}

/// Opens a [`WireMsg::Packed`] from a peer: refuses a claimed size over
/// [`CHUNKED_LEN_MAX`] or over [`PACK_RATIO_MAX`] times the packed bytes (before
/// allocating), a block that does not decompress to exactly `len` bytes, and a message
/// inside that is not one, or is a chunk or packed again.
pub fn unpack(len: u32, data: &[u8]) -> Result<WireMsg, WireError> {
    let len = len as usize;
    if len > CHUNKED_LEN_MAX {
        return Err(WireError::TooBig(len));
    }
    if len > data.len().saturating_mul(PACK_RATIO_MAX) {
        return Err(WireError::Unpack(format!(
            "{} bytes claim to stand for {len}, over {PACK_RATIO_MAX}:1",
            data.len()
        )));
    }
    let msg = SCRATCH.with(|s| {
        let (bytes, _) = &mut *s.borrow_mut();
        bytes.clear();
        bytes.resize(len, 0);
        let msg = match lz4_flex::block::decompress_into(data, bytes) {
            Ok(n) if n == len => decode_within(bytes, CHUNKED_LEN_MAX),
            Ok(n) => Err(WireError::Unpack(format!(
                "{n} bytes where {len} were declared"
            ))),
            Err(e) => Err(WireError::Unpack(e.to_string())),
        };
        shrink(bytes);
        msg
    })?;
    match msg {
        WireMsg::Chunk { .. } | WireMsg::Packed { .. } => Err(WireError::Unpack(
            "a chunk or a packed message inside a packed message".into(),
        )),
        msg => Ok(msg),
    }
}

/// The largest `Bulk` payload that still fits in one message.
pub const BULK_PAYLOAD_MAX: usize = MESSAGE_LEN_MAX - 16;

#[cfg(test)]
mod tests {
    use super::*;

    fn all_kinds() -> Vec<WireMsg> {
        vec![
            WireMsg::Hello {
                id: PeerId("abcd".into()),
                kind: PeerKind::Native,
                name: "n1".into(),
                cores: 2,
            },
            WireMsg::Ping { seq: 7 },
            WireMsg::Pong { seq: u32::MAX },
            WireMsg::Bulk {
                data: vec![9; BULK_PAYLOAD_MAX],
            },
            WireMsg::BulkEnd { seq: 1 },
            WireMsg::BulkAck {
                seq: 1,
                bytes: 1 << 40,
            },
            WireMsg::Read { bytes: u64::MAX },
            WireMsg::Chunk {
                stream: u32::MAX,
                index: 3,
                count: 4,
                data: vec![1; crate::chunk::CHUNK_DATA_MAX],
            },
            WireMsg::Console(ConsoleCmd::Fail),
            WireMsg::Console(ConsoleCmd::Cut {
                peer: PeerId("0123456789abcdef".into()),
            }),
            WireMsg::Console(ConsoleCmd::Pacing { ms: u32::MAX }),
            WireMsg::State(ConsoleState {
                paused: true,
                pacing_ms: 600,
                lying: true,
                cut: vec![PeerId("x".repeat(HELLO_NAME_LEN_MAX)); STATE_CUTS_MAX],
            }),
            pack(WireMsg::Bulk {
                data: vec![7; BULK_PAYLOAD_MAX],
            }),
        ]
    }

    fn payload(bytes: Vec<u8>) -> WireMsg {
        WireMsg::Engine(EngineMsg::Payload {
            job: JobId(5),
            task: TaskId(9),
            hash: 77,
            payload: bytes,
        })
    }

    /// A message that packs well: a tile's worth of few distinct bytes.
    fn tile() -> WireMsg {
        payload((0..64 * 1024).map(|i| (i / 700 % 3) as u8).collect())
    }

    #[test]
    fn byte_strings_keep_postcards_encoding_and_read_back_from_json_too() {
        // One length, then the bytes: what postcard gives a plain Vec<u8>.
        let bulk = WireMsg::Bulk {
            data: vec![1, 2, 3],
        };
        assert_eq!(encode(&bulk), [WIRE_VERSION, 3, 3, 1, 2, 3]);
        // A self-describing format writes them as numbers and reads them back.
        let json = serde_json::to_string(&bulk).unwrap();
        assert_eq!(json, r#"{"Bulk":{"data":[1,2,3]}}"#);
        assert_eq!(serde_json::from_str::<WireMsg>(&json).unwrap(), bulk);
    }

    #[test]
    fn a_big_message_is_packed_and_opens_to_the_same_message() {
        let msg = tile();
        let packed = pack(msg.clone());
        let WireMsg::Packed { len, data } = &packed else {
            panic!("not packed")
        };
        assert_eq!(*len as usize, encode(&msg).len());
        assert!(data.len() * 10 < *len as usize, "{} of {len}", data.len());
        assert_eq!(unpack(*len, data).unwrap(), msg);
        // Through the wire and back, as a peer receives it.
        let WireMsg::Packed { len, data } = decode_reassembled(&encode(&packed)).unwrap() else {
            panic!("not packed")
        };
        assert_eq!(unpack(len, &data).unwrap(), msg);
    }

    #[test]
    fn small_or_incompressible_messages_go_as_they_are() {
        let ping = WireMsg::Ping { seq: 3 };
        assert_eq!(pack(ping.clone()), ping);
        // Noise does not shrink by an eighth.
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let noise: Vec<u8> = (0..8192)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let msg = payload(noise);
        assert_eq!(pack(msg.clone()), msg);
        // Never packed twice.
        let once = pack(tile());
        assert_eq!(pack(once.clone()), once);
    }

    #[test]
    fn hostile_packed_messages_are_refused_without_panic() {
        let msg = tile();
        let WireMsg::Packed { len, data } = pack(msg.clone()) else {
            panic!("not packed")
        };
        // Truncated.
        for cut in [0, 1, data.len() / 2, data.len() - 1] {
            assert!(unpack(len, &data[..cut]).is_err(), "cut at {cut}");
        }
        // Declared shorter than what the block makes (would overflow its buffer), or
        // longer (the block ends early).
        assert!(matches!(unpack(len - 1, &data), Err(WireError::Unpack(_))));
        assert!(matches!(unpack(len + 1, &data), Err(WireError::Unpack(_))));
        // A bomb: a few bytes that claim megabytes; and a claim over any message.
        // Refused for what it claims, before anything is allocated or decompressed.
        assert!(
            matches!(unpack(4 << 20, &data[..16]), Err(WireError::Unpack(why)) if why.contains("255:1"))
        );
        let huge = (CHUNKED_LEN_MAX + 1) as u32;
        assert_eq!(unpack(huge, &data), Err(WireError::TooBig(huge as usize)));
        // A valid block of bytes that are not a message.
        let junk = vec![1u8; 5000];
        let block = lz4_flex::block::compress(&junk);
        assert!(unpack(junk.len() as u32, &block).is_err());
        // Packed inside packed, a chunk inside packed.
        for inner in [
            pack(msg),
            WireMsg::Chunk {
                stream: 1,
                index: 0,
                count: 2,
                data: vec![0; 4000],
            },
        ] {
            let bytes = encode(&inner);
            let block = lz4_flex::block::compress(&bytes);
            assert!(matches!(
                unpack(bytes.len() as u32, &block),
                Err(WireError::Unpack(_))
            ));
        }
        // Flipped bytes anywhere: an error or some message, never a panic.
        for i in 0..data.len().min(200) {
            let mut d = data.clone();
            d[i] ^= 0x5a;
            let _ = unpack(len, &d);
        }
    }

    #[test]
    fn round_trip_every_message() {
        for msg in all_kinds() {
            let bytes = encode(&msg);
            assert_eq!(bytes[0], WIRE_VERSION);
            assert!(
                bytes.len() <= MESSAGE_LEN_MAX,
                "{msg:?} is {} bytes",
                bytes.len()
            );
            assert_eq!(decode(&bytes).unwrap(), msg);
        }
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert_eq!(decode(&[]), Err(WireError::Empty));
        assert_eq!(decode(&[9, 0]), Err(WireError::Version(9)));
        assert!(matches!(decode(&[WIRE_VERSION]), Err(WireError::Decode(_))));
        assert!(matches!(
            decode(&[WIRE_VERSION, 200, 200, 200]),
            Err(WireError::Decode(_))
        ));
        let mut trailing = encode(&WireMsg::Ping { seq: 1 });
        trailing.push(0);
        assert!(matches!(decode(&trailing), Err(WireError::Decode(_))));
        let big = vec![WIRE_VERSION; MESSAGE_LEN_MAX + 1];
        assert_eq!(decode(&big), Err(WireError::TooBig(MESSAGE_LEN_MAX + 1)));
        let long = encode(&WireMsg::Hello {
            id: PeerId("x".into()),
            kind: PeerKind::Browser,
            name: "n".repeat(HELLO_NAME_LEN_MAX + 1),
            cores: 1,
        });
        assert!(matches!(decode(&long), Err(WireError::NameTooLong(_))));
        let state = |cut: Vec<PeerId>| {
            encode(&WireMsg::State(ConsoleState {
                cut,
                ..ConsoleState::default()
            }))
        };
        let many = state(vec![PeerId("p".into()); STATE_CUTS_MAX + 1]);
        assert!(matches!(decode(&many), Err(WireError::Decode(_))));
        let long_id = state(vec![PeerId("p".repeat(HELLO_NAME_LEN_MAX + 1))]);
        assert!(matches!(decode(&long_id), Err(WireError::NameTooLong(_))));
    }

    #[test]
    fn every_prefix_and_byte_flip_decodes_without_panic() {
        for msg in all_kinds() {
            let bytes = encode(&msg);
            for cut in 0..bytes.len().min(64) {
                let _ = decode(&bytes[..cut]);
            }
            for i in 0..bytes.len().min(64) {
                let mut b = bytes.clone();
                b[i] ^= 0xff;
                let _ = decode(&b);
            }
        }
    }
}
