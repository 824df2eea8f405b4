// The researchers' story in a real browser (headless Debian Chromium, driven by
// playwright-core), against a real `hpfriends serve` with a scratch SQLite file and mail
// written to files, and the PyPI hpfeeds 3.1.0 client as the feed's publisher and subscriber.
//
//   A signs up (following the link in the written email) and creates a publishing key;
//   B signs up and creates a subscribing key for dionaea.capture; A shares the channel with B;
//   B accepts from the invitation; B's hpfeeds subscriber receives A's publish and B's live
//   view shows it; A revokes and B's subscriber stops receiving.
//
// Screenshots of every page go to target/screenshots/. Run by .ci/run after `cargo test`
// (which builds the binary and the Python venv); `node tests/e2e/story.mjs` runs it alone.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = process.env.HPFRIENDS_BIN || path.join(root, 'target', 'debug', 'hpfriends');
const shots = path.join(root, 'target', 'screenshots');
const CHANNEL = 'dionaea.capture';
const results = [];
const children = [];

function step(name) { console.log(`e2e: ${name}`); }
function pass(name) { results.push([name, true]); console.log(`  ok  ${name}`); }
function fail(name, err) { results.push([name, false]); console.log(`  FAILED ${name}: ${err && err.stack || err}`); }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, ms, f) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

// ----- the Python reference client -----
function python() {
  const venv = path.join(root, 'target', 'tmp', 'interop-venv');
  const py = path.join(venv, 'bin', 'python');
  const ok = () => {
    try { execFileSync(py, ['-c', "import importlib.metadata as m; assert m.version('hpfeeds') == '3.1.0'"], { stdio: 'ignore' }); return true; } catch { return false; }
  };
  if (!ok()) {
    fs.mkdirSync(path.dirname(venv), { recursive: true });
    execFileSync('python3', ['-m', 'venv', venv], { stdio: 'inherit' });
    execFileSync(py, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', 'hpfeeds==3.1.0'], { stdio: 'inherit' });
  }
  return py;
}
const script = path.join(root, 'tests', 'interop', 'hpclient.py');

function subscriber(py, port, ident, secret) {
  const child = spawn(py, [script, 'stream', '127.0.0.1', String(port), ident, secret, CHANNEL], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const got = [];
  let buf = '';
  child.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i); buf = buf.slice(i + 1);
      try { got.push(JSON.parse(line)); } catch { /* not ours */ }
    }
  });
  child.stderr.on('data', (d) => process.stderr.write(`[subscriber] ${d}`));
  return { child, got, texts: () => got.filter((m) => m.payload).map((m) => Buffer.from(m.payload, 'hex').toString()) };
}

function publish(py, port, ident, secret, text) {
  execFileSync(py, [script, 'pub', '127.0.0.1', String(port), ident, secret, CHANNEL, Buffer.from(text).toString('hex')], { stdio: ['ignore', 'ignore', 'inherit'] });
}

// ----- the server -----
async function startServer(dir) {
  const out = path.join(dir, 'serve.out');
  const child = spawn(bin, ['--db', path.join(dir, 'hpfriends.db'), 'serve', '--listen', '127.0.0.1:0', '--web-listen', '127.0.0.1:0'], {
    env: { ...process.env, HPFRIENDS_MAIL_DIR: path.join(dir, 'mail'), RUST_LOG: 'info' },
    stdio: ['ignore', fs.openSync(out, 'w'), fs.openSync(path.join(dir, 'serve.err'), 'w')],
  });
  children.push(child);
  const line = await waitFor('the server to be ready', 30000, () => {
    if (child.exitCode !== null) throw new Error(`server exited: ${fs.readFileSync(path.join(dir, 'serve.err'), 'utf8')}`);
    const t = fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '';
    return /hpfeeds tcp:\/\/(\S+), website (http:\/\/\S+)/.exec(t);
  });
  const port = Number(line[1].split(':').pop());
  return { child, port, web: line[2] };
}

// ----- mail -----
function decodeQp(text) {
  return text.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
}
async function mailLink(dir, to, pathPart) {
  return waitFor(`a mail to ${to} with a ${pathPart} link`, 10000, () => {
    const mails = path.join(dir, 'mail');
    if (!fs.existsSync(mails)) return null;
    for (const f of fs.readdirSync(mails).filter((n) => n.endsWith('.eml'))) {
      const text = decodeQp(fs.readFileSync(path.join(mails, f), 'utf8'));
      if (!new RegExp(`^To: .*${to.replace('.', '\\.')}`, 'm').test(text)) continue;
      const m = new RegExp(`(http://\\S*${pathPart}\\S*)`).exec(text);
      if (m) return m[1];
    }
    return null;
  });
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

async function signUp(browser, dir, name) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  await page.goto(`${dir.web}/signup`);
  await page.fill('#name', name);
  await page.fill('#email', `${name}@example.org`);
  await page.fill('#password', `${name}-long-passphrase`);
  await page.fill('#password2', `${name}-long-passphrase`);
  await page.click('button[type=submit]');
  await page.waitForSelector('text=Check your email');
  if (name === 'alice') await shot(page, '02-check-email');
  const link = await mailLink(dir.dir, `${name}@example.org`, '/verify/');
  // The link confirms the address and logs nobody in: a login follows.
  await page.goto(link);
  await page.waitForSelector('text=Email address confirmed');
  if (await page.$('text=Welcome')) throw new Error('the confirmation link logged the opener in');
  await page.fill('#login', name);
  await page.fill('#password', `${name}-long-passphrase`);
  await page.click('form[action="/login"] button[type=submit]');
  await page.waitForSelector(`text=Welcome, ${name}`);
  return { ctx, page };
}

async function createKey(page, field) {
  await page.goto(page.url().replace(/\/[^/]*$/, '/authkeys'));
  await page.fill(`form[action="/authkeys"] #${field}`, CHANNEL);
  await page.fill('form[action="/authkeys"] #comment', field === 'publish' ? 'dionaea on sensor-1' : 'analysis box');
  await page.click('form[action="/authkeys"] button[type=submit]');
  await page.waitForSelector('#secret');
  return { ident: (await page.textContent('#ident')).trim(), secret: (await page.textContent('#secret')).trim() };
}

async function main() {
  fs.mkdirSync(shots, { recursive: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hpfriends-e2e-'));
  const server = await startServer(dir);
  const site = { dir, web: server.web };
  const py = python();
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  let a, b, keyA, keyB, sub, live;
  try {
    step('the home page and a refused sign-up');
    {
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
      const page = await ctx.newPage();
      await page.goto(`${server.web}/`);
      await shot(page, '00-home');
      await page.goto(`${server.web}/signup`);
      await page.fill('#name', 'bad name!');
      await page.fill('#email', 'not-an-address');
      await page.fill('#password', 'short');
      await page.fill('#password2', 'other');
      await page.click('button[type=submit]');
      await page.waitForSelector('.field-error');
      const errors = await page.$$eval('.field-error', (els) => els.map((e) => e.textContent));
      if (errors.length !== 4) throw new Error(`expected an error next to each of 4 fields, got ${JSON.stringify(errors)}`);
      await shot(page, '01-signup-refused');
      await ctx.close();
    }
    pass('bad sign-up fields are refused next to each field');

    step('A signs up through the emailed link and creates a publishing key');
    a = await signUp(browser, site, 'alice');
    await shot(a.page, '03-dashboard');
    keyA = await createKey(a.page, 'publish');
    await shot(a.page, '04-authkey-secret');
    pass('A signed up and has a publishing key');

    step('B signs up and creates a subscribing key; B\'s hpfeeds subscriber connects');
    b = await signUp(browser, site, 'bob');
    keyB = await createKey(b.page, 'subscribe');
    sub = subscriber(py, server.port, keyB.ident, keyB.secret);
    live = await b.ctx.newPage();
    await live.goto(`${server.web}/live?channel=${CHANNEL}`);
    await live.waitForSelector('#live-state.ok');
    pass('B has a subscribing key, a live hpfeeds subscriber and a live view');

    step('before any share, B receives nothing of A\'s');
    publish(py, server.port, keyA.ident, keyA.secret, 'before-share');
    await sleep(500);
    if (sub.texts().includes('before-share')) throw new Error('B received data that was never shared');
    pass('nothing flows without a share');

    step('A shares the channel with B');
    await a.page.goto(`${server.web}/shares`);
    await a.page.fill('#channel', CHANNEL);
    await a.page.check('input[name=to_kind][value=user]');
    await a.page.fill('#to', 'bob');
    await a.page.click('form[action="/shares"] button[type=submit]');
    await a.page.waitForSelector('text=Share offered');
    await shot(a.page, '05-shares');
    pass('A offered the share');

    step('B accepts from the invitation');
    const link = await mailLink(dir, 'bob@example.org', '/shared-with-me');
    await b.page.goto(link);
    await shot(b.page, '06-shared-with-me-offered');
    await b.page.click('tr:has-text("dionaea.capture") button:has-text("Accept")');
    await b.page.waitForSelector('text=Share accepted');
    await shot(b.page, '07-shared-with-me-accepted');
    pass('B accepted');

    step('B\'s subscriber receives A\'s publish and B\'s live view shows it');
    let n = 0;
    await waitFor('B\'s subscriber to receive A\'s message', 10000, () => {
      n += 1;
      publish(py, server.port, keyA.ident, keyA.secret, JSON.stringify({ event: 'capture', n }));
      return sub.texts().some((t) => t.includes('"capture"'));
    });
    await live.waitForSelector('#live-messages li:has-text("capture")', { timeout: 10000 });
    const from = sub.got.find((m) => m.payload).ident;
    if (from !== keyA.ident) throw new Error(`message from ${from}, expected ${keyA.ident}`);
    await shot(live, '08-live-view');
    pass('delivered to the hpfeeds subscriber and the live view');

    step('A revokes; B\'s subscriber stops receiving');
    await a.page.goto(`${server.web}/shares`);
    await a.page.click('tr:has-text("dionaea.capture") button:has-text("Revoke")');
    // Revoking asks first, on a page of its own.
    await a.page.waitForSelector('text=Revoke your share of');
    await a.page.click('button:has-text("Revoke share")');
    await a.page.waitForSelector('text=Share revoked');
    await shot(a.page, '09-shares-revoked');
    const before = sub.texts().length;
    for (let i = 0; i < 5; i++) publish(py, server.port, keyA.ident, keyA.secret, `after-revoke-${i}`);
    await sleep(1000);
    const after = sub.texts().slice(before);
    if (after.some((t) => t.startsWith('after-revoke'))) throw new Error(`B still received: ${after}`);
    if (sub.child.exitCode !== null) throw new Error('B\'s subscriber was disconnected; it should only stop receiving A\'s data');
    await live.waitForSelector('#live-messages li.notice:has-text("no longer from alice")', { timeout: 10000 });
    await shot(live, '09a-live-view-revoked');
    pass('revocation took effect on the live connection');

    step('A lists only the ended shares, clears them; B keeps its own record');
    await a.page.goto(`${server.web}/shares?show=ended`);
    await a.page.waitForSelector('tr:has-text("dionaea.capture") .state-revoked');
    await shot(a.page, '09b-shares-ended');
    await a.page.click('button:has-text("Clear ended")');
    await a.page.waitForSelector('text=Ended shares cleared');
    await a.page.goto(`${server.web}/shares?show=ended`);
    await a.page.waitForSelector('text=None of your shares is ended.');
    await b.page.goto(`${server.web}/shared-with-me?show=ended`);
    await b.page.waitForSelector('tr:has-text("dionaea.capture") .state-revoked');
    await shot(b.page, '09c-shared-with-me-ended');
    pass('the ended filter lists the revoked share and clearing empties only A\'s list');

    step('A says who she is on her profile');
    await a.page.goto(`${server.web}/account`);
    await a.page.fill('#affiliation', 'Honeynet Project, Berlin chapter');
    await a.page.fill('#about', 'Dionaea and Cowrie on 40 sensors in three data centres.');
    await a.page.click('form[action="/account/profile"] button[type=submit]');
    await a.page.waitForSelector('text=Profile saved');
    pass('A saved her profile');

    step('C, new, finds the channel in the catalogue, sees who publishes and how much, and asks A');
    const c = await signUp(browser, site, 'carol');
    const keyC = await createKey(c.page, 'subscribe');
    const subC = subscriber(py, server.port, keyC.ident, keyC.secret);
    await c.page.goto(`${server.web}/channels`);
    await c.page.fill('#q', 'dionaea');
    await c.page.click('form[role=search] button[type=submit]');
    await c.page.waitForURL(/\/channels\?q=dionaea/);
    // What A published so far reaches the catalogue with the next write of the counters (5 s).
    await waitFor('the channel\'s traffic in the catalogue', 20000, async () => {
      await c.page.goto(`${server.web}/channels?q=dionaea`);
      const n = await c.page.textContent(`tr:has(code:text-is("${CHANNEL}")) td.num`);
      return Number(n) > 0;
    });
    const row = await c.page.textContent(`tr:has(code:text-is("${CHANNEL}"))`);
    if (!row.includes('alice')) throw new Error(`the catalogue does not name alice as a publisher: ${row}`);
    await shot(c.page, '09d-channels');
    await c.page.click(`a:has(code:text-is("${CHANNEL}"))`);
    await c.page.waitForSelector('#traffic-week svg.chart rect.bar:not(.zero)');
    // Who is alice? Her profile says, and lists what she publishes.
    await c.page.click('#publisher-alice a:has-text("alice")');
    await c.page.waitForSelector('text=Honeynet Project, Berlin chapter');
    await c.page.waitForSelector(`#publishes code:text-is("${CHANNEL}")`);
    await shot(c.page, '09h-profile');
    await c.page.goBack();
    await c.page.waitForSelector('#publisher-alice');
    await c.page.fill('#publisher-alice input[name=note]', 'carol from the honeynet chapter');
    await c.page.click('#publisher-alice button:has-text("Request access")');
    await c.page.waitForSelector('text=Request sent');
    await shot(c.page, '09e-channel-requested');
    pass('C found the channel, its publisher and its traffic, and asked for access');

    step('A grants from the mailed link; C\'s subscriber and live view receive A\'s data');
    const grantLink = await mailLink(dir, 'alice@example.org', '/shares#request-');
    await a.page.goto(grantLink);
    await a.page.waitForSelector('#requests tr:has-text("carol from the honeynet chapter")');
    await shot(a.page, '09f-shares-request');
    await a.page.click('#requests tr:has-text("carol") button:has-text("Grant")');
    await a.page.waitForSelector('text=Access granted');
    const liveLink = await mailLink(dir, 'carol@example.org', '/live\\?channel=');
    const liveC = await c.ctx.newPage();
    await liveC.goto(liveLink);
    await liveC.waitForSelector('#live-state.ok');
    await waitFor('C\'s subscriber to receive A\'s message', 10000, () => {
      publish(py, server.port, keyA.ident, keyA.secret, JSON.stringify({ event: 'granted' }));
      return subC.texts().some((t) => t.includes('"granted"'));
    });
    await liveC.waitForSelector('#live-messages li:has-text("granted")', { timeout: 10000 });
    const header = await liveC.textContent('#live-messages li:has-text("granted") header');
    if (!header.includes(`from alice (key ${keyA.ident})`)) throw new Error(`the live view names the key, not its owner: ${header}`);
    await shot(liveC, '09g-live-after-grant');
    subC.child.kill('SIGKILL');
    pass('granted access flows to the requester at once');

    step('C follows two channels in one live view; A sees her feed health on the dashboard');
    await c.page.goto(`${server.web}/authkeys`);
    await c.page.fill('form[action="/authkeys"] #subscribe', 'cowrie.sessions');
    await c.page.click('form[action="/authkeys"] button[type=submit]');
    await c.page.waitForSelector('#secret');
    await c.page.goto(`${server.web}/live`);
    await c.page.check(`form.follow-several input[value="${CHANNEL}"]`);
    await c.page.check('form.follow-several input[value="cowrie.sessions"]');
    await c.page.click('form.follow-several button[type=submit]');
    await c.page.waitForSelector('#live-state.ok');
    await c.page.waitForSelector(`#live-access:has-text("on ${CHANNEL}: alice")`);
    await waitFor('a message in the two-channel view', 10000, async () => {
      publish(py, server.port, keyA.ident, keyA.secret, JSON.stringify({ event: 'two-channels' }));
      return (await c.page.$(`#live-messages li:has-text("two-channels") header:has-text("${CHANNEL}")`)) !== null;
    });
    await shot(c.page, '09i-live-two-channels');
    await a.page.goto(`${server.web}/`);
    const published = await a.page.textContent('#feed-health figcaption:has-text("published") strong');
    if (!(Number(published) > 0)) throw new Error(`A's dashboard says her keys published ${published}`);
    await shot(a.page, '09j-dashboard-health');
    pass('one view, two channels, one stream; the dashboard counts what A published');

    step('the other pages render (screenshots)');
    await a.page.goto(`${server.web}/groups`);
    await a.page.fill('#name', 'trusted');
    await a.page.fill('#description', 'Sensors we vouch for');
    await a.page.click('form[action="/groups"] button[type=submit]');
    await a.page.waitForSelector('text=Group created');
    await a.page.fill('#invite-trusted', 'bob');
    await a.page.click('form[action="/groups/trusted/invite"] button[type=submit]');
    await a.page.waitForSelector('text=Invitation sent');
    await shot(a.page, '10-groups');
    await a.page.goto(`${server.web}/shares`);
    await a.page.fill('#channel', CHANNEL);
    await a.page.check('input[name=to_kind][value=group]');
    await a.page.fill('#to', 'trusted');
    await a.page.check('input[name=kind][value=redistribute]');
    await a.page.click('form[action="/shares"] button[type=submit]');
    // A owns the group: her own share to it needs no answer from her.
    await a.page.waitForSelector('text=Shared with your group');
    await a.page.waitForSelector('tr:has-text("group trusted") .state-accepted');
    // A wrong secret leaves a line in A's key log.
    try {
      execFileSync(py, [script, 'error', '127.0.0.1', String(server.port), keyA.ident, 'wrong-secret', 'pub', CHANNEL], { stdio: 'ignore', timeout: 15000 });
    } catch { /* the broker closes the connection */ }
    await waitFor('the key log entry', 10000, async () => {
      await a.page.goto(`${server.web}/logs`);
      return (await a.page.content()).includes('auth');
    });
    await shot(a.page, '11-logs');
    await a.page.goto(`${server.web}/search?q=dionaea`);
    await shot(a.page, '12-search');
    await a.page.goto(`${server.web}/graph`);
    await a.page.waitForSelector('figure.graph svg');
    await shot(a.page, '13-graph');
    await a.page.goto(`${server.web}/authkeys`);
    await shot(a.page, '14-authkeys');
    await a.page.goto(`${server.web}/account`);
    await shot(a.page, '15-account');
    const missing = await a.page.goto(`${server.web}/no/such/page`);
    if (missing.status() !== 404) throw new Error(`an unknown page answered ${missing.status()}`);
    await a.page.waitForSelector('header.top nav >> text=Dashboard');
    await shot(a.page, '15a-not-found');
    await a.page.goto(`${server.web}/authkeys`);
    await a.page.fill('form[action="/authkeys"] #publish', 'scratch.channel');
    await a.page.click('form[action="/authkeys"] button[type=submit]');
    const scratch = (await a.page.textContent('#ident')).trim();
    await a.page.goto(`${server.web}/authkeys`);
    await a.page.click(`#key-${scratch} button:has-text("Delete")`);
    await a.page.waitForSelector('form:has(input[name=confirm]) button.danger');
    await shot(a.page, '15b-delete-confirm');
    await a.page.click('form:has(input[name=confirm]) button.danger');
    await a.page.waitForSelector('text=Authkey deleted');
    if (await a.page.$(`#key-${scratch}`)) throw new Error('the deleted key is still listed');
    pass('every page renders so far');

    step('a page on another origin of the same host tries to take the account over');
    {
      // Another port of the same host is the same *site*: SameSite=Lax cookies go along, so
      // only the session-bound token and the Origin check stand in the way. The attacker
      // page holds a token of its own (minted for its own pre-session) and posts the email
      // change, then a login-CSRF into the attacker's account.
      const attackerCtx = await browser.newContext();
      const ap = await attackerCtx.newPage();
      await ap.goto(`${server.web}/login`);
      const minted = await ap.getAttribute('input[name=csrf]', 'value');
      const preCookie = (await attackerCtx.cookies()).find((c) => c.name === 'hpf_csrf');
      const evil = http.createServer((req, res) => {
        res.setHeader('content-type', 'text/html');
        // Cookies are not isolated by port: this page plants the attacker's own (validly
        // signed) pre-session cookie for the site's host, to pair with the minted token.
        if (preCookie) res.setHeader('set-cookie', `hpf_csrf=${preCookie.value}; Path=/; HttpOnly; SameSite=Lax`);
        res.end(`<!doctype html><form id=f method=post action="${server.web}/account/email">
          <input name=email value="attacker@evil.example"><input name=csrf value="${minted}">
          <input name=current value=""></form><script>document.getElementById('f').submit()</script>`);
      });
      await new Promise((r) => evil.listen(0, '127.0.0.1', r));
      const evilUrl = `http://127.0.0.1:${evil.address().port}/`;
      const resp = [];
      a.page.on('response', (r) => { if (r.url().includes('/account/email')) resp.push(r.status()); });
      await a.page.goto(evilUrl);
      await waitFor('the forged post to be answered', 10000, async () => resp.length > 0);
      evil.close();
      if (resp[0] !== 403) throw new Error(`the forged email change answered ${resp[0]}, not 403`);
      await a.page.goto(`${server.web}/account`);
      const account = await a.page.content();
      if (!account.includes('alice@example.org')) throw new Error('the email changed');
      const mails = fs.readdirSync(path.join(dir, 'mail')).map((f) => fs.readFileSync(path.join(dir, 'mail', f), 'utf8'));
      if (mails.some((m) => m.includes('attacker@evil.example'))) throw new Error('a mail went to the attacker');
      await attackerCtx.close();
    }
    pass('the cross-origin takeover is refused and changes nothing');
    await b.page.goto(`${server.web}/groups`);
    await shot(b.page, '16-groups-invited');
    await b.page.goto(`${server.web}/`);
    await shot(b.page, '17-dashboard-bob');
    await a.page.goto(`${server.web}/`);
    await a.page.click('button:has-text("Log out")');
    await a.page.waitForSelector('text=You are logged out');
    await shot(a.page, '18-logged-out');
    await a.page.goto(`${server.web}/reset`);
    await shot(a.page, '19-reset-password');
    pass('every page renders');

    step('a graph of 200 shares stays readable (a second server, its community imported)');
    {
      // 121 users: gina shares 150 channels with 120 others (some with several), 40 share
      // with her directly, she takes up 5 public offers and is in a group 5 others share with.
      const dir2 = fs.mkdtempSync(path.join(os.tmpdir(), 'hpfriends-e2e-graph-'));
      const u = (i) => `researcher-${String(i).padStart(3, '0')}`;
      const users = [{ name: 'gina', email: 'gina@example.org', enabled: true }];
      for (let i = 0; i < 120; i++) users.push({ name: u(i), email: `${u(i)}@example.org`, enabled: true });
      const share = (from, channel, to, state = 'accepted', kind = 'own', followers = []) =>
        ({ from, channel, to, kind, onward: false, state, followers });
      const shares = [];
      for (let i = 0; i < 150; i++) shares.push(share('gina', `sensor.feed-${i}`, { user: u(i % 120) }, i % 7 === 0 ? 'offered' : 'accepted', i % 5 === 0 ? 'redistribute' : 'own'));
      for (let i = 0; i < 40; i++) shares.push(share(u(i * 3), `their.feed-${i}`, { user: 'gina' }));
      for (let i = 0; i < 5; i++) shares.push(share(u(100 + i), `public.feed-${i}`, 'everyone', 'accepted', 'own', ['gina']));
      for (let i = 0; i < 5; i++) shares.push(share(u(110 + i), `crew.feed-${i}`, { group: 'crew' }));
      const exp = {
        format: 'hpfriends-export', version: 1, users, authkeys: [],
        groups: [{ name: 'crew', owner: u(110), description: 'incident responders', members: ['gina', u(111), u(112), u(113), u(114)], invited: [] }],
        shares, blocks: [],
      };
      const file = path.join(dir2, 'community.json');
      fs.writeFileSync(file, JSON.stringify(exp));
      execFileSync(bin, ['--db', path.join(dir2, 'hpfriends.db'), 'import', '--from', 'hpfriends-export', file], { stdio: ['ignore', 'ignore', 'inherit'] });
      const server2 = await startServer(dir2);
      const ctx = await browser.newContext({ viewport: { width: 2200, height: 2300 } });
      const page = await ctx.newPage();
      // Imported users have no password: gina sets one through the mailed reset link.
      await page.goto(`${server2.web}/reset`);
      await page.fill('#login', 'gina');
      await page.click('form[action="/reset"] button[type=submit]');
      const reset = await mailLink(dir2, 'gina@example.org', '/reset/');
      await page.goto(reset);
      await page.fill('#password', 'gina-long-passphrase');
      await page.fill('#password2', 'gina-long-passphrase');
      await page.click('button[type=submit]');
      await page.waitForSelector('text=Password changed');
      await page.fill('#login', 'gina');
      await page.fill('#password', 'gina-long-passphrase');
      await page.click('form[action="/login"] button[type=submit]');
      await page.waitForSelector('text=Welcome, gina');
      await page.goto(`${server2.web}/graph`);
      await page.waitForSelector('figure.graph svg');
      const rows = await page.$$eval('table tbody tr', (r) => r.length);
      if (rows !== 200) throw new Error(`the graph's table lists ${rows} shares, not 200`);
      const everyone = await page.$$eval('figure.graph svg g > title', (t) => t.filter((x) => x.textContent === 'everyone').length);
      if (everyone !== 1) throw new Error(`${everyone} everyone nodes`);
      await shot(page, '20-graph-page-200-shares');
      // The picture itself at its natural size (the page scrolls it inside its frame).
      // (An SVG document itself never finishes loading fonts for a screenshot: the served
      // picture is shown in a bare page instead.)
      const svg = await (await ctx.request.get(`${server2.web}/graph.svg`)).text();
      if (!svg.startsWith('<svg')) throw new Error(`/graph.svg answered ${svg.slice(0, 200)}`);
      await page.setContent(`<!doctype html><html><body style="margin:0">${svg}</body></html>`);
      await shot(page, '21-graph-200-shares');
      await ctx.close();
    }
    pass('200 shares: one arrow per pair, one everyone node, names cut inside their nodes (screenshot)');
  } catch (e) {
    fail('story', e);
    for (const [name, p] of [['a', a && a.page], ['b', b && b.page], ['live', live]]) {
      if (p) await shot(p, `failure-${name}`).catch(() => {});
    }
    console.log(fs.readFileSync(path.join(dir, 'serve.err'), 'utf8').split('\n').slice(-30).join('\n'));
  } finally {
    await browser.close();
    for (const c of children) c.kill('SIGKILL');
  }
  const passed = results.filter((r) => r[1]).length;
  const failed = results.length - passed;
  console.log(`e2e: ${passed} passed, ${failed} failed`);
  console.log(`screenshots: ${shots}`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => { console.error(e); for (const c of children) c.kill('SIGKILL'); process.exit(1); });
