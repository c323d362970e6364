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
}
