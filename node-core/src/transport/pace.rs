//! A client's side of the signaling server's rate limits, written once for both
//! transports: frames to the server wait in a queue and leave at the pace the server
//! announced in its welcome, and a frame the server refused anyway (`rate_limited`, with
//! the frame's number) is sent again after a backoff with jitter.
//!
//! Sans-IO like the negotiation policy: the caller hands in the time (ms on any
//! monotonic clock) and carries out what [`Pacer::poll`] returns; [`Pacer::wake_at`]
//! says when to poll again.
//!
//! Refusals still happen when limits are shared: the server also paces each source
//! address over all its connections (many tabs behind one NAT), which no single client
//! can see. The error names the refused frame by its number on the connection (the join
//! is 1), and this pacer numbers the frames it hands out the same way.

use std::collections::{BTreeMap, VecDeque};

use crate::signal::RateLimits;

/// The pace assumed until the server says otherwise (the server's defaults).
pub const ASSUMED_LIMITS: RateLimits = RateLimits {
    messages_per_second: 50,
    messages_burst: 320,
};

/// Frames waiting at most; past it the oldest waiting is dropped (and counted).
const QUEUE_MAX: usize = 4096;
/// Frames sent that can still be sent again if the server refuses them.
const SENT_KEPT: usize = 1024;
/// Times one frame is sent again before it is given up (and counted).
const RESENDS_MAX: u32 = 6;
/// The first backoff after a refusal, and the longest.
const BACKOFF_MIN_MS: u64 = 50;
const BACKOFF_MAX_MS: u64 = 5_000;
/// Refusals further apart than this start the backoff over.
const BACKOFF_RESET_MS: u64 = 2_000;
/// Of the announced pace, the share used: clocks and networks are not exact.
const MARGIN: f64 = 0.9;

/// What the pacer has done, for a node's statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacerStats {
    /// Frames the server refused for pace.
    pub refused: u64,
    /// Frames sent again after a refusal.
    pub resent: u64,
    /// Frames given up: refused too often, too old to send again, or pushed out of a
    /// full queue.
    pub dropped: u64,
}

/// Frames on their way to the signaling server.
#[derive(Debug)]
pub struct Pacer {
    /// Tokens added per millisecond, and the most held.
    per_ms: f64,
    capacity: f64,
    tokens: f64,
    /// When `tokens` was brought up to date.
    at_ms: u64,
    /// Frames waiting, oldest first.
    queue: VecDeque<(String, u32)>,
    /// Refused frames waiting to go again, by their first number: they go before the
    /// queue, in the order they were first sent.
    retry: BTreeMap<u64, (String, u32)>,
    /// The last frames handed out, by number, with how often each was resent.
    sent: VecDeque<(u64, String, u32)>,
    /// Frames handed out so far (the next one's number is this plus one).
    numbered: u64,
    /// Nothing leaves before this.
    blocked_until_ms: u64,
    backoff_ms: u64,
    last_refusal_ms: Option<u64>,
    /// xorshift state for the jitter.
    rng: u64,
    stats: PacerStats,
}

impl Pacer {
    /// A pacer with a full bucket (the server's starts full when the socket opens) at
    /// the [`ASSUMED_LIMITS`]; `seed` varies the jitter between clients.
    pub fn new(now_ms: u64, seed: u64) -> Self {
        let mut p = Pacer {
            per_ms: 0.0,
            capacity: 0.0,
            tokens: 0.0,
            at_ms: now_ms,
            queue: VecDeque::new(),
            retry: BTreeMap::new(),
            sent: VecDeque::new(),
            numbered: 0,
            blocked_until_ms: 0,
            backoff_ms: 0,
            last_refusal_ms: None,
            rng: seed | 1,
            stats: PacerStats::default(),
        };
        p.set_limits(ASSUMED_LIMITS, now_ms);
        p.tokens = p.capacity;
        p
    }

    /// The pace the server announced. Tokens already spent stay spent.
    pub fn set_limits(&mut self, limits: RateLimits, now_ms: u64) {
        self.refill(now_ms);
        self.per_ms = f64::from(limits.messages_per_second) * MARGIN / 1000.0;
        self.capacity = (f64::from(limits.messages_burst) * MARGIN).floor().max(1.0);
        self.tokens = self.tokens.min(self.capacity);
    }

    /// Queues a frame. A full queue drops its oldest frame, which is counted.
    pub fn push(&mut self, frame: String) {
        if self.queue.len() >= QUEUE_MAX {
            self.queue.pop_front();
            self.stats.dropped += 1;
        }
        self.queue.push_back((frame, 0));
    }

    /// The next frame to send now, if one may go; call until `None`.
    pub fn poll(&mut self, now_ms: u64) -> Option<String> {
        if now_ms < self.blocked_until_ms {
            return None;
        }
        self.refill(now_ms);
        if self.tokens < 1.0 {
            return None;
        }
        let (frame, resends) = match self.retry.pop_first() {
            Some((_, f)) => f,
            None => self.queue.pop_front()?,
        };
        self.tokens -= 1.0;
        self.numbered += 1;
        if self.sent.len() >= SENT_KEPT {
            self.sent.pop_front();
        }
        self.sent.push_back((self.numbered, frame.clone(), resends));
        Some(frame)
    }

    /// When [`Pacer::poll`] may next return a frame; `None` if nothing is waiting.
    pub fn wake_at(&self, now_ms: u64) -> Option<u64> {
        if self.queue.is_empty() && self.retry.is_empty() {
            return None;
        }
        let elapsed = now_ms.saturating_sub(self.at_ms) as f64;
        let tokens = (self.tokens + elapsed * self.per_ms).min(self.capacity);
        let refilled = if tokens >= 1.0 {
            now_ms
        } else if self.per_ms > 0.0 {
            now_ms + ((1.0 - tokens) / self.per_ms).ceil() as u64
        } else {
            // Nothing ever refills: never again.
            return None;
        };
        Some(refilled.max(self.blocked_until_ms))
    }

    /// The server refused frame number `frame` for pace, saying it would take another
    /// in `retry_after_ms`: the frame goes again after a backoff, ahead of the queue.
    pub fn refused(&mut self, frame: u64, retry_after_ms: Option<u64>, now_ms: u64) {
        self.stats.refused += 1;
        self.refill(now_ms);
        // The server's bucket is emptier than ours thought.
        self.tokens = 0.0;
        self.backoff_ms = match self.last_refusal_ms {
            Some(t) if now_ms.saturating_sub(t) < BACKOFF_RESET_MS => {
                (self.backoff_ms * 2).clamp(BACKOFF_MIN_MS, BACKOFF_MAX_MS)
            }
            _ => BACKOFF_MIN_MS,
        };
        self.last_refusal_ms = Some(now_ms);
        let wait = retry_after_ms
            .unwrap_or(0)
            .min(BACKOFF_MAX_MS)
            .max(self.backoff_ms);
        let jitter = self.next_random() % (wait / 2 + 1);
        self.blocked_until_ms = self.blocked_until_ms.max(now_ms + wait + jitter);
        let Some(at) = self.sent.iter().position(|(n, _, _)| *n == frame) else {
            self.stats.dropped += 1;
            return;
        };
        let Some((_, text, resends)) = self.sent.remove(at) else {
            return;
        };
        if resends >= RESENDS_MAX {
            self.stats.dropped += 1;
            return;
        }
        self.stats.resent += 1;
        self.retry.insert(frame, (text, resends + 1));
    }

    /// Frames waiting (queued or to be sent again).
    pub fn waiting(&self) -> usize {
        self.queue.len() + self.retry.len()
    }

    pub fn stats(&self) -> PacerStats {
        self.stats
    }

    fn refill(&mut self, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.at_ms) as f64;
        self.tokens = (self.tokens + elapsed * self.per_ms).min(self.capacity);
        self.at_ms = self.at_ms.max(now_ms);
    }

    fn next_random(&mut self) -> u64 {
        self.rng = xorshift(self.rng);
        self.rng
    }
}

/// The next state of a xorshift64 generator (jitter only: not for secrets).
pub fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// First delay before reopening a signaling socket that dropped, and the longest.
const RECONNECT_MIN_MS: u64 = 100;
const RECONNECT_MAX_MS: u64 = 5_000;

/// How long to wait before reconnection attempt `attempt` (0 for the first since the
/// last welcome): 100 ms doubling to 5 s, plus `jitter` (0 to 1) times half of that, so
/// that members of a restarted server do not all come back at once. Both transports
/// wait this long.
pub fn reconnect_delay_ms(attempt: u32, jitter: f64) -> u64 {
    let base = RECONNECT_MIN_MS
        .saturating_mul(1 << attempt.min(16))
        .min(RECONNECT_MAX_MS);
    base + (base as f64 * jitter.clamp(0.0, 1.0) / 2.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(p: &mut Pacer, now: u64) -> Vec<String> {
        std::iter::from_fn(|| p.poll(now)).collect()
    }

    fn limits(per_second: u32, burst: u32) -> RateLimits {
        RateLimits {
            messages_per_second: per_second,
            messages_burst: burst,
        }
    }

    #[test]
    fn frames_leave_in_order_at_the_announced_pace() {
        let mut p = Pacer::new(0, 1);
        p.set_limits(limits(100, 10), 0);
        for i in 0..30 {
            p.push(format!("f{i}"));
        }
        // A burst of 90 % of 10, then 90 per second: one every ~11.1 ms.
        let first = drain(&mut p, 0);
        assert_eq!(first.len(), 9);
        assert_eq!(first[0], "f0");
        assert_eq!(p.wake_at(0), Some(12));
        assert!(p.poll(11).is_none());
        assert_eq!(p.poll(12).as_deref(), Some("f9"));
        // A second later everything has gone, in order, and the bucket was never
        // over what the server allows (10 at once, 100 per second).
        let rest = drain(&mut p, 1_000);
        assert_eq!(rest.len(), 9, "a burst's worth again after a quiet second");
        assert_eq!(rest[0], "f10");
        assert_eq!(p.waiting(), 11);
        assert_eq!(p.wake_at(1_000), Some(1_012));
    }

    #[test]
    fn a_refused_frame_goes_again_after_the_backoff_before_newer_ones() {
        let mut p = Pacer::new(0, 7);
        p.push("join".into());
        p.push("a".into());
        p.push("b".into());
        assert_eq!(drain(&mut p, 0), ["join", "a", "b"]);
        p.push("c".into());
        // The server took the join and refused "a" (frame 2) and "b" (frame 3).
        p.refused(2, Some(20), 5);
        p.refused(3, Some(20), 5);
        assert!(p.poll(5).is_none(), "blocked after a refusal");
        let wake = p.wake_at(5).unwrap();
        // Second refusal within the reset window: backoff 100 ms plus jitter up to half.
        assert!((105..=155).contains(&wake), "{wake}");
        assert!(p.poll(wake - 1).is_none());
        // The bucket was emptied: frames trickle at the pace again, refused ones first.
        let later = wake + 1_000;
        assert_eq!(drain(&mut p, later), ["a", "b", "c"]);
        assert_eq!(
            p.stats(),
            PacerStats {
                refused: 2,
                resent: 2,
                dropped: 0
            }
        );
        // Numbering went on: "a" was frame 4 this time.
        p.refused(4, None, later + 10);
        assert_eq!(drain(&mut p, later + 20_000), ["a"]);
    }

    #[test]
    fn a_frame_refused_too_often_or_unknown_is_given_up_and_counted() {
        let mut p = Pacer::new(0, 3);
        p.push("x".into());
        let mut now = 0;
        let mut number = 0;
        for _ in 0..=RESENDS_MAX {
            assert_eq!(drain(&mut p, now), ["x"]);
            number += 1;
            p.refused(number, None, now);
            now += 60_000;
        }
        assert!(drain(&mut p, now).is_empty());
        assert_eq!(p.stats().resent, u64::from(RESENDS_MAX));
        assert_eq!(p.stats().dropped, 1);
        // A number never handed out (a confused or hostile server) changes nothing else.
        p.refused(999, None, now);
        assert_eq!(p.stats().dropped, 2);
        assert_eq!(p.waiting(), 0);
    }

    #[test]
    fn backoff_grows_with_refusals_close_together_and_is_bounded() {
        let mut p = Pacer::new(0, 11);
        let mut now = 0;
        let mut waits = Vec::new();
        for _ in 0..12 {
            p.push("f".into());
            now = p.wake_at(now).unwrap_or(now).max(now);
            assert!(p.poll(now).is_some());
            p.refused(p.numbered, Some(1), now);
            let wake = p.wake_at(now).unwrap();
            waits.push(wake - now);
            now = wake;
            let _ = drain(&mut p, now);
        }
        assert!(waits[0] >= BACKOFF_MIN_MS && waits[0] <= BACKOFF_MIN_MS * 3 / 2);
        assert!(waits[3] >= 8 * BACKOFF_MIN_MS, "{waits:?}");
        assert!(
            waits.iter().all(|w| *w <= BACKOFF_MAX_MS * 3 / 2),
            "{waits:?}"
        );
    }

    #[test]
    fn reconnection_backs_off_with_jitter_up_to_a_bound() {
        assert_eq!(reconnect_delay_ms(0, 0.0), 100);
        assert_eq!(reconnect_delay_ms(0, 1.0), 150);
        assert_eq!(reconnect_delay_ms(3, 0.0), 800);
        assert_eq!(reconnect_delay_ms(6, 0.0), 5_000);
        assert_eq!(reconnect_delay_ms(u32::MAX, 1.0), 7_500);
        assert_eq!(reconnect_delay_ms(1, 7.0), 300, "jitter past 1 counts as 1");
    }

    #[test]
    fn a_full_queue_drops_its_oldest() {
        let mut p = Pacer::new(0, 5);
        p.set_limits(limits(0, 1), 0);
        for i in 0..=QUEUE_MAX {
            p.push(i.to_string());
        }
        assert_eq!(p.stats().dropped, 1);
        assert_eq!(p.poll(0).as_deref(), Some("1"));
        assert_eq!(p.wake_at(0), None, "a rate of zero never refills");
    }
}
