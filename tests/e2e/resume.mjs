// End-to-end controller: the mesh outlives its signaling server, and a reloaded tab
// keeps its id (driven by tests/browser_resume.rs).
//
// Runs INSIDE a network namespace that has only `lo`. It starts `meshwork serve` with a
// resume key file, two `meshwork node`s and two Chromium tabs (one worker each) in one
// room, and `meshwork submit` (computing with them) hands them a paced Mandelbrot
// job. Then:
//   1. mid-job the server is SIGKILLed: the tabs say "signaling away, mesh still
//      working", nobody leaves the mesh, and the job goes on;
//   2. the server is started again on the same port with the same key: every member
//      comes back under its old id (the server's /api/rooms), the tabs say so;
//   3. tab B reloads mid-job: it comes back with its id, and tab A's log shows a
//      rejoin, not a new member;
//   4. a new tab C opens after the restart, joins, and sees every member;
//   5. the job completes; the CLI writes its PNG (compared by the Rust test with
//      `meshwork run`'s, byte for byte).
//
// Input: a JSON object as argv[2]:
//   { "meshwork", "dist", "outdir", "cwd", "chromium", "profiles_dir", "timeout_ms",
//     "key_file", "submit_args": [ ...`meshwork submit` job arguments, --out included ] }
// Output: progress on stderr; the LAST stdout line is the JSON summary.

import { pollUntil, readTab, sleep, startController } from './harness.mjs';

const { cfg, h, run } = startController(
  'resume',
  {
    timeout_ms: 150_000,
    mesh_timeout_ms: 60_000,
    job_timeout_ms: 90_000,
  },
  ['key_file', 'submit_args'],
);
const say = (...a) => h.say(...a);
const check = (...a) => run.check(...a);
const info = {};
run.summary = { info };

/** The server's members of `room`, by id (sorted), or null if it does not answer. */
async function serverMembers(origin, room) {
  try {
    const res = await fetch(`${origin}/api/rooms`);
    const body = await res.json();
    const r = body.rooms.find((x) => x.name === room);
    return (r?.peers ?? []).map((p) => p.id).sort();
  } catch {
    return null;
  }
}

/** Tab A's job card: validated / total, and state. */
function readJob(page) {
  return page.evaluate(() => {
    const j = document.querySelector('[data-testid=job]');
    if (!j) return null;
    const m = (j.querySelector('[data-testid=job-progress]')?.textContent ?? '').match(/(\d+) \/ (\d+)/);
    return { state: j.getAttribute('data-state'), validated: m ? Number(m[1]) : null, tasks: m ? Number(m[2]) : null };
  });
}

const log = (page) => page.$$eval('[data-testid=log-entry]', (els) => els.map((e) => e.textContent));

async function main() {
  const room = `resume-${Math.random().toString(16).slice(2, 10)}`;
  info.room = room;
  const serverArgs = ['--resume-key-file', cfg.key_file];
  const first = await h.startServer(cfg.dist, { timeoutMs: 20_000, extra: serverArgs });
  if (!check('server_listening', first.listening, first.listening)) return;
  const { origin } = first;
  const addr = first.listening.addr;
  const url = (name) => `${origin}/?room=${room}&name=${name}&workers=1`;

  // The mesh: two natives, two tabs, and the submitter.
  const natives = [1, 2].map((i) => h.startNode(`native-${i}`, origin, room, ['--workers', '1']));
  const [ba, bb, bc] = await Promise.all(['tab-a', 'tab-b', 'tab-c'].map((n) => h.launchBrowser(n)));
  await Promise.all([ba, bb].map((b) => h.openPage(b, origin, url(b.name))));
  const cli = h.meshwork('submit', ['submit', '--server', origin, '--room', room, '--name', 'submitter', '--ice-bind', '127.0.0.1', '--workers', '1', '--json', '--wait-ms', '1500', ...cfg.submit_args]);
  const cliExit = new Promise((r) => cli.proc.once('close', (code, sig) => r({ code, sig })));
  const meshed = await pollUntil(async () => {
    const counts = await Promise.all([ba, bb].map((b) => readTab(b.page).then((t) => t.count)));
    return counts.every((c) => c === '4') && natives.every((n) => n.connected().size === 4) ? counts : null;
  }, Date.now() + cfg.mesh_timeout_ms, 200);
  if (!check('full_mesh', meshed, { tabs: await Promise.all([ba, bb].map((b) => readTab(b.page))) })) return;
  const before = await serverMembers(origin, room);
  info.members_before = before;
  const idOf = Object.fromEntries(await Promise.all([ba, bb].map(async (b) => [b.name, (await readTab(b.page)).me])));

  // 1. Mid-job, the server is killed.
  const mid = await pollUntil(async () => {
    const j = await readJob(ba.page);
    return j && j.validated >= j.tasks / 8 && j.validated < j.tasks / 2 ? j : null;
  }, Date.now() + cfg.job_timeout_ms, 100);
  if (!check('job_under_way', mid, await readJob(ba.page))) return;
  process.kill(first.server.proc.pid, 'SIGKILL');
  const killedAt = Date.now();
  say('SIGKILLed the server at', mid);
  const away = await pollUntil(async () => {
    const s = await Promise.all([ba, bb].map((b) => readTab(b.page).then((t) => t.status)));
    return s.every((x) => /signaling away, mesh still working/.test(x)) ? s : null;
  }, Date.now() + 10_000, 100);
  check('tabs_say_signaling_away', away, await Promise.all([ba, bb].map((b) => readTab(b.page))));
  // The job goes on without the server.
  const progressed = await pollUntil(async () => {
    const j = await readJob(ba.page);
    return j && j.validated > mid.validated ? j : null;
  }, Date.now() + 10_000, 100);
  check('job_goes_on_without_the_server', progressed, { mid, now: await readJob(ba.page) });

  // 2. The server again, same port, same key.
  const again = h.meshwork('server-again', ['serve', '--bind', addr, '--json', '--dist', cfg.dist, ...serverArgs]);
  const listening = await again.waitFor((e) => e.event === 'listening', Date.now() + 20_000);
  if (!check('server_restarted', listening, listening)) return;
  const restartedAt = Date.now();
  const back = await pollUntil(async () => {
    const now = await serverMembers(origin, room);
    return now && JSON.stringify(now) === JSON.stringify(before) ? now : null;
  }, Date.now() + 15_000, 100);
  info.back_after_restart_ms = back ? Date.now() - restartedAt : null;
  info.down_ms = restartedAt - killedAt;
  check('every_member_back_with_its_id', back, { before, now: await serverMembers(origin, room) });
  const backSaid = await pollUntil(async () => {
    const s = await Promise.all([ba, bb].map((b) => readTab(b.page).then((t) => t.status)));
    return s.every((x) => /signaling back/.test(x)) ? s : null;
  }, Date.now() + 10_000, 100);
  check('tabs_say_signaling_back', backSaid, await Promise.all([ba, bb].map((b) => readTab(b.page))));
  // Nobody left the mesh while the server was away.
  const left = [...natives].flatMap((n) => n.events.filter((e) => e.event === 'peer_left'));
  check('nobody_left_the_mesh', left.length === 0, left);

  // 3. Tab B reloads mid-job and comes back as itself.
  const jobBeforeReload = await readJob(ba.page);
  check('job_still_running_at_reload', jobBeforeReload && jobBeforeReload.state !== 'done', jobBeforeReload);
  await bb.page.reload();
  const reloaded = await pollUntil(async () => {
    const t = await readTab(bb.page);
    return t.me && t.count === '4' ? t : null;
  }, Date.now() + 20_000, 200);
  check('reloaded_tab_keeps_its_id', reloaded && reloaded.me === idOf['tab-b'], { before: idOf['tab-b'], after: reloaded ?? (await readTab(bb.page)) });
  const rejoinLine = await pollUntil(async () => {
    const l = await log(ba.page);
    return l.find((x) => x.includes('tab-b') && x.includes('rejoined under the same id')) ?? null;
  }, Date.now() + 10_000, 200);
  check('others_show_a_rejoin', rejoinLine, (await log(ba.page)).slice(-8));
  const rowsA = (await readTab(ba.page)).rows.map((r) => r.id);
  check('no_new_member_for_the_reload', rowsA.filter((id) => id === idOf['tab-b']).length === 1 && rowsA.length === 4, rowsA);

  // 4. A tab opened after the restart sees everyone.
  await h.openPage(bc, origin, url('tab-c'));
  const cSees = await pollUntil(async () => {
    const t = await readTab(bc.page);
    return t.count === '5' ? t : null;
  }, Date.now() + 30_000, 200);
  const cRows = (cSees ?? (await readTab(bc.page))).rows.map((r) => r.id).sort();
  check('new_tab_sees_every_member', cSees && before.every((id) => cRows.includes(id)), { before, c: cRows });

  // 5. The job completes.
  const deadline = Date.now() + cfg.job_timeout_ms;
  const exit = await Promise.race([cliExit, sleep(Math.max(0, deadline - Date.now())).then(() => null)]);
  const done = cli.events.find((e) => e.event === 'job_done');
  check('job_done_exit_0', exit && exit.code === 0 && done, { exit, job_done: done ?? null });
  const doneA = await pollUntil(async () => {
    const j = await readJob(ba.page);
    return j?.state === 'done' ? j : null;
  }, Date.now() + 10_000, 200);
  check('tab_a_shows_it_done', doneA, await readJob(ba.page));
  info.log_a = await log(ba.page);

  // The only console errors allowed: the browser's own report of a WebSocket that could
  // not connect while the server was down.
  const expected = (e) => /WebSocket connection to .* failed/.test(e.text ?? '');
  info.expected_console_errors = h.consoleErrors.filter(expected).length;
  h.consoleErrors = h.consoleErrors.filter((e) => !expected(e));
}

await run.run(main);
