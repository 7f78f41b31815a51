import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { NBD } from '../src/nbd/nbd-protocol';
import { cli, cliJson } from './helpers/cli';
import { ServeDaemon } from './helpers/daemon';
import { MountedVolume, eventDir, fuseSkipReason, ok } from './helpers/fuse-harness';
import type { StepResult } from './helpers/held-handles-child';
import { thinnableEvent } from './helpers/prune';
import { SMALL, freshVolume } from './helpers/volumes';

const BS = 4096;
const CHILD = path.join(__dirname, 'helpers', 'held-handles-child.js');

/**
 * Block 0 holds 0x05 at event e0 (pinned), 0x11 at e1, 0x22 after; other blocks are rewritten
 * until the old segments are archived and out of primary. Forgetting e1 (keep-last 1) and a
 * prune then drop the 0x11 version: only e1 read it. Returns e1's id.
 */
async function history(): Promise<{ dir: string; e1: number }> {
  const { dir, vol } = await freshVolume(SMALL);
  try {
    return { dir, e1: (await thinnableEvent(vol, 779)).e1 };
  } finally {
    await vol.close();
  }
}

/**
 * Review finding 3 (issue 10/15), DESIGN rule 25: an NBD export attached to an event resolves
 * its point once, at the handshake. A forget and a prune while the connection stays open drop
 * the version only that point read; the next read must fail (NBD error) or return the point's
 * bytes (0x11), never the older version (0x05).
 */
test('held point: an NBD export of an event, across forget + prune, errors or reads its own bytes', { timeout: 180_000 }, async () => {
  const { dir, e1 } = await history();
  const d = await ServeDaemon.start(dir);
  try {
    const c = await d.connect();
    assert.ok('size' in (await c.go(String(e1))));
    c.sendRequest(NBD.CMD_READ, 0, BS);
    const before = await c.reply(BS);
    assert.equal(before.error, 0);
    assert.equal(before.data[0], 0x11);
    assert.equal(cli(['forget', dir, '--keep-last', '1']).status, 0);
    const pr = cliJson<{ deleted: number[]; rewritten: number[]; versionsDropped: number }>(['prune', dir]);
    assert.ok(pr.versionsDropped > 0, `the prune dropped versions: ${JSON.stringify(pr)}`);
    c.sendRequest(NBD.CMD_READ, 0, BS);
    const after = await c.reply(BS);
    if (after.error === 0) assert.equal(after.data[0].toString(16), '11', `the held export of event ${e1} reads block 0 as 0x${after.data[0].toString(16)}: another point's bytes`);
    else assert.equal(after.error, 5, 'EIO');
    c.close();
  } finally {
    assert.equal(await d.stop(), 0);
  }
});

/**
 * The same through FUSE: a handle on events/<e1>/volume.img opened before the forget (in a
 * child process: the test never touches the mount itself). Block 0 is first read only after the
 * prune, so no page the kernel cached can answer for the daemon.
 */
test('held point: a FUSE handle on an event image, across forget + prune, errors or reads its own bytes', { skip: fuseSkipReason(), timeout: 180_000 }, async () => {
  const { dir, e1 } = await history();
  const mnt = path.join(path.dirname(dir), 'mnt');
  fs.mkdirSync(mnt);
  const m = await MountedVolume.start(dir, mnt);
  try {
    const img = path.join(eventDir(mnt, 'e1'), 'volume.img');
    const steps = [
      { open: 'h', path: img },
      { read: 'h', offset: SMALL.sizeBytes - BS, length: BS },
      { cli: ['forget', mnt, '--keep-last', '1'] },
      { cli: ['prune', mnt, '--json'] },
      { read: 'h', offset: 0, length: BS, mayFail: true },
    ];
    const r = JSON.parse(ok(process.execPath, [CHILD, JSON.stringify(steps)], 120_000).stdout) as StepResult[];
    assert.ok(r.slice(0, 4).every((x) => x.ok), JSON.stringify(r));
    const dropped = JSON.parse((r[3] as { stdout: string }).stdout) as { versionsDropped: number };
    assert.ok(dropped.versionsDropped > 0, `the prune dropped versions: ${JSON.stringify(dropped)}`);
    const last = r[4];
    if (last.ok) assert.equal(last.bytes, '11', `the held handle on event ${e1} reads block 0 as ${last.bytes}: another point's bytes`);
    else assert.match(last.error, /ENOENT|EIO|input\/output/i, 'POINT_FORGOTTEN (ENOENT at the FUSE edge) or EIO');
  } finally {
    await m.stop();
  }
});
