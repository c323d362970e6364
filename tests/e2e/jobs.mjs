// End-to-end controller for jobs on the live mesh (driven by tests/browser_jobs.rs).
//
// Runs INSIDE a network namespace that has only `lo`: every address used here is
// 127.0.0.1. It starts a `meshwork serve`, two `meshwork node`s and three Chromium tabs
// in one room, each computing with one worker, and waits for the full mesh. Then:
//   1. invalid job parameters typed into tab A's form are refused there with their
//      reason, and no job reaches any member;
//   2. one Mandelbrot job is submitted through tab A's form and one by `meshwork submit`
//      (paced, so that they last several seconds);
//   3. mid-job, tab B is closed, tab C's renderer is SIGKILLed and a fourth tab D opens:
//      D must show the jobs' current state at once and compute some of what is left;
//   4. both jobs complete; tabs A and D show the jobs they did not submit from previews
//      (saved for the Rust test), then fetch them whole with the card's button; both
//      pictures whole, which this controller saves (canvas bytes as PNG, and an element
//      screenshot with the outlines off) for the Rust test to compare with
//      `meshwork run`'s output; no console error, and no main-thread task over 100 ms
//      in A or D while the jobs run.
//
// Input: a JSON object as argv[2]:
//   { "meshwork", "dist", "outdir", "cwd", "chromium", "profiles_dir", "timeout_ms",
//     "page_job": { "size", "tiles", "max_iter", "replicas", "quorum", "pacing_ms" },
//     "cli_args": [ ...`meshwork submit` job arguments, --out included ] }
// Output: progress on stderr; the LAST stdout line is the JSON summary
//   {"ok", "checks":[{name, ok, detail}], "files": {...}, "info", "console_errors", ...}.

import fs from 'node:fs';
import path from 'node:path';
import { computedBy, dead, longTasks, pageNow, pollUntil, readTab, resizeAndFit, sleep, startController } from './harness.mjs';

const { cfg, h, run } = startController(
  'jobs',
  {
    timeout_ms: 170_000,
    mesh_timeout_ms: 60_000,
    job_timeout_ms: 90_000,
    // A main-thread task longer than this while a job runs is a failure. The timed tabs'
    // main threads are favoured by the scheduler (`favourMainThreads`): on 2 cores shared
    // by seven members, a task's wall-clock length is otherwise mostly its wait for a CPU.
    long_task_ms: 100,
  },
  ['page_job', 'cli_args'],
);
const say = (...a) => h.say(...a);
const check = (...a) => run.check(...a);
const info = {};
const files = {};
run.summary = { info, files };

/** Every job card of a tab: id, state, title, validated/total, output, per-task states. */
function readJobs(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('[data-testid=job]')].map((j) => {
      const m = (j.querySelector('[data-testid=job-progress]')?.textContent ?? '').match(/(\d+) \/ (\d+)/);
      return {
        id: j.getAttribute('data-job-id'),
        state: j.getAttribute('data-state'),
        title: j.querySelector('h3')?.textContent ?? '',
        validated: m ? Number(m[1]) : null,
        tasks: m ? Number(m[2]) : null,
        output: j.querySelector('[data-testid=job-output]')?.textContent ?? '',
        // The task grid is a canvas; its states are in `data-cells` ("v2,r0,w0,…").
        cells: (j.querySelector('[data-testid=task-grid]')?.getAttribute('data-cells') || '')
          .split(',')
          .filter((c) => c)
          .map((c) => [{ v: 'validated', r: 'running', w: 'waiting' }[c[0]], Number(c.slice(1))]),
      };
    }),
  );
}

/** A job without its cells, for check details. */
const brief = (js) => js.map(({ cells, ...rest }) => rest);

const pageTitle = `${cfg.page_job.max_iter} iterations`;
const kindOf = (job) => (job.title.includes(pageTitle) ? 'page' : 'cli');

async function fill(page, fields) {
  for (const [testid, value] of Object.entries(fields)) await page.fill(`[data-testid=${testid}]`, String(value));
}

async function main() {
  const room = `jobs-${Math.random().toString(16).slice(2, 10)}`;
  info.room = room;
  const { listening } = await h.startServer(cfg.dist, { timeoutMs: 20_000 });
  if (!check('server_listening', listening && /^127\.0\.0\.1:\d+$/.test(listening.addr), listening)) return;
  const origin = `http://${listening.addr}`;
  const url = (name) => `${origin}/?room=${room}&name=${name}&workers=1`;

  // The mesh: two natives and three tabs (a fourth browser waits for mid-job).
  const natives = [1, 2].map((i) => h.startNode(`native-${i}`, origin, room, ['--workers', '1']));
  const [ba, bb, bc, bd] = await Promise.all(['tab-a', 'tab-b', 'tab-c', 'tab-d'].map((n) => h.launchBrowser(n)));
  await Promise.all([ba, bb, bc].map((b) => h.openPage(b, origin, url(b.name))));
  // The two tabs whose main-thread tasks are timed (see long_task_ms) run that thread
  // ahead of the machine's other work, so that a task's length is the page's own.
  info.favoured = { 'tab-a': await h.favourMainThreads(ba) };
  const tabs = [ba, bb, bc];
  const meshed = await pollUntil(async () => {
    const counts = await Promise.all(tabs.map((b) => readTab(b.page).then((t) => t.count)));
    return counts.every((c) => c === '4') && natives.every((n) => n.connected().size === 4) ? counts : null;
  }, Date.now() + cfg.mesh_timeout_ms, 200);
  if (!check('full_mesh', meshed, { tabs: await Promise.all(tabs.map((b) => readTab(b.page))) })) return;

  // 1. Invalid parameters are refused in the form, with the reason; nothing is sent.
  const pa = ba.page;
  const refusals = [
    [{ tiles: 0 }, 'tiles per side: at least 1'],
    [{ tiles: 16, size: 99999 }, 'over the 16384 limit'],
    [{ size: 256, quorum: 3 }, 'quorum 3 is over the replication 2'],
    [{ quorum: 1, pacing: 'slow' }, 'pacing: "slow" is not a whole number'],
  ];
  for (const [fields, want] of refusals) {
    await fill(pa, fields);
    await pa.click('[data-testid=submit]');
    const shown = await pollUntil(
      () => pa.evaluate((w) => {
        const t = document.querySelector('[data-testid=job-error]')?.textContent ?? '';
        return t.includes(w) ? t : null;
      }, want),
      Date.now() + 3000,
    );
    check(`form_refuses:${Object.keys(fields).join('+')}`, shown, shown ?? `no error containing ${JSON.stringify(want)}`);
  }
  await sleep(500);
  const early = await Promise.all(tabs.map((b) => readJobs(b.page)));
  const nativeJobs = natives.flatMap((n) => n.events.filter((e) => e.event === 'job_accepted'));
  check('invalid_jobs_reach_nobody', early.every((j) => j.length === 0) && nativeJobs.length === 0, { tabs: early.map((j) => j.length), natives: nativeJobs });

  // 2. Two jobs: one from the page's form, one from the CLI.
  const j = cfg.page_job;
  await fill(pa, { size: j.size, 'max-iter': j.max_iter, tiles: j.tiles, replicas: j.replicas, quorum: j.quorum, pacing: j.pacing_ms });
  const cli = h.meshwork('cli', ['submit', '--server', origin, '--room', room, '--name', 'cli', '--ice-bind', '127.0.0.1', '--workers', '1', '--json', '--wait-ms', '1500', ...cfg.cli_args]);
  const cliExit = new Promise((r) => cli.proc.once('close', (code, sig) => r({ code, sig })));
  const aStart = await pageNow(pa);
  await pa.click('[data-testid=submit]');
  const errAfter = await pa.evaluate(() => document.querySelector('[data-testid=job-error]')?.textContent ?? '');
  check('form_accepts_valid_job', errAfter === '', errAfter);

  // 3. Mid-job: both jobs under way, at least a fifth done.
  const mid = await pollUntil(async () => {
    const js = await readJobs(pa);
    return js.length === 2 && js.every((x) => x.validated >= x.tasks / 5 && x.validated < x.tasks) ? js : null;
  }, Date.now() + cfg.job_timeout_ms, 100);
  if (!check('both_jobs_under_way', mid && brief(mid), brief(await readJobs(pa)))) return;
  info.mid = mid.map((x) => ({ kind: kindOf(x), validated: x.validated, tasks: x.tasks }));
  // Tab A gets a second worker mid-job: it is handed a task as soon as it exists, and
  // that task must not be lost while the worker loads.
  await pa.fill('[data-testid=workers]', '2');
  await pa.$eval('[data-testid=workers]', (el) => el.dispatchEvent(new Event('change', { bubbles: true })));
  const idsBefore = Object.fromEntries(await Promise.all([bb, bc].map(async (b) => [b.name, (await readTab(b.page)).me])));
  info.departed = idsBefore;
  await bb.page.close({ runBeforeUnload: false });
  info.renderer_kill = await h.renderers(bc);
  for (const pid of info.renderer_kill.killed) process.kill(pid, 'SIGKILL');
  say('closed tab B, killed tab C\'s renderer(s)', info.renderer_kill.killed.join(','));
  const joinAt = await readJobs(pa);
  const pd = await h.openPage(bd, origin, url('tab-d'));
  info.favoured['tab-d'] = await h.favourMainThreads(bd);
  await pollUntil(() => readTab(pd).then((t) => t.status === 'joined'), Date.now() + 20_000);
  const dStart = await pageNow(pd);
  // D shows the jobs as they are, not from zero: within a few seconds of joining, each
  // is at least as far as tab A saw it when D was opened.
  const caughtUp = await pollUntil(async () => {
    const js = await readJobs(pd);
    const ok = joinAt.every((a) => js.some((d) => d.id === a.id && d.validated >= a.validated && d.cells.length === a.tasks));
    return ok ? js.map((d) => ({ kind: kindOf(d), validated: d.validated })) : null;
  }, Date.now() + 10_000, 100);
  check('late_tab_catches_up', caughtUp, { at_join: joinAt.map((a) => ({ kind: kindOf(a), validated: a.validated })), tab_d: (await readJobs(pd)).map((d) => ({ kind: kindOf(d), validated: d.validated })) });
  check('renderer_killed', bc.crashed !== null || info.renderer_kill.killed.every(dead), info.renderer_kill);

  // 4. Both jobs complete everywhere that is left.
  const deadline = Date.now() + cfg.job_timeout_ms;
  for (const [name, page] of [['tab-a', pa], ['tab-d', pd]]) {
    const done = await pollUntil(async () => {
      const js = await readJobs(page);
      return js.length === 2 && js.every((x) => x.state === 'done') ? js : null;
    }, deadline, 200);
    check(`jobs_done:${name}`, done, done ? done.map((x) => ({ kind: kindOf(x), output: x.output })) : brief(await readJobs(page)));
  }
  const exit = await Promise.race([cliExit, sleep(Math.max(0, deadline - Date.now())).then(() => null)]);
  const cliDone = cli.events.find((e) => e.event === 'job_done');
  check('cli_submit_exit_0', exit && exit.code === 0 && cliDone, { exit, job_done: cliDone ?? null });
  const dComputed = await computedBy(pd);
  check('late_tab_computed', dComputed > 0, { tasks_computed_by_tab_d: dComputed });
  // Every task handed to a worker came back (none lost to a worker that was loading).
  for (const [name, page] of [['tab-a', pa], ['tab-d', pd]]) {
    const pool = await pollUntil(
      () => page.evaluate(() => {
        const t = document.querySelector('[data-testid=pool]')?.textContent ?? '';
        return t.startsWith('0 busy') ? t : null;
      }),
      Date.now() + 5_000,
    );
    check(`workers_idle_after_jobs:${name}`, pool, pool ?? (await page.evaluate(() => document.querySelector('[data-testid=pool]')?.textContent)));
  }
  const workersA = await pa.$eval('[data-testid=workers]', (el) => el.value);
  check('workers_changed_mid_job', workersA === '2', { tab_a_workers: workersA });
  // Every result is back to r live copies in A's view, within a few seconds of the
  // last departure (the CLI leaves when its job is done, taking its copies with it).
  const shortOf = (x) => x.cells.filter(([s, r]) => s !== 'validated' || r < j.replicas).length;
  const restored = await pollUntil(async () => {
    const js = await readJobs(pa);
    return js.length === 2 && js.every((x) => shortOf(x) === 0) ? js : null;
  }, Date.now() + 15_000, 200);
  for (const x of restored ?? (await readJobs(pa))) {
    check(`replicas_restored:${kindOf(x)}`, shortOf(x) === 0, { tasks_short_of_copies: shortOf(x) });
  }
  for (const [name, page, since] of [['tab-a', pa, aStart], ['tab-d', pd, dStart]]) {
    const tasks = await longTasks(page, since);
    // Every task over 50 ms, with what ran, for the record; over the bound fails.
    info[`tasks_over_50ms:${name}`] = tasks;
    const long = tasks.filter((t) => t.ms > cfg.long_task_ms);
    check(`no_long_task:${name}`, long.length === 0, long);
  }

  // A job this tab did not submit is drawn from previews where it holds no tile: saved
  // as it is (the Rust test checks each tile against the reference, whole or sampled),
  // then the card's button fetches the full picture.
  // The tab's data-channel bytes in, as its node told them when the last job became
  // whole here (from previews), then after each full picture: for the record.
  const bytesIn = (page) => page.evaluate(() => window.__meshworkTraffic?.bytes_in ?? null);
  for (const [name, page] of [['tab-a', pa], ['tab-d', pd]]) {
    await page.uncheck('[data-testid=outlines]');
    await sleep(100);
    info[`bytes_in_with_previews:${name}`] = await bytesIn(page);
    for (const x of await readJobs(page)) {
      const card = page.locator(`[data-testid=job][data-job-id="${x.id}"]`);
      if ((await card.locator('[data-testid=full-picture]').count()) === 0) continue;
      const kind = kindOf(x);
      const dataUrl = await card.locator('[data-testid=job-canvas]').evaluate((c) => c.toDataURL('image/png'));
      const file = path.join(cfg.outdir, `${name}-${kind}-preview.png`);
      fs.writeFileSync(file, Buffer.from(dataUrl.split(',')[1], 'base64'));
      files[`${name}:${kind}:preview`] = file;
      await card.locator('[data-testid=full-picture]').click();
      const whole = await pollUntil(async () => {
        const y = (await readJobs(page)).find((j) => j.id === x.id);
        return y && /image/.test(y.output) ? y.output : null;
      }, Date.now() + 15_000, 100);
      check(`full_picture_fetched:${name}:${kind}`, whole, { output: whole });
      info[`bytes_in_after_full_${kind}:${name}`] = await bytesIn(page);
    }
  }
  // The pictures: canvas bytes (exact) and what is on screen (outlines off).
  for (const [name, page] of [['tab-a', pa], ['tab-d', pd]]) {
    await page.uncheck('[data-testid=outlines]');
    await sleep(100);
    for (const x of await readJobs(page)) {
      const kind = kindOf(x);
      const card = page.locator(`[data-testid=job][data-job-id="${x.id}"]`);
      const dataUrl = await card.locator('[data-testid=job-canvas]').evaluate((c) => c.toDataURL('image/png'));
      const canvasFile = path.join(cfg.outdir, `${name}-${kind}-canvas.png`);
      fs.writeFileSync(canvasFile, Buffer.from(dataUrl.split(',')[1], 'base64'));
      const shotFile = path.join(cfg.outdir, `${name}-${kind}-screen.png`);
      const canvas = card.locator('[data-testid=job-canvas]');
      await canvas.scrollIntoViewIfNeeded();
      // Text above may leave the canvas at a fractional offset; the browser paints it
      // snapped to whole pixels (the offset rounded), which is where the clip goes.
      // The live panels above it (rates, the log) may change height meanwhile: a
      // screenshot counts only if the canvas was where the clip says before and after.
      // The browser's scroll anchoring keeps the canvas where it was in the window when
      // text above it grows, by scrolling the document; the screenshot places the clip
      // in the document with the scroll offset it read, so the offset must hold too (a
      // CI run captured half of the job above this one with the canvas's rect unchanged).
      const rect = () => canvas.evaluate((c) => {
        const r = c.getBoundingClientRect();
        return {
          clip: { x: Math.round(r.left), y: Math.round(r.top), width: Math.round(r.width), height: Math.round(r.height) },
          scroll: [window.scrollX, window.scrollY],
        };
      });
      for (let attempt = 0; attempt < 5; attempt++) {
        await canvas.scrollIntoViewIfNeeded();
        const before = await rect();
        await page.screenshot({ path: shotFile, clip: before.clip });
        if (JSON.stringify(await rect()) === JSON.stringify(before)) break;
        say(`${name} ${kind}: the canvas or the page moved during its screenshot; again`);
      }
      files[`${name}:${kind}:canvas`] = canvasFile;
      files[`${name}:${kind}:screen`] = shotFile;
    }
    await page.check('[data-testid=outlines]');
    const full = path.join(cfg.outdir, `${name}.png`);
    await page.screenshot({ path: full, fullPage: true });
    files[`${name}:page`] = full;
  }
  // On a phone (375 px wide) the page with its jobs needs no horizontal scrolling.
  const phone = await resizeAndFit(pd, 375, 800);
  check('phone_width_no_horizontal_scroll', phone.fits, phone);
  info.log_a = await pa.$$eval('[data-testid=log-entry]', (els) => els.map((e) => e.textContent));
  const departures = info.log_a.filter((l) => /left: /.test(l));
  check('departures_in_plain_words', departures.length >= 2 && departures.every((l) => /unfinished tasks taken up|results back|held no work/.test(l)), departures);
}

await run.run(main);
