// One Mandelbrot tile, or every kernel, timed in a compute worker of headless Chromium,
// for `cargo xtask bench scale` (xtask/src/scale.rs) and `cargo xtask bench kernels`
// (xtask/src/kernbench.rs), which run this INSIDE a network namespace that has only
// `lo`.
//
// Env: MESHWORK_BIN (the meshwork binary), MESHWORK_DIST (the built UI), BENCH (`tile`,
// the default, or `kernels`). Starts `meshwork serve` on 127.0.0.1, opens
// `/?bench=BENCH` (the page joins no room and times the work in a worker, see
// web-ui/src/bench.rs), and prints the page's JSON result as the last stdout line.
// Progress goes to stderr; everything started is killed at the end.

import { benchHarness, pollUntil } from './harness.mjs';

const h = benchHarness('worker-bench');
let result = { error: 'not run' };
try {
  const { origin } = await h.startServer(process.env.MESHWORK_DIST);
  if (!origin) throw new Error('the server did not start');
  const b = await h.launchBrowser('bench');
  const page = await h.openPage(b, origin, `${origin}/?bench=${process.env.BENCH || 'tile'}`);
  const text = await pollUntil(
    () => page.evaluate(() => document.querySelector('[data-testid=bench-result]')?.textContent || null),
    Date.now() + 300_000,
    200,
  );
  result = text ? JSON.parse(text) : { error: 'no result within 300 s' };
  result.chromium = b.browser.version();
} catch (e) {
  result = { error: String(e?.stack || e) };
}
await h.cleanup();
process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(result.error ? 1 : 0));
