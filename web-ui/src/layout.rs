//! Where the graph puts its members and their labels: platform-free, so that the rules
//! are tested natively (the page draws the result as SVG, one unit a CSS pixel).
//!
//! Members sit on an ellipse, this tab at the top. Each member has a label of two lines
//! under it (its name, then what it does or how it left); a label that would leave the
//! graph is slid back inside, one that would overlap another label or a member is tried
//! reaching out to either side under its member, above it, then beside it, and if none of these fits the graph grows taller
//! and everything is placed again, so that a label is never cut by the graph's edge nor
//! covered. A round-trip label sits on its edge only where it covers no member label.

/// Height of one label line, in pixels (the names are 13 px, the second line 12 px).
pub const LINE_PX: f64 = 16.0;
/// Average width of a character of the labels, in pixels (a generous estimate for 13 px
/// sans-serif, so that the boxes hold what the browser draws).
pub const CHAR_PX: f64 = 7.4;
/// Radius of a member's shape, its ring and its lying mark included.
pub const NODE_R: f64 = 28.0;
/// Space kept free along the graph's edges.
const MARGIN: f64 = 4.0;
/// The graph grows this much at a time while labels do not fit, at most this often;
/// then the members go in a zigzag column instead, where every label fits.
const GROW_PX: f64 = 40.0;
const GROW_TIMES: usize = 12;

/// A rectangle, `x`/`y` its top left corner.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl Rect {
    /// Whether the two overlap (touching edges do not count).
    pub fn overlaps(&self, o: &Rect) -> bool {
        self.x < o.x + o.w && o.x < self.x + self.w && self.y < o.y + o.h && o.y < self.y + self.h
    }

    /// Whether `self` lies inside a `w` × `h` area at the origin.
    pub fn inside(&self, w: f64, h: f64) -> bool {
        self.x >= 0.0 && self.y >= 0.0 && self.x + self.w <= w && self.y + self.h <= h
    }

    fn centre(&self) -> (f64, f64) {
        (self.x + self.w / 2.0, self.y + self.h / 2.0)
    }
}

/// One member placed: its centre and its label's box.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Placed {
    pub x: f64,
    pub y: f64,
    pub label: Rect,
}

impl Placed {
    /// Where the label's text is anchored: its middle (text-anchor: middle), and the
    /// baselines of its two lines.
    pub fn text_at(&self) -> (f64, f64, f64) {
        let (cx, _) = self.label.centre();
        (
            cx,
            self.label.y + LINE_PX - 3.0,
            self.label.y + 2.0 * LINE_PX - 3.0,
        )
    }
}

/// The whole graph placed: its size and its members.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub w: f64,
    pub h: f64,
    pub members: Vec<Placed>,
}

/// A label's width for its longest line.
pub fn label_width(lines: &[&str]) -> f64 {
    lines
        .iter()
        .map(|l| l.chars().count() as f64)
        .fold(0.0, f64::max)
        * CHAR_PX
        + 6.0
}

/// Places members whose labels are `widths` px wide (this tab first) in a graph `w` px
/// wide, as tall as needed from `h_min`.
pub fn place(w: f64, h_min: f64, widths: &[f64]) -> Layout {
    let mut h = h_min;
    for attempt in 0..=GROW_TIMES {
        // Members level with each other (left and right of the middle) may want more
        // width than there is: growing, every other one also steps down a little.
        let stagger = (attempt as f64 * GROW_PX / 2.0).min(2.0 * LINE_PX + 2.0 * NODE_R);
        let (members, fits) = try_place(w, h, widths, stagger);
        if fits {
            return Layout { w, h, members };
        }
        h += GROW_PX;
    }
    column(w, h_min, widths)
}

/// Members down a zigzag column (two thirds of the way left, then right), each label
/// under its member and above the next member: every label fits whatever the width.
fn column(w: f64, h_min: f64, widths: &[f64]) -> Layout {
    let label_h = 2.0 * LINE_PX;
    let step = 2.0 * NODE_R + label_h + 8.0;
    let members: Vec<Placed> = widths
        .iter()
        .enumerate()
        .map(|(i, lw)| {
            let lw = lw.min(w - 2.0 * MARGIN);
            let x = if i % 2 == 0 { w * 0.35 } else { w * 0.65 };
            let y = MARGIN + NODE_R + step * i as f64;
            let label = Rect {
                x: (x - lw / 2.0).clamp(MARGIN, (w - lw - MARGIN).max(MARGIN)),
                y: y + NODE_R,
                w: lw,
                h: label_h,
            };
            Placed { x, y, label }
        })
        .collect();
    let h = (MARGIN + step * widths.len() as f64 + MARGIN).max(h_min);
    Layout { w, h, members }
}

/// Members on the ellipse at height `h`, and whether every label found a free place.
fn try_place(w: f64, h: f64, widths: &[f64], stagger: f64) -> (Vec<Placed>, bool) {
    let n = widths.len().max(1);
    let label_h = 2.0 * LINE_PX;
    // Room for a shape at the top and a shape and its label at the bottom.
    let (rx, ry) = (
        (w / 2.0 - NODE_R - MARGIN - 30.0).max(0.0),
        ((h - 2.0 * NODE_R - label_h - 2.0 * MARGIN - stagger) / 2.0).max(0.0),
    );
    let (cx, cy) = (w / 2.0, NODE_R + MARGIN + ry);
    let centres: Vec<(f64, f64)> = (0..widths.len())
        .map(|i| {
            let angle = -std::f64::consts::FRAC_PI_2 + std::f64::consts::TAU * i as f64 / n as f64;
            let step = if i % 2 == 1 { stagger } else { 0.0 };
            (cx + rx * angle.cos(), cy + ry * angle.sin() + step)
        })
        .collect();
    let shapes: Vec<Rect> = centres
        .iter()
        .map(|(x, y)| Rect {
            x: x - NODE_R,
            y: y - NODE_R,
            w: 2.0 * NODE_R,
            h: 2.0 * NODE_R,
        })
        .collect();
    let mut labels: Vec<Rect> = Vec::new();
    let mut fits = true;
    for (i, ((x, y), lw)) in centres.iter().zip(widths).enumerate() {
        let lw = lw.min(w - 2.0 * MARGIN);
        // Below (centred, then reaching out to either side), above, right, left of the
        // member, each slid inside the graph.
        let candidates = [
            (x - lw / 2.0, y + NODE_R),
            (x + NODE_R - lw, y + NODE_R),
            (x - NODE_R, y + NODE_R),
            (x - lw / 2.0, y - NODE_R - label_h),
            (x + NODE_R, y - label_h / 2.0),
            (x - NODE_R - lw, y - label_h / 2.0),
        ];
        let free = |r: &Rect| {
            r.inside(w, h)
                && !labels.iter().any(|l| l.overlaps(r))
                && !shapes
                    .iter()
                    .enumerate()
                    .any(|(j, s)| j != i && s.overlaps(r))
        };
        let slid = |(lx, ly): (f64, f64)| Rect {
            x: lx.clamp(MARGIN, (w - lw - MARGIN).max(MARGIN)),
            y: ly.clamp(MARGIN, (h - label_h - MARGIN).max(MARGIN)),
            w: lw,
            h: label_h,
        };
        let chosen = candidates.iter().map(|c| slid(*c)).find(free);
        if chosen.is_none() {
            fits = false;
        }
        labels.push(chosen.unwrap_or_else(|| slid(candidates[0])));
    }
    let members = centres
        .into_iter()
        .zip(labels)
        .map(|((x, y), label)| Placed { x, y, label })
        .collect();
    (members, fits)
}

/// Where a round-trip label of `chars` characters goes on the edge from `a` to `b`, if
/// it covers no member, no member label and none of the labels `taken` already.
pub fn edge_label(
    layout: &Layout,
    a: (f64, f64),
    b: (f64, f64),
    chars: usize,
    taken: &[Rect],
) -> Option<Rect> {
    let w = chars as f64 * CHAR_PX * 0.9 + 4.0;
    let h = LINE_PX - 2.0;
    // The middle of the edge first, then a third of the way from either end.
    [0.5, 0.35, 0.65].iter().find_map(|t| {
        let (x, y) = (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
        let r = Rect {
            x: x - w / 2.0,
            y: y - h / 2.0,
            w,
            h,
        };
        let clear = r.inside(layout.w, layout.h)
            && !taken.iter().any(|t| t.overlaps(&r))
            && !layout.members.iter().any(|m| {
                m.label.overlaps(&r)
                    || Rect {
                        x: m.x - NODE_R,
                        y: m.y - NODE_R,
                        w: 2.0 * NODE_R,
                        h: 2.0 * NODE_R,
                    }
                    .overlaps(&r)
            });
        clear.then_some(r)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(layout: &Layout) {
        for (i, a) in layout.members.iter().enumerate() {
            assert!(a.label.inside(layout.w, layout.h), "{a:?} in {layout:?}");
            for b in &layout.members[i + 1..] {
                assert!(!a.label.overlaps(&b.label), "{a:?} and {b:?}");
            }
        }
    }

    #[test]
    fn labels_stay_inside_and_apart_at_every_width_and_count() {
        let long = label_width(&["★ native-learn-1 (left)", "silent 2.3 s: its work moved"]);
        let short = label_width(&["tab-3a1f", "2 running · 14 results"]);
        for w in [343.0, 375.0, 640.0, 900.0, 1200.0] {
            for n in 1..=16 {
                let widths: Vec<f64> = (0..n)
                    .map(|i| if i % 3 == 0 { long } else { short })
                    .collect();
                let l = place(w, 260.0, &widths);
                assert_eq!(l.members.len(), n);
                check(&l);
                for m in &l.members {
                    assert!(m.x >= 0.0 && m.x <= w && m.y >= 0.0 && m.y <= l.h);
                }
            }
        }
    }

    #[test]
    fn the_graph_grows_only_when_labels_need_it() {
        let short = label_width(&["tab-1", "0 running · 0 results"]);
        let wide = place(900.0, 380.0, &[short; 4]);
        assert_eq!(wide.h, 380.0);
        let narrow = place(375.0, 260.0, &[short; 8]);
        assert!(
            narrow.h > 260.0,
            "8 labels do not fit 260 px at 375 px wide"
        );
        check(&narrow);
    }

    #[test]
    fn round_trip_labels_never_cover_a_member_label() {
        let short = label_width(&["tab-1", "0 running · 0 results"]);
        let l = place(375.0, 260.0, &[short; 6]);
        let mut taken: Vec<Rect> = Vec::new();
        let me = l.members[0];
        for b in &l.members[1..] {
            if let Some(r) = edge_label(&l, (me.x, me.y), (b.x, b.y), 6, &taken) {
                assert!(r.inside(l.w, l.h));
                assert!(l.members.iter().all(|m| !m.label.overlaps(&r)));
                assert!(taken.iter().all(|t| !t.overlaps(&r)));
                taken.push(r);
            }
        }
        assert!(!taken.is_empty(), "some round trip is shown");
    }
}
