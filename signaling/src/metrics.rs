//! `/metrics`: the server's counters in the Prometheus text exposition format (version
//! 0.0.4), the format operators' scrapers already read.
//!
//! Counters keyed by a label (frame type, error code, drop reason) are [`Tally`]s: a
//! small map under a lock, touched once per frame, read once per scrape.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};

/// Counts by a label value.
#[derive(Debug, Default)]
pub(crate) struct Tally(Mutex<BTreeMap<&'static str, u64>>);

impl Tally {
    pub(crate) fn add(&self, label: &'static str) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *map.entry(label).or_default() += 1;
    }

    pub(crate) fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// One metric family being written.
pub(crate) struct Exposition {
    text: String,
}

impl Exposition {
    pub(crate) fn new() -> Self {
        Exposition {
            text: String::with_capacity(4096),
        }
    }

    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP meshwork_{name} {help}");
        let _ = writeln!(self.text, "# TYPE meshwork_{name} {kind}");
    }

    /// A metric without labels.
    pub(crate) fn single(&mut self, name: &str, kind: &str, help: &str, value: u64) {
        self.head(name, kind, help);
        let _ = writeln!(self.text, "meshwork_{name} {value}");
    }

    /// A counter with one label; `known` values are always written (0 if never seen),
    /// so that a dashboard's series exist from the start.
    pub(crate) fn labelled(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        known: &[&'static str],
        counts: &BTreeMap<&'static str, u64>,
    ) {
        self.head(name, "counter", help);
        let mut all: BTreeMap<&str, u64> = known.iter().map(|k| (*k, 0)).collect();
        all.extend(counts.iter().map(|(k, v)| (*k, *v)));
        for (value, count) in all {
            // Label values here are the server's own identifiers: no escaping needed,
            // but keep the format valid whatever they are.
            let value = value.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(self.text, "meshwork_{name}{{{label}=\"{value}\"}} {count}");
        }
    }

    pub(crate) fn finish(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_have_help_type_and_every_known_label() {
        let tally = Tally::default();
        tally.add("join");
        tally.add("join");
        tally.add("odd\"one");
        let mut e = Exposition::new();
        e.single("rooms", "gauge", "Rooms now.", 3);
        e.labelled(
            "frames_in_total",
            "Frames received.",
            "type",
            &["join", "signal"],
            &tally.snapshot(),
        );
        let text = e.finish();
        assert_eq!(
            text,
            "# HELP meshwork_rooms Rooms now.\n\
             # TYPE meshwork_rooms gauge\n\
             meshwork_rooms 3\n\
             # HELP meshwork_frames_in_total Frames received.\n\
             # TYPE meshwork_frames_in_total counter\n\
             meshwork_frames_in_total{type=\"join\"} 2\n\
             meshwork_frames_in_total{type=\"odd\\\"one\"} 1\n\
             meshwork_frames_in_total{type=\"signal\"} 0\n"
        );
    }
}
