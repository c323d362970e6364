//! The browser link under a bulk transfer, end to end (`tests/e2e/bulk.mjs`): 20 MiB
//! from a native node to a Chromium tab and back, in a network namespace, through the
//! node's bulk queue and its flow control (the path result bytes take): every byte
//! arrives each way, by the receiver's own count, and neither side declares the other
//! gone meanwhile.
//!
//! Before senders waited for what the receiving program read (`WireMsg::Read`, the read
//! window), about one run in three failed here: the tab took the debug-built native
//! for gone near the end of its transfer, while the native worked through thousands of
//! received messages piled up in its event queue, its heartbeats behind them.
//!
//! Prerequisites as for `browser_mesh` (dist/, playwright-core, Chromium, node, root for
//! the namespace): without them the test prints SKIP, except under `CI=true`.

mod common;

use std::time::Duration;

use common::browser::{E2eRun, assert_no_problems, run_e2e};
use serde_json::json;

const CONTROLLER_TIMEOUT: Duration = Duration::from_secs(120);
const TEST_TIMEOUT: Duration = Duration::from_secs(150);
const BULK_BYTES: u64 = 20 << 20;

#[test]
fn twenty_mib_reach_a_tab_and_come_back_with_nobody_taken_for_gone() {
    let Some(E2eRun { out, problems, .. }) = run_e2e(
        "browser_bulk",
        "bulk.mjs",
        (CONTROLLER_TIMEOUT, TEST_TIMEOUT),
        &[
            "tab_joined",
            "native_connected_to_the_tab",
            "native_to_tab_every_byte",
            "tab_to_native_every_byte",
            "no_departure_either_way",
            "no_console_errors",
        ],
        |_| json!({ "bulk_bytes": BULK_BYTES }),
    ) else {
        return;
    };
    assert_no_problems("browser_bulk", &problems, &out);
}
