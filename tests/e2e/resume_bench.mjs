// A server restart under a live mesh, for `cargo xtask bench signaling`
// (xtask/src/sigbench.rs), which runs this INSIDE a network namespace that has only `lo`.
//
// Env: MESHWORK_BIN, MESHWORK_DIST, NATIVES (default 8), TABS (default 4), KEY_FILE.
// Starts `meshwork serve` with the resume key file, the native nodes and the tabs in one
// room, waits for the full mesh, SIGKILLs the server, starts it again on the same port
// and times how long until every member is listed in the room again under its id. Prints
// one JSON object as the last stdout line.

import { benchHarness, pollUntil, readTab } from './harness.mjs';

const natives = Number(process.env.NATIVES || 8);
const tabs = Number(process.env.TABS || 4);
const members = natives + tabs;
const h = benchHarness('resume-bench');
let result = { error: 'not run' };

async function roomIds(origin, room) {
  try {
    const body = await (await fetch(`${origin}/api/rooms`)).json();
    return (body.rooms.find((r) => r.name === room)?.peers ?? []).map((p) => p.id).sort();
  } catch {
    return null;
  }
}

try {
  const extra = ['--resume-key-file', process.env.KEY_FILE];
  const first = await h.startServer(process.env.MESHWORK_DIST, { extra });
  if (!first.origin) throw new Error('the server did not start');
  const { origin } = first;
  const room = 'bench-resume';
  const nodes = [];
  for (let i = 1; i <= natives; i++) nodes.push(h.startNode(`native-${i}`, origin, room, ['--workers', '1']));
  const browsers = await Promise.all([...Array(tabs).keys()].map((i) => h.launchBrowser(`tab-${i + 1}`)));
  await Promise.all(browsers.map((b) => h.openPage(b, origin, `${origin}/?room=${room}&name=${b.name}&workers=0`)));
  const meshed = await pollUntil(async () => {
    const counts = await Promise.all(browsers.map((b) => readTab(b.page).then((t) => Number(t.count))));
    return counts.every((c) => c === members - 1) && nodes.every((n) => n.connected().size === members - 1) ? counts : null;
  }, Date.now() + 120_000, 250);
  if (!meshed) throw new Error(`no full mesh of ${members} within 120 s`);
  const before = await roomIds(origin, room);
  const killed = Date.now();
  process.kill(first.server.proc.pid, 'SIGKILL');
  const again = h.meshwork('server-again', ['serve', '--bind', first.listening.addr, '--json', '--dist', process.env.MESHWORK_DIST, ...extra]);
  const listening = await again.waitFor((e) => e.event === 'listening', Date.now() + 20_000);
  if (!listening) throw new Error('the server did not start again');
  const listeningMs = Date.now() - killed;
  const back = await pollUntil(async () => {
    const now = await roomIds(origin, room);
    return now && JSON.stringify(now) === JSON.stringify(before) ? now : null;
  }, Date.now() + 30_000, 20);
  const backMs = Date.now() - killed;
  const departures = nodes.flatMap((n) => n.events.filter((e) => e.event === 'peer_left')).length;
  result = {
    natives,
    tabs,
    all_back: !!back,
    listening_after_kill_ms: listeningMs,
    all_back_after_kill_ms: back ? backMs : null,
    departures_seen_by_natives: departures,
  };
} catch (e) {
  result = { error: String(e?.stack || e) };
}
await h.cleanup();
process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(result.error ? 1 : 0));
