// A browser member of `cargo xtask chaos`: one tab (headless Chromium, or Firefox over
// WebDriver) in the room, speaking to the chaos run the way a native speaks `--json`.
//
// Runs INSIDE the member's own network namespace (xtask starts it with `ip netns exec`),
// so that the browser's WebRTC sockets use that namespace's address and the run's
// nftables rules and bandwidth caps act on this member alone.
//
// Input (argv[2] JSON): { browser: "chromium" | "firefox", name, url, outdir,
//   chromium?, firefox?, geckodriver?, profiles_dir? }.
// stdout, one JSON object a line:
//   {"event":"browser","pid":N}            the process tree to SIGSTOP (Chromium, or
//                                           geckodriver with the Firefox it started)
//   {"event":"joined","id":ID}              the page shows its id (again after a new tab)
//   {"event":"peer_connected","peer":ID}    a member the page's graph now shows live
//   {"event":"peer_left","peer":ID,"state":S}  one it shows no longer live (S: silent,
//                                           gone, connecting, cut)
//   {"event":"view","rows":[{peer,state,liar}]}  the graph, whenever it changes
//   {"event":"reset","why":...}             the tab is gone (closed, renderer killed):
//                                           it shows nothing until a new one opens
//   {"event":"done","cmd":C} / {"event":"error","cmd":C,"message":M}
// stdin, one command a line:
//   reload          the tab reloads
//   close           the tab is closed
//   kill-renderer   the processes that render the tab are SIGKILLed
//   open            a new tab opens the room (after close or kill-renderer)
//   submit FIELDS   on a Chromium tab, a job through the page's form: FIELDS is JSON,
//                   the kernel's `data-testid` and each field's value (kernel, n,
//                   ranges, samples, tasks, replicas, quorum, pacing); `done` carries
//                   the new job's id, and its card is reported from then on as
//                   {"event":"form_job","id","state","validated","tasks","output"}
//                   whenever it changes, until it is done
//   console ACTION [A [B]]  on a presenter's tab, a console button: `fail A`, `lie A`,
//                   `cut A B` (the link between members A and B), `pause` (everyone),
//                   `reset` (the demo's reset: every member revived, honest, forgiven,
//                   resumed, every cut link restored); `done` carries what it said
//   quit            everything started here is ended, then this process exits
// Progress and the pages' console go to stderr.

import fs from 'node:fs';
import readline from 'node:readline';
import { FIREFOX_PREFS, Harness, descendants, launchFirefox, sleep } from './harness.mjs';

const cfg = JSON.parse(process.argv[2] || '{}');
for (const k of ['browser', 'name', 'url', 'outdir']) {
  if (!cfg[k]) {
    console.error(`chaos_tab: missing config field ${k}`);
    process.exit(2);
  }
}
const origin = new URL(cfg.url).origin;
// The server is at a namespace's address, not 127.0.0.1, so the page is not a secure
// context by itself: without one, no media permission can be granted, and without it a
// browser hides its host candidates behind mDNS names that nobody here can resolve.
// Each browser is told to treat the run's origin as secure, as a deployment behind TLS
// would be.
const CHROMIUM_EXTRA = [`--unsafely-treat-insecure-origin-as-secure=${origin}`];
const FIREFOX_EXTRA = {
  'dom.securecontext.allowlist': new URL(cfg.url).hostname,
  'media.peerconnection.ice.obfuscate_host_addresses': false,
};
const h = new Harness({ tag: cfg.name, outdir: cfg.outdir, chromium: cfg.chromium ?? '/usr/bin/chromium', profilesDir: cfg.profiles_dir });
const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');

/** What this tab shows now; null while no page is open. */
let page = null;
let shown = { me: null, live: new Set(), view: '' };
let browser = null;
let firefox = null;
let quitting = false;

function forget(why) {
  page = null;
  shown = { me: null, live: new Set(), view: '' };
  emit({ event: 'reset', why });
}

async function openTab() {
  if (cfg.browser === 'firefox') {
    if (!firefox) {
      firefox = await launchFirefox(h, cfg.name, 'about:blank', { prefs: { ...FIREFOX_PREFS, ...FIREFOX_EXTRA }, geckodriver: cfg.geckodriver ?? 'geckodriver', firefox: cfg.firefox ?? '/usr/bin/firefox-esr' });
      emit({ event: 'browser', pid: firefox.proc.pid });
      await load(firefox.page);
      page = firefox.page;
      return;
    }
    // A new tab in the same window set, the old ones closed: a new session storage, so
    // a new member (as a person opening the link again).
    try {
      const old = await firefox.page.command('GET', '/window/handles');
      const made = await firefox.page.command('POST', '/window/new', { type: 'tab' });
      for (const handle of old) {
        await firefox.page.command('POST', '/window', { handle }).catch(() => {});
        await firefox.page.command('DELETE', '/window').catch(() => {});
      }
      await firefox.page.command('POST', '/window', { handle: made.handle });
    } catch (e) {
      // Killing a tab's content process can take WebDriver's session with it: a new
      // Firefox then opens the room, as a person would start the browser again.
      h.say('the WebDriver session is lost:', e.message, '; starting a new Firefox');
      for (const pid of [firefox.proc.pid, ...descendants(firefox.proc.pid)]) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      firefox = null;
      return openTab();
    }
    await load(firefox.page);
    page = firefox.page;
    return;
  }
  if (!browser) {
    browser = await h.launchBrowser(cfg.name, CHROMIUM_EXTRA);
    emit({ event: 'browser', pid: browser.proc.pid });
    await h.openPage(browser, origin, cfg.url);
    page = browser.page;
    return;
  }
  // A new tab: a fresh page in the same browser (its own session storage), the old one
  // closed if it is still there.
  const ctx = browser.browser.contexts()[0];
  const stale = ctx.pages();
  const fresh = await ctx.newPage();
  for (const p of stale) await p.close().catch(() => {});
  browser.page = fresh;
  await ctx.grantPermissions(['camera', 'microphone'], { origin });
  fresh.on('console', (msg) => {
    if (msg.type() === 'error') h.say(cfg.name, 'console.error:', msg.text());
  });
  fresh.on('pageerror', (e) => h.say(cfg.name, 'pageerror:', String(e)));
  await fresh.setViewportSize({ width: 1200, height: 900 });
  await load(fresh);
  page = fresh;
}

/**
 * The page's job cards: id, state ("running", "done"), tasks validated, output words,
 * and whether this tab submitted it.
 */
function jobCards(p) {
  return p.evaluate(() =>
    [...document.querySelectorAll('[data-testid=job]')].map((j) => {
      const m = (j.querySelector('[data-testid=job-progress]')?.textContent ?? '').match(/(\d+) \/ (\d+)/);
      return {
        id: j.getAttribute('data-job-id'),
        state: j.getAttribute('data-state'),
        validated: m ? Number(m[1]) : null,
        tasks: m ? Number(m[2]) : null,
        output: j.querySelector('[data-testid=job-output]')?.textContent?.trim() ?? '',
        mine: (j.querySelector('.job-head')?.textContent ?? '').includes('(this tab)'),
      };
    }),
  );
}

/** A job submitted through this tab's form, followed until it is done. */
let formJob = null;

/** Reports the form's job's card when it changed; it ends when the job is done. */
async function followFormJob() {
  const j = formJob;
  if (!j) return;
  if (j.page !== page) {
    formJob = null;
    emit({ event: 'form_job', id: j.id, state: 'lost', validated: null, tasks: null, output: '' });
    return;
  }
  const card = (await jobCards(j.page)).find((c) => c.id === j.id);
  if (!card || formJob !== j) return;
  const { mine: _, ...shown } = card;
  const now = JSON.stringify(shown);
  if (now === j.last) return;
  j.last = now;
  emit({ event: 'form_job', ...shown });
  if (card.state === 'done') formJob = null;
}

/**
 * Opens the room in `p`, again until it loads: the server may be down for a few seconds
 * (a chaos fault), and a person would press reload too. Up to 60 s.
 */
async function load(p) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      if (cfg.browser === 'firefox') await p.goto(cfg.url);
      else await p.goto(cfg.url, { waitUntil: 'load', timeout: 30_000 });
      return;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      h.say('the room did not load, again in 1 s:', String(e?.message ?? e).split('\n')[0]);
      await sleep(1_000);
    }
  }
}

/** Pids of the processes that render the page. */
function rendererPids() {
  if (cfg.browser === 'firefox') {
    const tree = descendants(firefox.proc.pid);
    return tree.filter((pid) => {
      try {
        const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        return cmd.includes('-contentproc') && /\btab\b/.test(cmd.replaceAll('\0', ' '));
      } catch {
        return false;
      }
    });
  }
  return descendants(browser.proc.pid).filter((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('--type=renderer');
    } catch {
      return false;
    }
  });
}

const commands = {
  async reload() {
    if (!page) throw new Error('no tab open');
    const p = page;
    forget('reload');
    await load(p);
    page = p;
  },
  async close() {
    if (!page) throw new Error('no tab open');
    const p = page;
    forget('closed');
    if (cfg.browser === 'firefox') {
      // A window set never stands empty over WebDriver (the session would end): a
      // blank tab takes the closed one's place until `open`.
      const made = await p.command('POST', '/window/new', { type: 'tab' });
      await p.command('DELETE', '/window');
      await p.command('POST', '/window', { handle: made.handle });
    } else {
      await p.close();
    }
  },
  async 'kill-renderer'() {
    const pids = rendererPids();
    if (pids.length === 0) throw new Error('no renderer process found');
    forget('renderer killed');
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    return { pids };
  },
  async open() {
    if (page) throw new Error('a tab is already open');
    await openTab();
  },
  async console(action, a, b) {
    if (!page || cfg.browser !== 'chromium') throw new Error('no Chromium tab open');
    const p = page;
    const button = { fail: 'console-fail', lie: 'console-lie', cut: 'console-cut', pause: 'console-pause', reset: 'console-reset' }[action];
    if (!button) throw new Error(`no console action ${action}`);
    const opts = { timeout: 5_000 };
    if (a) await p.selectOption('[data-testid=console-target]', a, opts);
    if (b) await p.selectOption('[data-testid=console-other]', b, opts);
    await p.click(`[data-testid=${button}]`, opts);
    return { said: await p.textContent('[data-testid=console-said]', opts) };
  },
  async submit(json) {
    if (!page || cfg.browser !== 'chromium') throw new Error('no Chromium tab open');
    if (formJob) throw new Error(`job ${formJob.id} from the form is still under way`);
    const p = page;
    const fields = JSON.parse(json);
    const opts = { timeout: 5_000 };
    const before = new Set(await jobCards(p).then((cs) => cs.map((c) => c.id)));
    await p.selectOption('[data-testid=kernel]', fields.kernel, opts);
    for (const [k, v] of Object.entries(fields)) {
      if (k !== 'kernel') await p.fill(`[data-testid=${k}]`, String(v), opts);
    }
    await p.click('[data-testid=submit]', opts);
    const refused = (await p.textContent('[data-testid=job-error]', opts))?.trim();
    if (refused) throw new Error(`the form refused the job: ${refused}`);
    const deadline = Date.now() + 10_000;
    for (;;) {
      const fresh = (await jobCards(p)).find((c) => c.mine && !before.has(c.id));
      if (fresh) {
        formJob = { id: fresh.id, page: p, last: '' };
        return { id: fresh.id };
      }
      if (Date.now() > deadline) throw new Error('the form\'s job shows no card within 10 s');
      await sleep(100);
    }
  },
  async quit() {
    quitting = true;
    await h.cleanup();
    process.exit(0);
  },
};

/**
 * Reads what the page shows (its id, and its graph as `readGraph` reads it, in one call
 * that WebDriver can make too) and reports what changed.
 */
async function poll() {
  const p = page;
  if (!p) return;
  const { me, graph } = await p.evaluate(() => ({
    me: document.querySelector('[data-testid=me-id]')?.textContent?.trim() ?? null,
    graph: [...document.querySelectorAll('[data-testid=graph-node]')].map((g) => ({
      peer: g.getAttribute('data-peer-id'),
      state: g.getAttribute('data-state'),
      liar: g.getAttribute('data-liar') === 'true',
    })),
  }));
  const tab = { me };
  if (p !== page) return;
  if (tab.me && tab.me !== shown.me) {
    shown.me = tab.me;
    emit({ event: 'joined', id: tab.me });
  }
  const others = graph.filter((n) => n.peer && n.peer !== shown.me);
  const live = new Set(others.filter((n) => n.state === 'live').map((n) => n.peer));
  for (const id of live) if (!shown.live.has(id)) emit({ event: 'peer_connected', peer: id });
  for (const id of shown.live) {
    if (!live.has(id)) emit({ event: 'peer_left', peer: id, state: others.find((n) => n.peer === id)?.state ?? 'gone' });
  }
  shown.live = live;
  const rows = others.map((n) => ({ peer: n.peer, state: n.state, liar: n.liar })).sort((a, b) => a.peer.localeCompare(b.peer));
  const view = JSON.stringify(rows);
  if (view !== shown.view) {
    shown.view = view;
    emit({ event: 'view', rows });
  }
}

let queue = Promise.resolve();

async function main() {
  await openTab();
  readline.createInterface({ input: process.stdin }).on('line', (line) => {
    const [cmd, ...args] = line.trim().split(/\s+/);
    if (!cmd) return;
    const f = commands[cmd];
    if (!f) {
      emit({ event: 'error', cmd, message: 'unknown command' });
      return;
    }
    // One at a time, in the order given: a console's reset must not overtake the
    // command before it.
    queue = queue.then(() => {
      h.say('command', cmd, ...args);
      return f(...args).then(
        (r) => emit({ event: 'done', cmd, ...(r ?? {}) }),
        (e) => emit({ event: 'error', cmd, message: String(e?.message ?? e) }),
      );
    });
  });
  process.stdin.on('end', () => commands.quit());
  // A stopped browser answers nothing: a read that takes over 2 s is left to finish
  // later (its result is dropped if the page changed meanwhile).
  while (!quitting) {
    let timer;
    try {
      await Promise.race([poll().then(followFormJob), new Promise((_, no) => (timer = setTimeout(() => no(new Error('slow')), 2_000)))]);
    } catch {
      // Navigating, crashed, stopped or closed: the next read tells.
    } finally {
      clearTimeout(timer);
    }
    await sleep(200);
  }
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => commands.quit());
main().catch(async (e) => {
  emit({ event: 'error', cmd: 'start', message: String(e?.stack ?? e) });
  await h.cleanup();
  process.exit(1);
});
