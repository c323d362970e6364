// End-to-end controller: Firefox as a member of the mesh (driven by tests/browser_firefox.rs).
//
// Runs INSIDE a network namespace that has only `lo`: every address used here is
// 127.0.0.1. It starts a `meshwork serve`, two `meshwork node`s, one Chromium tab and
// one Firefox tab (geckodriver over WebDriver, with the prefs of harness.mjs's
// FIREFOX_PREFS) in one room, each computing with one worker. Then:
//   1. the full mesh: every member sees the other four connected (the submitter joins
//      later); both tabs show the ICE path of each connection, which on one machine must
//      be a host candidate pair ("host/host", or "host/prflx" when a check came before
//      the remote candidate), on the Firefox side as well;
//   2. a paced Mandelbrot job from `meshwork submit`: once the Firefox tab has computed
//      some of it, Firefox (every process of it) is SIGKILLed mid-job; the natives
//      notice it leave and the job completes (the Rust test compares the PNG with
//      `meshwork run`'s);
//   3. a second Firefox WITHOUT the two ICE prefs joins another room with a native node:
//      it gathers no candidate there, and its page must say "this browser offered no
//      network address for WebRTC" instead of a bare departure.
//
// Input: a JSON object as argv[2]:
//   { "meshwork", "dist", "outdir", "cwd", "chromium", "profiles_dir", "timeout_ms",
//     "geckodriver", "firefox", "cli_args": [ ...`meshwork submit` job arguments ] }
// Output: progress on stderr; the LAST stdout line is the JSON summary.

import { FIREFOX_PREFS, computedBy, dead, launchFirefox, pollUntil, readTab, sleep, startController } from './harness.mjs';

const { cfg, h, run } = startController(
  'firefox',
  { timeout_ms: 170_000, mesh_timeout_ms: 60_000, job_timeout_ms: 90_000, depart_ms: 5_000 },
  ['geckodriver', 'firefox', 'cli_args'],
);
const say = (...a) => h.say(...a);
const check = (...a) => run.check(...a);
const info = {};
run.summary = { info };

/** Each peer row's ICE path: { peerId: "host/host" | "" }. */
function readPaths(page) {
  return page.evaluate(() =>
    Object.fromEntries(
      [...document.querySelectorAll('[data-testid=peer-row]')].map((r) => [r.getAttribute('data-peer-id'), r.getAttribute('data-path') ?? '']),
    ),
  );
}

/** The page's event log, as text. */
function readLog(page) {
  return page.evaluate(() => [...document.querySelectorAll('[data-testid=log-entry]')].map((e) => e.textContent));
}

async function main() {
  const room = `ff-${Math.random().toString(16).slice(2, 10)}`;
  info.room = room;
  const { listening } = await h.startServer(cfg.dist, { timeoutMs: 20_000 });
  if (!check('server_listening', listening && /^127\.0\.0\.1:\d+$/.test(listening.addr), listening)) return;
  const origin = `http://${listening.addr}`;
  const url = (r, name) => `${origin}/?room=${r}&name=${name}&workers=1`;
  const gecko = { geckodriver: cfg.geckodriver, firefox: cfg.firefox };

  // 1. Two natives, a Chromium tab and a Firefox tab.
  const natives = [1, 2].map((i) => h.startNode(`native-${i}`, origin, room, ['--workers', '1']));
  const chromium = await h.launchBrowser('chromium');
  await h.openPage(chromium, origin, url(room, 'chromium'));
  const firefox = await launchFirefox(h, 'firefox', url(room, 'firefox'), gecko);
  info.firefox_version = firefox.version;
  const tabs = [chromium.page, firefox.page];
  const meshed = await pollUntil(async () => {
    const counts = await Promise.all(tabs.map((p) => readTab(p).then((t) => t.count)));
    return counts.every((c) => c === '3') && natives.every((n) => n.connected().size === 3) ? counts : null;
  }, Date.now() + cfg.mesh_timeout_ms, 200);
  const views = { chromium: await readTab(chromium.page), firefox: await readTab(firefox.page) };
  if (!check('full_mesh', meshed, { views, natives: natives.map((n) => [...n.connected()]) })) return;
  const ffId = views.firefox.me;
  // Each native reports its ICE path to the Firefox tab, and the kind it sees.
  const nativeKinds = natives.map((n) => n.connected().get(ffId));
  check('natives_see_firefox_as_a_browser', nativeKinds.every((k) => k === 'browser'), nativeKinds);
  for (const [name, page] of [['firefox', firefox.page], ['chromium', chromium.page]]) {
    const paths = await pollUntil(async () => {
      const p = await readPaths(page);
      const values = Object.values(p);
      return values.length === 3 && values.every((v) => v !== '') ? p : null;
    }, Date.now() + 10_000, 200);
    const seen = paths ?? (await readPaths(page));
    // The local candidate is a host one; so is the remote, or it is peer-reflexive: the
    // peer's host address learned from its first connectivity check, before its
    // candidate arrived through the server (trickle ICE races). Either way a direct
    // path on this machine, never a relay.
    check(`host_pairs:${name}`, paths && Object.values(paths).every((v) => ['host/host', 'host/prflx'].includes(v)), seen);
  }
  const nativePaths = await pollUntil(
    () => {
      const p = natives.map((n) => n.events.find((e) => e.event === 'ice_path' && e.peer === ffId));
      return p.every(Boolean) ? p : null;
    },
    Date.now() + 5_000,
    100,
  );
  check('native_paths_to_firefox', nativePaths && nativePaths.every((e) => e.local === 'host' && ['host', 'prflx'].includes(e.remote)), nativePaths);
  await firefox.page.screenshot({ path: `${cfg.outdir}/firefox.png` });

  // 2. A job with the Firefox tab computing part of it; Firefox is killed mid-job.
  const cli = h.meshwork('cli', ['submit', '--server', origin, '--room', room, '--name', 'cli', '--ice-bind', '127.0.0.1', '--workers', '1', '--json', '--wait-ms', '1500', ...cfg.cli_args]);
  const cliExit = new Promise((r) => cli.proc.once('close', (code, sig) => r({ code, sig })));
  const computed = await pollUntil(async () => {
    const n = await computedBy(firefox.page);
    return n >= 2 ? n : null;
  }, Date.now() + cfg.job_timeout_ms, 100);
  info.firefox_computed_before_kill = computed;
  if (!check('firefox_computes', computed >= 2, { computed })) return;
  // Where the job stands as the Firefox tab sees it, just before the kill (the
  // Chromium tab may not have met the submitter yet).
  const atKill = await firefox.page.evaluate(() => {
    const text = document.querySelector('[data-testid=job-progress]')?.textContent ?? '';
    const m = text.match(/(\d+) \/ (\d+)/);
    return m ? { validated: Number(m[1]), tasks: Number(m[2]) } : { text, jobs: document.querySelectorAll('[data-testid=job]').length };
  });
  // Every Firefox process, again until none is left (one started meanwhile is caught
  // by the next round); geckodriver stays, for cleanup().
  const killedAt = Date.now();
  const pids = new Set();
  for (let round = 0; round < 10; round++) {
    const left = firefox.firefoxPids().filter((p) => !dead(p));
    if (left.length === 0) break;
    for (const pid of left) {
      pids.add(pid);
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    await sleep(50);
  }
  say('killed Firefox', [...pids].join(','), `after it computed ${computed} tasks; the job at`, JSON.stringify(atKill));
  info.killed = [...pids];
  const left = await Promise.all(
    natives.map((n) => n.waitFor((e) => e.event === 'peer_left' && e.peer === ffId, killedAt + cfg.depart_ms)),
  );
  check('natives_notice_firefox_left', left.every(Boolean), left.map((e) => e && { reason: e.reason, after_ms: e.t - killedAt }));
  const exit = await Promise.race([cliExit, sleep(cfg.job_timeout_ms).then(() => null)]);
  const done = cli.events.find((e) => e.event === 'job_done');
  check('job_done_after_firefox_killed', exit && exit.code === 0 && done, { exit, job_done: done ?? null });
  check('killed_mid_job', atKill !== null && atKill.validated < atKill.tasks, atKill);

  // 3. Firefox without the ICE prefs gathers no address in this namespace: the page
  // says so, once, and does not claim that the member it cannot reach left.
  const bare = { ...FIREFOX_PREFS };
  delete bare['media.peerconnection.ice.loopback'];
  delete bare['permissions.default.camera'];
  const lonely = `${room}-bare`;
  const n3 = h.startNode('native-3', origin, lonely, ['--workers', '1']);
  await n3.waitFor((e) => e.event === 'joined', Date.now() + 20_000);
  const ff2 = await launchFirefox(h, 'firefox-bare', url(lonely, 'firefox-bare'), { ...gecko, prefs: bare });
  const said = await pollUntil(async () => {
    const log = await readLog(ff2.page);
    // The warning of its own, naming what is wrong.
    return log.find((l) => l.includes('this browser offered no network address for WebRTC, so it cannot connect')) ?? null;
  }, Date.now() + 20_000, 200);
  check('no_address_explained', said, said ?? (await readLog(ff2.page)));
  // The native did not leave: the page goes on trying (a failed attempt is tried
  // again after 0.5 s, doubling to 8 s; one not open in 15 s is given up) and never
  // says it left. Watched for 20 s after the warning, longer than any one attempt
  // lasts; the warning is said once, not once per attempt.
  const watchUntil = Date.now() + 20_000;
  const departure = await pollUntil(async () => {
    const log = await readLog(ff2.page);
    return log.find((l) => / left: /.test(l)) ?? null;
  }, watchUntil, 500);
  const warnings = (await readLog(ff2.page)).filter((l) => l.includes('offered no network address')).length;
  check('no_false_departure', departure === null && warnings === 1, { departure, warnings });
}

await run.run(main);
