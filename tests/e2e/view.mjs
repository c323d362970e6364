// End-to-end controller for the live view and the presenter's console (driven by
// tests/browser_view.rs).
//
// Runs INSIDE a network namespace that has only `lo`. It starts `meshwork serve` with a
// known presenter key and a public address, two `meshwork node`s and three Chromium
// tabs in one room: P opened with the key (the presenter), T a plain tab, X opened with
// a wrong key. Then:
//   1. every tab's graph shows all five members, shaped by kind; P's address bar no
//      longer shows the key;
//   2. X's console commands are refused by their target (a native node says so, and
//      stays);
//   3. keys on P: `?` lists them, `q` shows the QR code (saved as a PNG for the Rust test
//      to decode) in a panel beside the graph, which stays in view at 1920×1080 and
//      1280×720, with the count of members joined, `p` switches to the projector layout, `b` blanks the screen, space
//      pauses the mesh (the natives obey) with a button focused, which it does not
//      press, and resumes it; `[` replays a moment (a banner says so at the top of the
//      window, scrolled or not) and `]` steps forward back to live;
//   4. the liar scenario: a native lies, a job with q = 2 completes; the liar is marked on
//      P's graph and log, and P's picture is saved for comparison with `meshwork run`;
//      a screenshot with tile outlines shows the computing nodes' colours;
//   5. the console fails the other native node, and the `f` key tab T (selected on the
//      graph): both are seen to go (by their silence), T says it was failed, and P's
//      task grid shows results losing a copy and healing;
//   6. the inspector explains a clicked member and a clicked task; accessibility basics
//      (every control named, no positive tabindex); no horizontal scrolling at 375 px
//      in either layout; no console error;
//   7. the time machine scrubs back, exports the run, and another tab imports it;
//   9. `r` resets the demo: the failed native and tab come back (logged as rejoined),
//      the liar stops lying, and a q = 2 job after it has no disagreement, computed by
//      the members that were failed too;
//  10. the presenter's tab, reloaded while the natives are paused and one lies, shows
//      both (the members announce them), and `r` clears both from there;
//  11. the server goes away from the room; the mesh carries on, and a new tab is told.
//
// Input: a JSON object as argv[2]:
//   { "meshwork", "dist", "outdir", "cwd", "chromium", "profiles_dir", "timeout_ms",
//     "presenter_key", "public_url" }
// Output: progress on stderr; the LAST stdout line is the JSON summary
//   {"ok", "checks":[{name, ok, detail}], "files": {...}, "info", "console_errors", ...}.

import fs from 'node:fs';
import path from 'node:path';
import { fullMesh, memberIds, pollUntil, resizeAndFit, readGraph, readTab, sleep, startController } from './harness.mjs';

const { cfg, h, run } = startController(
  'view',
  { timeout_ms: 260_000, mesh_timeout_ms: 60_000, job_timeout_ms: 90_000 },
  ['presenter_key', 'public_url'],
);
const say = (...a) => h.say(...a);
const check = (...a) => run.check(...a);
const info = {};
const files = {};
run.summary = { info, files };

const graph = readGraph;

/** Task states of a tab's first job: [[state letter, copies]...]. */
async function cells(page) {
  const s = await page.evaluate(() => document.querySelector('[data-testid=task-grid]')?.getAttribute('data-cells') ?? '');
  return s.split(',').filter((c) => c).map((c) => [c[0], Number(c.slice(1))]);
}

const jobState = (page) => page.evaluate(() => document.querySelector('[data-testid=job]')?.getAttribute('data-state') ?? null);

async function main() {
  const room = `view-${Math.random().toString(16).slice(2, 10)}`;
  info.room = room;
  const extra = ['--presenter-key', cfg.presenter_key, '--public-url', cfg.public_url];
  const { listening } = await h.startServer(cfg.dist, { timeoutMs: 20_000, extra });
  if (!check('server_listening', listening && /^127\.0\.0\.1:\d+$/.test(listening.addr), listening)) return;
  check('server_reports_key', listening.presenter_key === cfg.presenter_key, { given: listening.presenter_key });
  const origin = `http://${listening.addr}`;
  const url = (name, more = '') => `${origin}/?room=${room}&name=${name}&workers=1${more}`;

  const natives = [1, 2].map((i) => h.startNode(`native-${i}`, origin, room, ['--workers', '1']));
  const [bp, bt, bx] = await Promise.all(['tab-p', 'tab-t', 'tab-x'].map((n) => h.launchBrowser(n)));
  await h.openPage(bp, origin, url('tab-p', `&presenter=${cfg.presenter_key}`));
  await h.openPage(bt, origin, url('tab-t'));
  await h.openPage(bx, origin, url('tab-x', '&presenter=not-the-key-0000'));
  const tabs = [bp, bt, bx];
  const pp = bp.page;
  const meshed = await fullMesh(tabs.map((b) => b.page), natives, Date.now() + cfg.mesh_timeout_ms);
  if (!check('full_mesh', meshed, { tabs: await Promise.all(tabs.map((b) => readTab(b.page))) })) return;
  const ids = await memberIds(Object.fromEntries(tabs.map((b) => [b.name, b.page])), natives);
  info.ids = ids;

  // 1. The graph: five members everywhere, shaped by kind, all live.
  for (const b of tabs) {
    const g = await pollUntil(async () => {
      const g = await graph(b.page);
      return g.length === 5 && g.every((n) => n.state === 'live') ? g : null;
    }, Date.now() + 5_000, 200);
    const kinds = (g ?? []).map((n) => `${n.kind}:${n.shape}`).sort();
    const want = ['browser:circle', 'browser:circle', 'me:circle', 'native:rect', 'native:rect'];
    check(`graph_shows_every_member:${b.name}`, g && JSON.stringify(kinds) === JSON.stringify(want), g ?? (await graph(b.page)));
  }
  const search = await pp.evaluate(() => window.location.search);
  check('key_leaves_the_address_bar', !search.includes(cfg.presenter_key) && search.includes(room), { search });
  const consoles = await Promise.all(tabs.map((b) => b.page.evaluate(() => ({
    shown: !document.querySelector('[data-testid=console]')?.hidden,
    no_key: !!document.querySelector('[data-testid=console-no-key]'),
  }))));
  check('console_shown_to_key_holders', consoles[0].shown && !consoles[0].no_key && !consoles[1].shown && consoles[2].shown && consoles[2].no_key, consoles);

  // 2. Without the key: X fails native-1 from its console; native-1 refuses and stays.
  const px = bx.page;
  await px.selectOption('[data-testid=console-target]', ids['native-1']);
  await px.click('[data-testid=console-fail]');
  const refused = await natives[0].waitFor((e) => e.event === 'console_refused', Date.now() + 5_000);
  await sleep(2_500);
  const stillThere = await Promise.all(tabs.map((b) => graph(b.page).then((g) => g.find((n) => n.peer === ids['native-1'])?.state)));
  check('console_without_key_refused', refused && refused.from === ids['tab-x'] && stillThere.every((s) => s === 'live') && !natives[0].events.some((e) => e.event === 'console'), { refused, states: stillThere });

  // 3. Keys on the presenter's tab.
  await pp.click('h1');
  const visible = (testid) => pp.evaluate((t) => {
    const el = document.querySelector(`[data-testid=${t}]`);
    return !!el && !el.hidden && el.getClientRects().length > 0;
  }, testid);
  await pp.keyboard.press('?');
  const keysShown = await pollUntil(() => visible('keys-overlay'), Date.now() + 2_000);
  const keysText = await pp.evaluate(() => document.querySelector('[data-testid=keys-overlay]')?.textContent ?? '');
  await pp.keyboard.press('Escape');
  const keysHidden = await pollUntil(async () => !(await visible('keys-overlay')), Date.now() + 2_000);
  check('key_help_lists_the_keys', keysShown && keysHidden && ['space', 'page down', 'page up', 'submit', 'scenario: a liar', 'fail the member selected', 'one moment back'].every((k) => keysText.includes(k)), { keysShown, keysHidden, keysText });
  await pp.keyboard.press('q');
  const qrShown = await pollUntil(() => visible('qr'), Date.now() + 2_000);
  const qrUrl = await pp.evaluate(() => document.querySelector('[data-testid=qr]')?.getAttribute('data-url'));
  const qrFile = path.join(cfg.outdir, 'qr.png');
  if (qrShown) {
    await pp.locator('[data-testid=qr] svg').screenshot({ path: qrFile });
    files.qr = qrFile;
  }
  info.qr_url = qrUrl;
  check('qr_code_shown', qrShown && qrUrl === `${cfg.public_url}/?room=${room}`, { qrShown, qrUrl });
  // The join panel sits beside the graph, which stays in view, and counts the members
  // (two natives and three tabs); the address is one others reach: no warning.
  const qrLayouts = [];
  for (const [w, hgt] of [[1920, 1080], [1280, 720]]) {
    await pp.setViewportSize({ width: w, height: hgt });
    qrLayouts.push(await pollUntil(() => pp.evaluate(() => {
      const box = (s) => {
        const b = document.querySelector(s)?.getBoundingClientRect();
        return b ? { x: b.x, y: b.y, w: b.width, h: b.height } : null;
      };
      const g = box('[data-testid=mesh-graph]');
      const p = box('[data-testid=qr-overlay]');
      const apart = !!g && !!p && (g.x + g.w <= p.x || p.x + p.w <= g.x);
      const inView = !!g && g.y < innerHeight && g.x >= 0 && g.x + g.w <= innerWidth;
      const members = document.querySelector('[data-testid=qr-members]')?.textContent ?? '';
      const warned = !document.querySelector('[data-testid=join-warning]')?.hidden;
      return apart && inView ? { size: `${innerWidth}x${innerHeight}`, g, p, members, warned } : null;
    }), Date.now() + 2_000));
  }
  check('qr_panel_leaves_the_graph_visible_and_counts_members', qrLayouts.every((l) => l && l.members === '5 members joined' && !l.warned), qrLayouts);
  await pp.setViewportSize({ width: 1280, height: 900 });
  await pp.keyboard.press('q');
  await pp.keyboard.press('p');
  const layout = await pollUntil(() => pp.evaluate(() => {
    const l = document.querySelector('[data-testid=app]')?.getAttribute('data-layout');
    return l === 'projector' ? l : null;
  }), Date.now() + 2_000);
  check('projector_layout_by_key', layout === 'projector', { layout });
  for (const [w, hgt] of [[1280, 900], [375, 800]]) {
    const s = await resizeAndFit(pp, w, hgt);
    check(`projector_no_horizontal_scroll:${w}`, s.fits, s);
  }
  files.projector = path.join(cfg.outdir, 'projector.png');
  await pp.screenshot({ path: files.projector, fullPage: false });
  await pp.setViewportSize({ width: 1280, height: 900 });
  await pp.keyboard.press('p');
  await pp.keyboard.press('b');
  const blank = await pollUntil(() => visible('blank'), Date.now() + 2_000);
  await pp.keyboard.press('b');
  const unblank = await pollUntil(async () => !(await visible('blank')), Date.now() + 2_000);
  check('blank_screen_by_key', blank && unblank, { blank, unblank });
  const obeyed = (n, text) => n.events.some((e) => e.event === 'console' && e.text.includes(text));
  // Space with a button focused (the projector switch, as if just clicked) pauses the
  // mesh and does not press the button.
  const layoutNow = () => pp.evaluate(() => document.querySelector('[data-testid=app]')?.getAttribute('data-layout'));
  await pp.focus('[data-testid=projector]');
  const focused = await pp.evaluate(() => document.activeElement?.getAttribute('data-testid'));
  await pp.keyboard.press(' ');
  const paused = await pollUntil(async () => {
    const banner = await visible('mesh-mode');
    return banner && natives.every((n) => obeyed(n, 'pause')) ? true : null;
  }, Date.now() + 5_000);
  const layoutAfter = await layoutNow();
  check('space_on_a_focused_button_pauses_and_presses_nothing', focused === 'projector' && paused && layoutAfter === 'standard', { focused, paused, layoutAfter });
  await pp.keyboard.press(' ');
  const resumed = await pollUntil(async () => {
    const banner = await visible('mesh-mode');
    return !banner && natives.every((n) => obeyed(n, 'resume')) ? true : null;
  }, Date.now() + 5_000);
  check('pause_and_resume_by_space', paused && resumed, { paused, resumed, natives: natives.map((n) => n.events.filter((e) => e.event === 'console').map((e) => e.text)) });

  // The time machine by keys: `[` goes a moment back, `]` forward and, past the last
  // moment recorded, live again. In one column (narrower than the stage), where the
  // page is long.
  await pp.setViewportSize({ width: 1100, height: 900 });
  const liveDisabled = () => pp.evaluate(() => document.querySelector('[data-testid=tm-live]')?.disabled ?? null);
  await pp.keyboard.press('[');
  const replaying = await pollUntil(async () => ((await liveDisabled()) === false ? true : null), Date.now() + 2_000);
  // While a moment is replayed a banner says so at the top of the window, however far
  // down the page is scrolled.
  const bannerBox = () => pp.evaluate(() => {
    const b = document.querySelector('[data-testid=replay-banner]')?.getBoundingClientRect();
    return b ? { top: b.top, bottom: b.bottom, vh: innerHeight, text: document.querySelector('[data-testid=replay-banner]').textContent } : null;
  });
  await pp.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
  const banner = await pollUntil(async () => {
    const b = await bannerBox();
    return b && b.top >= 0 && b.bottom <= b.vh && /replaying this run: moment \d+ of \d+/.test(b.text) ? b : null;
  }, Date.now() + 2_000);
  await pp.evaluate(() => window.scrollTo(0, 0));
  let forward = 0;
  let live = false;
  while (!live && forward < 300) {
    await pp.keyboard.press(']');
    forward += 1;
    live = (await liveDisabled()) === true;
  }
  const bannerGone = (await bannerBox()) === null;
  check('time_machine_by_keys', replaying === true && live && banner !== null && bannerGone, { replaying, live, forward, banner, bannerGone });
  await pp.setViewportSize({ width: 1280, height: 900 });

  // 4. The liar scenario: a native lies, a job with q = 2 catches it.
  await pp.click('[data-testid=scenario-liar]');
  const said = await pp.evaluate(() => document.querySelector('[data-testid=console-said]')?.textContent ?? '');
  info.scenario = said;
  const liar = natives.find((n) => obeyed(n, 'lie')) ?? null;
  let busiest = null;
  const done = await pollUntil(async () => {
    const rate = await pp.evaluate(() => ({
      total: document.querySelector('[data-testid=rate-total]')?.textContent ?? '',
      validated_per_s: Number(document.querySelector('[data-testid=rate-total]')?.getAttribute('data-validated-per-s') ?? 0),
      nodes: [...document.querySelectorAll('[data-testid=rates] li')].map((l) => l.textContent),
    }));
    const n = rate.validated_per_s;
    if (n > 0 && (!busiest || n > busiest.n)) busiest = { n, ...rate };
    return (await jobState(pp)) === 'done' ? true : null;
  }, Date.now() + cfg.job_timeout_ms, 250);
  check('numbers_shown', busiest && busiest.nodes.length >= 2 && /as many results per second as the fastest of them alone/.test(busiest.total), busiest);
  if (!check('liar_job_done', done && liar, { said, job: await jobState(pp), liar: liar?.name ?? null })) return;
  // The stage: at 1920×1080 and at 1280×720 the graph, the current job's picture and its
  // task board (large enough to read from the back of a room), the console and the last
  // events are all inside the window, unscrolled.
  const stage = [];
  for (const [w, hgt] of [[1920, 1080], [1280, 720]]) {
    await pp.setViewportSize({ width: w, height: hgt });
    await pp.evaluate(() => window.scrollTo(0, 0));
    const fit = await pollUntil(() => pp.evaluate(() => {
      const boxes = {};
      let ok = true;
      for (const [name, sel] of [['graph', '[data-testid=mesh-graph]'], ['picture', '[data-testid=job-canvas]'], ['board', '[data-testid=task-grid]'], ['console', '[data-testid=console]'], ['events', 'section.log']]) {
        const b = document.querySelector(sel)?.getBoundingClientRect();
        const inside = !!b && b.width > 0 && b.height > 0 && b.left >= 0 && b.top >= 0 && b.right <= innerWidth + 0.5 && b.bottom <= innerHeight + 0.5;
        ok = ok && inside;
        boxes[name] = b ? [b.left, b.top, b.width, b.height].map(Math.round) : null;
      }
      // Large: the picture at least a third of the window's height, a task's square on
      // the board at least 20 px.
      const big = boxes.picture && boxes.picture[3] >= innerHeight / 3 && boxes.board && boxes.board[2] / 16 >= 20;
      return ok && big ? { size: `${innerWidth}x${innerHeight}`, boxes } : null;
    }), Date.now() + 3_000, 200);
    if (fit) {
      const file = path.join(cfg.outdir, `stage-${w}x${hgt}.png`);
      await pp.screenshot({ path: file });
      files[`stage_${w}`] = file;
    }
    stage.push(fit ?? { size: `${w}x${hgt}`, missed: true });
  }
  check('stage_fits_one_screen', stage.every((f) => !f.missed), stage);
  await pp.setViewportSize({ width: 1280, height: 900 });
  const marked = await pollUntil(async () => {
    const g = await graph(pp);
    const node = g.find((n) => n.peer === ids[liar.name]);
    return node?.liar ? node : null;
  }, Date.now() + 5_000, 200);
  const logLiar = await pp.$$eval('[data-testid=log-entry]', (els) => els.map((e) => e.textContent).filter((t) => /reported a wrong result/.test(t)));
  check('liar_marked', marked && logLiar.length > 0 && logLiar[0].includes(liar.name), { marked, log: logLiar.slice(0, 3) });
  await pp.uncheck('[data-testid=outlines]');
  await sleep(150);
  const dataUrl = await pp.locator('[data-testid=job-canvas]').evaluate((c) => c.toDataURL('image/png'));
  files.liar_canvas = path.join(cfg.outdir, 'liar-job-canvas.png');
  fs.writeFileSync(files.liar_canvas, Buffer.from(dataUrl.split(',')[1], 'base64'));
  await pp.check('[data-testid=outlines]');
  await sleep(150);
  // The outlines are thin and translucent over the picture (the picture comes first):
  // their colours are read from the overlay canvas itself, not from a screenshot.
  files.outlines = path.join(cfg.outdir, 'outlines.png');
  const overlayUrl = await pp.locator('.canvas canvas.overlay').evaluate((c) => c.toDataURL('image/png'));
  fs.writeFileSync(files.outlines, Buffer.from(overlayUrl.split(',')[1], 'base64'));
  const canvasBox = pp.locator('.canvas');
  await canvasBox.scrollIntoViewIfNeeded();
  files.outlines_screen = path.join(cfg.outdir, 'outlines-screen.png');
  await canvasBox.screenshot({ path: files.outlines_screen });
  // Which nodes computed validated tiles (by their colour), for the screenshot check.
  info.colours = Object.fromEntries((await graph(pp)).map((n) => [n.peer, n.fill]));
  info.liar = ids[liar.name];
  info.computed_by = await pp.evaluate(() => {
    const out = {};
    for (const g of document.querySelectorAll('[data-testid=graph-node]')) out[g.getAttribute('data-peer-id')] = Number(g.getAttribute('data-done'));
    return out;
  });

  // 6 (part). The inspector: a member, then a task.
  await pp.click(`[data-testid=graph-node][data-peer-id="${ids['native-2']}"] .shape`);
  const aboutNode = await pollUntil(() => pp.evaluate(() => {
    const t = document.querySelector('[data-testid=inspector]')?.textContent ?? '';
    return /native-2 \(a native node/.test(t) ? t : null;
  }), Date.now() + 3_000);
  const grid = pp.locator('[data-testid=task-grid]');
  await grid.scrollIntoViewIfNeeded();
  await grid.click({ position: { x: 3, y: 3 } });
  const aboutTask = await pollUntil(() => pp.evaluate(() => {
    const t = document.querySelector('[data-testid=inspector]')?.textContent ?? '';
    return /^task 0 of job .*validated: \d+ matching results \(q = 2\)/.test(t) ? t : null;
  }), Date.now() + 3_000);
  check('inspector_explains', aboutNode && aboutTask, { aboutNode, aboutTask, now: await pp.evaluate(() => document.querySelector('[data-testid=inspector]')?.textContent) });

  // 5. The console fails the other native and tab T; both go, copies heal.
  const other = natives.find((n) => n !== liar);
  const copies = () => pp.evaluate(() => {
    const el = document.querySelector('[data-testid=copies]');
    return { lost: Number(el?.getAttribute('data-lost') ?? 0), healed: Number(el?.getAttribute('data-healed') ?? 0), text: el?.textContent ?? '' };
  });
  await pp.selectOption('[data-testid=console-target]', ids[other.name]);
  await pp.click('[data-testid=console-fail]');
  // Tab T by the keys a remote-holding presenter uses: a click on it on the graph, `f`.
  await pp.click(`[data-testid=graph-node][data-peer-id="${ids['tab-t']}"] .shape`);
  await pp.keyboard.press('f');
  const gone = await pollUntil(async () => {
    const g = await graph(pp);
    const st = (peer) => g.find((n) => n.peer === peer)?.state ?? 'removed';
    // Failed, they are silent: declared gone (their work moved), and taken back if they
    // ever speak again.
    return st(ids[other.name]) === 'silent' && st(ids['tab-t']) === 'silent' ? g : null;
  }, Date.now() + 10_000, 100);
  const lostShown = await copies();
  const halted = await bt.page.evaluate(() => document.querySelector('[data-testid=halted]')?.textContent ?? '');
  const heardSilence = (await pp.$$eval('[data-testid=log-entry][data-event=left]', (els) => els.map((e) => [e.getAttribute('data-peer'), e.getAttribute('data-reason')])));
  const byHeartbeat = [ids[other.name], ids['tab-t']].every((p) => heardSilence.some(([peer, reason]) => peer === p && reason === 'heartbeat'));
  check('console_fails_a_native_and_a_tab', gone && byHeartbeat && /failed this node/.test(halted) && other.events.some((e) => e.event === 'console' && /fail/.test(e.text)), { graph: gone ?? (await graph(pp)), halted, left: heardSilence });
  // Their results lost a copy (shown), then every one is back to r copies (shown).
  const healed = await pollUntil(async () => {
    const c = await copies();
    return c.lost > 0 && c.healed === c.lost ? c : null;
  }, Date.now() + 15_000, 100);
  const short = (await cells(pp)).filter(([s, r]) => s === 'v' && r < 2).length;
  check('replicas_lost_and_healed', healed && short === 0, { when_gone: lostShown, now: await copies(), short_now: short });
  const silentNow = (await graph(pp)).filter((n) => n.state === 'silent');
  check('graph_shows_failed_members_silent', silentNow.length === 2 && silentNow.every((n) => /silent \d+ s: its work moved/.test(n.note)), await graph(pp));

  // 7. The time machine: scrub back, export, import elsewhere.
  const slide = (page, i) => page.$eval('[data-testid=tm-slider]', (el, v) => {
    el.value = String(v);
    el.dispatchEvent(new Event('input', { bubbles: true }));
  }, i);
  const frames = Number(await pp.$eval('[data-testid=tm-slider]', (el) => el.max)) + 1;
  const progressAt = async (i) => {
    await slide(pp, i);
    await sleep(60);
    return pp.evaluate(() => {
      const m = (document.querySelector('[data-testid=job-progress]')?.textContent ?? '').match(/(\d+) \/ (\d+)/);
      const cells = (document.querySelector('[data-testid=task-grid]')?.getAttribute('data-cells') ?? '').split(',').filter((c) => c[0] === 'v').length;
      return { validated: m ? Number(m[1]) : null, tasks: m ? Number(m[2]) : null, cells, members: document.querySelectorAll('[data-testid=graph-node]').length };
    });
  };
  const first = await progressAt(0);
  // Binary search for a moment with the job half done (validation only grows).
  let lo = 0;
  let hi = frames - 1;
  let middle = null;
  while (lo <= hi) {
    const mid = Math.floor((lo + hi) / 2);
    const p = await progressAt(mid);
    if (p.validated === null || p.validated < p.tasks / 4) lo = mid + 1;
    else if (p.validated > (3 * p.tasks) / 4) hi = mid - 1;
    else { middle = { frame: mid, ...p }; break; }
  }
  const status = await pp.evaluate(() => document.querySelector('[data-testid=tm-status]')?.textContent ?? '');
  check('time_machine_scrubs_back', frames > 10 && first.validated === null && middle && middle.cells === middle.validated && /replaying this run/.test(status), { frames, first, middle, status });
  const exportFile = path.join(cfg.outdir, 'run.json');
  const [download] = await Promise.all([pp.waitForEvent('download', { timeout: 10_000 }), pp.click('[data-testid=tm-export]')]);
  await download.saveAs(exportFile);
  files.run = exportFile;
  await pp.click('[data-testid=tm-live]');
  const liveAgain = await pollUntil(async () => ((await jobState(pp)) === 'done' ? true : null), Date.now() + 3_000, 100);
  // A bad file is refused with the reason; the run imports into tab X and replays.
  await px.setInputFiles('[data-testid=tm-import]', { name: 'bad.json', mimeType: 'application/json', buffer: Buffer.from('{"version": 1, "frames": "no"}') });
  const bad = await pollUntil(() => px.evaluate(() => document.querySelector('[data-testid=tm-error]')?.textContent || null), Date.now() + 3_000);
  await px.setInputFiles('[data-testid=tm-import]', exportFile);
  const replayed = await pollUntil(() => px.evaluate(() => {
    const status = document.querySelector('[data-testid=tm-status]')?.textContent ?? '';
    const m = (document.querySelector('[data-testid=job-progress]')?.textContent ?? '').match(/(\d+) \/ (\d+)/);
    return /imported run/.test(status) && m && m[1] === m[2] ? { status, progress: m[0] } : null;
  }), Date.now() + 10_000, 100);
  await sleep(500); // the picture in the file loads asynchronously
  if (replayed) {
    const url = await px.locator('[data-testid=job-canvas]').evaluate((c) => c.toDataURL('image/png'));
    files.imported_canvas = path.join(cfg.outdir, 'imported-canvas.png');
    fs.writeFileSync(files.imported_canvas, Buffer.from(url.split(',')[1], 'base64'));
  }
  check('run_exported_and_imported', liveAgain && bad && /not a Meshwork recording/.test(bad) && replayed && fs.statSync(exportFile).size > 1000, { liveAgain, bad, replayed, bytes: fs.statSync(exportFile).size });

  // The log links each event to the guide's explanation of it.
  await pp.click('[data-testid=log-entry][data-event=left] [data-testid=log-why]');
  const topic = await pollUntil(() => pp.evaluate(() => {
    const d = document.getElementById('guide-failure');
    return d && d.open ? d.querySelector('summary')?.textContent : null;
  }), Date.now() + 2_000);
  const elsewhere = await pp.$$eval('[data-testid=log-entry][data-event=left]', (els) => els.map((e) => e.textContent).filter((t) => /all of it elsewhere \d+ ms after/.test(t)));
  check('events_link_to_the_guide', topic && /Failure detection/.test(topic), { topic });
  check('departure_to_work_elsewhere_timed', elsewhere.length > 0, elsewhere);

  // 6. Accessibility basics and layouts.
  const a11y = await pp.evaluate(() => {
    const unnamed = [];
    for (const el of document.querySelectorAll('button, select, input, [role=button]')) {
      if (el.closest('[hidden]')) continue;
      const name = (el.getAttribute('aria-label') || el.textContent || '').trim()
        || (el.id && document.querySelector(`label[for="${el.id}"]`)?.textContent.trim())
        || el.closest('label')?.textContent.trim();
      if (!name) unnamed.push(el.outerHTML.slice(0, 80));
    }
    const positive = [...document.querySelectorAll('[tabindex]')].filter((e) => Number(e.getAttribute('tabindex')) > 0).length;
    return { unnamed, positive };
  });
  check('controls_labelled_and_focus_order', a11y.unnamed.length === 0 && a11y.positive === 0, a11y);
  const phone = await resizeAndFit(px, 375, 800);
  check('phone_no_horizontal_scroll', phone.fits, phone);
  files.presenter = path.join(cfg.outdir, 'presenter.png');
  await pp.screenshot({ path: files.presenter, fullPage: true });

  // 9. Reset (`r`): the failed native and tab T come back, and the others see them
  // return; the liar stops lying. Then a job with q = 2 runs with no disagreement, and
  // the members that were failed compute in it.
  const mark = Object.fromEntries(natives.map((n) => [n.name, n.events.length]));
  const since = (n) => n.events.slice(mark[n.name]);
  const doneBefore = Object.fromEntries((await graph(pp)).map((n) => [n.peer, n.done]));
  const rejoined = () => pp.$$eval('[data-testid=log-entry][data-event=joined]', (els) => els.filter((e) => /rejoined under the same id/.test(e.textContent)).map((e) => e.getAttribute('data-peer')));
  const rejoinedBefore = await rejoined();
  await pp.click('h1');
  await pp.keyboard.press('r');
  const back = await pollUntil(async () => {
    const g = await graph(pp);
    const st = (k) => g.find((n) => n.peer === ids[k])?.state;
    const live = [other.name, 'tab-t', liar.name, 'tab-x'].every((k) => st(k) === 'live');
    const halted = await bt.page.evaluate(() => !!document.querySelector('[data-testid=halted]'));
    const clean = g.every((n) => n.console.length === 0);
    return live && !halted && clean && since(other).some((e) => e.event === 'revived') ? g : null;
  }, Date.now() + 20_000, 200);
  const honest = since(liar).some((e) => e.event === 'console' && /stop lying/.test(e.text));
  const returned = await rejoined();
  const count = (list, p) => list.filter((x) => x === p).length;
  const seenBack = [ids[other.name], ids['tab-t']].every((p) => count(returned, p) > count(rejoinedBefore, p));
  check('reset_revives_the_failed_and_ends_the_lie', back && honest && seenBack, { returned, rejoinedBefore, graph: back ?? (await graph(pp)), honest, said: await pp.evaluate(() => document.querySelector('[data-testid=console-said]')?.textContent) });
  await pp.fill('[data-testid=replicas]', '2');
  await pp.fill('[data-testid=quorum]', '2');
  await pp.click('h1');
  const jobsBefore = await pp.$$eval('[data-testid=job]', (els) => els.length);
  await pp.keyboard.press('s');
  const afterReset = await pollUntil(async () => {
    const jobs = await pp.$$eval('[data-testid=job]', (els) => els.map((e) => e.getAttribute('data-state')));
    return jobs.length > jobsBefore && jobs[0] === 'done' ? jobs : null;
  }, Date.now() + cfg.job_timeout_ms, 250);
  const mismatches = natives.flatMap((n) => since(n).filter((e) => e.event === 'task_mismatch' || e.event === 'liar_marked'));
  const nativesComputed = natives.every((n) => since(n).some((e) => e.event === 'task_computed'));
  const doneAfter = Object.fromEntries((await graph(pp)).map((n) => [n.peer, n.done]));
  const tabComputed = doneAfter[ids['tab-t']] > (doneBefore[ids['tab-t']] ?? 0);
  check('after_reset_every_member_computes_and_none_lies', afterReset && mismatches.length === 0 && nativesComputed && tabComputed, { afterReset, mismatches: mismatches.slice(0, 3), nativesComputed, doneBefore, doneAfter });

  // 9b. A scenario whose precondition fails says so and starts nothing (two natives lie,
  // and two liars tell the same lie); a job that cannot validate says why within 10 s.
  for (const n of natives) {
    await pp.selectOption('[data-testid=console-target]', ids[n.name]);
    await pp.click('[data-testid=console-lie]');
  }
  const twoLiars = await pollUntil(async () => {
    const g = await graph(pp);
    return natives.every((n) => g.find((m) => m.peer === ids[n.name])?.console.includes('lying')) ? g : null;
  }, Date.now() + 5_000, 100);
  const jobCount = () => pp.$$eval('[data-testid=job]', (els) => els.length);
  const jobsBeforeScenario = await jobCount();
  await pp.click('h1');
  await pp.keyboard.press('2');
  const refusal = await pp.evaluate(() => document.querySelector('[data-testid=console-said]')?.textContent ?? '');
  await sleep(1_000);
  const othersHonest = (await graph(pp)).filter((n) => !natives.some((m) => ids[m.name] === n.peer)).every((n) => !n.console.includes('lying'));
  check('scenario_precondition_refused', twoLiars && /starts nothing/.test(refusal) && /already lying/.test(refusal) && (await jobCount()) === jobsBeforeScenario && othersHonest, { refusal, jobs: await jobCount(), jobsBeforeScenario, othersHonest });
  await pp.keyboard.press('r');
  await pollUntil(async () => ((await graph(pp)).every((n) => n.console.length === 0) ? true : null), Date.now() + 10_000, 200);
  // q = 6 in a mesh of five: nothing can validate, and the job says so.
  await pp.selectOption('[data-testid=kernel]', 'pi');
  await pp.fill('[data-testid=samples]', '1000');
  await pp.fill('[data-testid=tasks]', '4');
  await pp.fill('[data-testid=replicas]', '6');
  await pp.fill('[data-testid=quorum]', '6');
  await pp.click('h1');
  const stallFrom = Date.now();
  await pp.keyboard.press('s');
  const stalled = await pollUntil(() => pp.evaluate(() => document.querySelector('[data-testid=job-stalled]')?.textContent || null), stallFrom + 10_000, 200);
  const stallLogged = await pp.$$eval('[data-testid=log-entry][data-event=warning]', (els) => els.some((e) => /no task validated for \d+ s/.test(e.textContent)));
  check('stalled_job_says_why', stalled && /5 members, and a task needs 6 matching results/.test(stalled) && stallLogged, { stalled, after_ms: Date.now() - stallFrom, stallLogged });
  await pp.selectOption('[data-testid=kernel]', 'mandelbrot');
  await pp.fill('[data-testid=replicas]', '2');
  await pp.fill('[data-testid=quorum]', '2');

  // 10. A presenter's tab reloaded while the natives are paused and one lies shows both:
  // the members announce what the console set.
  await pp.selectOption('[data-testid=console-target]', ids[liar.name]);
  await pp.click('[data-testid=console-lie]');
  await pp.click('h1');
  await pp.keyboard.press(' ');
  const pausedNow = await pollUntil(() => natives.every((n) => since(n).some((e) => e.event === 'console' && /pause/.test(e.text))) || null, Date.now() + 5_000);
  await pp.reload();
  const announced = await pollUntil(async () => {
    const g = await graph(pp);
    const of = (k) => g.find((n) => n.peer === ids[k]);
    const banner = await pp.evaluate(() => document.querySelector('[data-testid=mesh-mode]')?.textContent ?? '');
    const ok = g.length >= 5 && natives.every((n) => of(n.name)?.console.includes('paused'))
      && of(liar.name)?.console.includes('lying') && !of(other.name)?.console.includes('lying')
      && /paused/.test(banner);
    return ok ? { banner, natives: natives.map((n) => of(n.name)) } : null;
  }, Date.now() + 20_000, 200);
  files.reloaded = path.join(cfg.outdir, 'reloaded-presenter.png');
  await pp.screenshot({ path: files.reloaded });
  check('reloaded_presenter_sees_paused_and_lying', pausedNow && announced, { announced, graph: await graph(pp) });
  // Reset again: nothing paused, nobody lying, on the reloaded tab's word too.
  await pp.click('h1');
  await pp.keyboard.press('r');
  const plain = await pollUntil(async () => {
    const g = await graph(pp);
    const banner = await pp.evaluate(() => !!document.querySelector('[data-testid=mesh-mode]'));
    return g.length >= 5 && g.every((n) => n.console.length === 0) && !banner ? g : null;
  }, Date.now() + 10_000, 200);
  check('reset_from_a_reloaded_tab', plain, await graph(pp));

  // 11. The server goes away (scenario): every socket to it closes, the mesh carries on,
  // and nobody can join the room meanwhile.
  await pp.click('[data-testid=scenario-away]');
  const statusOf = (page) => page.evaluate(() => document.querySelector('[data-testid=status]')?.textContent ?? '');
  const closedEverywhere = await pollUntil(async () => {
    const st = await Promise.all([pp, px].map(statusOf));
    const native = liar.events.some((e) => e.event === 'signaling_closed');
    // The page says so, or (having tried to resume at once) that the room is away.
    return st.every((t) => /signaling away, mesh still working|took the server away/.test(t)) && native ? st : null;
  }, Date.now() + 5_000, 100);
  await sleep(3_000); // longer than the heartbeat timeout: a dead mesh would show it
  const stillMeshed = (await graph(pp)).filter((n) => n.state === 'live').map((n) => n.peer).sort();
  const late = await h.openPage(bt, origin, url('tab-late'));
  const refusedJoin = await pollUntil(() => statusOf(late).then((t) => (/took the server away/.test(t) ? t : null)), Date.now() + 5_000, 100);
  check('server_away_mesh_carries_on', closedEverywhere && stillMeshed.length === 5 && stillMeshed.includes(ids['tab-x']) && stillMeshed.includes(ids[liar.name]) && refusedJoin, { closedEverywhere, stillMeshed, refusedJoin });
  // Every tab says so in a banner that counts down to the server's return, and the
  // presenter brings it back early: the members resume and a new tab joins at once.
  const awayText = (page) => page.evaluate(() => document.querySelector('[data-testid=server-away-words]')?.textContent ?? '');
  const secsLeft = (t) => Number((t.match(/back in (\d+) s/) ?? [])[1] ?? NaN);
  const countdown = await pollUntil(async () => {
    const t = await Promise.all([pp, px].map(awayText));
    return t.every((x) => Number.isFinite(secsLeft(x))) ? t : null;
  }, Date.now() + 15_000, 200);
  await sleep(2_500);
  const later = await awayText(pp);
  const counting = !!countdown && secsLeft(later) <= secsLeft(countdown[0]) - 2;
  files.server_away = path.join(cfg.outdir, 'server-away.png');
  await pp.screenshot({ path: files.server_away });
  const backMark = liar.events.length;
  await pp.click('[data-testid=server-back]');
  const serverBack = await pollUntil(async () => {
    const banners = await Promise.all([pp, px].map((p) => p.evaluate(() => !!document.querySelector('[data-testid=server-away]'))));
    return banners.every((b) => !b) && liar.events.slice(backMark).some((e) => e.event === 'signaling_back') ? true : null;
  }, Date.now() + 20_000, 200);
  const newcomer = await h.openPage(bt, origin, url('tab-new'));
  const joinedNow = await pollUntil(() => readTab(newcomer).then((t) => (t.count === '4' ? t : null)), Date.now() + 20_000, 200);
  check('server_away_counts_down_and_comes_back_early', counting && serverBack && joinedNow, { countdown, later, serverBack, joinedNow: joinedNow ?? (await readTab(newcomer)) });
}

await run.run(main);
