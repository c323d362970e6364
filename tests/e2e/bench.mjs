// The Chromium rows of `cargo xtask bench mesh` (xtask/src/bench.rs, `browser_rows`).
//
// Runs INSIDE a fresh network namespace that has only `lo` (xtask runs
// `ip netns exec NS sh -c 'ip link set lo up && exec node tests/e2e/bench.mjs'`, cwd =
// the workspace): every address used here is 127.0.0.1. It starts a `meshwork serve`,
// ONE Chromium tab in a room, then measures:
//   1. native -> Chromium bulk throughput: a `meshwork node --bench-bulk-bytes N` joins
//      the room, so its first peer is the tab; its `bulk` event gives MiB/s;
//   2. RTT Chromium <-> native: the median of that native's `rtt` events for the tab over
//      ~4 s, from 1 s after the transfer (the tab's own RTT cell for the native is reported too;
//      if the bulk native lost the tab, the second native below is measured instead);
//   3. killed-tab detection: a second, plain native joins; once it is connected to the
//      tab, the tab's renderer is SIGKILLed (no pagehide); the time until each native
//      connected to the tab prints `peer_left` for it, the max over those natives.
// What went wrong with a measurement is listed in `problems` (the first also as `error`).
//
// Input (environment): MESHWORK_BIN (meshwork binary), MESHWORK_DIST (built web UI),
// MESHWORK_BULK_BYTES (default 20 MiB); optional MESHWORK_BENCH_OUTDIR (keep the child
// logs there; by default they go to a temporary directory, removed unless setup failed),
// MESHWORK_BENCH_TIMEOUT_MS (default 120000), MESHWORK_CHROMIUM (default /usr/bin/chromium).
// Output: progress on stderr; the LAST stdout line is the JSON summary with
//   native_to_chromium_mib_s, rtt_chromium_native_ms, killed_tab_detect_ms (numbers, or
//   null when not measured), killed_tab_reason, chromium_to_native_mib_s (the tab sends
//   the same bytes back to the bulk native with `window.__meshworkBulk`, through its
//   node's bulk queue; its log line gives MiB/s), and details.
// Exit status: 0 when the setup worked (server, browser, tab, first native connected to
// the tab), even if a measurement is missing or failed (see `error`); 1 on a setup
// failure, 2 on bad input, 3 on the hard timeout. Every process started here is killed
// on exit, by pid, with its whole process tree, also on errors, signals and the hard
// timeout.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Harness, bulkFromTab, dead, median, pollUntil, readPeerRtts, readTab, sleep, validId } from './harness.mjs';

const T_START = Date.now();
const BIN = process.env.MESHWORK_BIN;
const DIST = process.env.MESHWORK_DIST;
const BULK_BYTES = Number(process.env.MESHWORK_BULK_BYTES || 20 * 1024 * 1024);
const TIMEOUT_MS = Number(process.env.MESHWORK_BENCH_TIMEOUT_MS || 120_000);
const CHROMIUM = process.env.MESHWORK_CHROMIUM || '/usr/bin/chromium';
/** How long RTT samples are collected, after waiting RTT_SETTLE_MS. */
const RTT_WINDOW_MS = 4_000;
const RTT_SETTLE_MS = 1_000;
/** How long to wait for the natives to report the killed tab. */
const DETECT_WAIT_MS = 15_000;

const summary = {
  native_to_chromium_mib_s: null,
  rtt_chromium_native_ms: null,
  killed_tab_detect_ms: null,
  killed_tab_reason: null,
  chromium_to_native_mib_s: null,
  ok: false,
  error: null,
  problems: [],
  bin: BIN ?? null,
  bulk_bytes: BULK_BYTES,
  details: {},
  notes: [],
  console_errors: [],
  elapsed_ms: null,
};

function emit(code) {
  summary.elapsed_ms = Date.now() - T_START;
  process.stdout.write(JSON.stringify(summary) + '\n', () => process.exit(code));
}

const round3 = (x) => (x === null ? null : Math.round(x * 1000) / 1000);

/** The run cannot measure anything: exit non-zero. */
class SetupError extends Error {}
/** Server, tab and the first native connected to the tab: from here on, exit 0. */
let setupDone = false;

async function run() {
  const keepLogs = !!process.env.MESHWORK_BENCH_OUTDIR;
  const outdir = process.env.MESHWORK_BENCH_OUTDIR || fs.mkdtempSync(path.join(os.tmpdir(), 'meshwork-bench-logs-'));
  const h = new Harness({ tag: 'bench', outdir, meshwork: BIN, cwd: process.cwd(), chromium: CHROMIUM, t0: T_START });
  const say = (...a) => h.say(...a);
  const T_END = T_START + TIMEOUT_MS;
  /** A deadline `ms` from now, but well before the hard timeout. */
  const by = (ms) => Math.min(Date.now() + ms, T_END - 5_000);

  let finished = false;
  async function finish(code, error) {
    if (finished) return;
    finished = true;
    clearTimeout(hardStop);
    if (error && !summary.error) summary.error = error;
    summary.ok = code === 0;
    summary.console_errors = h.consoleErrors;
    await h.cleanup();
    const missing = ['native_to_chromium_mib_s', 'rtt_chromium_native_ms', 'killed_tab_detect_ms'].filter((k) => summary[k] === null);
    if (keepLogs || code !== 0 || missing.length) {
      say('child logs kept in', outdir);
    } else {
      fs.rmSync(outdir, { recursive: true, force: true });
    }
    say(
      'result:',
      JSON.stringify({
        native_to_chromium_mib_s: summary.native_to_chromium_mib_s,
        rtt_chromium_native_ms: summary.rtt_chromium_native_ms,
        killed_tab_detect_ms: summary.killed_tab_detect_ms,
        killed_tab_reason: summary.killed_tab_reason,
      }),
      summary.error ? `error: ${summary.error}` : '',
    );
    emit(code);
  }

  const hardStop = setTimeout(() => {
    say(`HARD TIMEOUT after ${TIMEOUT_MS} ms: killing everything`);
    finish(3, `the run took longer than ${TIMEOUT_MS} ms`);
  }, TIMEOUT_MS);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => finish(1, `bench.mjs got ${sig}`));
  }

  try {
    await scenario(h, say, by);
    await finish(0);
  } catch (e) {
    // Before the setup is complete any error is a setup failure; after it, an error only
    // leaves the remaining measurements null.
    const setupFailed = e instanceof SetupError || !setupDone;
    say(setupFailed ? 'SETUP FAILED:' : 'ERROR (measurements after this are null):', String(e?.stack || e));
    await finish(setupFailed ? 1 : 0, String(e?.message || e));
  }
}

async function scenario(h, say, by) {
  /** A measurement went wrong: noted in `problems` (and the first one in `error`). */
  const problem = (msg) => {
    summary.problems.push(msg);
    summary.error ??= msg;
    say('PROBLEM:', msg);
  };
  const room = `bench-${Math.random().toString(16).slice(2, 10)}`;
  const d = summary.details;
  d.room = room;
  say('room', room, 'bin', BIN, 'dist', DIST, 'bulk bytes', BULK_BYTES);

  // 1. Signaling server and web UI; one tab in the room.
  const { listening, origin } = await h.startServer(DIST, { timeoutMs: 20_000 });
  if (!listening || !/^127\.0\.0\.1:\d+$/.test(listening.addr)) {
    throw new SetupError(`meshwork serve did not report listening on 127.0.0.1 (got ${JSON.stringify(listening)})`);
  }
  const url = `${origin}/?room=${room}`;
  const b = await h.launchBrowser('tab');
  await h.openPage(b, origin, url);
  const tabId = await pollUntil(async () => {
    const me = (await readTab(b.page)).me;
    return validId(me) ? me : null;
  }, by(20_000));
  if (!tabId) throw new SetupError('the tab showed no id within 20 s');
  d.tab_id = tabId;
  say('tab', tabId);

  // 2. Native -> Chromium bulk: the tab is the only member, so it is the first peer.
  const n1 = h.startNode('native-bulk', origin, room, ['--bench-bulk-bytes', String(BULK_BYTES)]);
  const c1 = await n1.waitFor((e) => e.event === 'peer_connected', by(30_000));
  if (!c1) throw new SetupError('the bulk native connected to no peer within 30 s');
  if (c1.peer !== tabId) throw new SetupError(`the bulk native's first peer is ${c1.peer}, not the tab ${tabId}`);
  d.connect_ms = { 'native-bulk': c1.connect_ms };
  setupDone = true;
  // The transfer ends with the `bulk` event, or early if the native loses the tab.
  const tabGone = (e) => e.event === 'peer_left' && e.peer === tabId;
  const bulkEnd = await n1.waitFor((e) => e.event === 'bulk' || tabGone(e), by(60_000));
  const bulk = bulkEnd?.event === 'bulk' ? bulkEnd : null;
  if (bulk && bulk.peer === tabId && bulk.bytes === BULK_BYTES && Number.isFinite(bulk.mib_per_s)) {
    summary.native_to_chromium_mib_s = bulk.mib_per_s;
  }
  d.bulk = bulk ? { peer: bulk.peer, bytes: bulk.bytes, ms: bulk.ms, mib_per_s: bulk.mib_per_s } : null;
  if (bulkEnd && !bulk) {
    d.bulk_failed = { lost_tab_after_ms: bulkEnd.t - c1.t, reason: bulkEnd.reason, detect_ms: bulkEnd.detect_ms };
    // What the tab saw of the bulk native (its event log).
    d.bulk_failed.tab_log = await b.page
      .$$eval(`li[data-testid=log-entry][data-peer="${n1.id}"]`, (els) =>
        els.map((e) => ({ event: e.getAttribute('data-event'), reason: e.getAttribute('data-reason'), text: e.textContent })),
      )
      .catch((e) => [String(e)]);
    problem(`the bulk native lost the tab during the transfer (${bulkEnd.reason}, ${bulkEnd.t - c1.t} ms after connecting): see native-bulk.stderr.log`);
  } else if (!bulk) {
    problem('no bulk event within 60 s');
  }
  say('bulk native -> tab:', bulk ? `${bulk.bytes} B in ${bulk.ms} ms = ${bulk.mib_per_s} MiB/s` : 'no bulk event');

  // 2b. Chromium -> native: the tab sends the same bytes back to the bulk native.
  if (n1.connected().has(tabId) && n1.id) {
    const back = await bulkFromTab(b.page, n1.id, BULK_BYTES, by(60_000));
    const line = back?.text ?? null;
    d.bulk_back = { line, tab_gone_meanwhile: n1.events.some(tabGone) };
    if (back && back.counted === BULK_BYTES && Number.isFinite(back.mib_s)) summary.chromium_to_native_mib_s = back.mib_s;
    else problem(`the tab's bulk transfer back to the native did not complete: ${line ?? 'no bulk line within 60 s'}`);
    say('bulk tab -> native:', line);
  }

  // 3. RTT, after the transfer (it would inflate the samples): the native's rtt events
  // for the tab (at most one a second), and the tab's RTT cell for the native. If the
  // bulk native lost the tab, the second native (step 4) is measured instead.
  const measureRtt = async (n) => {
    // The first heartbeats after a transfer still queue behind its tail (60-95 ms seen).
    await sleep(RTT_SETTLE_MS);
    const tRtt = Date.now();
    const pageSamples = [];
    while (Date.now() < tRtt + RTT_WINDOW_MS) {
      const rtts = await readPeerRtts(b.page).catch(() => ({}));
      const v = rtts[n.id];
      if (typeof v === 'number') pageSamples.push(v);
      await sleep(250);
    }
    const nativeSamples = n.events.filter((e) => e.event === 'rtt' && e.peer === tabId && e.t >= tRtt).map((e) => e.ms);
    d.rtt = {
      native: n.name,
      native_samples_ms: nativeSamples,
      native_median_ms: round3(median(nativeSamples)),
      page_samples_ms: pageSamples,
      page_median_ms: round3(median(pageSamples)),
      window_ms: RTT_WINDOW_MS,
      settle_ms: RTT_SETTLE_MS,
    };
    summary.rtt_chromium_native_ms = d.rtt.native_median_ms ?? d.rtt.page_median_ms;
    say('rtt tab <-> native:', JSON.stringify(d.rtt));
  };
  if (n1.connected().has(tabId)) await measureRtt(n1);

  // 4. A second, plain native; once it is connected to the tab, the tab's renderer is
  // SIGKILLed and every native still connected to it must report the tab gone.
  const n2 = h.startNode('native-2', origin, room);
  const c2 = await n2.waitFor((e) => e.event === 'peer_connected' && e.peer === tabId, by(30_000));
  if (!c2) {
    problem('the second native did not connect to the tab within 30 s: killed_tab_detect_ms not measured');
    return;
  }
  d.connect_ms['native-2'] = c2.connect_ms;
  if (!d.rtt) await measureRtt(n2);
  // The tab's side too, then let heartbeats flow for a moment.
  await pollUntil(async () => {
    const t = await readTab(b.page);
    return t.rows.some((r) => r.id === n2.id && r.state === 'connected');
  }, by(5_000));
  await sleep(500);
  // Only the natives connected to the tab when it is killed can notice it going.
  const natives = [n1, n2].filter((n) => n.connected().has(tabId));
  const lost = [n1, n2].filter((n) => !natives.includes(n)).map((n) => n.name);
  if (lost.length) say('not connected to the tab before the kill (not counted):', lost.join(', '));
  d.killed_tab_watchers = natives.map((n) => n.name);
  if (natives.length === 0) {
    problem('no native is connected to the tab: killed_tab_detect_ms not measured');
    return;
  }

  const procs = await h.renderers(b);
  d.renderer_kill = procs;
  if (procs.killed.length === 0 || procs.killed.length !== procs.renderers.length) {
    problem(`cannot tell which renderer to kill: ${JSON.stringify(procs)}`);
    return;
  }
  const t1 = Date.now();
  for (const pid of procs.killed) process.kill(pid, 'SIGKILL');
  say('SIGKILLed renderer(s)', procs.killed.join(','), 'of the tab', tabId);
  const saw = await Promise.all(
    natives.map((n) => n.waitFor((e) => e.event === 'peer_left' && e.peer === tabId && e.t >= t1, by(DETECT_WAIT_MS))),
  );
  d.killed_tab = Object.fromEntries(
    natives.map((n, i) => {
      const ev = saw[i];
      return [n.name, ev ? { ms: ev.t - t1, reason: ev.reason, detect_ms: ev.detect_ms, was_connected: ev.was_connected } : { ms: null }];
    }),
  );
  // Evidence that the tab really died: Playwright's crash event, or every killed pid gone.
  await pollUntil(() => b.crashed !== null || procs.killed.every(dead), Date.now() + 2_000, 50);
  d.killed_tab.crash_event_ms = b.crashed === null ? null : b.crashed - t1;
  d.killed_tab.renderer_pids_dead = procs.killed.every(dead);
  if (saw.every(Boolean)) {
    summary.killed_tab_detect_ms = Math.max(...saw.map((ev) => ev.t - t1));
    summary.killed_tab_reason = [...new Set(saw.map((ev) => ev.reason))].join(',');
  } else {
    const blind = natives.filter((n, i) => !saw[i]).map((n) => n.name);
    problem(`no peer_left for the killed tab within ${DETECT_WAIT_MS} ms from ${blind.join(', ')}`);
  }
  say('killed tab noticed:', JSON.stringify(d.killed_tab));
}

if (!BIN || !DIST || !Number.isFinite(BULK_BYTES) || BULK_BYTES <= 0) {
  summary.error = 'bench.mjs needs MESHWORK_BIN, MESHWORK_DIST and a positive MESHWORK_BULK_BYTES';
  console.error(summary.error);
  emit(2);
} else {
  await run();
}
