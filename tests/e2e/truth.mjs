// End-to-end controller: what the page concludes is true (driven by tests/browser_truth.rs).
//
// Runs INSIDE a network namespace that has only `lo`: every address used here is
// 127.0.0.1. A `meshwork serve` with a presenter key, two `meshwork node`s and two
// Chromium tabs: the presenter's (P) and one the presenter makes lie (L). Then:
//   1. a q = 1 job while L lies; L's page is frozen (its renderer SIGSTOPped, as a busy
//      or suspended tab would be) for 5 s with tasks in hand, so that others compute them too and L's late results
//      disagree: nobody, liar included, gets a ✗ on any tab or in a node's --json; the
//      disagreement is shown, and Why? says that with q = 1 the first report is
//      believed; L comes back under its id;
//   2. a q = 2 job while L still lies: L, and only L, is marked, on every tab and by
//      every native; 20 s after the job is done every square still shows r copies and
//      no figure got worse;
//   3. the page's figures, read from data- attributes at several moments of that job,
//      add up (waiting + running + validated = tasks, results ≥ q × validated, the
//      graph's results equal the jobs' results, members' results per second add up);
//   4. four more natives join (8 members): each tab shows each member in the colour the
//      server gave it, the same on both tabs (the Rust test checks every pair differs
//      by CIEDE2000 ≥ 20);
//   5. at 1920×1080, 1280×720 and 375×800 every graph label lies inside the graph,
//      overlaps no other label nor the legend, and its text is at least 12 px tall; a
//      way to start a job is in the first screen. Screenshots of each are saved.
//
// Input (argv[2] JSON): { meshwork, dist, outdir, cwd, chromium, profiles_dir,
//   timeout_ms, presenter_key, job: { size, tiles, max_iter, pacing_ms } }.
// Output: progress on stderr; the LAST stdout line is the JSON summary.

import path from 'node:path';
import { fullMesh, memberIds, pollUntil, readGraph, readTab, sleep, startController } from './harness.mjs';

const { cfg, h, run } = startController(
  'truth',
  // Copies are back within the re-replication time: a target that never confirms a
  // copy is given up on after 10 tries a second apart, and the next one gets it.
  { timeout_ms: 260_000, mesh_timeout_ms: 60_000, job_timeout_ms: 90_000, copies_watch_ms: 20_000, copies_back_ms: 30_000 },
  ['presenter_key', 'job'],
);
const say = (...a) => h.say(...a);
const check = (...a) => run.check(...a);
const info = {};
const files = {};
run.summary = { info, files };

const graph = readGraph;

/** Every job card: id, state, q, the summary's figures and the progress line. */
function jobs(page) {
  return page.$$eval('[data-testid=job]', (els) =>
    els.map((j) => {
      const s = j.querySelector('[data-testid=task-summary]');
      const n = (a) => Number(s?.getAttribute(a) ?? NaN);
      const m = (j.querySelector('[data-testid=job-progress]')?.textContent ?? '').match(/(\d+) \/ (\d+)/);
      return {
        id: j.getAttribute('data-job-id'),
        state: j.getAttribute('data-state'),
        tasks: n('data-tasks'),
        waiting: n('data-waiting'),
        running: n('data-running'),
        validated: n('data-validated'),
        short: n('data-short'),
        results: n('data-results'),
        disagreed: n('data-disagreed'),
        quorum: n('data-quorum'),
        replication: n('data-replication'),
        disagreed_tasks: (s?.getAttribute('data-disagreed-tasks') ?? '').split(',').filter((x) => x).map(Number),
        progress_validated: m ? Number(m[1]) : null,
        progress_tasks: m ? Number(m[2]) : null,
        summary: s?.textContent ?? '',
        cells: j.querySelector('[data-testid=task-grid]')?.getAttribute('data-cells') ?? '',
      };
    }),
  );
}

/** The figures of one job that must add up, with what does not. */
function figuresWrong(j) {
  const wrong = [];
  if (j.waiting + j.running + j.validated !== j.tasks) wrong.push('waiting + running + validated ≠ tasks');
  if (j.validated !== j.progress_validated || j.tasks !== j.progress_tasks) wrong.push('grid and progress disagree');
  if (j.results < j.quorum * j.validated) wrong.push('fewer results than q × validated');
  if (j.short > j.validated) wrong.push('more tasks short of copies than validated');
  if (j.disagreed > j.validated) wrong.push('more disagreements than validated tasks');
  const cells = j.cells.split(',').filter((c) => c);
  if (cells.length !== j.tasks || cells.filter((c) => c[0] === 'v').length !== j.validated) wrong.push('cells and counts disagree');
  return wrong;
}

async function inspect(page, task) {
  // A click on a square of the grid selects its task.
  const grid = page.locator('[data-testid=task-grid]').first();
  await grid.scrollIntoViewIfNeeded();
  const cols = await grid.evaluate((c) => c.width / 16);
  const [x, y] = [(task % cols) * 16 + 8, Math.floor(task / cols) * 16 + 8];
  const box = await grid.boundingBox();
  const scale = box.width / (await grid.evaluate((c) => c.width));
  await grid.click({ position: { x: x * scale, y: y * scale } });
  return pollUntil(() => page.evaluate((t) => {
    const w = document.querySelector('[data-testid=inspector]')?.textContent ?? '';
    return w.startsWith(`task ${t} of job`) ? w : null;
  }, task), Date.now() + 3_000);
}

async function console_(page, target, testid) {
  await page.selectOption('[data-testid=console-target]', target);
  await page.click(`[data-testid=${testid}]`);
}

async function submit(page, fields) {
  for (const [testid, value] of Object.entries(fields)) await page.fill(`[data-testid=${testid}]`, String(value));
  await page.click('[data-testid=submit]');
}

/** Every label's box, the graph's and the legend's, and the label texts' heights. */
function labelBoxes(page) {
  return page.evaluate(() => {
    const r = (e) => {
      const b = e.getBoundingClientRect();
      return { x: b.left, y: b.top, w: b.width, h: b.height };
    };
    const svg = document.querySelector('[data-testid=mesh-graph]');
    const legend = document.querySelector('[data-testid=graph-legend]');
    return {
      svg: r(svg),
      legend: r(legend),
      labels: [...document.querySelectorAll('[data-testid=graph-label]')].map((g) => ({
        box: r(g),
        texts: [...g.querySelectorAll('text')].map((t) => ({ text: t.textContent, h: t.getBoundingClientRect().height, px: parseFloat(getComputedStyle(t).fontSize) * (svg.getBoundingClientRect().width / svg.viewBox.baseVal.width) })),
      })),
      start: (() => {
        const b = document.querySelector('[data-testid=start-job]')?.getBoundingClientRect();
        return b ? { top: b.top, bottom: b.bottom } : null;
      })(),
      height: window.innerHeight,
    };
  });
}

const overlap = (a, b) => a.x < b.x + b.w - 0.5 && b.x < a.x + a.w - 0.5 && a.y < b.y + b.h - 0.5 && b.y < a.y + a.h - 0.5;
const inside = (a, o) => a.x >= o.x - 0.5 && a.y >= o.y - 0.5 && a.x + a.w <= o.x + o.w + 0.5 && a.y + a.h <= o.y + o.h + 0.5;

async function main() {
  const room = `truth-${Math.random().toString(16).slice(2, 10)}`;
  info.room = room;
  const { listening } = await h.startServer(cfg.dist, { extra: ['--presenter-key', cfg.presenter_key] });
  if (!check('server_listening', listening && /^127\.0\.0\.1:\d+$/.test(listening.addr), listening)) return;
  const origin = `http://${listening.addr}`;
  const url = (name, more = '') => `${origin}/?room=${room}&name=${name}&workers=1${more}`;
  const natives = [1, 2].map((i) => h.startNode(`native-${i}`, origin, room, ['--workers', '1']));
  const [bp, bl] = await Promise.all(['tab-p', 'tab-l'].map((n) => h.launchBrowser(n)));
  await h.openPage(bp, origin, url('tab-p', `&presenter=${cfg.presenter_key}`));
  await h.openPage(bl, origin, url('tab-l'));
  const [pp, pl] = [bp.page, bl.page];
  const meshed = await fullMesh([pp, pl], natives, Date.now() + cfg.mesh_timeout_ms);
  if (!check('full_mesh', meshed, { tabs: await Promise.all([pp, pl].map(readTab)) })) return;
  const ids = await memberIds({ 'tab-p': pp, 'tab-l': pl }, natives);
  info.ids = ids;

  // 1. q = 1 with a liar that is frozen for a while with tasks in hand.
  await console_(pp, ids['tab-l'], 'console-lie');
  const lying = await pollUntil(() => pl.evaluate(() => [...document.querySelectorAll('[data-testid=log-entry]')].some((e) => /console: lie/.test(e.textContent)) || null), Date.now() + 5_000);
  if (!check('liar_obeys', lying, null)) return;
  const job = { size: cfg.job.size, 'max-iter': cfg.job.max_iter, tiles: cfg.job.tiles, replicas: 2, pacing: cfg.job.pacing_ms };
  await submit(pp, { ...job, quorum: 1 });
  // Once L computes, freeze it for 5 s: its workers finish what they hold, the others
  // take its tasks over meanwhile, and its results arrive late.
  const busy = await pollUntil(async () => {
    const me = (await graph(pl)).find((n) => n.kind === 'me');
    return me && me.done >= 2 ? me : null;
  }, Date.now() + cfg.job_timeout_ms, 50);
  if (!check('liar_computes', busy, await graph(pl))) return;
  // (CDP's Page.setWebLifecycleState does not freeze a visible page.)
  const renderers = (await h.renderers(bl)).killed;
  info.frozen_renderers = renderers;
  for (const pid of renderers) process.kill(pid, 'SIGSTOP');
  say('froze tab-l', renderers.join(','));
  await sleep(5_000);
  for (const pid of renderers) process.kill(pid, 'SIGCONT');
  say('thawed tab-l');
  const q1 = async (page) => (await jobs(page)).find((j) => j.quorum === 1);
  const q1done = await pollUntil(async () => {
    const all = await Promise.all([pp, pl].map(q1));
    return all.every((j) => j?.state === 'done') ? all : null;
  }, Date.now() + cfg.job_timeout_ms, 200);
  if (!check('q1_job_done', q1done, await Promise.all([pp, pl].map(q1)))) return;
  // L's late results arrive after it is back: the disagreement shows on P.
  const disagreed = await pollUntil(async () => {
    const j = await q1(pp);
    return j.disagreed > 0 ? j : null;
  }, Date.now() + 10_000, 200);
  check('q1_disagreement_shown', disagreed, await q1(pp));
  if (disagreed) {
    const words = await inspect(pp, disagreed.disagreed_tasks[0]);
    info.q1_why = words;
    check('q1_why_says_first_report_believed', words && /with q = 1 the first report is believed/.test(words) && /nobody is marked a liar/.test(words) && !/caught lying/.test(words), words);
  }
  const backOnP = await pollUntil(async () => {
    const log = await pp.$$eval('[data-testid=log-entry]', (els) => els.map((e) => e.textContent));
    return log.find((l) => l.startsWith('tab-l') && /is back: it was silent/.test(l)) ?? null;
  }, Date.now() + 10_000, 200);
  const lAfter = (await readTab(pl)).me;
  check('frozen_tab_back_under_its_id', backOnP && lAfter === ids['tab-l'] && natives.every((n) => n.events.some((e) => e.event === 'peer_back' && e.peer === ids['tab-l'])), { backOnP, id_before: ids['tab-l'], id_after: lAfter, natives: natives.map((n) => n.events.filter((e) => e.peer === ids['tab-l'] && /peer_/.test(e.event)).map((e) => e.event)) });
  for (const [name, page] of [['tab-p', pp], ['tab-l', pl]]) {
    const g = await graph(page);
    // On L's own tab, its own ✗ is the truth: it lies on the presenter's command.
    const marked = g.filter((n) => n.liar && !(name === 'tab-l' && n.kind === 'me'));
    check(`q1_nobody_marked:${name}`, marked.length === 0, marked);
  }
  const nativeMarks = natives.flatMap((n) => n.events.filter((e) => e.event === 'liar_marked').map((e) => ({ by: n.name, ...e })));
  check('q1_no_native_marks_anyone', nativeMarks.length === 0, nativeMarks);

  // 2. q = 2, L still lying: L and only L is marked; then 20 s of nothing getting worse.
  await submit(pp, { ...job, quorum: 2 });
  const q2 = async (page) => (await jobs(page)).find((j) => j.quorum === 2);
  const samples = [];
  const rateSamples = [];
  const q2done = await pollUntil(async () => {
    const j = await q2(pp);
    if (j && j.state !== 'done') samples.push(j);
    const r = await pp.evaluate(() => ({
      all: Number(document.querySelector('[data-testid=rate-total]')?.getAttribute('data-results-per-s')),
      per: [...document.querySelectorAll('[data-testid=rate-member]')].map((l) => Number(l.getAttribute('data-per-s'))),
    }));
    if (r.per.length > 0) rateSamples.push(r);
    return j?.state === 'done' ? j : null;
  }, Date.now() + cfg.job_timeout_ms, 300);
  if (!check('q2_job_done', q2done, await q2(pp))) return;
  const doneAt = Date.now();
  samples.push(q2done);
  info.samples = samples.length;
  const badFigures = samples.map((j) => ({ at: j.validated, wrong: figuresWrong(j) })).filter((s) => s.wrong.length > 0);
  check('figures_add_up_while_running', samples.length >= 3 && badFigures.length === 0, { samples: samples.length, bad: badFigures.slice(0, 5) });
  const liarMarked = await pollUntil(async () => {
    const g = await graph(pp);
    const marked = g.filter((n) => n.liar).map((n) => n.peer);
    return marked.length === 1 && marked[0] === ids['tab-l'] ? marked : null;
  }, Date.now() + 10_000, 200);
  check('q2_liar_alone_marked:tab-p', liarMarked, await graph(pp));
  const lView = (await graph(pl)).filter((n) => n.liar && n.kind !== 'me');
  check('q2_no_honest_mark:tab-l', lView.length === 0, lView);
  const byNatives = natives.map((n) => ({ by: n.name, marked: [...new Set(n.events.filter((e) => e.event === 'liar_marked').map((e) => e.peer))] }));
  check('q2_natives_mark_only_the_liar', natives.every((n) => {
    const m = n.events.filter((e) => e.event === 'liar_marked');
    return m.length > 0 && m.every((e) => e.peer === ids['tab-l']);
  }), byNatives);
  // Copies are back to r within the re-replication time (a copy meant for the liar goes
  // to the next-ranked member), and nothing gets worse for 20 s after that.
  const whole = await pollUntil(async () => {
    const j = await q2(pp);
    return j.short === 0 ? j : null;
  }, Date.now() + cfg.copies_back_ms, 200);
  info.copies_back_ms = Date.now() - doneAt;
  check('copies_back_to_r_after_the_job', whole, await q2(pp));
  const at0 = await q2(pp);
  const g0 = await graph(pp);
  await sleep(cfg.copies_watch_ms);
  const at20 = await q2(pp);
  const g20 = await graph(pp);
  const worse = [];
  if (at20.short !== 0) worse.push(`${at20.short} tasks short of r copies`);
  if (at20.validated !== at20.tasks || at20.state !== 'done') worse.push('no longer all validated and done');
  if (at20.results < at0.results) worse.push('fewer results');
  if (JSON.stringify(g20.filter((n) => n.liar).map((n) => n.peer)) !== JSON.stringify(g0.filter((n) => n.liar).map((n) => n.peer))) worse.push('verdicts changed');
  check('done_job_stays_done_20s', worse.length === 0, { worse, at0: { short: at0.short, results: at0.results }, at20: { short: at20.short, results: at20.results, summary: at20.summary } });
  files.tab_p_after_jobs = path.join(cfg.outdir, 'tab-p-after-jobs.png');
  await pp.screenshot({ path: files.tab_p_after_jobs, fullPage: true });

  // 3 (more). Graph and jobs agree once settled; rates add up.
  const settled = await pollUntil(async () => {
    const [g, js] = [await graph(pp), await jobs(pp)];
    const graphResults = g.reduce((s, n) => s + n.done, 0);
    const jobResults = js.reduce((s, j) => s + j.results, 0);
    return graphResults === jobResults ? { graphResults, jobResults } : null;
  }, Date.now() + 5_000, 200);
  check('graph_results_equal_job_results', settled, { graph: (await graph(pp)).map((n) => n.done), jobs: (await jobs(pp)).map((j) => j.results) });
  const offRates = rateSamples.filter((r) => Math.abs(r.per.reduce((a, b) => a + b, 0) - r.all) > 0.01 * r.per.length + 0.01);
  check('member_rates_add_up', rateSamples.length >= 2 && offRates.length === 0, { samples: rateSamples.length, off: offRates.slice(0, 3) });

  // 4. Eight members: colours from the server, the same on both tabs.
  const more = [3, 4, 5, 6].map((i) => h.startNode(`native-${i}`, origin, room, ['--workers', '1']));
  const eight = await pollUntil(async () => {
    const gs = await Promise.all([pp, pl].map(graph));
    return gs.every((g) => g.length === 8 && g.every((n) => n.state === 'live')) ? gs : null;
  }, Date.now() + cfg.mesh_timeout_ms, 300);
  if (!check('eight_members', eight, await Promise.all([pp, pl].map(graph)))) return;
  for (const n of more) ids[n.name] = n.id;
  const colours = Object.fromEntries(eight.map((g, i) => [['tab-p', 'tab-l'][i], Object.fromEntries(g.map((n) => [n.peer, { fill: n.fill, slot: n.colour }]))]));
  info.colours = colours;
  const same = Object.keys(colours['tab-p']).every((p) => colours['tab-p'][p].fill === colours['tab-l'][p]?.fill);
  const slots = Object.values(colours['tab-p']).map((c) => c.slot).sort((a, b) => a - b);
  check('colours_same_on_every_tab', same, colours);
  check('colours_are_the_lowest_free_slots', JSON.stringify(slots) === JSON.stringify([0, 1, 2, 3, 4, 5, 6, 7]), slots);

  // 5. Layout at three sizes: labels inside the graph, apart, off the legend, readable.
  for (const [w, ht] of [[1920, 1080], [1280, 720], [375, 800]]) {
    await pp.setViewportSize({ width: w, height: ht });
    await pp.evaluate(() => window.scrollTo(0, 0));
    await sleep(600);
    const b = await labelBoxes(pp);
    const problems = [];
    b.labels.forEach((l, i) => {
      if (!inside(l.box, b.svg)) problems.push(`label ${i} outside the graph`);
      if (overlap(l.box, b.legend)) problems.push(`label ${i} under the legend`);
      b.labels.slice(i + 1).forEach((o, k) => {
        if (overlap(l.box, o.box)) problems.push(`labels ${i} and ${i + 1 + k} overlap`);
      });
      for (const t of l.texts) if (t.px < 11.95) problems.push(`"${t.text}" drawn at ${t.px.toFixed(1)} px`);
    });
    if (!b.start || b.start.bottom > b.height) problems.push('no way to start a job in the first screen');
    check(`graph_labels_fit:${w}x${ht}`, b.labels.length === 8 && problems.length === 0, { problems: problems.slice(0, 8), labels: b.labels.length, svg: b.svg, legend: b.legend });
    const shot = path.join(cfg.outdir, `layout-${w}x${ht}.png`);
    await pp.screenshot({ path: shot, fullPage: false });
    files[`layout_${w}x${ht}`] = shot;
  }
}

await run.run(main);
