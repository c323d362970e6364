// End-to-end controller: 20 MiB from a native node to a Chromium tab and back (driven by
// tests/browser_bulk.rs).
//
// Runs INSIDE a network namespace that has only `lo`: every address used here is
// 127.0.0.1. A `meshwork serve` and one tab in a room; then a `meshwork node
// --bench-bulk-bytes N` joins, so its first peer is the tab, and streams N bulk bytes
// to it through its bulk queue (the flow control result bytes get); the tab counts
// them and acknowledges. Then the tab streams N bytes back (`window.__meshworkBulk`),
// the native counts and acknowledges. Checks that every byte arrived each way (the
// receiver's own count, in its acknowledgement) and that neither side declared the
// other gone meanwhile. Throughput each way, and the datagrams the kernel dropped
// because a UDP receive buffer was full, are reported in `info`.
//
// Input (argv[2] JSON): { meshwork, dist, outdir, cwd, chromium, profiles_dir,
//   timeout_ms, bulk_bytes }.
// Output: progress on stderr; the LAST stdout line is the JSON summary.

import { readFileSync } from 'node:fs';

import { bulkFromTab, pollUntil, readTab, startController, validId } from './harness.mjs';

const { cfg, h, run } = startController('bulk', { timeout_ms: 120_000, transfer_timeout_ms: 45_000 }, ['bulk_bytes']);
const check = (...a) => run.check(...a);
const info = {};
run.summary = { info };

// Datagrams the namespace's kernel dropped because a UDP socket's receive buffer was
// full (RcvbufErrors): a busy tab's socket overflowing, each loss a wait for SCTP's
// retransmission timer. Reported, not checked (a loaded machine may drop a few).
function udpReceiveBufferDrops() {
  const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
  if (lines.length < 2) return null;
  const [names, values] = lines.map((l) => l.split(/\s+/).slice(1));
  const i = names.indexOf('RcvbufErrors');
  return i < 0 ? null : Number(values[i]);
}

const log = (page) => page.$$eval('[data-testid=log-entry]', (els) => els.map((e) => ({ text: e.textContent, peer: e.getAttribute('data-peer'), event: e.getAttribute('data-event') })));

async function main() {
  const n = cfg.bulk_bytes;
  const room = `bulk-${Math.random().toString(16).slice(2, 10)}`;
  info.room = room;
  info.bytes = n;
  const { listening } = await h.startServer(cfg.dist);
  if (!check('server_listening', listening && /^127\.0\.0\.1:\d+$/.test(listening.addr), listening)) return;
  const origin = `http://${listening.addr}`;
  const b = await h.launchBrowser('tab');
  await h.openPage(b, origin, `${origin}/?room=${room}&name=tab`);
  const page = b.page;
  const tabId = await pollUntil(async () => {
    const me = (await readTab(page)).me;
    return validId(me) ? me : null;
  }, Date.now() + 20_000);
  if (!check('tab_joined', tabId, null)) return;

  // Native -> tab.
  const native = h.startNode('native', origin, room, ['--bench-bulk-bytes', String(n)]);
  const connected = await native.waitFor((e) => e.event === 'peer_connected', Date.now() + 30_000);
  if (!check('native_connected_to_the_tab', connected && connected.peer === tabId, connected)) return;
  const tabGone = (e) => (e.event === 'peer_left' || e.event === 'peer_gone') && e.peer === tabId;
  const there = await native.waitFor((e) => e.event === 'bulk' || tabGone(e), Date.now() + cfg.transfer_timeout_ms);
  info.native_to_tab = there;
  check('native_to_tab_every_byte', there && there.event === 'bulk' && there.peer === tabId && there.bytes === n, there);

  info.tab_took_native_for_gone_by_then = (await log(page)).filter((l) => l.event === 'left').length;
  info.udp_dropped_native_to_tab = udpReceiveBufferDrops();
  // Tab -> native.
  const nativeId = native.id;
  const t0 = Date.now();
  const back = await bulkFromTab(page, nativeId, n, Date.now() + cfg.transfer_timeout_ms);
  info.tab_to_native = back ? { ...back, seen_after_ms: Date.now() - t0 } : null;
  const counted = back?.counted ?? null;
  check('tab_to_native_every_byte', counted === n, info.tab_to_native);

  info.udp_dropped_in_all = udpReceiveBufferDrops();
  // Nobody was taken for gone, either way.
  const nativeBuried = native.events.filter(tabGone);
  const tabBuried = (await log(page)).filter((l) => l.event === 'left');
  check('no_departure_either_way', nativeBuried.length === 0 && tabBuried.length === 0, { nativeBuried, tabBuried });
}

await run.run(main);
