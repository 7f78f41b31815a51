import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { MountedVolume, chronovol, fuseSkipReason } from './helpers/fuse-harness';
import { tmpDir } from './helpers/tmp';

const skip = fuseSkipReason();
const CHROMIUM = '/usr/bin/chromium';
// A real browser, as a user would have it but with nothing it does on its own (no updates,
// sync, QUIC or first-run), a fresh profile, and no sandbox (the tests run as root).
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

function get(url: string | { socketPath: string; path: string }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = typeof url === 'string' ? http.get(url) : http.get({ socketPath: url.socketPath, path: url.path });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

test('mount --http: headless Chromium loads the page; an event recorded after load appears without a reload, in the list and the timeline picture', { skip: skip || (!fs.existsSync(CHROMIUM) && `${CHROMIUM} is missing (scripts/setup installs it)`), timeout: 180_000 }, async () => {
  const root = tmpDir('chronovol-http-');
  const dir = path.join(root, 'vol');
  const mnt = path.join(root, 'mnt');
  assert.equal(chronovol(['init', dir, '--size', '8M']).status, 0);
  const data = path.join(root, 'data');
  fs.writeFileSync(data, Buffer.alloc(4 * 4096, 9));
  assert.equal(chronovol(['write', dir, '--offset', String(64 * 4096), '--input', data]).status, 0);
  assert.equal(chronovol(['sync', dir, '--label', 'first']).status, 0);
  const m = await MountedVolume.start(dir, mnt, ['--http']);
  const profile = tmpDir('chronovol-http-profile-');
  const browser = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1100, height: 1400 } });
  try {
    const statusJson = JSON.parse(fs.readFileSync(path.join(mnt, 'status.json'), 'utf8')) as { daemon: { pid: number } };
    assert.equal(statusJson.daemon.pid, m.proc.pid);
    const url = /web page at (http:\/\/\S+?);/.exec(m.out.join(''))?.[1];
    assert.ok(url, 'the mount printed the page URL');
    const bare = url!.replace(/\?token=.*/, '');
    assert.equal((await get(bare)).status, 403, 'no token: 403');
    assert.equal((await get(`${bare}api/events?token=${'0'.repeat(48)}`)).status, 403, 'wrong token: 403');
    assert.equal((await get(url!.replace('127.0.0.1', 'localhost'))).status, 200, 'localhost is the loopback too');

    const page = await browser.newPage();
    await page.goto(url!);
    await page.waitForSelector('#events tr.event');
    assert.deepEqual(await page.$$eval('#events tr.event td:nth-child(3)', (tds) => tds.map((t) => t.textContent)), ['first']);
    await page.waitForSelector('#timeline svg');
    await page.waitForFunction(() => /events1last seq/.test((globalThis as any).document.querySelector('#status').textContent), undefined, { timeout: 10_000 }); // the status shows the event count
    const before = await page.locator('#timeline').screenshot();

    // Recorded after the page loaded: the page must pick it up by itself.
    const f = path.join(mnt, 'live/volume.img');
    const fd = fs.openSync(f, 'r+');
    fs.writeSync(fd, Buffer.alloc(8 * 4096, 3), 0, 8 * 4096, 512 * 4096);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    assert.equal(chronovol(['sync', mnt, '--label', 'after-load']).status, 0);
    // (These run in the page, whose DOM types this file does not load; its CSP forbids strings.)
    /* eslint-disable @typescript-eslint/no-explicit-any */
    await page.waitForFunction(() => [...(globalThis as any).document.querySelectorAll('#events td')].some((td: any) => td.textContent === 'after-load'), undefined, { timeout: 20_000 });
    await page.waitForFunction(() => [...(globalThis as any).document.querySelectorAll('#timeline svg text')].some((t: any) => t.textContent.includes('after-load')), undefined, { timeout: 20_000 });
    const labels = await page.$$eval('#timeline svg text', (ts) => ts.map((t) => t.textContent));
    assert.ok(labels.includes('1 first') && labels.includes('2 after-load'), `the picture marks both events: ${labels.join(', ')}`);
    const after = await page.locator('#timeline').screenshot();
    assert.ok(after.length > 5000, 'the picture is drawn (a non-trivial screenshot)');
    assert.ok(!after.equals(before), 'and it changed with the new event');
    fs.writeFileSync(path.join(root, 'page.png'), await page.screenshot({ fullPage: true }));

    // An event's changes, and a block-history lookup, from the page.
    await page.click('#events tr.event[data-id="2"]');
    await page.waitForSelector('#changes table');
    assert.deepEqual(await page.$$eval('#changes tbody td', (tds) => tds.map((t) => t.textContent)), ['512', '8', String(512 * 4096), String(8 * 4096)]);
    await page.fill('#offset', '256K'); // block 64, spelled as the CLI takes sizes
    await page.click('#history-form button');
    await page.waitForSelector('#history table');
    assert.match((await page.textContent('#history p')) ?? '', /^1 versions of blocks 64\.\.64/);
  } finally {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
    await m.cleanup();
  }

  // unix:PATH — the owner's socket (0600), no token needed.
  const sock = path.join(root, 'page.sock');
  const u = await MountedVolume.start(dir, mnt, ['--http', `unix:${sock}`]);
  try {
    assert.equal(fs.statSync(sock).mode & 0o777, 0o600, 'the page socket is 0600');
    const r = await get({ socketPath: sock, path: '/api/events' });
    assert.equal(r.status, 200);
    assert.deepEqual((JSON.parse(r.body) as { events: Array<{ label: string }> }).events.map((e) => e.label), ['first', 'after-load']);
  } finally {
    await u.cleanup();
  }
  const bad = chronovol(['mount', dir, mnt, '--http', '0.0.0.0:8080']);
  assert.equal(bad.status, 2, `a non-loopback address is refused: ${bad.stderr}`);
});

