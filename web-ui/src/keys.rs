//! Keyboard shortcuts: every console action has one, so that a presenter can run a talk
//! from a presentation remote (space, the arrows, page up and down, `.` and `b`) and a
//! few letters. Listed on the page under `?`.

/// What a key does on the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAction {
    /// Pause or resume the mesh's scheduling (presenter).
    Pause,
    /// Every member starts one more task, pausing the mesh first if it runs (presenter).
    Step,
    /// Slow motion on or off (presenter).
    SlowMotion,
    /// Submit a job with the form's values.
    Submit,
    /// Scenario: half of the other members fail (presenter).
    LoseHalf,
    /// Scenario: a member lies and a `q = 2` job catches it (presenter).
    Liar,
    /// Scenario: the signaling server leaves the room for a while; while it is away,
    /// it comes back now (presenter).
    ServerAway,
    /// Fail the member selected on the graph (presenter).
    FailSelected,
    /// Reset the demo: resume, stop every lie and slow motion, restore cut links and
    /// revive failed members (presenter).
    Reset,
    /// The time machine: one recorded moment back.
    Back,
    /// The time machine: one recorded moment forward; past the last, live again.
    Forward,
    /// The time machine: export this run to a file.
    Export,
    /// Blank the screen, or bring it back (as slide software does with `.` and `b`).
    Blank,
    /// Show or hide the join QR code.
    Qr,
    /// Switch the projector layout (large type, high contrast).
    Projector,
    /// One column at any width, or the stage again (from 1280 px wide).
    Column,
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
        "every member starts one more task; a running mesh is paused first (presenter)",
    ),
    (
        "← or page up",
        KeyAction::SlowMotion,
        "slow motion on or off (presenter)",
    ),
    (
        "s",
        KeyAction::Submit,
        "submit a job with the form's values",
    ),
    (
        "1",
        KeyAction::LoseHalf,
        "scenario: half of the other members fail (presenter)",
    ),
    (
        "2",
        KeyAction::Liar,
        "scenario: a liar, caught by q = 2 (presenter)",
    ),
    (
        "3",
        KeyAction::ServerAway,
        "scenario: the signaling server goes away; pressed again, it comes back now (presenter)",
    ),
    (
        "f",
        KeyAction::FailSelected,
        "fail the member selected on the graph (presenter)",
    ),
    (
        "r",
        KeyAction::Reset,
        "reset: resume, no liars, no slow motion, links restored, failed members back (presenter)",
    ),
    ("[", KeyAction::Back, "time machine: one moment back"),
    (
        "]",
        KeyAction::Forward,
        "time machine: one moment forward (past the last: live)",
    ),
    (
        "e",
        KeyAction::Export,
        "time machine: export this run to a file",
    ),
    ("q", KeyAction::Qr, "show or hide the join QR code"),
    (
        "p",
        KeyAction::Projector,
        "projector layout: large type, high contrast",
    ),
    (
        "l",
        KeyAction::Column,
        "one column at any width (every job, every panel), or the stage again",
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
        "s" | "S" => KeyAction::Submit,
        "1" => KeyAction::LoseHalf,
        "2" => KeyAction::Liar,
        "3" => KeyAction::ServerAway,
        "f" | "F" => KeyAction::FailSelected,
        "r" | "R" => KeyAction::Reset,
        "[" => KeyAction::Back,
        "]" => KeyAction::Forward,
        "e" | "E" => KeyAction::Export,
        "." | "b" | "B" => KeyAction::Blank,
        "q" | "Q" => KeyAction::Qr,
        "p" | "P" => KeyAction::Projector,
        "l" | "L" => KeyAction::Column,
        "?" => KeyAction::Help,
        "Escape" => KeyAction::Close,
        _ => return None,
    })
}

/// Whether a key action changes the mesh, which only a presenter may do.
pub fn needs_presenter(a: KeyAction) -> bool {
    matches!(
        a,
        KeyAction::Pause
            | KeyAction::Step
            | KeyAction::SlowMotion
            | KeyAction::LoseHalf
            | KeyAction::Liar
            | KeyAction::ServerAway
            | KeyAction::FailSelected
            | KeyAction::Reset
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
        // Enter is not the page's: on a focused button it presses the button.
        assert_eq!(action("Enter"), None);
    }

    #[test]
    fn every_console_action_has_a_key_and_presenter_actions_are_marked() {
        for a in [
            KeyAction::Submit,
            KeyAction::LoseHalf,
            KeyAction::Liar,
            KeyAction::ServerAway,
            KeyAction::FailSelected,
            KeyAction::Reset,
            KeyAction::Back,
            KeyAction::Forward,
            KeyAction::Export,
        ] {
            let (key, _, what) = KEYS
                .iter()
                .find(|(_, b, _)| *b == a)
                .unwrap_or_else(|| panic!("{a:?} unlisted"));
            assert_eq!(action(key), Some(a), "{key:?} does what the list says");
            assert_eq!(
                what.contains("(presenter)"),
                needs_presenter(a),
                "{a:?}: the list says who may"
            );
        }
        assert!(!needs_presenter(KeyAction::Submit) && !needs_presenter(KeyAction::Back));
    }

    #[test]
    fn every_action_is_listed_once() {
        for (key, a, _) in KEYS {
            assert_eq!(KEYS.iter().filter(|(_, b, _)| b == a).count(), 1, "{key}");
        }
        for key in [
            " ",
            "ArrowRight",
            "ArrowLeft",
            "s",
            "1",
            "2",
            "3",
            "f",
            "r",
            "[",
            "]",
            "e",
            ".",
            "q",
            "p",
            "l",
            "?",
            "Escape",
        ] {
            let a = action(key).unwrap();
            assert!(KEYS.iter().any(|(_, b, _)| *b == a), "{key:?} unlisted");
        }
    }
}
