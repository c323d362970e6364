//! Pacing for inbound frames and joins: a token bucket per connection, and one per
//! source address.
//!
//! Pure arithmetic over instants handed in by the caller, so it is tested without a clock.

use tokio::time::Instant;

/// Allows `per_second` frames on average and bursts of up to `burst` frames.
///
/// Starts full, so a client that joins and immediately trickles a handful of ICE
/// candidates is never refused.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Most tokens the bucket holds: the longest burst allowed after a quiet spell.
    capacity: f64,
    /// Tokens added per second of elapsed time.
    per_second: f64,
    /// Tokens available now; a frame costs one.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    refilled_at: Instant,
}

impl TokenBucket {
    /// A full bucket. A `burst` of 0 or a `per_second` of 0 refuses everything past what
    /// the bucket starts with, which is the caller's stated wish, not an error.
    pub fn new(per_second: u32, burst: u32, now: Instant) -> Self {
        let capacity = f64::from(burst);
        TokenBucket {
            capacity,
            per_second: f64::from(per_second),
            tokens: capacity,
            refilled_at: now,
        }
    }

    /// Whether the bucket would be full at `now` (nothing taken for a while).
    pub fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled_at);
        self.tokens + elapsed.as_secs_f64() * self.per_second >= self.capacity
    }

    /// How long until a token will be there (zero if one is now); `None` if never (a
    /// rate of zero).
    pub fn wait(&self, now: Instant) -> Option<std::time::Duration> {
        let elapsed = now.saturating_duration_since(self.refilled_at);
        let tokens = (self.tokens + elapsed.as_secs_f64() * self.per_second).min(self.capacity);
        if tokens >= 1.0 {
            return Some(std::time::Duration::ZERO);
        }
        (self.per_second > 0.0)
            .then(|| std::time::Duration::from_secs_f64((1.0 - tokens) / self.per_second))
    }

    /// Takes one token if there is one; `false` means the frame must be refused.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled_at);
        self.refilled_at = self.refilled_at.max(now);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.per_second).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One token bucket per source address, bounded in how many addresses it holds: past
/// `ADDRESSES_MAX`, addresses whose buckets are full again are forgotten, and if none
/// is, a new address is refused until one is.
#[derive(Debug)]
pub struct PerAddress {
    per_second: u32,
    burst: u32,
    buckets: std::collections::HashMap<std::net::IpAddr, TokenBucket>,
}

/// Source addresses paced at once.
pub const ADDRESSES_MAX: usize = 16_384;

impl PerAddress {
    pub fn new(per_second: u32, burst: u32) -> Self {
        PerAddress {
            per_second,
            burst,
            buckets: std::collections::HashMap::new(),
        }
    }

    /// Takes a token from `ip`'s bucket: `Ok` if there was one, otherwise how long
    /// until there will be (`None`: not foreseeable).
    pub fn take(
        &mut self,
        ip: std::net::IpAddr,
        now: Instant,
    ) -> Result<(), Option<std::time::Duration>> {
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= ADDRESSES_MAX {
            self.buckets.retain(|_, b| !b.is_full(now));
            if self.buckets.len() >= ADDRESSES_MAX {
                return Err(None);
            }
        }
        let bucket = self
            .buckets
            .entry(ip)
            .or_insert_with(|| TokenBucket::new(self.per_second, self.burst, now));
        if bucket.take(now) {
            Ok(())
        } else {
            Err(bucket.wait(now))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn burst_then_steady_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10, 3, t0);
        assert!(bucket.take(t0));
        assert!(bucket.take(t0));
        assert!(bucket.take(t0));
        assert!(!bucket.take(t0), "burst of 3 is spent");
        // 10 per second: one token every 100 ms.
        assert!(!bucket.take(t0 + Duration::from_millis(50)));
        assert!(bucket.take(t0 + Duration::from_millis(110)));
        assert!(!bucket.take(t0 + Duration::from_millis(120)));
    }

    #[test]
    fn quiet_spell_refills_only_up_to_the_burst() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(100, 2, t0);
        assert!(bucket.take(t0));
        assert!(bucket.take(t0));
        let later = t0 + Duration::from_secs(60);
        assert!(bucket.take(later));
        assert!(bucket.take(later));
        assert!(!bucket.take(later));
    }

    #[test]
    fn wait_says_when_the_next_token_comes() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10, 1, t0);
        assert_eq!(bucket.wait(t0), Some(Duration::ZERO));
        assert!(bucket.take(t0));
        let wait = bucket.wait(t0 + Duration::from_millis(30)).unwrap();
        assert!(
            wait > Duration::from_millis(69) && wait < Duration::from_millis(71),
            "{wait:?}"
        );
        assert_eq!(TokenBucket::new(0, 0, t0).wait(t0), None);
    }

    #[test]
    fn zero_rate_refuses_after_the_burst() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(0, 1, t0);
        assert!(bucket.take(t0));
        assert!(!bucket.take(t0 + Duration::from_secs(3600)));
    }

    #[test]
    fn clock_going_backwards_is_harmless() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut bucket = TokenBucket::new(1, 1, t0);
        assert!(bucket.take(t0));
        assert!(!bucket.take(t0 - Duration::from_secs(5)));
        assert!(!bucket.take(t0 + Duration::from_millis(500)));
    }
}
