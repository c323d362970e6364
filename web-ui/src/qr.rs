//! The join QR code, drawn as one SVG path (a square per dark module), so the page needs
//! no image and the code stays sharp at any size on a projector.

use qrcode::{Color, EcLevel, QrCode};

/// Light modules kept around the code (the standard asks for four).
pub const QUIET_ZONE: u32 = 4;

/// A QR code of `text`: its side in modules (quiet zone included) and an SVG path of the
/// dark modules in that coordinate system. `None` for text too long for any QR code.
pub fn svg_path(text: &str) -> Option<(u32, String)> {
    // Medium error correction: readable from the back of a room, still small.
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).ok()?;
    let n = code.width() as u32;
    let colors = code.to_colors();
    let mut path = String::with_capacity(colors.len() * 4);
    for (i, c) in colors.iter().enumerate() {
        if *c == Color::Dark {
            let (x, y) = (i as u32 % n + QUIET_ZONE, i as u32 / n + QUIET_ZONE);
            path.push_str(&format!("M{x} {y}h1v1h-1z"));
        }
    }
    Some((n + 2 * QUIET_ZONE, path))
}

/// The join address for a room: the server's public address if it gave one (so that
/// phones on the LAN can reach it), else this page's own origin.
pub fn join_url(public_url: Option<&str>, origin: &str, room: &str) -> String {
    let base = public_url.unwrap_or(origin).trim_end_matches('/');
    format!("{base}/?room={room}")
}

/// Whether an address's host (`127.0.0.1:8080`, `localhost`, `[::1]:80`) is this
/// machine's own, which no phone can open.
pub fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What the join panel says when no phone can open the address it shows: the page was
/// opened at this machine's own address and the server knows no other, because it
/// listens on loopback only or found no LAN address. `None` when the address is one
/// others can reach (`--public-url`, or the page itself was opened at such an address).
pub fn join_warning(
    public_url: Option<&str>,
    page_host: &str,
    loopback_only: bool,
) -> Option<String> {
    if public_url.is_some() || !is_loopback_host(page_host) {
        return None;
    }
    Some(if loopback_only {
        "The server listens on this machine only (loopback): no phone can join. Start it with \"meshwork serve --bind 0.0.0.0:8080\" (as \"cargo xtask demo\" does), or give it --public-url."
            .into()
    } else {
        format!(
            "This page's address ({page_host}) is this machine's own: a phone cannot open it. Open the page at this machine's LAN address, or start the server with --public-url URL."
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Draws the path's squares into a greyscale bitmap, `scale` pixels per module,
    /// and decodes it with an independent QR reader.
    fn decode(side: u32, path: &str, scale: u32) -> String {
        let px = (side * scale) as usize;
        let mut img = vec![255u8; px * px];
        for square in path.split('M').filter(|s| !s.is_empty()) {
            let coords = square.trim_end_matches("h1v1h-1z");
            let (x, y) = coords.split_once(' ').expect("x y");
            let (x, y): (usize, usize) = (x.parse().unwrap(), y.parse().unwrap());
            for dy in 0..scale as usize {
                for dx in 0..scale as usize {
                    img[(y * scale as usize + dy) * px + x * scale as usize + dx] = 0;
                }
            }
        }
        let mut prepared =
            rqrr::PreparedImage::prepare_from_greyscale(px, px, |x, y| img[y * px + x]);
        let grids = prepared.detect_grids();
        assert_eq!(grids.len(), 1, "one code in the picture");
        grids[0].decode().expect("decodes").1
    }

    #[test]
    fn the_code_decodes_to_the_join_url() {
        for url in [
            "http://127.0.0.1:8080/?room=demo",
            "http://192.168.100.200:18080/?room=a-very-long-room-name_with_digits_0123456789",
        ] {
            let (side, path) = svg_path(url).expect("fits");
            assert!(side > 2 * QUIET_ZONE);
            assert_eq!(decode(side, &path, 4), url);
        }
    }

    #[test]
    fn text_too_long_for_a_code_is_none() {
        assert!(svg_path(&"x".repeat(5_000)).is_none());
    }

    #[test]
    fn the_public_address_wins_over_the_pages() {
        assert_eq!(
            join_url(
                Some("http://10.0.0.2:8080/"),
                "http://127.0.0.1:8080",
                "demo"
            ),
            "http://10.0.0.2:8080/?room=demo"
        );
        assert_eq!(
            join_url(None, "http://127.0.0.1:8080", "r1"),
            "http://127.0.0.1:8080/?room=r1"
        );
    }

    #[test]
    fn a_join_address_no_phone_can_open_is_said_so() {
        for host in [
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST:80",
            "[::1]:8080",
            "127.1.2.3",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "192.168.1.20:8080",
            "example.org",
            "[2001:db8::1]:80",
            "10.0.0.1",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
        let lan = Some("http://192.168.1.20:8080");
        for loopback_only in [false, true] {
            assert_eq!(join_warning(lan, "127.0.0.1:8080", loopback_only), None);
            assert_eq!(join_warning(None, "192.168.1.20:8080", loopback_only), None);
        }
        let own = join_warning(None, "127.0.0.1:8080", false).expect("said");
        assert!(
            own.contains("127.0.0.1:8080") && own.contains("--public-url"),
            "{own}"
        );
        let only = join_warning(None, "localhost:8080", true).expect("said");
        assert!(
            only.contains("loopback") && only.contains("--bind 0.0.0.0"),
            "{only}"
        );
    }
}
