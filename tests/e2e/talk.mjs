// End-to-end controller for a whole talk on one screen, driven by keys (driven by
// tests/browser_talk.rs).
//
// Runs INSIDE a network namespace that has only `lo`. It starts `meshwork serve` with a
// presenter key, two `meshwork node`s, the presenter's tab at 1920×1080 and two phone
// tabs at 375×800 that give no name. Then, on the presenter's tab, with keys only (a
// member is picked by focusing it on the graph and pressing Enter):
//   1. `q`: the join panel, beside the graph, counts the five members;
//   2. `s`: the form's job runs to the end;
//   3. Enter on a phone on the graph, `f`: that phone fails and is seen to go;
//   4. `2`: the liar scenario, with the form's pacing (set to 60 ms): done, liar marked;
//   5. `1`: half of the other members fail;
//   6. `3`: the server goes away (a banner counts down), `3` again: it is back early;
//   7. space, →, ←, space, ←: pause, step, slow motion, resume, normal speed;
//   8. `[`: a moment back (a banner says so), `e`: the run exported, `]`: live again;
//   9. `r`: reset: every member is back, nobody lies or is marked as a liar; a q = 2
//      job then has no disagreement and every member computes in it.
// After each scene, what it needs is inside the window, unscrolled (bounding boxes, and
// a screenshot each). The phones' generated names are on the graph and in the export.
//
// Input: a JSON object as argv[2]:
//   { "meshwork", "dist", "outdir", "cwd", "chromium", "profiles_dir", "timeout_ms",
//     "presenter_key", "public_url" }
// Output: progress on stderr; the LAST stdout line is the JSON summary.

import fs from 'node:fs';
import path from 'node:path';
import { fullMesh, memberIds, pollUntil, readGraph, readTab, startController } from './harness.mjs';

const { cfg, h, run } = startController(
  'talk',
  { timeout_ms: 240_000, mesh_timeout_ms: 60_000, job_timeout_ms: 90_000 },
  ['presenter_key', 'public_url'],
);
const check = (...a) => run.check(...a);
const info = {};
const files = {};
run.summary = { info, files };

const graph = readGraph;
const SEL = {
  graph: '[data-testid=mesh-graph]',
  picture: '[data-testid=job-canvas]',
  board: '[data-testid=task-grid]',
  events: 'section.log',
  console: '[data-testid=console]',
  said: '[data-testid=console-said]',
  qr: '[data-testid=qr-overlay]',
  away: '[data-testid=server-away]',
  mode: '[data-testid=mesh-mode]',
  replay: '[data-testid=replay-banner]',
};

/** After a scene: every element it needs is inside the window, unscrolled. */
async function inView(page, scene, names) {
  await page.evaluate(() => window.scrollTo(0, 0));
  const boxes = () => page.evaluate((sels) => {
    const out = {};
    let ok = true;
    for (const [name, sel] of sels) {
      const b = document.querySelector(sel)?.getBoundingClientRect();
      const inside = !!b && b.width > 0 && b.height > 0 && b.left >= -0.5 && b.top >= -0.5
        && b.right <= innerWidth + 0.5 && b.bottom <= innerHeight + 0.5;
      ok = ok && inside;
      out[name] = b ? [b.left, b.top, b.width, b.height].map(Math.round) : null;
    }
    return { ok, out, size: `${innerWidth}x${innerHeight}`, scrollY };
  }, names.map((n) => [n, SEL[n]]));
  const seen = await pollUntil(async () => {
    const b = await boxes();
    return b.ok ? b : null;
  }, Date.now() + 3_000, 200);
  files[scene] = path.join(cfg.outdir, `scene-${scene}.png`);
  await page.screenshot({ path: files[scene] });
  return check(`in_view:${scene}`, !!seen, seen ?? (await boxes()));
}

/** The newest job's state on the page ("running", "assembling", "done"). */
const newestJob = (page) => page.evaluate(() => {
  const j = document.querySelector('[data-testid=job]');
  return j ? { id: j.getAttribute('data-job-id'), state: j.getAttribute('data-state'), head: j.querySelector('.job-head')?.textContent ?? '' } : null;
});

async function jobDone(page, before) {
  return pollUntil(async () => {
    const j = await newestJob(page);
    return j && j.id !== before && j.state === 'done' ? j : null;
  }, Date.now() + cfg.job_timeout_ms, 250);
}

async function main() {
  const room = `talk-${Math.random().toString(16).slice(2, 10)}`;
  const extra = ['--presenter-key', cfg.presenter_key, '--public-url', cfg.public_url];
  const { listening } = await h.startServer(cfg.dist, { timeoutMs: 20_000, extra });
  if (!check('server_listening', listening && /^127\.0\.0\.1:\d+$/.test(listening.addr), listening)) return;
  const origin = `http://${listening.addr}`;
  const natives = [1, 2].map((i) => h.startNode(`native-${i}`, origin, room, ['--workers', '1']));
  const [bp, ba, bb] = await Promise.all(['presenter', 'phone-a', 'phone-b'].map((n) => h.launchBrowser(n)));
  await h.openPage(bp, origin, `${origin}/?room=${room}&name=presenter&workers=1&presenter=${cfg.presenter_key}`);
  // Phones give no name: each gets the name it makes itself, everywhere.
  for (const b of [ba, bb]) {
    await h.openPage(b, origin, `${origin}/?room=${room}&workers=1`);
    await b.page.setViewportSize({ width: 375, height: 800 });
  }
  const pp = bp.page;
  await pp.setViewportSize({ width: 1920, height: 1080 });
  const tabs = [bp, ba, bb];
  const meshed = await fullMesh(tabs.map((b) => b.page), natives, Date.now() + cfg.mesh_timeout_ms);
  if (!check('full_mesh', meshed, { tabs: await Promise.all(tabs.map((b) => readTab(b.page))) })) return;
  const ids = await memberIds(Object.fromEntries(tabs.map((b) => [b.name, b.page])), natives);
  info.ids = ids;
  const named = await pollUntil(async () => {
    const g = await graph(pp);
    const phones = ['phone-a', 'phone-b'].map((k) => g.find((n) => n.peer === ids[k])?.label ?? '');
    return g.length === 5 && phones.every((l) => /^browser-\w{4} \(browser tab\)/.test(l)) ? phones : null;
  }, Date.now() + 5_000, 200);
  check('phones_have_generated_names', named, await graph(pp));
  const since = Object.fromEntries(natives.map((n) => [n.name, 0]));
  const eventsSince = (n) => n.events.slice(since[n.name]);
  await pp.click('h1');
  const key = (k) => pp.keyboard.press(k);

  // 1. The join panel beside the graph, counting the members.
  await key('q');
  const joined = await pollUntil(() => pp.evaluate(() => {
    const t = document.querySelector('[data-testid=qr-members]')?.textContent ?? '';
    return t === '5 members joined' ? t : null;
  }), Date.now() + 5_000, 200);
  check('qr_counts_the_members', joined, { joined });
  await inView(pp, 'qr', ['graph', 'qr']);
  await key('q');

  // 2. The form's job.
  let before = (await newestJob(pp))?.id ?? null;
  await key('s');
  const first = await jobDone(pp, before);
  check('submitted_by_key', first, await newestJob(pp));
  await inView(pp, 'submit', ['graph', 'picture', 'board', 'events']);

  // 3. A phone fails: picked on the graph by the keyboard, then `f`.
  await pp.focus(`[data-testid=graph-node][data-peer-id="${ids['phone-a']}"]`);
  await key('Enter');
  await key('f');
  const phoneGone = await pollUntil(async () => {
    const g = await graph(pp);
    const halted = await ba.page.evaluate(() => !!document.querySelector('[data-testid=halted]'));
    return g.find((n) => n.peer === ids['phone-a'])?.state === 'silent' && halted ? g : null;
  }, Date.now() + 10_000, 200);
  check('phone_failed_by_keys', phoneGone, await graph(pp));
  await inView(pp, 'fail', ['graph', 'events', 'said']);

  // 4. The liar scenario, at the form's pacing.
  await pp.fill('[data-testid=pacing]', '60');
  await pp.evaluate(() => document.activeElement?.blur());
  before = (await newestJob(pp))?.id ?? null;
  await key('2');
  const said = await pp.evaluate(() => document.querySelector('[data-testid=console-said]')?.textContent ?? '');
  const liarJob = await jobDone(pp, before);
  const liar = natives.find((n) => eventsSince(n).some((e) => e.event === 'console' && /^console: lie/.test(e.text))) ?? null;
  const marked = liar && (await pollUntil(async () => ((await graph(pp)).find((n) => n.peer === ids[liar.name])?.liar ? true : null), Date.now() + 5_000, 200));
  check('liar_scenario_at_the_forms_pacing', liarJob && /pacing 60 ms/.test(liarJob.head) && /r = 2, q = 2/.test(liarJob.head) && marked, { said, liarJob, liar: liar?.name ?? null });
  await inView(pp, 'liar', ['graph', 'picture', 'board', 'events']);

  // 5. Half of the other members fail.
  const liveBefore = (await graph(pp)).filter((n) => n.state === 'live' && n.kind !== 'me').length;
  await key('1');
  const half = Math.ceil(liveBefore / 2);
  const lost = await pollUntil(async () => {
    const silent = (await graph(pp)).filter((n) => n.state === 'silent');
    // The phone failed before, and `half` more.
    return silent.length === half + 1 ? silent.map((n) => n.peer) : null;
  }, Date.now() + 10_000, 200);
  check('lose_half_by_key', lost, { liveBefore, half, graph: await graph(pp) });
  await inView(pp, 'lose-half', ['graph', 'events', 'said']);

  // 6. The server goes away, and comes back early.
  await key('3');
  const counting = await pollUntil(() => pp.evaluate(() => {
    const t = document.querySelector('[data-testid=server-away-words]')?.textContent ?? '';
    return /back in \d+ s/.test(t) ? t : null;
  }), Date.now() + 15_000, 200);
  await inView(pp, 'server-away', ['away', 'graph']);
  await key('3');
  const back = await pollUntil(() => pp.evaluate(() => (document.querySelector('[data-testid=server-away]') ? null : true)), Date.now() + 20_000, 200);
  check('server_away_and_back_by_keys', counting && back, { counting, back });

  // 7. Pause, step, slow motion, resume, normal speed.
  const modeText = () => pp.evaluate(() => document.querySelector('[data-testid=mesh-mode]')?.textContent ?? '');
  await key(' ');
  const paused = await pollUntil(async () => (/paused/.test(await modeText()) ? await modeText() : null), Date.now() + 5_000, 100);
  await inView(pp, 'pause', ['mode', 'graph', 'board']);
  await key('ArrowRight');
  const stepped = await pollUntil(() => pp.$$eval('[data-testid=log-entry][data-event=console]', (els) => (els.some((e) => /console: step/.test(e.textContent)) ? true : null)), Date.now() + 5_000, 100);
  await key('ArrowLeft');
  const slow = await pollUntil(async () => (/[Ss]low motion/.test(await modeText()) || /slow/.test(JSON.stringify((await graph(pp)).map((n) => n.console))) ? true : null), Date.now() + 5_000, 100);
  await key(' ');
  await key('ArrowLeft');
  const normal = await pollUntil(async () => ((await pp.evaluate(() => !document.querySelector('[data-testid=mesh-mode]'))) ? true : null), Date.now() + 5_000, 100);
  check('pause_step_slow_motion_by_keys', paused && stepped && slow && normal, { paused, stepped, slow, normal });

  // 8. A moment back, the run exported, live again.
  for (let i = 0; i < 3; i++) await key('[');
  const replaying = await pollUntil(() => pp.evaluate(() => (/replaying this run/.test(document.querySelector('[data-testid=replay-banner]')?.textContent ?? '') ? true : null)), Date.now() + 3_000, 100);
  await inView(pp, 'rewind', ['replay', 'graph', 'picture']);
  const exportFile = path.join(cfg.outdir, 'talk-run.json');
  const [download] = await Promise.all([pp.waitForEvent('download', { timeout: 10_000 }), key('e')]);
  await download.saveAs(exportFile);
  files.run = exportFile;
  let exported = null;
  try {
    exported = JSON.parse(fs.readFileSync(exportFile, 'utf8'));
  } catch (e) {
    exported = { error: String(e) };
  }
  const phoneNames = (exported?.nodes ?? []).filter((n) => [ids['phone-a'], ids['phone-b']].includes(n.peer)).map((n) => n.name);
  let live = false;
  for (let i = 0; i < 400 && !live; i++) {
    await key(']');
    live = await pp.evaluate(() => !document.querySelector('[data-testid=replay-banner]'));
  }
  check('rewind_export_and_live_by_keys', replaying && phoneNames.length === 2 && phoneNames.every((n) => /^browser-\w{4}$/.test(n)) && live, { replaying, phoneNames, live, bytes: fs.statSync(exportFile).size });

  // 9. Reset: everyone back, nobody lying; a q = 2 job has no disagreement and every
  // member computes in it.
  for (const n of natives) since[n.name] = n.events.length;
  await key('r');
  const everyone = await pollUntil(async () => {
    const g = await graph(pp);
    const liveNow = g.filter((n) => n.state === 'live');
    // Nobody lies, nobody is marked: a reset forgets who was caught.
    return liveNow.length === 5 && g.every((n) => n.console.length === 0 && !n.liar) ? g : null;
  }, Date.now() + 30_000, 200);
  check('reset_brings_everyone_back', everyone, await graph(pp));
  const doneBefore = Object.fromEntries((await graph(pp)).map((n) => [n.peer, n.done]));
  await pp.fill('[data-testid=replicas]', '2');
  await pp.fill('[data-testid=quorum]', '2');
  await pp.fill('[data-testid=pacing]', '40');
  await pp.evaluate(() => document.activeElement?.blur());
  before = (await newestJob(pp))?.id ?? null;
  await key('s');
  const last = await jobDone(pp, before);
  const doneAfter = Object.fromEntries((await graph(pp)).map((n) => [n.peer, n.done]));
  const computed = Object.keys(ids).filter((k) => k !== 'presenter').map((k) => [k, (doneAfter[ids[k]] ?? 0) > (doneBefore[ids[k]] ?? 0)]);
  const disagreements = natives.flatMap((n) => eventsSince(n).filter((e) => e.event === 'task_mismatch' || e.event === 'liar_marked'));
  check('after_reset_every_member_computes_and_none_lies', last && /q = 2/.test(last.head) && computed.every(([, c]) => c) && disagreements.length === 0, { last, computed, disagreements: disagreements.slice(0, 3) });
  await inView(pp, 'reset', ['graph', 'picture', 'board', 'events', 'console']);
}

await run.run(main);
