//! Keyboard shortcuts, the ones a presentation remote sends (space, arrows, page up and
//! down, `.` and `b`) and a few more. Listed on the page under `?`.

/// What a key does on the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAction {
    /// Pause or resume the mesh's scheduling (presenter).
    Pause,
    /// While paused, every member starts one more task (presenter).
    Step,
    /// Slow motion on or off (presenter).
    SlowMotion,
    /// Blank the screen, or bring it back (as slide software does with `.` and `b`).
    Blank,
    /// Show or hide the join QR code.
    Qr,
    /// Switch the projector layout (large type, high contrast).
    Projector,
    /// Show or hide the list of keys.
    Help,
    /// Close what is open over the page.
    Close,
}

/// Every key with what it does, for the `?` list, in the order shown.
pub const KEYS: &[(&str, KeyAction, &str)] = &[
    (
        "space",
        KeyAction::Pause,
        "pause or resume the mesh (presenter)",
    ),
    (
        "→ or page down",
        KeyAction::Step,
        "while paused: every member starts one more task (presenter)",
    ),
    (
        "← or page up",
        KeyAction::SlowMotion,
        "slow motion on or off (presenter)",
    ),
    ("q", KeyAction::Qr, "show or hide the join QR code"),
    (
        "p",
        KeyAction::Projector,
        "projector layout: large type, high contrast",
    ),
    (
        ". or b",
        KeyAction::Blank,
        "blank the screen, or bring it back",
    ),
    ("?", KeyAction::Help, "this list"),
    ("escape", KeyAction::Close, "close what is open"),
];

/// The action of a key, by its `KeyboardEvent.key` value; `None` for any other key.
pub fn action(key: &str) -> Option<KeyAction> {
    Some(match key {
        " " | "Spacebar" => KeyAction::Pause,
        "ArrowRight" | "PageDown" => KeyAction::Step,
        "ArrowLeft" | "PageUp" => KeyAction::SlowMotion,
        "." | "b" | "B" => KeyAction::Blank,
        "q" | "Q" => KeyAction::Qr,
        "p" | "P" => KeyAction::Projector,
        "?" => KeyAction::Help,
        "Escape" => KeyAction::Close,
        _ => return None,
    })
}

/// Whether a key action changes the mesh, which only a presenter may do.
pub fn needs_presenter(a: KeyAction) -> bool {
    matches!(
        a,
        KeyAction::Pause | KeyAction::Step | KeyAction::SlowMotion
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remotes_keys_all_do_something() {
        for key in [
            " ",
            "ArrowRight",
            "ArrowLeft",
            "PageDown",
            "PageUp",
            ".",
            "b",
        ] {
            assert!(action(key).is_some(), "{key:?}");
        }
        assert_eq!(action("x"), None);
        assert_eq!(action("Enter"), None);
    }

    #[test]
    fn every_action_is_listed_once() {
        for (key, a, _) in KEYS {
            assert_eq!(KEYS.iter().filter(|(_, b, _)| b == a).count(), 1, "{key}");
        }
        for key in [" ", "ArrowRight", "ArrowLeft", ".", "q", "p", "?", "Escape"] {
            let a = action(key).unwrap();
            assert!(KEYS.iter().any(|(_, b, _)| *b == a), "{key:?} unlisted");
        }
    }
}
