//! [`hash64`]: a fast content checksum (tests, tools, node ids from peer ids). The engine
//! does not trust it between nodes: results are named by `job::result_hash` instead.
//!
//! It is XXH64 with seed 0, exactly as specified by its author
//! (<https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md>), so any other
//! implementation (Python's `xxhash.xxh64_intdigest`, the `xxhsum -H1` tool) gives the same
//! value. It reads its input as little-endian words and uses only wrapping integer
//! arithmetic, so it is the same on wasm32 and x86_64 and never changes between releases.
//! It is fast (several GB/s natively) but not cryptographic: a lying peer is caught by
//! quorum, not by the hash.

const PRIME64_1: u64 = 0x9E37_79B1_85EB_CA87;
const PRIME64_2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const PRIME64_3: u64 = 0x1656_67B1_9E37_79F9;
const PRIME64_4: u64 = 0x85EB_CA77_C2B2_AE63;
const PRIME64_5: u64 = 0x27D4_EB2F_1656_67C5;

/// XXH64 (seed 0) of `bytes`: a stable, platform-independent 64-bit content hash.
pub fn hash64(bytes: &[u8]) -> u64 {
    xxh64(bytes, 0)
}

/// XXH64 with an explicit seed.
pub fn xxh64(bytes: &[u8], seed: u64) -> u64 {
    let len = bytes.len() as u64;
    let mut stripes = bytes.chunks_exact(32);
    let mut h = if bytes.len() >= 32 {
        let mut v = [
            seed.wrapping_add(PRIME64_1).wrapping_add(PRIME64_2),
            seed.wrapping_add(PRIME64_2),
            seed,
            seed.wrapping_sub(PRIME64_1),
        ];
        for stripe in &mut stripes {
            for (lane, word) in v.iter_mut().zip(stripe.chunks_exact(8)) {
                *lane = round(*lane, read_u64(word));
            }
        }
        let mut h = v[0]
            .rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18));
        for lane in v {
            h = merge_round(h, lane);
        }
        h
    } else {
        seed.wrapping_add(PRIME64_5)
    };
    h = h.wrapping_add(len);

    let mut rest = stripes.remainder();
    while let Some((word, tail)) = rest.split_first_chunk::<8>() {
        h ^= round(0, u64::from_le_bytes(*word));
        h = h
            .rotate_left(27)
            .wrapping_mul(PRIME64_1)
            .wrapping_add(PRIME64_4);
        rest = tail;
    }
    if let Some((word, tail)) = rest.split_first_chunk::<4>() {
        h ^= u64::from(u32::from_le_bytes(*word)).wrapping_mul(PRIME64_1);
        h = h
            .rotate_left(23)
            .wrapping_mul(PRIME64_2)
            .wrapping_add(PRIME64_3);
        rest = tail;
    }
    for &byte in rest {
        h ^= u64::from(byte).wrapping_mul(PRIME64_5);
        h = h.rotate_left(11).wrapping_mul(PRIME64_1);
    }

    h ^= h >> 33;
    h = h.wrapping_mul(PRIME64_2);
    h ^= h >> 29;
    h = h.wrapping_mul(PRIME64_3);
    h ^ (h >> 32)
}

fn round(acc: u64, input: u64) -> u64 {
    acc.wrapping_add(input.wrapping_mul(PRIME64_2))
        .rotate_left(31)
        .wrapping_mul(PRIME64_1)
}

fn merge_round(acc: u64, lane: u64) -> u64 {
    (acc ^ round(0, lane))
        .wrapping_mul(PRIME64_1)
        .wrapping_add(PRIME64_4)
}

fn read_u64(word: &[u8]) -> u64 {
    let mut le = [0; 8];
    le.copy_from_slice(word);
    u64::from_le_bytes(le)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash64_matches_the_published_xxh64_vectors() {
        let cases: [(&str, u64, u64); 13] = [
            ("", 0, 0xef46_db37_51d8_e999),
            ("a", 0, 0xd24e_c4f1_a98c_6e5b),
            ("abc", 0, 0x44bc_2cf5_ad77_0999),
            ("1234", 0, 0xd831_6e61_d84f_6ba4),
            ("12345678", 0, 0xd2d0_2f08_cf7c_fd4a),
            ("123456789012345", 0, 0xc377_d78a_de00_1a3c),
            ("1234567890123456", 0, 0xb61c_33dc_6c59_f270),
            ("1234567890123456789012345678901", 0, 0x8f36_7cb8_73a5_376e),
            ("12345678901234567890123456789012", 0, 0x40fd_1aa5_2d98_274c),
            (
                "The quick brown fox jumps over the lazy dog",
                0,
                0x0b24_2d36_1fda_71bc,
            ),
            ("", 5381, 0xaf38_2146_d5c3_cacf),
            ("abc", 5381, 0x19d1_c1b5_c673_451f),
            (
                "12345678901234567890123456789012",
                5381,
                0x38ea_26e7_c55f_8095,
            ),
        ];
        for (input, seed, expected) in cases {
            assert_eq!(
                xxh64(input.as_bytes(), seed),
                expected,
                "{input:?} seed {seed}"
            );
        }
        assert_eq!(hash64(b"abc"), 0x44bc_2cf5_ad77_0999);
        // Python `xxhash.xxh64` of bytes(i % 256 for i in range(n)).
        let pattern = |n: u32| (0..n).map(|i| i as u8).collect::<Vec<u8>>();
        assert_eq!(hash64(&pattern(100)), 0x6ac1_e580_3216_6597);
        assert_eq!(hash64(&pattern(1000)), 0x6ef4_36b0_0eba_4078);
    }
}
