// Shared pieces of the end-to-end controllers (`mesh.mjs`, `bench.mjs`).
//
// Both run INSIDE a network namespace that has only `lo` (ARCHITECTURE.md says why:
// Chromium offers candidates on every interface): every address used here is 127.0.0.1. A `Harness` owns every
// process it starts (meshwork servers and nodes, Chromium browsers) and every temporary
// directory it makes; `cleanup()` SIGKILLs each started process with its whole process
// tree, by pid, and removes the directories.
//
// Logs: progress goes to stderr as `[TAG +   123ms] ...`; each child's stdout and
// stderr go to OUTDIR/NAME.stdout.log and OUTDIR/NAME.stderr.log.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { chromium } from 'playwright-core';

export const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run', '--no-default-browser-check',
  '--disable-quic', '--allow-loopback-in-peer-connection', '--use-fake-ui-for-media-stream',
  '--remote-debugging-port=0',
];

/**
 * Firefox's preferences for a member in a namespace that holds only `lo`. Without the
 * first two Firefox gathers no ICE candidate there: it keeps loopback addresses out of
 * ICE unless `media.peerconnection.ice.loopback` is set, and without a camera permission
 * it offers only the address of the default route, of which `lo` has none. The rest keep
 * a test browser from reaching out for updates, telemetry and the like.
 */
export const FIREFOX_PREFS = {
  'media.peerconnection.ice.loopback': true,
  'permissions.default.camera': 1,
  'media.navigator.permission.disabled': true,
  // The page's and its workers' console output on Firefox's stdout, where the harness
  // reads it (classic WebDriver has no console log); Firefox's own console not.
  'devtools.console.stdout.content': true,
  'devtools.console.stdout.chrome': false,
  // No experiments or studies fetched (they fail, and say so, without a network).
  'messaging-system.rsexperimentloader.enabled': false,
  'app.normandy.enabled': false,
  'app.shield.optoutstudies.enabled': false,
  'app.update.auto': false,
  'app.update.enabled': false,
  'browser.shell.checkDefaultBrowser': false,
  'browser.startup.homepage_override.mstone': 'ignore',
  'datareporting.healthreport.uploadEnabled': false,
  'datareporting.policy.dataSubmissionEnabled': false,
  'toolkit.telemetry.enabled': false,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'browser.safebrowsing.malware.enabled': false,
  'browser.safebrowsing.phishing.enabled': false,
  'extensions.update.enabled': false,
};

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const validId = (s) => typeof s === 'string' && /^[\w-]+$/.test(s);

/** The median of the finite numbers in `xs`, or null when there are none. */
export function median(xs) {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

/**
 * Calls `fn` every `intervalMs` until it returns a truthy value or `deadline` (a
 * Date.now() value) passes; returns the last value (a throw counts as null).
 */
export async function pollUntil(fn, deadline, intervalMs = 100) {
  for (;;) {
    let v = null;
    try {
      v = await fn();
    } catch {
      v = null;
    }
    if (v || Date.now() >= deadline) return v;
    await sleep(Math.min(intervalMs, Math.max(0, deadline - Date.now())));
  }
}

// ---------------------------------------------------------------- process trees

/** Pids of every descendant of `root`, from /proc (children before grandchildren). */
export function descendants(root) {
  const parent = new Map();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      // The command name may hold spaces and parentheses: fields resume after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(d), Number(fields[1]));
    } catch {
      // The process exited meanwhile.
    }
  }
  const out = [];
  const queue = [root];
  while (queue.length) {
    const p = queue.shift();
    for (const [pid, ppid] of parent) {
      if (ppid === p && !out.includes(pid)) {
        out.push(pid);
        queue.push(pid);
      }
    }
  }
  return out;
}

/** Whether `pid` has exited (or is a zombie waiting to be reaped). */
export function dead(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

// ---------------------------------------------------------------- web UI

/** What a tab shows: its own id, the peer count and every peer row. */
export function readTab(page) {
  return page.evaluate(() => {
    const q = (s) => document.querySelector(s);
    return {
      me: q('[data-testid=me-id]')?.textContent?.trim() ?? null,
      status: q('[data-testid=status]')?.textContent?.trim() ?? null,
      count: q('[data-testid=peer-count]')?.textContent?.trim() ?? null,
      rows: [...document.querySelectorAll('[data-testid=peer-row]')].map((r) => ({
        id: r.getAttribute('data-peer-id'),
        kind: r.getAttribute('data-kind'),
        state: r.getAttribute('data-state'),
      })),
    };
  });
}

/**
 * Waits until every page lists every other member and every native is connected to all
 * of them (a full mesh of pages and natives); the peer counts, or null at `deadline`.
 */
export function fullMesh(pages, natives, deadline) {
  const others = String(pages.length + natives.length - 1);
  return pollUntil(async () => {
    const counts = await Promise.all(pages.map((p) => readTab(p).then((t) => t.count)));
    return counts.every((c) => c === others) && natives.every((n) => n.connected().size === Number(others)) ? counts : null;
  }, deadline, 200);
}

/** Every member's signaling id by name: tabs (name → page) and natives. */
export async function memberIds(tabs, natives) {
  const ids = {};
  for (const [name, page] of Object.entries(tabs)) ids[name] = (await readTab(page)).me;
  for (const n of natives) ids[n.name] = n.id;
  return ids;
}

/**
 * The tab sends `bytes` bulk bytes to `peer` (`window.__meshworkBulk`, through its node's
 * bulk queue) and waits for the log line of the peer's acknowledgement: { text, counted
 * (the bytes the peer counted), ms, mib_s }, or null at `deadline`.
 */
export async function bulkFromTab(page, peer, bytes, deadline) {
  await page.evaluate(([p, n]) => window.__meshworkBulk(p, n), [peer, bytes]);
  const text = await pollUntil(async () => {
    const lines = await page.$$eval(`li[data-testid=log-entry][data-event=bulk][data-peer="${peer}"]`, (els) => els.map((e) => e.textContent));
    return lines[0] ?? null;
  }, deadline, 100);
  if (!text) return null;
  const m = text.match(/counted (\d+) bytes .* in (\d+) ms \(([\d.]+) MiB\/s\)/);
  return { text, counted: m ? Number(m[1]) : null, ms: m ? Number(m[2]) : null, mib_s: m ? Number(m[3]) : null };
}

/** The graph's members as a tab draws them, from their `data-` attributes. */
export function readGraph(page) {
  return page.$$eval('[data-testid=graph-node]', (els) =>
    els.map((g) => ({
      peer: g.getAttribute('data-peer-id'),
      kind: g.getAttribute('data-kind'),
      state: g.getAttribute('data-state'),
      liar: g.getAttribute('data-liar') === 'true',
      background: g.getAttribute('data-background') === 'true',
      shape: g.querySelector('.shape')?.tagName.toLowerCase(),
      fill: g.getAttribute('data-fill'),
      colour: Number(g.getAttribute('data-colour')),
      done: Number(g.getAttribute('data-done')),
      label: g.getAttribute('aria-label'),
      note: g.querySelector('.load')?.textContent ?? '',
      console: (g.getAttribute('data-console') ?? '').split(' ').filter((w) => w),
    })),
  );
}

/** The RTT cell of every peer row, in ms: { peerId: number|null } ("0.4 ms" -> 0.4, "–" -> null). */
export function readPeerRtts(page) {
  return page.evaluate(() =>
    Object.fromEntries(
      [...document.querySelectorAll('[data-testid=peer-row]')].map((r) => {
        const m = (r.querySelector('[data-testid=peer-rtt]')?.textContent ?? '').match(/([\d.]+)\s*ms/);
        return [r.getAttribute('data-peer-id'), m ? Number(m[1]) : null];
      }),
    ),
  );
}

/** Tasks the tab's workers computed (from "N busy, M tasks computed"). */
export async function computedBy(page) {
  const t = await page.evaluate(() => document.querySelector('[data-testid=pool]')?.textContent ?? '');
  const m = t.match(/(\d+) tasks computed/);
  return m ? Number(m[1]) : null;
}

/** The page's clock now (performance.now(), ms). */
export function pageNow(page) {
  return page.evaluate(() => performance.now());
}

/**
 * Main-thread tasks over 50 ms that started at or after `sinceMs` (page clock), each with
 * the scripts of the long animation frames it overlaps (what ran, as the browser says:
 * "RTCDataChannel.onmessage", "TimerHandler:setTimeout", ...), so that a failure names
 * its cause.
 */
export function longTasks(page, sinceMs = 0) {
  return page.evaluate((since) => (window.__longTasks ?? [])
    .filter((t) => t.start >= since)
    .map((t) => ({
      ...t,
      scripts: (window.__loafs ?? [])
        .filter((f) => f.start < t.start + t.ms && t.start < f.start + f.ms)
        .flatMap((f) => f.scripts),
    })), sinceMs);
}

// ---------------------------------------------------------------- the harness

export class Harness {
  /**
   * tag: log prefix; outdir: where child logs go (created); meshwork: the binary;
   * cwd: working directory for meshwork processes; chromium: the browser binary;
   * profilesDir: where the browsers' temporary --user-data-dir go (default: os.tmpdir()).
   */
  constructor({ tag = 'e2e', outdir, meshwork, cwd, chromium: chromiumPath = '/usr/bin/chromium', profilesDir, t0 = Date.now() }) {
    this.tag = tag;
    this.outdir = outdir;
    this.meshworkBin = meshwork;
    this.cwd = cwd;
    this.chromiumPath = chromiumPath;
    this.profilesDir = profilesDir;
    this.t0 = t0;
    /** Every child started here: { name, proc }. */
    this.children = [];
    /** Removed by cleanup(). */
    this.tempDirs = [];
    /** { name, proc, browser, page, crashed } */
    this.browsers = [];
    /** Console errors / page errors, and warnings, of every page opened with openPage(). */
    this.consoleErrors = [];
    this.consoleOther = [];
    this.cleanedUp = false;
    fs.mkdirSync(outdir, { recursive: true });
  }

  since() {
    return Date.now() - this.t0;
  }

  say(...a) {
    console.error(`[${this.tag} +${String(this.since()).padStart(6)}ms]`, ...a);
  }

  /** Starts a child; its stderr goes to OUTDIR/NAME.stderr.log (and to `onStderrLine`). */
  start(name, cmd, args, { onStdoutLine, onStderrLine, cwd } = {}) {
    // NO_COLOR: plain text in the log files (tracing colours its output even into a pipe).
    const proc = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    this.children.push({ name, proc });
    const log = fs.createWriteStream(path.join(this.outdir, `${name}.stderr.log`));
    readline.createInterface({ input: proc.stderr }).on('line', (l) => {
      log.write(l + '\n');
      onStderrLine?.(l);
    });
    const out = fs.createWriteStream(path.join(this.outdir, `${name}.stdout.log`));
    readline.createInterface({ input: proc.stdout }).on('line', (l) => {
      out.write(l + '\n');
      onStdoutLine?.(l);
    });
    proc.on('error', (e) => this.say(name, 'spawn error:', e.message));
    proc.on('exit', (code, sig) => this.say(name, `(pid ${proc.pid}) exited`, code ?? sig));
    this.say('started', name, 'pid', proc.pid);
    return proc;
  }

  /** Kills every child (whole trees, SIGKILL, by pid) and removes the temporary dirs. Idempotent. */
  async cleanup() {
    if (this.cleanedUp) return;
    this.cleanedUp = true;
    for (const b of this.browsers) {
      // Only drops the CDP connection (or asks the browser to close): the kill below is
      // what guarantees it is gone.
      try {
        await Promise.race([b.browser?.close(), sleep(1000)]);
      } catch {
        // Already gone.
      }
    }
    for (const { name, proc } of this.children.slice().reverse()) {
      if (proc.pid === undefined) continue;
      // Collect the tree first: once the root dies its children are re-parented.
      const tree = [proc.pid, ...descendants(proc.pid)];
      for (const pid of tree) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Already exited.
        }
      }
      if (tree.length > 1) this.say('killed', name, 'tree', tree.join(','));
    }
    const until = Date.now() + 3000;
    while (Date.now() < until && this.children.some(({ proc }) => proc.exitCode === null && proc.signalCode === null)) {
      await sleep(50);
    }
    for (const d of this.tempDirs) {
      try {
        fs.rmSync(d, { recursive: true, force: true });
      } catch (e) {
        this.say('cannot remove', d, e.message);
      }
    }
  }

  // ------------------------------------------------------------ meshwork processes

  /** Starts `meshwork ARGS` (which must print JSON lines) as a JsonProc. */
  meshwork(name, args) {
    return new JsonProc(this, name, this.meshworkBin, args, { cwd: this.cwd });
  }

  /**
   * Starts `meshwork serve` on 127.0.0.1, port 0, serving `dist` (with `extra`
   * arguments); waits up to
   * `timeoutMs` for its `listening` event (less if the server exits first). Returns
   * { server, listening } (listening is null on failure) and, once listening,
   * origin = http://ADDR.
   */
  async startServer(dist, { timeoutMs = 20_000, extra = [] } = {}) {
    const server = this.meshwork('server', ['serve', '--bind', '127.0.0.1:0', '--json', '--dist', dist, ...extra]);
    const isListening = (e) => e.event === 'listening';
    // 'close' comes after the last stdout line was read (also after a spawn error).
    const closed = new Promise((r) => server.proc.once('close', () => r(server.events.find(isListening) ?? null)));
    const listening = await Promise.race([server.waitFor(isListening, Date.now() + timeoutMs), closed]);
    const origin = listening?.addr ? `http://${listening.addr}` : null;
    return { server, listening, origin };
  }

  /** Starts a `meshwork node --json` in `room`, ICE bound to 127.0.0.1. */
  startNode(name, origin, room, extra = []) {
    return this.meshwork(name, ['node', '--server', origin, '--room', room, '--name', name, '--ice-bind', '127.0.0.1', '--json', ...extra]);
  }

  // ------------------------------------------------------------ browsers

  /** A Chromium process with its own profile (and `extraFlags`), connected over CDP. */
  async launchBrowser(name, extraFlags = []) {
    const profiles = this.profilesDir ?? os.tmpdir();
    fs.mkdirSync(profiles, { recursive: true });
    const udd = fs.mkdtempSync(path.join(profiles, `meshwork-${this.tag}-${name}-`));
    this.tempDirs.push(udd);
    let resolveWs;
    const wsLine = new Promise((r) => (resolveWs = r));
    const proc = this.start(name, this.chromiumPath, [...CHROMIUM_FLAGS, ...extraFlags, `--user-data-dir=${udd}`, 'about:blank'], {
      onStderrLine: (l) => {
        const m = l.match(/DevTools listening on (ws:\/\/\S+)/);
        if (m) resolveWs(m[1]);
      },
    });
    proc.on('exit', () => resolveWs(null));
    const endpoint = await Promise.race([wsLine, sleep(30_000).then(() => null)]);
    if (!endpoint) {
      throw new Error(`${name}: Chromium exited or printed no "DevTools listening on" line within 30 s (see ${name}.stderr.log)`);
    }
    const browser = await chromium.connectOverCDP(endpoint);
    const b = { name, proc, browser, page: null, crashed: null };
    this.browsers.push(b);
    this.say(name, 'Chromium', browser.version(), 'pid', proc.pid, 'at', endpoint);
    return b;
  }

  /** Grants media permissions for `origin`, wires console/crash listeners, loads `url`. */
  async openPage(b, origin, url) {
    const ctx = b.browser.contexts()[0];
    // Belt and braces with --use-fake-ui-for-media-stream: Chromium offers a loopback ICE
    // candidate only with a media permission.
    await ctx.grantPermissions(['camera', 'microphone'], { origin });
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    b.page = page;
    // Collected from before the first navigation, nothing ignored.
    page.on('console', (msg) => {
      const entry = { page: b.name, type: msg.type(), text: msg.text(), location: msg.location(), t_ms: this.since() };
      if (msg.type() === 'error') {
        this.consoleErrors.push(entry);
        this.say(b.name, 'console.error:', msg.text());
      } else if (msg.type() === 'warning') {
        this.consoleOther.push(entry);
        this.say(b.name, 'console.warn:', msg.text());
      }
    });
    page.on('pageerror', (e) => {
      this.consoleErrors.push({ page: b.name, type: 'pageerror', text: String(e?.stack || e), t_ms: this.since() });
      this.say(b.name, 'pageerror:', String(e));
    });
    page.on('crash', () => {
      b.crashed = Date.now();
      this.say(b.name, 'page crashed (renderer gone)');
    });
    // Every main-thread task over 50 ms, from the first script on (read with longTasks()).
    await page.addInitScript(() => {
      window.__longTasks = [];
      try {
        new PerformanceObserver((list) => {
          for (const e of list.getEntries()) window.__longTasks.push({ start: e.startTime, ms: e.duration });
        }).observe({ type: 'longtask', buffered: true });
      } catch {
        // No Long Tasks API: nothing recorded (a check on it then proves nothing).
      }
      // What ran in frames over 50 ms (the Long Animation Frames API), the last 200.
      window.__loafs = [];
      try {
        new PerformanceObserver((list) => {
          for (const e of list.getEntries()) {
            window.__loafs.push({
              start: e.startTime,
              ms: e.duration,
              scripts: (e.scripts ?? []).map((x) => ({
                invoker: x.invoker,
                fn: x.sourceFunctionName,
                ms: Math.round(x.duration),
                forced_layout_ms: Math.round(x.forcedStyleAndLayoutDuration ?? 0),
              })),
              render_ms: Math.round(e.startTime + e.duration - (e.renderStart || e.startTime + e.duration)),
            });
            if (window.__loafs.length > 200) window.__loafs.shift();
          }
        }).observe({ type: 'long-animation-frame', buffered: true });
      } catch {
        // No Long Animation Frames API: long tasks are reported without their scripts.
      }
    });
    // A laptop's window in the one-column layout, every job and panel in the page; the
    // stage (from 1280 px wide) is checked where it is meant, at its own sizes.
    await page.setViewportSize({ width: 1200, height: 900 });
    await page.goto(url, { waitUntil: 'load', timeout: 30_000 });
    return page;
  }

  /**
   * The renderer processes of browser `b` (from CDP SystemInfo), and which of them are
   * in the tree of the Chromium process started here (the ones that may be killed).
   */
  async renderers(b) {
    const cdp = await b.browser.newBrowserCDPSession();
    const procInfo = await cdp.send('SystemInfo.getProcessInfo');
    const tree = descendants(b.proc.pid);
    const renderers = procInfo.processInfo.filter((p) => p.type === 'renderer').map((p) => p.id);
    const victims = renderers.filter((pid) => tree.includes(pid));
    await cdp.detach().catch(() => {});
    return { browser_pid: b.proc.pid, renderers, killed: victims, processes: procInfo.processInfo.map((p) => `${p.type}:${p.id}`) };
  }

  /**
   * Raises the scheduling priority (nice -10) of the main thread of each renderer that
   * browser `b` started here, for checks that time the page's main-thread tasks. On this
   * 2-core machine a test runs several tabs, their compute workers and native nodes at
   * once: a task's wall-clock time is then mostly its wait for a CPU, so a long-task
   * bound would measure the scheduler, not the page. Favoured, the main thread runs when
   * it has work, as it would on a device that runs one member, and a task's length is
   * the page's own work. Only the thread whose id is the renderer's pid is changed (Linux
   * priorities are per thread); workers started before stay as they are, and threads
   * started by the main thread later inherit its priority. Returns the threads changed
   * and their nice values as read back from /proc.
   */
  async favourMainThreads(b) {
    const { killed: mine } = await this.renderers(b);
    const changed = [];
    for (const pid of mine) {
      os.setPriority(pid, -10);
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      // Field 19 is the nice value; fields after the command's closing parenthesis.
      const nice = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
      changed.push({ pid, nice });
    }
    return changed;
  }
}

// ---------------------------------------------------------------- Firefox over WebDriver

/**
 * A page in a Firefox driven by geckodriver over WebDriver (HTTP), with the few calls
 * the controllers use, shaped like playwright's so that `readTab` and friends work on
 * it: `evaluate(fn, arg)`, `goto(url)`, `screenshot({ path })`.
 */
export class WebDriverPage {
  constructor(base, session) {
    this.base = base;
    this.session = session;
  }

  async command(method, route, body) {
    const res = await fetch(`${this.base}/session/${this.session}${route}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const json = await res.json();
    if (!res.ok) throw new Error(`WebDriver ${method} ${route}: ${json?.value?.error}: ${json?.value?.message}`);
    return json.value;
  }

  goto(url) {
    return this.command('POST', '/url', { url });
  }

  /** Runs `fn(arg)` in the page (its source is sent; it must not close over anything). */
  evaluate(fn, arg) {
    return this.command('POST', '/execute/sync', {
      script: `return (${fn.toString()}).apply(null, arguments);`,
      args: arg === undefined ? [] : [arg],
    });
  }

  async screenshot({ path: file }) {
    const png = await this.command('GET', '/screenshot');
    fs.writeFileSync(file, Buffer.from(png, 'base64'));
  }
}

/**
 * Starts geckodriver and, through it, a headless Firefox with its own profile and
 * `prefs`; opens `url`. Returns { name, proc (geckodriver), page, firefoxPids() }.
 * geckodriver and Firefox are children of this harness: cleanup() kills both trees.
 */
export async function launchFirefox(h, name, url, { prefs = FIREFOX_PREFS, geckodriver = 'geckodriver', firefox = '/usr/bin/firefox-esr' } = {}) {
  let resolvePort;
  const portLine = new Promise((r) => (resolvePort = r));
  // Firefox's output comes through geckodriver's. The page's and its workers' console
  // messages print their arguments, a string quoted (`console.error: "…"`), and an
  // uncaught error in the page as `JavaScript error: http://…` (in Firefox's own code
  // `resource://…` or `chrome://…`): those are collected like a Chromium page's.
  // Firefox's own modules log unquoted with their name (`console.error: RSLoader: …`,
  // experiments it cannot fetch without a network): kept as warnings, not the page's
  // errors.
  const onLine = (l) => {
    const m = l.match(/Listening on 127\.0\.0\.1:(\d+)/);
    if (m) resolvePort(Number(m[1]));
    const c = l.match(/^console\.(error|warn): (.*)$/);
    const uncaught = /^JavaScript error: https?:\/\//.test(l);
    if (!c && !uncaught) return;
    const pageError = uncaught || (c[1] === 'error' && c[2].startsWith('"'));
    const entry = { page: name, type: pageError ? 'error' : 'warning', text: c ? c[2] : l, location: {}, t_ms: h.since() };
    (pageError ? h.consoleErrors : h.consoleOther).push(entry);
    h.say(name, pageError ? 'console.error:' : 'console.warn (or Firefox\'s own):', entry.text);
  };
  const proc = h.start(name, geckodriver, ['--host', '127.0.0.1', '--port', '0', '--log', 'info'], {
    onStdoutLine: onLine,
    onStderrLine: onLine,
  });
  proc.on('exit', () => resolvePort(null));
  const port = await Promise.race([portLine, sleep(20_000).then(() => null)]);
  if (!port) throw new Error(`${name}: geckodriver printed no "Listening on" line within 20 s (see ${name}.stderr.log)`);
  const profiles = h.profilesDir ?? os.tmpdir();
  fs.mkdirSync(profiles, { recursive: true });
  const profile = fs.mkdtempSync(path.join(profiles, `meshwork-${h.tag}-${name}-`));
  h.tempDirs.push(profile);
  const base = `http://127.0.0.1:${port}`;
  const res = await fetch(`${base}/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      capabilities: {
        alwaysMatch: {
          browserName: 'firefox',
          'moz:firefoxOptions': { binary: firefox, args: ['-headless', '-profile', profile], prefs },
        },
      },
    }),
    signal: AbortSignal.timeout(60_000),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${name}: no WebDriver session: ${json?.value?.message}`);
  const page = new WebDriverPage(base, json.value.sessionId);
  const version = json.value.capabilities?.browserVersion;
  h.say(name, 'Firefox', version, 'geckodriver pid', proc.pid);
  await page.command('POST', '/window/rect', { width: 1200, height: 900 }).catch(() => {});
  await page.goto(url);
  return { name, proc, page, version, firefoxPids: () => descendants(proc.pid) };
}

// ---------------------------------------------------------------- native nodes

/** A process printing one JSON event per line; each event gets `t`, when it was read. */
export class JsonProc {
  constructor(h, name, cmd, args, { cwd } = {}) {
    this.name = name;
    this.events = [];
    this.waiters = [];
    this.proc = h.start(name, cmd, args, {
      cwd,
      onStdoutLine: (l) => {
        let ev;
        try {
          ev = JSON.parse(l);
        } catch {
          h.say(name, 'non-JSON stdout:', l);
          return;
        }
        ev.t = Date.now();
        this.events.push(ev);
        if (ev.event !== 'rtt') h.say(name, JSON.stringify(ev));
        for (const w of this.waiters.slice()) {
          if (w.pred(ev)) {
            this.waiters.splice(this.waiters.indexOf(w), 1);
            w.resolve(ev);
          }
        }
      },
    });
  }

  /** The first event matching `pred` (already seen or arriving before `deadline`), or null. */
  waitFor(pred, deadline) {
    const hit = this.events.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve) => {
      const w = { pred, resolve };
      this.waiters.push(w);
      setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) {
          this.waiters.splice(i, 1);
          resolve(null);
        }
      }, Math.max(0, deadline - Date.now()));
    });
  }

  /** Peers reported connected and not since left: id -> kind. */
  connected() {
    const m = new Map();
    for (const ev of this.events) {
      if (ev.event === 'peer_connected') m.set(ev.peer, ev.kind);
      else if (ev.event === 'peer_left') m.delete(ev.peer);
    }
    return m;
  }

  get id() {
    return this.events.find((e) => e.event === 'joined')?.id ?? null;
  }
}

// ---------------------------------------------------------------- a controller's run

/**
 * The frame of an end-to-end controller: named checks, a hard timeout, signals, and the
 * JSON summary as the LAST stdout line (exit 0 only if every check passed). `run(main)`
 * runs the scenario, adds `no_console_errors`, cleans up the harness and exits.
 */
export class Controller {
  constructor(h, timeoutMs) {
    this.h = h;
    this.checks = [];
    /** Extra fields of the summary (latencies, info, screenshots...). */
    this.summary = {};
    this.finished = false;
    this.hardStop = setTimeout(() => {
      h.say(`HARD TIMEOUT after ${timeoutMs} ms: killing everything`);
      this.finish({ name: 'overall_timeout', detail: `the run took longer than ${timeoutMs} ms` }).then(() => process.exit(3));
    }, timeoutMs);
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
      process.on(sig, () => this.finish({ name: 'interrupted', detail: `controller got ${sig}` }));
    }
  }

  check(name, ok, detail) {
    this.checks.push({ name, ok: !!ok, detail: detail ?? null });
    this.h.say(ok ? 'PASS' : 'FAIL', name, typeof detail === 'string' ? detail : JSON.stringify(detail ?? null));
    return !!ok;
  }

  async finish(reason) {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.hardStop);
    if (reason) this.check(reason.name, false, reason.detail);
    await this.h.cleanup();
    const ok = this.checks.length > 0 && this.checks.every((c) => c.ok);
    const summary = {
      ok,
      checks: this.checks,
      console_errors: this.h.consoleErrors,
      console_other: this.h.consoleOther,
      ...this.summary,
      elapsed_ms: this.h.since(),
    };
    this.h.say(ok ? 'ALL CHECKS PASSED' : `FAILED: ${this.checks.filter((c) => !c.ok).map((c) => c.name).join(', ')}`);
    process.stdout.write(JSON.stringify(summary) + '\n', () => process.exit(ok ? 0 : 1));
  }

  async run(main) {
    try {
      await main();
    } catch (e) {
      this.check('controller_error', false, String(e?.stack || e));
    }
    const errors = this.h.consoleErrors;
    this.check('no_console_errors', errors.length === 0, `${errors.length} console error(s)/page error(s): see console_errors`);
    await this.finish();
  }
}

/**
 * A controller's start: its config (`defaults`, then the JSON in argv[2] or
 * MESHWORK_E2E_CONFIG), checked for the `required` fields (exit 2 without one), its
 * output directory made, and its Harness and Controller. Returns { cfg, h, run }.
 */
export function startController(tag, defaults, required) {
  const t0 = Date.now();
  const cfg = {
    chromium: '/usr/bin/chromium',
    ...defaults,
    ...JSON.parse(process.argv[2] || process.env.MESHWORK_E2E_CONFIG || '{}'),
  };
  for (const k of ['meshwork', 'dist', 'outdir', ...required]) {
    if (!cfg[k]) {
      console.error(`${tag}: missing config field ${k}`);
      process.exit(2);
    }
  }
  fs.mkdirSync(cfg.outdir, { recursive: true });
  // Processes, browsers, pages and logs: everything started through `h` is killed
  // (whole process trees) by h.cleanup(), which `run` calls at the end.
  const h = new Harness({
    tag,
    outdir: cfg.outdir,
    meshwork: cfg.meshwork,
    cwd: cfg.cwd,
    chromium: cfg.chromium,
    profilesDir: cfg.profiles_dir,
    t0,
  });
  return { cfg, h, run: new Controller(h, cfg.timeout_ms) };
}

/**
 * A harness for a benchmark script (run by xtask inside a namespace): the meshwork
 * binary from MESHWORK_BIN, output under the system's temporary directory.
 */
export function benchHarness(tag) {
  return new Harness({
    tag,
    outdir: path.join(os.tmpdir(), `meshwork-${tag}-${process.pid}`),
    meshwork: process.env.MESHWORK_BIN,
    cwd: process.cwd(),
  });
}

/**
 * How wide the page is against its window, and the first elements that stick out to
 * the right (a page that needs horizontal scrolling has some).
 */
export function horizontalOverflow(page) {
  return page.evaluate(() => ({
    scroll_width: document.documentElement.scrollWidth,
    width: window.innerWidth,
    wider: [...document.querySelectorAll('body *')]
      .filter((e) => e.getClientRects().length > 0 && e.getBoundingClientRect().right > window.innerWidth + 0.5)
      .slice(0, 5)
      .map((e) => `${e.tagName.toLowerCase()}.${e.getAttribute('class') ?? ''}`),
  }));
}

/**
 * Resizes `page` to `width` x `height` and waits (3 s at most) for it to lay itself out
 * with nothing wider than the window (the graph measures itself again on the resize).
 * Returns what horizontalOverflow() read last, with `fits`.
 */
export async function resizeAndFit(page, width, height) {
  await page.setViewportSize({ width, height });
  const fits = (o) => o.scroll_width <= o.width && o.wider.length === 0;
  const ok = await pollUntil(async () => {
    const o = await horizontalOverflow(page);
    return fits(o) ? o : null;
  }, Date.now() + 3_000);
  const o = ok ?? (await horizontalOverflow(page));
  return { ...o, fits: fits(o) };
}
