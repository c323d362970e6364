//! Messages larger than one data-channel message: split into [`WireMsg::Chunk`]s by the
//! sender, put back together by the receiver.
//!
//! A result tile or a stored copy may be far larger than [`MESSAGE_LEN_MAX`] (16 KiB,
//! what every browser delivers whole). The sender encodes the message as usual and, if
//! it is too big, cuts the encoding into chunks of one stream: every chunk but the last
//! is exactly [`CHUNK_DATA_MAX`] bytes, and all are sent back to back on the peer's
//! ordered channel. So the receiver knows a stream's size from its first chunk, and
//! expects exactly one stream at a time per peer, in order.
//!
//! Nothing a peer sends is trusted: a count over [`CHUNKS_MAX`], a chunk of the wrong
//! size, a chunk out of order or of another stream drops the stream and counts it; a
//! stream that stops halfway is dropped after [`ReassemblyConfig::stall_ms`]; memory is
//! reserved for a whole stream when it starts, within a bound per peer (one stream, at
//! most [`CHUNKED_LEN_MAX`]) and in total ([`ReassemblyConfig::bytes_max`]).

use std::collections::BTreeMap;

use crate::membership::Micros;
use crate::signal::PeerId;
use crate::wire::{self, CHUNKED_LEN_MAX, MESSAGE_LEN_MAX, WireMsg};

/// Bytes of the inner encoding per chunk: what is left of a data-channel message once
/// the chunk's own header (version byte, tag and three varints) is paid for.
pub const CHUNK_DATA_MAX: usize = MESSAGE_LEN_MAX - 32;

/// Most chunks in one stream.
pub const CHUNKS_MAX: u32 = CHUNKED_LEN_MAX.div_ceil(CHUNK_DATA_MAX) as u32;

/// The data-channel messages that carry `msg`: its encoding alone if it fits in one,
/// otherwise the chunks of stream `stream`, in order. `None` if the message is over
/// [`CHUNKED_LEN_MAX`] (a bug in the caller: the engine never makes one that big).
pub fn split(msg: &WireMsg, stream: u32) -> Option<Vec<Vec<u8>>> {
    let bytes = wire::encode(msg);
    if bytes.len() <= MESSAGE_LEN_MAX {
        return Some(vec![bytes]);
    }
    if bytes.len() > CHUNKED_LEN_MAX {
        return None;
    }
    let count = bytes.len().div_ceil(CHUNK_DATA_MAX) as u32;
    Some(
        bytes
            .chunks(CHUNK_DATA_MAX)
            .enumerate()
            .map(|(index, data)| {
                wire::encode(&WireMsg::Chunk {
                    stream,
                    index: index as u32,
                    count,
                    data: data.to_vec(),
                })
            })
            .collect(),
    )
}

/// Why a chunk was refused (its stream, if any, is dropped with it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk count {0} out of range")]
    BadCount(u32),
    #[error("chunk of {0} bytes where a full or shorter last chunk was due")]
    BadSize(usize),
    #[error("chunk out of order or of an unknown stream")]
    OutOfOrder,
    #[error("no memory left for a stream of {0} bytes")]
    OverBudget(usize),
    #[error("the reassembled message is not a message: {0}")]
    Undecodable(String),
}

/// Bounds of reassembly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReassemblyConfig {
    /// A stream with no new chunk for this long is dropped.
    pub stall_ms: u64,
    /// Bytes reserved by all unfinished streams together.
    pub bytes_max: usize,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            stall_ms: 5_000,
            bytes_max: 64 << 20,
        }
    }
}

/// Counters, for logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReassemblyStats {
    /// Messages put back together.
    pub completed: u64,
    /// Streams dropped for a refused chunk.
    pub refused: u64,
    /// Streams dropped because they stalled.
    pub stalled: u64,
}

/// One peer's unfinished stream.
#[derive(Debug)]
struct Partial {
    stream: u32,
    count: u32,
    next: u32,
    /// Bytes reserved for the whole stream.
    reserved: usize,
    buf: Vec<u8>,
    last_at: Micros,
}

/// Streams being put back together, one per peer at most.
#[derive(Debug, Default)]
pub struct Reassembly {
    config: ReassemblyConfig,
    partial: BTreeMap<PeerId, Partial>,
    reserved: usize,
    stats: ReassemblyStats,
}

impl Reassembly {
    pub fn new(config: ReassemblyConfig) -> Self {
        Reassembly {
            config,
            ..Reassembly::default()
        }
    }

    pub fn stats(&self) -> &ReassemblyStats {
        &self.stats
    }

    /// Bytes reserved by unfinished streams.
    pub fn reserved(&self) -> usize {
        self.reserved
    }

    /// A chunk from `peer`: the whole message once its last chunk is in.
    pub fn push(
        &mut self,
        now: Micros,
        peer: &PeerId,
        stream: u32,
        index: u32,
        count: u32,
        data: Vec<u8>,
    ) -> Result<Option<WireMsg>, ChunkError> {
        let r = self.push_inner(now, peer, stream, index, count, data);
        if r.is_err() {
            self.stats.refused += 1;
        }
        r
    }

    fn push_inner(
        &mut self,
        now: Micros,
        peer: &PeerId,
        stream: u32,
        index: u32,
        count: u32,
        data: Vec<u8>,
    ) -> Result<Option<WireMsg>, ChunkError> {
        if index == 0 {
            // A new stream while one is unfinished: the old one is dropped and counted
            // (an honest sender never leaves one halfway), the new one may be good.
            if self.forget(peer) {
                self.stats.refused += 1;
            }
            // One chunk would have been sent whole: a stream has at least two.
            if !(2..=CHUNKS_MAX).contains(&count) {
                return Err(ChunkError::BadCount(count));
            }
            let reserved = count as usize * CHUNK_DATA_MAX;
            if self.reserved + reserved > self.config.bytes_max {
                return Err(ChunkError::OverBudget(reserved));
            }
            self.reserved += reserved;
            self.partial.insert(
                peer.clone(),
                Partial {
                    stream,
                    count,
                    next: 0,
                    reserved,
                    buf: Vec::new(),
                    last_at: now,
                },
            );
        }
        let Some(p) = self.partial.get_mut(peer) else {
            return Err(ChunkError::OutOfOrder);
        };
        if p.stream != stream || p.count != count || p.next != index {
            self.forget(peer);
            return Err(ChunkError::OutOfOrder);
        }
        let last = index + 1 == count;
        let size_ok = if last {
            !data.is_empty() && data.len() <= CHUNK_DATA_MAX
        } else {
            data.len() == CHUNK_DATA_MAX
        };
        if !size_ok {
            self.forget(peer);
            return Err(ChunkError::BadSize(data.len()));
        }
        p.buf.extend_from_slice(&data);
        p.next += 1;
        p.last_at = now;
        if !last {
            return Ok(None);
        }
        let p = self.partial.remove(peer).expect("present");
        self.reserved -= p.reserved;
        let msg =
            wire::decode_reassembled(&p.buf).map_err(|e| ChunkError::Undecodable(e.to_string()))?;
        self.stats.completed += 1;
        Ok(Some(msg))
    }

    /// Drops the peer's unfinished stream, if any; says whether there was one.
    pub fn forget(&mut self, peer: &PeerId) -> bool {
        match self.partial.remove(peer) {
            Some(p) => {
                self.reserved -= p.reserved;
                true
            }
            None => false,
        }
    }

    /// Drops streams that stalled; returns how many.
    pub fn expire(&mut self, now: Micros) -> usize {
        let stall = Micros::from_ms(self.config.stall_ms);
        let stalled: Vec<PeerId> = self
            .partial
            .iter()
            .filter(|(_, p)| now.saturating_sub(p.last_at) >= stall)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &stalled {
            self.forget(id);
        }
        self.stats.stalled += stalled.len() as u64;
        stalled.len()
    }

    /// When the oldest unfinished stream stalls.
    pub fn poll_timeout(&self) -> Option<Micros> {
        self.partial
            .values()
            .map(|p| Micros(p.last_at.0.saturating_add(self.config.stall_ms * 1000)))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobId, TaskId};
    use crate::wire::EngineMsg;

    fn big(len: usize) -> WireMsg {
        WireMsg::Engine(EngineMsg::Payload {
            job: JobId(7),
            task: TaskId(3),
            hash: 9,
            payload: (0..len).map(|i| (i * 31 % 251) as u8).collect(),
        })
    }

    fn chunks_of(msg: &WireMsg, stream: u32) -> Vec<(u32, u32, u32, Vec<u8>)> {
        split(msg, stream)
            .expect("within the limit")
            .into_iter()
            .map(|b| match wire::decode(&b) {
                Ok(WireMsg::Chunk {
                    stream,
                    index,
                    count,
                    data,
                }) => (stream, index, count, data),
                other => panic!("not a chunk: {other:?}"),
            })
            .collect()
    }

    fn peer(s: &str) -> PeerId {
        PeerId(s.into())
    }

    #[test]
    fn small_messages_go_whole_and_big_ones_come_back_equal() {
        let small = big(100);
        let whole = split(&small, 0).unwrap();
        assert_eq!(whole.len(), 1);
        assert_eq!(wire::decode(&whole[0]).unwrap(), small);
        for len in [MESSAGE_LEN_MAX, 3 * CHUNK_DATA_MAX, 1 << 20] {
            let msg = big(len);
            let chunks = split(&msg, 5).unwrap();
            assert!(chunks.len() >= 2);
            assert!(chunks.iter().all(|c| c.len() <= MESSAGE_LEN_MAX));
            let mut r = Reassembly::default();
            let mut out = None;
            for (i, (s, idx, n, d)) in chunks_of(&msg, 5).into_iter().enumerate() {
                assert_eq!(r.reserved() > 0, i > 0);
                out = r.push(Micros(0), &peer("a"), s, idx, n, d).unwrap();
            }
            assert_eq!(out, Some(msg));
            assert_eq!(r.reserved(), 0);
            assert_eq!(r.stats().completed, 1);
        }
        assert_eq!(split(&big(CHUNKED_LEN_MAX), 0), None);
    }

    #[test]
    fn streams_of_two_peers_interleave_freely() {
        let (m1, m2) = (big(40_000), big(50_000));
        let (c1, c2) = (chunks_of(&m1, 1), chunks_of(&m2, 1));
        let mut r = Reassembly::default();
        let mut done = Vec::new();
        for k in 0..c1.len().max(c2.len()) {
            for (p, c) in [("a", &c1), ("b", &c2)] {
                if let Some((s, i, n, d)) = c.get(k).cloned()
                    && let Some(m) = r.push(Micros(0), &peer(p), s, i, n, d).unwrap()
                {
                    done.push(m);
                }
            }
        }
        assert_eq!(done, vec![m1, m2]);
    }

    #[test]
    fn bad_chunks_drop_the_stream_and_free_its_memory() {
        let msg = big(60_000);
        let good = chunks_of(&msg, 2);
        let a = peer("a");
        type Case = (
            &'static str,
            fn(&mut Vec<(u32, u32, u32, Vec<u8>)>),
            ChunkError,
        );
        let cases: [Case; 5] = [
            (
                "skipped chunk",
                |c| drop(c.remove(1)),
                ChunkError::OutOfOrder,
            ),
            ("other stream", |c| c[1].0 = 9, ChunkError::OutOfOrder),
            ("count changes", |c| c[2].2 += 1, ChunkError::OutOfOrder),
            (
                "short middle chunk",
                |c| c[1].3.pop().map_or((), drop),
                ChunkError::BadSize(CHUNK_DATA_MAX - 1),
            ),
            (
                "long last chunk",
                |c| c.last_mut().unwrap().3.resize(CHUNK_DATA_MAX + 1, 0),
                ChunkError::BadSize(CHUNK_DATA_MAX + 1),
            ),
        ];
        for (what, mutate, want) in cases {
            let mut chunks = good.clone();
            mutate(&mut chunks);
            let mut r = Reassembly::default();
            let mut got = None;
            for (s, i, n, d) in chunks {
                match r.push(Micros(0), &a, s, i, n, d) {
                    Ok(Some(m)) => panic!("{what}: reassembled {m:?}"),
                    Ok(None) => {}
                    Err(e) => {
                        got.get_or_insert(e);
                    }
                }
            }
            assert_eq!(got, Some(want), "{what}");
            assert_eq!(r.reserved(), 0, "{what}: memory kept");
            assert!(r.stats().refused >= 1, "{what}");
        }
        // Counts out of range, a chunk with no stream.
        let mut r = Reassembly::default();
        for count in [0, 1, CHUNKS_MAX + 1] {
            assert_eq!(
                r.push(Micros(0), &a, 1, 0, count, vec![0; CHUNK_DATA_MAX]),
                Err(ChunkError::BadCount(count))
            );
        }
        assert_eq!(
            r.push(Micros(0), &a, 1, 3, 4, vec![0; 10]),
            Err(ChunkError::OutOfOrder)
        );
        // Bytes that are not a message.
        let junk = [vec![0xee; CHUNK_DATA_MAX], vec![0xee; 10]];
        assert_eq!(r.push(Micros(0), &a, 1, 0, 2, junk[0].clone()), Ok(None));
        assert!(matches!(
            r.push(Micros(0), &a, 1, 1, 2, junk[1].clone()),
            Err(ChunkError::Undecodable(_))
        ));
        assert_eq!(r.reserved(), 0);
    }

    #[test]
    fn a_stalled_stream_is_dropped_after_its_timeout() {
        let msg = big(60_000);
        let chunks = chunks_of(&msg, 4);
        let a = peer("a");
        let mut r = Reassembly::new(ReassemblyConfig {
            stall_ms: 100,
            ..ReassemblyConfig::default()
        });
        let (s, i, n, d) = chunks[0].clone();
        r.push(Micros::from_ms(10), &a, s, i, n, d).unwrap();
        assert_eq!(r.poll_timeout(), Some(Micros::from_ms(110)));
        assert_eq!(r.expire(Micros::from_ms(109)), 0);
        assert!(r.reserved() > 0);
        assert_eq!(r.expire(Micros::from_ms(110)), 1);
        assert_eq!((r.reserved(), r.poll_timeout()), (0, None));
        assert_eq!(r.stats().stalled, 1);
        // The rest of it is now out of order.
        let (s, i, n, d) = chunks[1].clone();
        assert_eq!(
            r.push(Micros::from_ms(120), &a, s, i, n, d),
            Err(ChunkError::OutOfOrder)
        );
    }

    #[test]
    fn the_total_budget_refuses_a_stream_that_does_not_fit() {
        let msg = big(60_000);
        let chunks = chunks_of(&msg, 4);
        let per_stream = chunks.len() * CHUNK_DATA_MAX;
        let mut r = Reassembly::new(ReassemblyConfig {
            bytes_max: per_stream + 1,
            ..ReassemblyConfig::default()
        });
        let (s, i, n, d) = chunks[0].clone();
        r.push(Micros(0), &peer("a"), s, i, n, d.clone()).unwrap();
        assert_eq!(
            r.push(Micros(0), &peer("b"), s, i, n, d.clone()),
            Err(ChunkError::OverBudget(per_stream))
        );
        r.forget(&peer("a"));
        assert_eq!(r.push(Micros(0), &peer("b"), s, i, n, d), Ok(None));
    }

    #[test]
    fn a_stream_begun_anew_drops_the_unfinished_one_and_may_complete() {
        let msg = big(60_000);
        let chunks = chunks_of(&msg, 4);
        let a = peer("a");
        let mut r = Reassembly::default();
        let (s, i, n, d) = chunks[0].clone();
        r.push(Micros(0), &a, s, i, n, d).unwrap();
        let mut out = None;
        for (s, i, n, d) in chunks_of(&msg, 5) {
            out = r.push(Micros(0), &a, s, i, n, d).unwrap();
        }
        assert_eq!(out, Some(msg));
        assert_eq!(
            (r.stats().refused, r.stats().completed, r.reserved()),
            (1, 1, 0)
        );
    }
}
