//! Resume tokens: proof that a member held an id in a room, checkable by any server
//! started with the same key, so a restarted server needs no state to give members
//! their ids back.
//!
//! A token is `1.ID.ROOM.EXPIRY.MAC`: the format version, the peer id (hex), the room
//! (letters, digits, `-`, `_`: never a dot), the expiry in seconds since the Unix epoch,
//! and HMAC-SHA256 under the server's key of the four, in hex. Id, room and expiry are
//! readable by whoever holds the token, which is only the member; what it cannot do is
//! make one. The MAC is compared in constant time.

use hmac::{Hmac, Mac};
use node_core::signal::{ErrorCode, PeerId, valid_room_name};
use sha2::Sha256;

/// The key tokens are signed with: 32 bytes from a file beside the server, or random
/// for one run.
#[derive(Clone)]
pub struct ResumeKey([u8; 32]);

impl std::fmt::Debug for ResumeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResumeKey(…)")
    }
}

impl ResumeKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        ResumeKey(bytes)
    }

    /// A fresh random key: tokens then last only as long as this process.
    pub fn random() -> Self {
        use rand::Rng;
        ResumeKey(rand::rng().random())
    }

    /// The key as 64 hex digits, for a key file.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A key from 64 hex digits (surrounding white space ignored).
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = decode_hex(text.trim())?;
        Some(ResumeKey(bytes.try_into().ok()?))
    }

    fn mac(&self, id: &str, room: &str, expiry: u64) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(format!("meshwork resume 1\0{id}\0{room}\0{expiry}").as_bytes());
        mac
    }

    /// A token for `id` in `room`, valid until `expiry` (Unix seconds).
    pub fn issue(&self, id: &PeerId, room: &str, expiry: u64) -> String {
        let tag = self.mac(id.as_str(), room, expiry).finalize().into_bytes();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        format!("1.{}.{room}.{expiry}.{hex}", id.as_str())
    }

    /// The id `token` gives back in `room` at `now` (Unix seconds), or why not: the
    /// error code and a message that names no secret.
    pub fn check(&self, token: &str, room: &str, now: u64) -> Result<PeerId, (ErrorCode, String)> {
        let bad = |why: &str| (ErrorCode::BadToken, format!("resume token refused: {why}"));
        if token.len() > TOKEN_LEN_MAX {
            return Err(bad("too long"));
        }
        let mut parts = token.split('.');
        let (Some("1"), Some(id), Some(in_room), Some(expiry), Some(mac), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad("not a token of this server's format"));
        };
        let well_formed = !id.is_empty()
            && id.len() <= 32
            && id.bytes().all(|b| b.is_ascii_hexdigit())
            && valid_room_name(in_room);
        let expiry: Option<u64> = expiry.parse().ok();
        let mac = decode_hex(mac);
        let (Some(expiry), Some(mac), true) = (expiry, mac, well_formed) else {
            return Err(bad("not a token of this server's format"));
        };
        if self.mac(id, in_room, expiry).verify_slice(&mac).is_err() {
            return Err(bad("not signed by this server"));
        }
        if in_room != room {
            return Err(bad("it is for another room"));
        }
        if expiry <= now {
            return Err((
                ErrorCode::TokenExpired,
                "resume token expired: join afresh".into(),
            ));
        }
        Ok(PeerId(id.to_string()))
    }
}

/// Longest token looked at: the format's own length is well under it.
const TOKEN_LEN_MAX: usize = 256;

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Seconds since the Unix epoch now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> ResumeKey {
        ResumeKey::new([b; 32])
    }

    #[test]
    fn a_token_gives_its_id_back_in_its_room_until_it_expires() {
        let id = PeerId("0123456789abcdef".into());
        let t = key(1).issue(&id, "demo", 1_000);
        assert!(t.starts_with("1.0123456789abcdef.demo.1000."), "{t}");
        assert_eq!(key(1).check(&t, "demo", 999), Ok(id));
        let code = |r: Result<PeerId, (ErrorCode, String)>| r.unwrap_err().0;
        assert_eq!(
            code(key(1).check(&t, "demo", 1_000)),
            ErrorCode::TokenExpired
        );
        assert_eq!(code(key(1).check(&t, "other", 999)), ErrorCode::BadToken);
        assert_eq!(code(key(2).check(&t, "demo", 999)), ErrorCode::BadToken);
    }

    #[test]
    fn a_key_file_round_trips() {
        let k = ResumeKey::random();
        let back = ResumeKey::from_hex(&format!("{}\n", k.to_hex())).unwrap();
        assert_eq!(back.0, k.0);
        assert!(ResumeKey::from_hex("abcd").is_none());
        assert!(ResumeKey::from_hex(&"g".repeat(64)).is_none());
    }

    #[test]
    fn any_change_to_a_token_is_refused() {
        let k = key(3);
        let t = k.issue(&PeerId("00000000000000aa".into()), "demo", 5_000);
        let forged = [
            t.replace(".demo.", ".demx."),
            t.replace("00aa", "00ab"),
            t.replace(".5000.", ".9000."),
            format!("{}0", &t[..t.len() - 1]),
            t.replacen("1.", "2.", 1),
            format!("{t}.x"),
            t[..t.len() - 2].to_string(),
            String::new(),
            "1.....".into(),
            "1.zz.demo.5000.00".into(),
            "1.aa.demo.-1.00".into(),
            "1.aa.de mo.5000.00".into(),
            "x".repeat(10_000),
        ];
        for f in forged {
            let refused = k.check(&f, "demo", 1);
            assert!(
                matches!(refused, Err((ErrorCode::BadToken, _))),
                "{f:?} gave {refused:?}"
            );
        }
    }
}
