// End-to-end controller: suspicion that heals (driven by tests/browser_heal.rs).
//
// Runs INSIDE a network namespace that has only `lo`: every address used here is
// 127.0.0.1. A `meshwork serve`, three `meshwork node`s and two Chromium tabs (A and B)
// in one room, and a paced Mandelbrot job handed out by `meshwork submit`. Mid-job:
//   1. tab B goes to the background for 5 s (a page hook makes `document.visibilityState`
//      "hidden" and fires `visibilitychange`, as hiding the tab would): A and every
//      native show it "in the background", and nobody declares it gone;
//   2. tab A's main thread is blocked for 2 s (a busy loop in the page): its node runs
//      in a worker with the data channels moved there, so it keeps heartbeating, and
//      nobody (natives, tab B, tab A itself) declares anybody gone;
//   3. native-3 is frozen with SIGSTOP for 3 s, then SIGCONT: every tab shows it gone
//      (silent) and then back, and every other native (the submitter included) prints
//      `peer_left` (heartbeat) and then `peer_back` for it;
//   4. the job completes (the Rust test compares its PNG with `meshwork run`'s), and at
//      the end each tab's graph and peer list agree, everyone live.
//
// Input (argv[2] JSON): { meshwork, dist, outdir, cwd, chromium, profiles_dir,
//   timeout_ms, cli_args: [ ...`meshwork submit` job arguments, --out included ] }.
// Output: progress on stderr; the LAST stdout line is the JSON summary.

import path from 'node:path';
import { fullMesh, memberIds, pollUntil, readGraph, readTab, sleep, startController } from './harness.mjs';

const { cfg, h, run } = startController(
  'heal',
  { timeout_ms: 150_000, mesh_timeout_ms: 60_000, job_timeout_ms: 90_000 },
  ['cli_args'],
);
const say = (...a) => h.say(...a);
const check = (...a) => run.check(...a);
const info = {};
const files = {};
run.summary = { info, files };

const graph = readGraph;

const log = (page) => page.$$eval('[data-testid=log-entry]', (els) => els.map((e) => ({ text: e.textContent, peer: e.getAttribute('data-peer'), event: e.getAttribute('data-event'), reason: e.getAttribute('data-reason') })));

/** Makes the page believe it was hidden (or shown again), as the browser would say. */
function setHidden(page, hidden) {
  return page.evaluate((hide) => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (hide ? 'hidden' : 'visible') });
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => hide });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
}

async function main() {
  const room = `heal-${Math.random().toString(16).slice(2, 10)}`;
  info.room = room;
  const { listening } = await h.startServer(cfg.dist);
  if (!check('server_listening', listening && /^127\.0\.0\.1:\d+$/.test(listening.addr), listening)) return;
  const origin = `http://${listening.addr}`;
  const url = (name) => `${origin}/?room=${room}&name=${name}&workers=1`;
  const natives = [1, 2, 3].map((i) => h.startNode(`native-${i}`, origin, room, ['--workers', '1']));
  const [ba, bb] = await Promise.all(['tab-a', 'tab-b'].map((n) => h.launchBrowser(n)));
  await Promise.all([ba, bb].map((b) => h.openPage(b, origin, url(b.name))));
  const [pa, pb] = [ba.page, bb.page];
  const meshed = await fullMesh([pa, pb], natives, Date.now() + cfg.mesh_timeout_ms);
  if (!check('full_mesh', meshed, { tabs: await Promise.all([pa, pb].map(readTab)) })) return;
  const ids = await memberIds({ 'tab-a': pa, 'tab-b': pb }, natives);
  info.ids = ids;

  const cli = h.meshwork('cli', ['submit', '--server', origin, '--room', room, '--name', 'cli', '--ice-bind', '127.0.0.1', '--workers', '1', '--json', '--wait-ms', '1500', ...cfg.cli_args]);
  const cliExit = new Promise((r) => cli.proc.once('close', (code, sig) => r({ code, sig })));
  const started = await pollUntil(async () => {
    const p = await pa.evaluate(() => document.querySelector('[data-testid=job-progress]')?.textContent ?? '');
    const m = p.match(/(\d+) \/ (\d+)/);
    return m && Number(m[1]) >= 5 ? p : null;
  }, Date.now() + cfg.job_timeout_ms, 100);
  if (!check('job_under_way', started, null)) return;

  // 1. Tab B in the background for 5 s.
  await setHidden(pb, true);
  const shownBackground = await pollUntil(async () => {
    const g = await graph(pa);
    return g.find((n) => n.peer === ids['tab-b'])?.background ? g : null;
  }, Date.now() + 3_000, 100);
  const nativesHeard = await pollUntil(() => natives.every((n) => n.events.some((e) => e.event === 'peer_background' && e.peer === ids['tab-b'] && e.on)) || null, Date.now() + 3_000, 100);
  await sleep(5_000);
  await setHidden(pb, false);
  const foreground = await pollUntil(async () => {
    const g = await graph(pa);
    return g.find((n) => n.peer === ids['tab-b'])?.background === false ? true : null;
  }, Date.now() + 3_000, 100);
  const buriedB = (await log(pa)).filter((l) => l.peer === ids['tab-b'] && l.event === 'left');
  const nativesBuriedB = natives.filter((n) => n.events.some((e) => e.event === 'peer_left' && e.peer === ids['tab-b'])).map((n) => n.name);
  check('background_tab_shown_and_never_gone', shownBackground && nativesHeard && foreground && buriedB.length === 0 && nativesBuriedB.length === 0, { shownBackground: !!shownBackground, nativesHeard, foreground, buriedB, nativesBuriedB });

  // 2. Tab A's main thread blocked for 2 s: rendering and the page's timers stop, the
  // node worker does not.
  const blockedMs = await pa.evaluate((ms) => {
    const t0 = performance.now();
    while (performance.now() - t0 < ms) { /* the main thread is busy */ }
    return performance.now() - t0;
  }, 2_000);
  info.main_thread_blocked_ms = Math.round(blockedMs);
  // Longer than any node takes to declare a silent member gone (1.5 s), after which the
  // lines would be there.
  await sleep(2_000);
  const leftLines = async (page) => (await log(page)).filter((l) => l.event === 'left').map((l) => l.text);
  const buriedA = {
    natives: natives.filter((n) => n.events.some((e) => e.event === 'peer_left' && e.peer === ids['tab-a'])).map((n) => n.name),
    cli: cli.events.filter((e) => e.event === 'peer_left' && e.peer === ids['tab-a']).length,
    tab_b: (await log(pb)).filter((l) => l.peer === ids['tab-a'] && l.event === 'left').map((l) => l.text),
    tab_a_buried: await leftLines(pa),
  };
  info.blocked_tab = buriedA;
  check('blocked_main_thread_nobody_gone', blockedMs >= 2_000 && buriedA.natives.length === 0 && buriedA.cli === 0 && buriedA.tab_b.length === 0 && buriedA.tab_a_buried.length === 0, { blockedMs, ...buriedA });

  // 3. native-3 frozen for 3 s.
  const victim = natives[2];
  process.kill(victim.proc.pid, 'SIGSTOP');
  say('SIGSTOP native-3');
  await sleep(3_000);
  process.kill(victim.proc.pid, 'SIGCONT');
  say('SIGCONT native-3');
  const observers = [natives[0], natives[1], cli];
  const seenBack = await pollUntil(async () => {
    const logs = await Promise.all([pa, pb].map(log));
    const tabs = logs.every((l) => l.some((x) => x.peer === ids['native-3'] && x.reason === 'heartbeat') && l.some((x) => x.peer === ids['native-3'] && /is back: it was silent/.test(x.text)));
    const nat = observers.every((n) => {
      const left = n.events.findIndex((e) => e.event === 'peer_left' && e.peer === ids['native-3'] && e.reason === 'heartbeat');
      const back = n.events.findIndex((e) => e.event === 'peer_back' && e.peer === ids['native-3']);
      return left >= 0 && back > left;
    });
    return tabs && nat ? logs.map((l) => l.filter((x) => x.peer === ids['native-3']).map((x) => x.text)) : null;
  }, Date.now() + 10_000, 200);
  info.native_3_lines = seenBack;
  check('frozen_native_gone_then_back_everywhere', seenBack, {
    tabs: await Promise.all([pa, pb].map(async (p) => (await log(p)).filter((x) => x.peer === ids['native-3']).map((x) => x.text))),
    natives: observers.map((n) => ({ name: n.name, events: n.events.filter((e) => e.peer === ids['native-3'] && /peer_/.test(e.event)).map((e) => `${e.event}:${e.reason ?? ''}`) })),
  });
  // Its own view: it buried nobody while it slept.
  const buriedByVictim = victim.events.filter((e) => e.event === 'peer_left');
  check('frozen_native_buried_nobody', buriedByVictim.length === 0, buriedByVictim);

  // 4. The job completes; graph and peer list agree at the end.
  const exit = await Promise.race([cliExit, sleep(cfg.job_timeout_ms).then(() => null)]);
  check('cli_submit_exit_0', exit && exit.code === 0 && cli.events.some((e) => e.event === 'job_done'), { exit });
  for (const [name, page] of [['tab-a', pa], ['tab-b', pb]]) {
    const agree = await pollUntil(async () => {
      const g = (await graph(page)).filter((n) => n.kind !== 'me');
      const rows = (await readTab(page)).rows;
      const live = g.filter((n) => n.state === 'live').map((n) => n.peer).sort();
      const connected = rows.filter((r) => r.state === 'connected').map((r) => r.id).sort();
      const members = [ids['native-1'], ids['native-2'], ids['native-3'], ids[name === 'tab-a' ? 'tab-b' : 'tab-a']].sort();
      return JSON.stringify(live) === JSON.stringify(connected) && members.every((m) => live.includes(m)) ? { live, connected } : null;
    }, Date.now() + 10_000, 200);
    check(`graph_and_peers_agree:${name}`, agree, { graph: await graph(page), rows: (await readTab(page)).rows });
    const shot = path.join(cfg.outdir, `${name}.png`);
    await page.screenshot({ path: shot, fullPage: true });
    files[name] = shot;
  }
}

await run.run(main);
