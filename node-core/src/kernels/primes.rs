//! Prime counting: π(n), the number of primes ≤ n, by a segmented sieve of Eratosthenes.
//!
//! **Tasks.** The numbers `0..=n` are cut into `ranges` consecutive ranges; task `k`
//! counts the primes in `[lo, hi)` with `lo = k·(n+1)/ranges`, `hi = (k+1)·(n+1)/ranges`
//! (integer division), so ranges differ in length by at most one.
//!
//! **Output.** A task's output is 24 bytes: `lo`, `hi`, and the count, each u64
//! little-endian. Carrying `lo` and `hi` makes an output self-describing, so
//! [`assemble`](crate::kernels::Kernel::assemble) can tell a misplaced or forged
//! output from a right one. The job's output is [`JobOutput::Count`], the sum.
//!
//! **How.** The sieve stores only numbers coprime to 30 (the mod-30 wheel): one byte per
//! 30 numbers, bit `j` of byte `b` standing for `30·b + W[j]` with
//! `W = [1, 7, 11, 13, 17, 19, 23, 29]`. A task sieves its range in segments of
//! `SEGMENT_BYTES` (512 KiB, sized to the L2 cache), each cut into chunks of
//! `CHUNK_BYTES` (32 KiB, the L1 cache). Chunk by chunk, the segment is first filled
//! from 16 precomputed patterns with the multiples of 7…163 already removed (the
//! pre-sieve: four passes, each ANDing four patterns, which vectorise), then the small primes
//! (167 ≤ p < 4,096) cross off their multiples in it while it sits in L1. After the
//! chunks, the other primes up to √hi cross off over the whole segment: each has at least
//! two multiples in every segment, so entering and leaving its loop costs little per
//! multiple. Crossing off needs no division: for a prime `p = 30a + W[r]`, the multiples
//! p·m with m coprime to 30 and m ≥ p follow a fixed cycle of 8 byte steps
//! `a·(W[k+1] - W[k]) + STEP_EXTRA[r][k]` and 8 bit masks that depend only on r, so the
//! loop for each r is unrolled with constant masks. Survivors are counted with popcount;
//! the primes 2…163 are added by hand. All allocation happens in a task's setup (base
//! primes, their lists, one segment buffer), none per segment; the patterns are made
//! once per process.
//!
//! **No bucket sieve.** Sieves for much larger n (primesieve's design) keep the largest
//! primes in buckets by the segment they next hit, because most of them skip most
//! segments. Here they cannot: for n ≤ [`N_MAX`] the base primes stay below 10^6, whose
//! longest step between multiples (6a + 6 bytes ≈ 200 KB) is shorter than a segment, so
//! every base prime has a multiple in every segment and a bucket would hold them all.
//! Measured, the whole-segment loop keeps π(10^10) and a 10^9-wide range below 10^12
//! within primesieve's time on one thread.
//!
//! **Why it is deterministic.** Integer arithmetic only, in u64 where values can exceed
//! 32 bits, so wasm32's 32-bit `usize` changes nothing.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::{Compute, JobOutput, KernelError, TASK_COUNT_MAX, invalid, read_words};

const NAME: &str = "primes";

/// Largest n accepted: 10^12. A job that size is a few minutes of one native core (the
/// top 10^9 numbers take ~0.2 s), spread over a room of nodes;
/// its base primes (≤ 10^6, 78,498 of them) fit in a megabyte per task, and every
/// product p·m stays far below 2^64.
pub const N_MAX: u64 = 1_000_000_000_000;

/// Bytes (of 30 numbers each) sieved at a time: 512 KiB, so that a segment stays in the
/// L2 cache (1–2 MiB per core on the machines we measure on) while the larger primes
/// cross off over all of it. Measured on π(10^10): 128 KiB 1.45 s, 256 KiB 1.41 s,
/// 512 KiB 1.35 s, 1 MiB 1.47 s (before the small-prime bound was lowered).
const SEGMENT_BYTES: usize = 512 * 1024;

/// The small primes cross off a segment one chunk at a time: 32 KiB, the L1 data cache of
/// most cores, so that their many crossings per chunk hit L1.
const CHUNK_BYTES: usize = 32 * 1024;

/// Primes below this cross off chunk by chunk (a chunk holds at least 64 of their
/// multiples); the others over the whole segment, where each has enough multiples
/// that starting and ending its loop costs little. Measured on π(10^10): 32,768 gave
/// 1.35 s, 8,192 1.09 s, 4,096 1.04 s, 2,048 1.07 s, 512 1.26 s.
const SMALL_BELOW: u64 = CHUNK_BYTES as u64 / 8;

/// Parameters of a prime-counting job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    /// Count the primes ≤ n; `1..=N_MAX`.
    pub n: u64,
    /// Number of tasks (ranges), `1..=min(n, TASK_COUNT_MAX)`.
    pub ranges: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            n: 100_000_000,
            ranges: 16,
        }
    }
}

impl Params {
    /// Task `task`'s numbers, `[lo, hi)`.
    pub fn range(&self, task: u32) -> (u64, u64) {
        let split = |k: u32| {
            (u128::from(k) * (u128::from(self.n) + 1) / u128::from(self.ranges.max(1))) as u64
        };
        (split(task), split(task + 1))
    }
}

impl Compute for Params {
    fn name(&self) -> &'static str {
        NAME
    }

    fn validate(&self) -> Result<(), KernelError> {
        if !(1..=N_MAX).contains(&self.n) {
            return Err(invalid(NAME, format!("n {} is not in 1..={N_MAX}", self.n)));
        }
        let ranges_max = self.n.min(u64::from(TASK_COUNT_MAX));
        if !(1..=ranges_max).contains(&u64::from(self.ranges)) {
            return Err(invalid(
                NAME,
                format!("ranges {} is not in 1..={ranges_max}", self.ranges),
            ));
        }
        Ok(())
    }

    fn task_count(&self) -> u32 {
        self.ranges
    }

    fn task_output_len_max(&self) -> usize {
        24
    }

    fn run_task(&self, task: u32, out: &mut Vec<u8>) {
        let (lo, hi) = self.range(task);
        for word in [lo, hi, count_primes(lo, hi)] {
            out.extend_from_slice(&word.to_le_bytes());
        }
    }

    fn assemble(&self, outputs: &[&[u8]]) -> Result<JobOutput, KernelError> {
        let mut count = 0;
        for (task, bytes) in outputs.iter().enumerate() {
            let [lo, hi, task_count] = read_words::<3>(task, bytes)?;
            let expected = self.range(task as u32);
            let reason = if (lo, hi) != expected {
                format!("range {lo}..{hi}, expected {}..{}", expected.0, expected.1)
            } else if task_count > (hi - lo).div_ceil(2) + 1 {
                format!("{task_count} primes among {} numbers", hi - lo)
            } else {
                count += task_count;
                continue;
            };
            return Err(KernelError::MalformedOutput {
                task: task as u32,
                reason,
            });
        }
        Ok(JobOutput::Count { n: self.n, count })
    }
}

/// The residues coprime to 30, in order: bit j of a sieve byte stands for `30·b + W[j]`.
const W: [usize; 8] = [1, 7, 11, 13, 17, 19, 23, 29];

/// The primes the sieve does not find by itself: 2, 3, 5 (the wheel) and 7…163 (the
/// pre-sieve patterns remove them along with their multiples).
const SMALL_PRIMES: [u64; 38] = [
    2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
    101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163,
];

/// `WHEEL_INDEX[r]` = j with `W[j] == r`, for r coprime to 30.
const WHEEL_INDEX: [u8; 30] = {
    let mut t = [u8::MAX; 30];
    let mut j = 0;
    while j < 8 {
        t[W[j]] = j as u8;
        j += 1;
    }
    t
};

/// `TO_COPRIME[r]`: how far r is below the next residue coprime to 30 (0 if it is one).
const TO_COPRIME: [u8; 30] = {
    let mut t = [0u8; 30];
    let mut r = 0;
    while r < 30 {
        let mut d = 0;
        while WHEEL_INDEX[(r + d) % 30] == u8::MAX {
            d += 1;
        }
        t[r] = d as u8;
        r += 1;
    }
    t
};

/// `W_NEXT[k] - W[k]`: how much m grows from one residue to the next (31 follows 29).
const W_STEP: [usize; 8] = [6, 4, 2, 4, 2, 4, 6, 2];

/// For p = 30a + W[r] and m = 30q + W[k], p·m lies in byte
/// `30aq + a·W[k] + q·W[r] + floor(W[r]·W[k] / 30)`, at the bit of `W[r]·W[k] mod 30`.
/// `STEP_EXTRA[r][k]` is the part of the byte step from m to the next m that does not
/// scale with a: `floor(W[r]·W_next / 30) - floor(W[r]·W[k] / 30)`.
const STEP_EXTRA: [[usize; 8]; 8] = {
    let mut t = [[0; 8]; 8];
    let mut r = 0;
    while r < 8 {
        let mut k = 0;
        while k < 8 {
            let next = if k == 7 { 31 } else { W[k + 1] };
            t[r][k] = W[r] * next / 30 - W[r] * W[k] / 30;
            k += 1;
        }
        r += 1;
    }
    t
};

/// `ROUND_EXTRA[r][k] = floor(W[r]·W[k] / 30)`: within a round of 8 multiples starting
/// at k = 0 in byte i, multiple k lies in byte `i + a·(W[k] - 1) + ROUND_EXTRA[r][k]`.
const ROUND_EXTRA: [[usize; 8]; 8] = {
    let mut t = [[0; 8]; 8];
    let mut r = 0;
    while r < 8 {
        let mut k = 0;
        while k < 8 {
            t[r][k] = W[r] * W[k] / 30;
            k += 1;
        }
        r += 1;
    }
    t
};

/// `KEEP[r][k]`: the byte mask that clears the bit of `W[r]·W[k] mod 30`.
const KEEP: [[u8; 8]; 8] = {
    let mut t = [[0; 8]; 8];
    let mut r = 0;
    while r < 8 {
        let mut k = 0;
        while k < 8 {
            t[r][k] = !(1u8 << WHEEL_INDEX[W[r] * W[k] % 30]);
            k += 1;
        }
        r += 1;
    }
    t
};

/// The pre-sieve: every prime from 7 to 163, in groups whose product (the length of the
/// group's pattern, in bytes) stays small: 16 patterns, 128 KiB in all, made once per
/// process. A chunk is set to the AND of the first four and then ANDed with the others,
/// four at a time: 4 passes over an L1-sized buffer, which vectorise, in place of
/// crossing off these 38 primes one multiple at a time (about 40 % of all crossings for
/// π(10^9)). Four per pass rather than one took π(10^9) from 90 to 80 ms natively and
/// π(10^8) in wasm from 14 to 8 ms.
const PRESIEVE_GROUPS: [&[usize]; 16] = [
    &[7, 11, 13, 17],
    &[19, 23, 29],
    &[31, 163],
    &[37, 157],
    &[41, 151],
    &[43, 149],
    &[47, 139],
    &[53, 137],
    &[59, 131],
    &[61, 127],
    &[67, 113],
    &[71, 109],
    &[73, 107],
    &[79, 103],
    &[83, 101],
    &[89, 97],
];

/// A sieve byte pattern with the multiples of `primes` cleared; it repeats every
/// product-of-`primes` bytes, since 30 times that is a multiple of each of them.
/// Multiples of q at bit j recur every q bytes, so each (q, j) is one stride.
fn pattern(primes: &[usize]) -> Vec<u8> {
    let len = primes.iter().product();
    let mut t = vec![0xFFu8; len];
    for &q in primes {
        for (j, &w) in W.iter().enumerate() {
            let first = (0..q).find(|b| (30 * b + w).is_multiple_of(q)).unwrap_or(0);
            for byte in t.iter_mut().skip(first).step_by(q) {
                *byte &= !(1 << j);
            }
        }
    }
    t
}

fn presieve_patterns() -> &'static [Vec<u8>] {
    static PATTERNS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    PATTERNS.get_or_init(|| PRESIEVE_GROUPS.iter().map(|g| pattern(g)).collect())
}

/// The first prime that crosses off by itself (the pre-sieve covers 7…163).
const FIRST_SIEVING_PRIME: u64 = 167;

/// A sieving prime p = 30a + W[r] (r is the list it sits in) and where it crosses off
/// next: byte `offset` from the start of the current segment, multiple with wheel index
/// `k`. `offset` stays below segment length + p, so u32 holds it.
#[derive(Clone, Copy, Debug)]
struct Crossing {
    a: u32,
    offset: u32,
    k: u8,
}

/// Counts the primes in `[lo, hi)`. Needs `hi <= N_MAX + 1` (valid parameters).
fn count_primes(lo: u64, hi: u64) -> u64 {
    if hi <= lo {
        return 0;
    }
    let mut count = SMALL_PRIMES
        .iter()
        .filter(|&&p| (lo..hi).contains(&p))
        .count() as u64;

    let base = primes_up_to((hi - 1).isqrt());
    let base = &base[base.partition_point(|&p| u64::from(p) < FIRST_SIEVING_PRIME)..];
    let mut small: [Vec<Crossing>; 8] = Default::default();
    let mut medium: [Vec<Crossing>; 8] = Default::default();
    let mut base = base.iter().peekable();
    let mut segment = vec![0u8; SEGMENT_BYTES];

    let byte_lo = lo / 30;
    let byte_hi = hi.div_ceil(30);
    let mut b0 = byte_lo;
    while b0 < byte_hi {
        let len = (byte_hi - b0).min(SEGMENT_BYTES as u64) as usize;
        let b1 = b0 + len as u64;

        // Start the primes whose square falls before this segment's end.
        while let Some(&&p) = base.peek() {
            let p = u64::from(p);
            if p * p >= 30 * b1 {
                break;
            }
            base.next();
            let mut m = p.max((30 * b0).div_ceil(p));
            m += u64::from(TO_COPRIME[(m % 30) as usize]);
            let r = WHEEL_INDEX[(p % 30) as usize] as usize;
            let lists = if p < SMALL_BELOW {
                &mut small
            } else {
                &mut medium
            };
            lists[r].push(Crossing {
                a: (p / 30) as u32,
                offset: (p * m / 30 - b0) as u32,
                k: WHEEL_INDEX[(m % 30) as usize],
            });
        }
        let seg = &mut segment[..len];
        let mut chunk_b0 = b0;
        for chunk in seg.chunks_mut(CHUNK_BYTES) {
            fill_from_patterns(chunk, chunk_b0);
            cross_off_lists(chunk, &mut small);
            chunk_b0 += chunk.len() as u64;
        }
        cross_off_lists(seg, &mut medium);

        if b0 == 0 {
            seg[0] &= !1; // 1 is not prime
        }
        if b0 == byte_lo {
            seg[0] &= keep_from(lo - 30 * b0);
        }
        if b1 == byte_hi {
            seg[len - 1] &= !keep_from(hi - 30 * (b1 - 1));
        }
        count += popcount(seg);
        b0 = b1;
    }
    count
}

/// Crosses off, in `seg`, the multiples of every prime in `lists` (list r holding the
/// primes p with p mod 30 = W[r]), moving each prime's position on past `seg`.
fn cross_off_lists(seg: &mut [u8], lists: &mut [Vec<Crossing>; 8]) {
    let [l0, l1, l2, l3, l4, l5, l6, l7] = lists;
    cross_off_all::<0>(seg, l0);
    cross_off_all::<1>(seg, l1);
    cross_off_all::<2>(seg, l2);
    cross_off_all::<3>(seg, l3);
    cross_off_all::<4>(seg, l4);
    cross_off_all::<5>(seg, l5);
    cross_off_all::<6>(seg, l6);
    cross_off_all::<7>(seg, l7);
}

/// The mask of bits standing for offsets ≥ `from` within a byte of 30 numbers.
fn keep_from(from: u64) -> u8 {
    W.iter()
        .enumerate()
        .filter(|&(_, &w)| w as u64 >= from)
        .fold(0, |mask, (j, _)| mask | 1 << j)
}

/// Sets `seg` (bytes `b0..`) to the sieve with the multiples of 7…163 removed.
fn fill_from_patterns(seg: &mut [u8], b0: u64) {
    // Four patterns per pass: each byte is written once per four patterns, not once each.
    for (group, patterns) in presieve_patterns().chunks(4).enumerate() {
        let [p0, p1, p2, p3] = patterns else {
            unreachable!("PRESIEVE_GROUPS holds a multiple of four patterns")
        };
        let mut at = [p0, p1, p2, p3].map(|p| (b0 % p.len() as u64) as usize);
        let mut done = 0;
        while done < seg.len() {
            // The longest run before any of the four patterns wraps.
            let run = (seg.len() - done)
                .min(p0.len() - at[0])
                .min(p1.len() - at[1])
                .min(p2.len() - at[2])
                .min(p3.len() - at[3]);
            let out = &mut seg[done..done + run];
            let (a, b) = (&p0[at[0]..at[0] + run], &p1[at[1]..at[1] + run]);
            let (c, d) = (&p2[at[2]..at[2] + run], &p3[at[3]..at[3] + run]);
            if group == 0 {
                for i in 0..run {
                    out[i] = a[i] & b[i] & c[i] & d[i];
                }
            } else {
                for i in 0..run {
                    out[i] &= a[i] & b[i] & c[i] & d[i];
                }
            }
            for (k, p) in [p0, p1, p2, p3].iter().enumerate() {
                at[k] = (at[k] + run) % p.len();
            }
            done += run;
        }
    }
}

fn popcount(seg: &[u8]) -> u64 {
    let mut words = seg.chunks_exact(8);
    let mut count: u64 = words
        .by_ref()
        .map(|w| {
            let mut b = [0; 8];
            b.copy_from_slice(w);
            u64::from(u64::from_le_bytes(b).count_ones())
        })
        .sum();
    for &b in words.remainder() {
        count += u64::from(b.count_ones());
    }
    count
}

/// Crosses off, in `seg`, the multiples of every prime of class `R` (p mod 30 = W[R]) and
/// moves each prime's position on to the next segment.
fn cross_off_all<const R: usize>(seg: &mut [u8], primes: &mut [Crossing]) {
    let len = seg.len();
    for c in primes {
        let offset = c.offset as usize;
        if offset >= len {
            c.offset -= len as u32;
            continue;
        }
        let (i, k) = cross_off::<R>(seg, offset, c.k as usize, c.a as usize);
        c.offset = (i - len) as u32;
        c.k = k as u8;
    }
}

/// Crosses off the multiples of p = 30a + W[R] in `seg` from byte `i`, wheel index `k`;
/// returns the position after the segment's end.
#[inline(always)]
fn cross_off<const R: usize>(
    seg: &mut [u8],
    mut i: usize,
    mut k: usize,
    a: usize,
) -> (usize, usize) {
    let len = seg.len();
    // Single steps up to the start of a round (k = 0).
    while k != 0 {
        if i >= len {
            return (i, k);
        }
        seg[i] &= KEEP[R][k];
        i += a * W_STEP[k] + STEP_EXTRA[R][k];
        k = (k + 1) & 7;
    }
    // Whole rounds: 8 multiples, p bytes.
    let p = 30 * a + W[R];
    let o = [
        0,
        a * 6 + ROUND_EXTRA[R][1],
        a * 10 + ROUND_EXTRA[R][2],
        a * 12 + ROUND_EXTRA[R][3],
        a * 16 + ROUND_EXTRA[R][4],
        a * 18 + ROUND_EXTRA[R][5],
        a * 22 + ROUND_EXTRA[R][6],
        a * 28 + ROUND_EXTRA[R][7],
    ];
    while i + p <= len {
        let round = &mut seg[i..i + p];
        round[o[0]] &= KEEP[R][0];
        round[o[1]] &= KEEP[R][1];
        round[o[2]] &= KEEP[R][2];
        round[o[3]] &= KEEP[R][3];
        round[o[4]] &= KEEP[R][4];
        round[o[5]] &= KEEP[R][5];
        round[o[6]] &= KEEP[R][6];
        round[o[7]] &= KEEP[R][7];
        i += p;
    }
    // The partial round at the end.
    while i < len {
        seg[i] &= KEEP[R][k];
        i += a * W_STEP[k] + STEP_EXTRA[R][k];
        k = (k + 1) & 7;
    }
    (i, k)
}

/// The primes ≤ `limit` (a plain sieve over odd numbers; `limit` ≤ 10^6 here).
fn primes_up_to(limit: u64) -> Vec<u32> {
    let limit = limit as usize;
    if limit < 2 {
        return Vec::new();
    }
    // composite[i] stands for 2i + 1.
    let mut composite = vec![false; limit / 2 + 1];
    let mut primes = vec![2];
    let mut i = 1;
    while 2 * i < limit {
        if !composite[i] {
            let p = 2 * i + 1;
            primes.push(p as u32);
            // p² in u64: on wasm32 a usize p² overflows once p > 65,535 (n > 4.3 · 10^9).
            let square_index = (p as u64 * p as u64 / 2).min(composite.len() as u64);
            let mut j = square_index as usize;
            while j < composite.len() {
                composite[j] = true;
                j += p;
            }
        }
        i += 1;
    }
    primes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Kernel;

    fn pi(n: u64, ranges: u32) -> u64 {
        match Kernel::Primes(Params { n, ranges }).run_all().unwrap() {
            JobOutput::Count { n: got_n, count } => {
                assert_eq!(got_n, n);
                count
            }
            other => panic!("not a count: {other:?}"),
        }
    }

    /// Trial division: slow and obviously right.
    fn is_prime(v: u64) -> bool {
        v >= 2
            && (2..)
                .take_while(|d| d * d <= v)
                .all(|d| !v.is_multiple_of(d))
    }

    #[test]
    fn tables_follow_the_wheel() {
        assert_eq!(TO_COPRIME[0], 1);
        assert_eq!(TO_COPRIME[2], 5);
        assert_eq!(TO_COPRIME[29], 0);
        for r in 0..8 {
            let sum: usize = (0..8).map(|k| STEP_EXTRA[r][k]).sum();
            assert_eq!(sum, W[r], "a round of steps is p = 30a + W[r] bytes");
        }
        let patterns = presieve_patterns();
        assert_eq!(patterns[0][0] & 0b10, 0, "7 is pre-sieved");
        let presieved: Vec<u64> = PRESIEVE_GROUPS
            .iter()
            .flat_map(|g| g.iter())
            .map(|&q| q as u64)
            .collect();
        let mut sorted = presieved.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            SMALL_PRIMES[3..],
            "each small prime pre-sieved once"
        );
        let below: Vec<u64> = primes_up_to(FIRST_SIEVING_PRIME - 1)
            .iter()
            .map(|&p| u64::from(p))
            .collect();
        assert_eq!(
            below, SMALL_PRIMES,
            "every prime below the first sieving prime"
        );
    }

    #[test]
    fn published_values_of_pi() {
        let published = [
            (10, 4),
            (100, 25),
            (1_000, 168),
            (10_000, 1_229),
            (100_000, 9_592),
            (1_000_000, 78_498),
            (10_000_000, 664_579),
        ];
        for (n, count) in published {
            assert_eq!(pi(n, 1), count, "π({n})");
            assert_eq!(pi(n, 3), count, "π({n}) in 3 ranges");
        }
        assert_eq!(pi(10_000_000, 97), 664_579);
    }

    /// π(10^8) and π(10^9): fast in release builds; the 10^9 case is the speed check's job.
    #[test]
    fn published_values_of_pi_large() {
        assert_eq!(pi(100_000_000, 7), 5_761_455);
        if !cfg!(debug_assertions) {
            assert_eq!(pi(1_000_000_000, 16), 50_847_534);
        }
    }

    #[test]
    fn small_n_including_every_small_prime() {
        let mut expected = 0;
        for n in 1..=1_000u64 {
            expected += u64::from(is_prime(n));
            assert_eq!(pi(n, 1), expected, "π({n})");
        }
        assert_eq!(pi(30, 30), 10);
        assert_eq!(pi(31, 31), 11);
    }

    #[test]
    fn any_range_counts_like_trial_division() {
        // Ranges that start and end inside a byte, span segment boundaries, and sit where
        // base primes start (31² = 961) or near a square.
        let cases = [
            (0, 1),
            (1, 2),
            (2, 3),
            (7, 8),
            (29, 32),
            (958, 965),
            (960, 1_000),
            (
                30 * SEGMENT_BYTES as u64 - 7,
                30 * SEGMENT_BYTES as u64 + 100,
            ),
            (1_000_003, 1_000_200),
            (982_081 - 50, 982_081 + 50), // 991²
            (3_000_000, 3_000_001),
        ];
        for (lo, hi) in cases {
            let expected = (lo..hi).filter(|&v| is_prime(v)).count() as u64;
            assert_eq!(count_primes(lo, hi), expected, "[{lo}, {hi})");
        }
        // Every split point of a small interval.
        for lo in 0..130 {
            for hi in lo..130 {
                let expected = (lo..hi).filter(|&v| is_prime(v)).count() as u64;
                assert_eq!(count_primes(lo, hi), expected, "[{lo}, {hi})");
            }
        }
    }

    #[test]
    fn chunks_and_segments_agree_with_a_plain_sieve() {
        // Two and a half segments: every chunk boundary and two segment boundaries are
        // crossed by primes of both kinds (√top ≈ 6,270 > SMALL_BELOW).
        let top = 30 * (2 * SEGMENT_BYTES + SEGMENT_BYTES / 2) as u64;
        assert!(top.isqrt() > SMALL_BELOW);
        let primes = primes_up_to(top);
        let pi_below = |v: u64| primes.partition_point(|&p| u64::from(p) < v) as u64;
        assert_eq!(count_primes(0, top), pi_below(top));
        let mut cuts = vec![0, top];
        let mut boundary = 30 * CHUNK_BYTES as u64;
        while boundary < top {
            cuts.extend([boundary - 31, boundary, boundary + 7]);
            boundary += 30 * CHUNK_BYTES as u64;
        }
        cuts.sort_unstable();
        for w in cuts.windows(2) {
            let (lo, hi) = (w[0], w[1]);
            assert_eq!(
                count_primes(lo, hi),
                pi_below(hi) - pi_below(lo),
                "[{lo}, {hi})"
            );
        }
    }

    #[test]
    fn ranges_high_up_split_anywhere_count_the_same() {
        // Near N_MAX every base prime (up to 10^6) crosses off over whole segments; cutting
        // the range elsewhere moves every segment and chunk boundary.
        let lo = N_MAX - 3 * 30 * SEGMENT_BYTES as u64 / 2;
        let whole = count_primes(lo, N_MAX + 1);
        for cut in [lo + 1, lo + 30 * SEGMENT_BYTES as u64 / 3, N_MAX - 1_000] {
            assert_eq!(
                count_primes(lo, cut) + count_primes(cut, N_MAX + 1),
                whole,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn high_ranges_agree_with_trial_division() {
        // Near the top of the accepted range, where base primes reach 10^6.
        let lo = N_MAX - 2_000;
        let expected = (lo..=N_MAX).filter(|&v| is_prime(v)).count() as u64;
        assert_eq!(count_primes(lo, N_MAX + 1), expected);
        let job = Kernel::Primes(Params {
            n: N_MAX,
            ranges: TASK_COUNT_MAX,
        });
        assert_eq!(job.validate(), Ok(()));
        let mut out = Vec::new();
        job.run_task(TASK_COUNT_MAX - 1, &mut out).unwrap();
        let [lo, hi, _] = read_words::<3>(0, &out).unwrap();
        assert_eq!(hi, N_MAX + 1);
        let len = (N_MAX + 1) / u64::from(TASK_COUNT_MAX);
        assert!(hi - lo == len || hi - lo == len + 1);
    }

    #[test]
    fn ranges_partition_zero_to_n() {
        let p = Params {
            n: 1_000_003,
            ranges: 13,
        };
        let mut next = 0;
        for task in 0..13 {
            let (lo, hi) = p.range(task);
            assert_eq!(lo, next);
            assert!(hi > lo);
            next = hi;
        }
        assert_eq!(next, p.n + 1);
    }

    #[test]
    fn run_task_is_deterministic_and_self_describing() {
        let job = Kernel::Primes(Params {
            n: 1_000_000,
            ranges: 4,
        });
        let (mut a, mut b) = (Vec::new(), Vec::new());
        job.run_task(2, &mut a).unwrap();
        job.run_task(2, &mut b).unwrap();
        assert_eq!(a, b);
        let [lo, hi, count] = read_words::<3>(0, &a).unwrap();
        assert_eq!((lo, hi), (500_000, 750_000));
        assert_eq!(count, count_primes(500_000, 750_000));
    }

    #[test]
    fn validate_rejects_bad_params() {
        assert!(
            Kernel::Primes(Params { n: 1, ranges: 1 })
                .validate()
                .is_ok()
        );
        for (n, ranges) in [
            (0, 1),
            (10, 0),
            (10, 11),
            (N_MAX + 1, 1),
            (u64::MAX, 1),
            (10_000_000, TASK_COUNT_MAX + 1),
        ] {
            let job = Kernel::Primes(Params { n, ranges });
            assert!(
                matches!(
                    job.validate(),
                    Err(KernelError::InvalidParams { kernel: NAME, .. })
                ),
                "n {n} ranges {ranges}"
            );
            assert!(job.run_task(0, &mut Vec::new()).is_err());
        }
    }

    #[test]
    fn assemble_rejects_malformed_outputs() {
        let job = Kernel::Primes(Params { n: 100, ranges: 2 });
        let run = |t| {
            let mut out = Vec::new();
            job.run_task(t, &mut out).unwrap();
            out
        };
        let (first, second) = (run(0), run(1));
        assert_eq!(
            job.assemble(&[&first, &second]),
            Ok(JobOutput::Count { n: 100, count: 25 })
        );
        let word = |w: [u64; 3]| w.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
        let (lo, hi) = (50, 101);
        let cases = [
            second[..16].to_vec(),        // short
            [&second[..], &[0]].concat(), // long
            first.clone(),                // the other task's range
            word([lo, hi, 1_000]),        // more primes than odd numbers
        ];
        for bad in &cases {
            assert!(matches!(
                job.assemble(&[&first, bad]),
                Err(KernelError::MalformedOutput { task: 1, .. })
            ));
        }
        // A wrong count in range is not detectable here: quorum catches that.
        assert!(job.assemble(&[&first, &word([lo, hi, 3])]).is_ok());
    }
}
