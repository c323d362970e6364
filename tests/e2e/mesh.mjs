// End-to-end controller for the browser mesh test (driven by tests/browser_mesh.rs).
//
// Runs INSIDE a network namespace that has only `lo`: every address used here is
// 127.0.0.1. It starts a `meshwork serve`, two Chromium browsers (separate processes,
// separate profiles) each showing the web UI, and two `meshwork node` processes, all in
// one room; waits for the full mesh (every member connected to the other three);
// screenshots both tabs; closes tab A and checks every survivor notices within 2 s;
// SIGKILLs tab B's renderer and checks both natives notice within 2 s.
//
// Input: a JSON object as argv[2] (or env MESHWORK_E2E_CONFIG):
//   { "meshwork": "/path/to/meshwork", "dist": "/path/to/dist", "outdir": "/path/out",
//     "cwd": "/workspace/root" (optional), "timeout_ms": 150000 (optional),
//     "mesh_timeout_ms": 60000, "depart_ms": 2000, "chromium": "/usr/bin/chromium",
//     "profiles_dir": "/tmp" (where the browsers' temporary --user-data-dir go) }
// Output: progress on stderr; the LAST stdout line is the JSON summary
//   {"ok", "checks":[{name, ok, detail}], "latencies", "console_errors", "screenshots", ...}.
// Exit status 0 only if every check passed. Every process started here is killed on
// exit (with its whole process tree), also on errors, signals and the hard timeout.
// Process, browser and page handling is shared with bench.mjs in harness.mjs.

import fs from 'node:fs';
import path from 'node:path';
import { dead, readTab, sleep, startController, validId } from './harness.mjs';

const { cfg, h, run } = startController(
  'e2e',
  {
    timeout_ms: 150_000,
    mesh_timeout_ms: 60_000,
    depart_ms: 2_000,
    // How long to keep watching after the 2 s limit, so a late detection is measured
    // (and reported) instead of just missing.
    grace_ms: 8_000,
  },
  [],
);
const say = (...a) => h.say(...a);

// ---------------------------------------------------------------- results

const check = (...a) => run.check(...a);
const latencies = {};
const screenshots = [];
const info = {};
run.summary = { latencies, screenshots, info };

// ---------------------------------------------------------------- the scenario

async function main() {
  const room = `e2e-${Math.random().toString(16).slice(2, 10)}`;
  info.room = room;
  say('room', room, 'config', JSON.stringify(cfg));

  // 1. Signaling server and web UI.
  const { listening } = await h.startServer(cfg.dist, { timeoutMs: 20_000 });
  if (!check('server_listening', listening && /^127\.0\.0\.1:\d+$/.test(listening.addr), listening)) return;
  const origin = `http://${listening.addr}`;
  const url = `${origin}/?room=${room}`;
  info.url = url;

  // 2. Two browsers, two natives, two tabs.
  const [ba, bb] = await Promise.all([h.launchBrowser('tab-a'), h.launchBrowser('tab-b')]);
  const natives = [1, 2].map((i) => h.startNode(`native-${i}`, origin, room));
  const tMeshStart = Date.now();
  await Promise.all([h.openPage(ba, origin, url), h.openPage(bb, origin, url)]);
  const tabs = [ba, bb];

  // 3. The full mesh: every member connected to exactly the other three.
  const meshDeadline = tMeshStart + cfg.mesh_timeout_ms;
  let state;
  for (;;) {
    state = { tabs: {}, natives: {} };
    for (const b of tabs) state.tabs[b.name] = await readTab(b.page).catch((e) => ({ error: String(e) }));
    for (const n of natives) state.natives[n.name] = { me: n.id, connected: Object.fromEntries(n.connected()) };
    const kinds = {};
    for (const b of tabs) if (validId(state.tabs[b.name].me)) kinds[state.tabs[b.name].me] = 'browser';
    for (const n of natives) if (validId(n.id)) kinds[n.id] = 'native';
    state.expected = kinds;
    const full = Object.keys(kinds).length === 4;
    const want = (me) => Object.keys(kinds).filter((id) => id !== me).sort();
    const tabOk = (t) =>
      full &&
      t.rows &&
      JSON.stringify(t.rows.filter((r) => r.state === 'connected').map((r) => r.id).sort()) === JSON.stringify(want(t.me)) &&
      t.rows.every((r) => r.state !== 'connected' || r.kind === kinds[r.id]) &&
      t.count === '3';
    const nativeOk = (n) => {
      const c = n.connected();
      return full && JSON.stringify([...c.keys()].sort()) === JSON.stringify(want(n.id)) && [...c].every(([id, k]) => kinds[id] === k);
    };
    state.ok = {};
    for (const b of tabs) state.ok[b.name] = tabOk(state.tabs[b.name]);
    for (const n of natives) state.ok[n.name] = nativeOk(n);
    if (Object.values(state.ok).every(Boolean) || Date.now() > meshDeadline) break;
    await sleep(200);
  }
  latencies.mesh_ms = Date.now() - tMeshStart;
  info.mesh = state;
  const ids = state.expected;
  check('all_members_joined', Object.keys(ids).length === 4, ids);
  for (const b of tabs) {
    const t = state.tabs[b.name];
    check(`mesh:${b.name}`, state.ok[b.name], { me: t.me, status: t.status, peer_count: t.count, rows: t.rows });
  }
  for (const n of natives) {
    const c = [...n.connected().values()];
    const kindsOk = c.filter((k) => k === 'browser').length === 2 && c.filter((k) => k === 'native').length === 1;
    check(`mesh:${n.name}`, state.ok[n.name] && kindsOk, state.natives[n.name]);
  }
  if (!Object.values(state.ok).every(Boolean)) {
    // Still take the screenshots below: they show what the tabs saw.
    say('the mesh did not form within', cfg.mesh_timeout_ms, 'ms');
  } else {
    say('full mesh after', latencies.mesh_ms, 'ms');
  }
  latencies.connect_ms = Object.fromEntries(
    natives.map((n) => [n.name, Object.fromEntries(n.events.filter((e) => e.event === 'peer_connected').map((e) => [e.peer, e.connect_ms]))]),
  );

  // 4. Screenshots: each whole page, and each peer list.
  for (const b of tabs) {
    for (const [file, take] of [
      [`${b.name}.png`, (p) => b.page.screenshot({ path: p, fullPage: true })],
      [`peer-list-${b.name.slice(4)}.png`, (p) => b.page.locator('[data-testid=peer-list]').screenshot({ path: p, timeout: 5000 })],
    ]) {
      const p = path.join(cfg.outdir, file);
      try {
        await take(p);
        screenshots.push(p);
        check(`screenshot:${file}`, fs.statSync(p).size > 0, p);
      } catch (e) {
        check(`screenshot:${file}`, false, String(e));
      }
    }
  }
  if (!Object.values(state.ok).every(Boolean)) return;

  const idOf = (b) => state.tabs[b.name].me;
  const aId = idOf(ba);
  const bId = idOf(bb);
  info.ids = { 'tab-a': aId, 'tab-b': bId, 'native-1': natives[0].id, 'native-2': natives[1].id };

  // Nobody left (or flapped) while the mesh formed and settled.
  await sleep(500);
  const earlyLeft = {};
  for (const n of natives) earlyLeft[n.name] = n.events.filter((e) => e.event === 'peer_left');
  for (const b of tabs) {
    earlyLeft[b.name] = await b.page
      .$$eval('li[data-testid=log-entry][data-event=left]', (els) => els.map((e) => e.textContent))
      .catch((e) => [String(e)]);
  }
  check('stable_before_departures', Object.values(earlyLeft).every((l) => l.length === 0), earlyLeft);

  // 5. Tab A closes (pagehide closes its connections). Every survivor must notice in 2 s.
  const leftSel = `li[data-testid=log-entry][data-event=left][data-peer="${aId}"]`;
  // In tab B, a MutationObserver notes (wall clock, same machine as ours) when the
  // entry appears: more exact than when Playwright's polling sees it.
  await bb.page.evaluate((sel) => {
    window.__e2eLeftAt = new Promise((resolve) => {
      const seen = () => document.querySelector(sel) && (resolve(performance.timeOrigin + performance.now()), true);
      if (!seen()) {
        const obs = new MutationObserver(() => seen() && obs.disconnect());
        obs.observe(document.body, { subtree: true, childList: true, attributes: true });
      }
    });
  }, leftSel);
  const t0 = Date.now();
  await ba.page.close({ runBeforeUnload: false });
  say('closed tab A', aId, `(close() took ${Date.now() - t0} ms)`);
  const watchUntil0 = t0 + cfg.depart_ms + cfg.grace_ms;
  const [tabSaw, ...nativeSaw] = await Promise.all([
    bb.page
      .waitForSelector(leftSel, { state: 'attached', timeout: watchUntil0 - Date.now() })
      .then(async (el) => {
        const observed = Date.now();
        const at = await bb.page.evaluate(() => window.__e2eLeftAt);
        return {
          t: Math.round(at),
          observed_ms: observed - t0,
          reason: await el.getAttribute('data-reason'),
          detect_ms: Number(await el.getAttribute('data-ms')),
        };
      })
      .catch(() => null),
    ...natives.map((n) => n.waitFor((e) => e.event === 'peer_left' && e.peer === aId && e.t >= t0, watchUntil0)),
  ]);
  latencies.tab_close = {};
  const record = (bucket, who, ev, t) => {
    const ms = ev ? ev.t - t : null;
    bucket[who] = ev ? { ms, reason: ev.reason, detect_ms: ev.detect_ms } : { ms: null };
    return ms;
  };
  {
    const ms = record(latencies.tab_close, 'tab-b', tabSaw, t0);
    check('tab_close:tab-b', ms !== null && ms <= cfg.depart_ms, tabSaw ? { ms, ...tabSaw } : `no "left" log entry for ${aId} within ${watchUntil0 - t0} ms`);
  }
  natives.forEach((n, i) => {
    const ev = nativeSaw[i];
    const ms = record(latencies.tab_close, n.name, ev, t0);
    check(
      `tab_close:${n.name}`,
      ms !== null && ms <= cfg.depart_ms && ev.kind === 'browser' && ev.was_connected === true,
      ev ? { ms, reason: ev.reason, detect_ms: ev.detect_ms, kind: ev.kind, was_connected: ev.was_connected } : `no peer_left for ${aId} within ${watchUntil0 - t0} ms`,
    );
  });
  // Tab B's list drops A and keeps the two natives connected.
  {
    let t;
    const until = Date.now() + 2000;
    do {
      t = await readTab(bb.page).catch((e) => ({ error: String(e) }));
      if (t.rows && !t.rows.some((r) => r.id === aId) && t.rows.filter((r) => r.state === 'connected').length === 2) break;
      await sleep(100);
    } while (Date.now() < until);
    check('tab_close:tab-b_list_updated', t.rows && !t.rows.some((r) => r.id === aId) && t.count === '2', t);
  }

  // 6. Tab B's renderer is SIGKILLed (no pagehide). Both natives must notice in 2 s.
  info.renderer_kill = await h.renderers(bb);
  const { renderers, killed: victims } = info.renderer_kill;
  if (!check('renderer_kill:found', victims.length > 0 && victims.length === renderers.length, info.renderer_kill)) return;
  await sleep(300);
  const t1 = Date.now();
  for (const pid of victims) process.kill(pid, 'SIGKILL');
  say('SIGKILLed renderer(s)', victims.join(','), 'of tab B', bId);
  const watchUntil1 = t1 + cfg.depart_ms + cfg.grace_ms;
  const killedSaw = await Promise.all(natives.map((n) => n.waitFor((e) => e.event === 'peer_left' && e.peer === bId && e.t >= t1, watchUntil1)));
  latencies.renderer_kill = {};
  natives.forEach((n, i) => {
    const ev = killedSaw[i];
    const ms = record(latencies.renderer_kill, n.name, ev, t1);
    check(
      `renderer_kill:${n.name}`,
      ms !== null && ms <= cfg.depart_ms && ev.kind === 'browser' && ev.was_connected === true,
      ev ? { ms, reason: ev.reason, detect_ms: ev.detect_ms, kind: ev.kind, was_connected: ev.was_connected } : `no peer_left for ${bId} within ${watchUntil1 - t1} ms`,
    );
  });
  // Evidence that the tab really died: Playwright's crash event, or every killed pid
  // gone (a zombie counts: its parent has not reaped it yet).
  const goneBy = Date.now() + 3000;
  while (bb.crashed === null && !victims.every(dead) && Date.now() < goneBy) await sleep(50);
  check('renderer_kill:renderer_gone', bb.crashed !== null || victims.every(dead), {
    crash_event_ms: bb.crashed === null ? null : bb.crashed - t1,
    pids_dead: victims.every(dead),
  });

  // 7. The two natives are still connected to each other, and nothing else.
  await sleep(300);
  natives.forEach((n, i) => {
    const other = natives[1 - i].id;
    const c = [...n.connected().keys()];
    check(`survivors:${n.name}`, c.length === 1 && c[0] === other, { connected: c, want: [other] });
  });
}

await run.run(main);
