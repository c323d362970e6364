// The live view under load, for `cargo xtask bench view` (xtask/src/viewbench.rs), which
// runs this INSIDE a network namespace that has only `lo`.
//
// Env: MESHWORK_BIN, MESHWORK_DIST, MEMBERS (default 16: one tab, the rest native
// nodes), TILES (default 32, per side: 1,024 tasks). Starts `meshwork serve`, the native
// nodes and one Chromium tab, waits for the full mesh, submits a paced Mandelbrot job
// from the tab and, while it runs, records every animation frame's interval and every
// main-thread task over 50 ms in the tab. Prints one JSON object as the last stdout line.

import os from 'node:os';
import { benchHarness, pollUntil, readTab, sleep } from './harness.mjs';

const members = Number(process.env.MEMBERS || 16);
const tiles = Number(process.env.TILES || 32);
const h = benchHarness('view-bench');
let result = { error: 'not run' };
try {
  const { origin } = await h.startServer(process.env.MESHWORK_DIST);
  if (!origin) throw new Error('the server did not start');
  const room = 'bench';
  for (let i = 1; i < members; i++) h.startNode(`native-${i}`, origin, room, ['--workers', '1']);
  const b = await h.launchBrowser('tab');
  const page = await h.openPage(b, origin, `${origin}/?room=${room}&name=tab&workers=1`);
  const meshed = await pollUntil(
    () => readTab(page).then((t) => (Number(t.count) === members - 1 ? t.count : null)),
    Date.now() + 120_000,
    250,
  );
  if (!meshed) throw new Error(`no full mesh of ${members} within 120 s`);
  await sleep(1000);
  await page.evaluate(() => {
    window.__t0 = performance.now();
    window.__frames = [];
    let last = performance.now();
    const tick = (t) => {
      window.__frames.push(t - last);
      last = t;
      if (!window.__stop) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  for (const [id, v] of Object.entries({ size: tiles * 32, 'max-iter': 200, tiles, replicas: 2, quorum: 1, pacing: 60 })) {
    await page.fill(`[data-testid=${id}]`, String(v));
  }
  const started = Date.now();
  const linkBefore = await page.evaluate(() => ({ ...(window.__meshworkLink ?? {}) }));
  await page.click('[data-testid=submit]');
  const done = await pollUntil(
    () => page.evaluate(() => document.querySelector('[data-testid=job]')?.getAttribute('data-state') === 'done' || null),
    Date.now() + 300_000,
    250,
  );
  const secs = (Date.now() - started) / 1000;
  const linkAfter = await page.evaluate(() => ({ ...(window.__meshworkLink ?? {}) }));
  // This tab's data-channel bytes up to the job's end (the mesh forming included),
  // told by its node after the job.
  const traffic = await pollUntil(() => page.evaluate(() => (window.__meshworkTraffic ? { ...window.__meshworkTraffic } : null)), Date.now() + 5_000, 100);
  // What the page and its node worker said to each other during the job, per task.
  const per = (k) => ((linkAfter[k] ?? 0) - (linkBefore[k] ?? 0)) / (tiles * tiles);
  const link = {
    to_worker_per_task: per('to_worker'),
    to_worker_bytes_per_task: per('to_worker_bytes'),
    from_worker_per_task: per('from_worker'),
    from_worker_bytes_per_task: per('from_worker_bytes'),
  };
  const m = await page.evaluate(() => {
    window.__stop = true;
    // What ran in the frames over 50 ms (the harness records the last 200 with the
    // Long Animation Frames API): script time by invoker, and the rest (style, layout,
    // paint, and whatever the browser did between scripts).
    const loafs = (window.__loafs ?? []).filter((f) => f.start >= window.__t0);
    const by = {};
    let scripts = 0;
    for (const f of loafs) {
      for (const x of f.scripts) {
        by[x.invoker] = (by[x.invoker] ?? 0) + x.ms;
        scripts += x.ms;
      }
    }
    return {
      frames: window.__frames.slice(1),
      // The harness records every main-thread task over 50 ms from the page's start.
      long: (window.__longTasks ?? []).filter((t) => t.start >= window.__t0).map((t) => t.ms),
      long_frames: {
        count: loafs.length,
        ms: Math.round(loafs.reduce((a, f) => a + f.ms, 0)),
        script_ms: Math.round(scripts),
        render_ms: Math.round(loafs.reduce((a, f) => a + (f.render_ms ?? 0), 0)),
        by_invoker: Object.entries(by).sort((a, b) => b[1] - a[1]).slice(0, 5),
      },
    };
  });
  // A newcomer, as a phone in the audience would be: another tab opens the page on a
  // cold cache while the mesh runs. From its navigation: its first contentful paint,
  // when its graph first draws every other member (from the server's list, connecting),
  // and when it draws every one live (a data channel open and its Hello in); at normal
  // speed and with its CPU slowed 4 times (DevTools' throttling, a phone's share of a
  // laptop).
  const newcomer = async (rate) => {
    const ctx = b.browser.contexts()[0];
    const p = await ctx.newPage();
    try {
      const cdp = await ctx.newCDPSession(p);
      await cdp.send('Network.enable');
      await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
      if (rate > 1) await cdp.send('Emulation.setCPUThrottlingRate', { rate });
      await p.goto(`${origin}/?room=${room}&name=newcomer-${rate}&workers=1`);
      // Every other member drawn (connecting or live), then every one live.
      await p.waitForFunction(
        (n) => document.querySelectorAll('[data-testid=graph-node]:not([data-kind=me])').length >= n,
        members,
        { polling: 'raf', timeout: 30_000 },
      );
      const drawn = await p.evaluate(() => Math.round(performance.now()));
      await p.waitForFunction(
        (n) => document.querySelectorAll('[data-testid=graph-node][data-state=live]:not([data-kind=me])').length >= n,
        members,
        { polling: 'raf', timeout: 30_000 },
      );
      return await p.evaluate((drawnMs) => ({
        members_drawn_ms: drawnMs,
        mesh_shown_ms: Math.round(performance.now()),
        first_contentful_paint_ms: Math.round(performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN),
      }), drawn);
    } catch (e) {
      return { error: String(e) };
    } finally {
      await p.close();
    }
  };
  const newcomers = { normal: await newcomer(1), cpu_4x_slower: await newcomer(4) };
  const f = m.frames.slice().sort((a, b) => a - b);
  const q = (p) => f[Math.min(f.length - 1, Math.floor(p * f.length))];
  result = {
    members,
    tasks: tiles * tiles,
    job_done: !!done,
    job_s: secs,
    frames: f.length,
    fps: f.length / (f.reduce((a, b) => a + b, 0) / 1000),
    frame_ms_p50: q(0.5),
    frame_ms_p95: q(0.95),
    frame_ms_p99: q(0.99),
    frame_ms_max: f[f.length - 1],
    long_tasks_over_50ms: m.long.length,
    long_task_ms_max: m.long.length ? Math.max(...m.long) : 0,
    long_frames: m.long_frames,
    link,
    traffic,
    newcomers,
    // How busy the machine was: the 1-minute load average against its cores.
    load_1min: os.loadavg()[0],
    cores: os.cpus().length,
    chromium: b.browser.version(),
  };
} catch (e) {
  result = { error: String(e?.stack || e) };
}
await h.cleanup();
process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(result.error ? 1 : 0));
