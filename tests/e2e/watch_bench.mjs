// What a tab that only watches a job receives, for `cargo xtask bench watch`
// (xtask/src/viewbench.rs), which runs this INSIDE a network namespace that has only `lo`.
//
// Env: MESHWORK_BIN, MESHWORK_DIST, SIZE (default 2048: the picture's side), TILES
// (default 16, per side), NATIVES (default 6). Starts `meshwork serve` and, twice, in a
// room of its own: the native nodes and one Chromium tab that computes nothing
// (`workers=0`; it still holds its share of the copies, r / members); then
// `meshwork submit` hands out a Mandelbrot job (r = 2). The first time the tab is a plain
// one, which draws the tiles it does not hold from previews; the second time it is opened
// with the presenter key, so it fetches every tile, as every tab did before previews.
// Each time it reads the tab's data-channel bytes in (`window.__meshworkTraffic`, told by
// its node when a job is whole there) once the job is done in the tab. Prints one JSON
// object as the last stdout line.

import fs from 'node:fs';
import { benchHarness, pollUntil, readTab } from './harness.mjs';

const size = Number(process.env.SIZE || 2048);
const tiles = Number(process.env.TILES || 16);
const nativeCount = Number(process.env.NATIVES || 6);
const key = 'watch-bench-presenter-key';
const h = benchHarness('watch-bench');
let result = { error: 'not run' };

/** One room: the natives, a tab (a presenter's if `presenter`), a job; the tab's bytes. */
async function once(origin, room, presenter) {
  const natives = Array.from({ length: nativeCount }, (_, i) => i + 1).map((i) => h.startNode(`${room}-native-${i}`, origin, room, ['--workers', '1']));
  const b = await h.launchBrowser(`${room}-tab`);
  const page = await h.openPage(b, origin, `${origin}/?room=${room}&name=tab&workers=0${presenter ? `&presenter=${key}` : ''}`);
  const meshed = await pollUntil(() => readTab(page).then((t) => (Number(t.count) === nativeCount ? t.count : null)), Date.now() + 60_000, 250);
  if (!meshed) throw new Error(`${room}: no mesh of the tab and ${nativeCount} natives within 60 s`);
  const cli = h.meshwork(`${room}-submit`, [
    'submit', '--server', origin, '--room', room, '--name', 'submit', '--ice-bind', '127.0.0.1', '--workers', '1', '--json',
    '--kernel', 'mandelbrot', '--width', String(size), '--height', String(size), '--tiles', `${tiles}x${tiles}`,
    '--max-iter', '1000', '--replicas', '2', '--out', `${h.outdir}/${room}.png`,
  ]);
  const exited = new Promise((r) => cli.proc.once('close', (code) => r(code)));
  const done = await pollUntil(
    () => page.evaluate(() => (document.querySelector('[data-testid=job]')?.getAttribute('data-state') === 'done' ? true : null)),
    Date.now() + 120_000,
    100,
  );
  if (!done) throw new Error(`${room}: the job was not done in the tab within 120 s`);
  const traffic = await pollUntil(() => page.evaluate(() => (window.__meshworkTraffic ? { ...window.__meshworkTraffic } : null)), Date.now() + 5_000, 100);
  const shown = await page.evaluate(() => ({
    summary: document.querySelector('[data-testid=task-summary]')?.textContent ?? '',
    previews: !!document.querySelector('[data-testid=preview-note]'),
  }));
  const code = await exited;
  await b.browser.close().catch(() => {});
  for (const n of natives) n.proc.kill('SIGTERM');
  return { traffic, submit_exit: code, ...shown };
}

try {
  fs.mkdirSync(h.outdir, { recursive: true });
  const { origin } = await h.startServer(process.env.MESHWORK_DIST, { extra: ['--presenter-key', key] });
  if (!origin) throw new Error('the server did not start');
  const watching = await once(origin, 'watch', false);
  const assembling = await once(origin, 'assemble', true);
  result = { size, tiles: tiles * tiles, natives: nativeCount, tiles_full_bytes: size * size * 4, watching, assembling };
} catch (e) {
  result = { error: String(e?.stack || e) };
}
await h.cleanup();
process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(result.error ? 1 : 0));
