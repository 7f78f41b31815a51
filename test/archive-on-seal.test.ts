import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Volume } from '../src/volume/volume';
import type { VolumeStatus } from '../src/volume/volume-status';
import { cli, cliJson } from './helpers/cli';
import { ServeDaemon } from './helpers/daemon';
import { openExport } from './helpers/nbd-client';
import { Rng, withSeed } from './helpers/rng';
import { tmpDir } from './helpers/tmp';

// Issue 11's done-when test for archive on seal. Before it, a segment reached the archive only
// when it left the working set, so the archive alone recovered none of the newest events.

const SIZE = 4 * 1024 * 1024;
const SEGMENT = 256 * 1024;
const WRITE = 64 * 1024;
const EVENTS = 17;

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const status = (dir: string): VolumeStatus => cliJson<VolumeStatus>(['status', dir]);

test('archive on seal: SIGKILL the daemon, delete the volume, recover every event (the newest sealed only by --seal-after) from the archive', async () => {
  const rng = Rng.fromEnv();
  await withSeed(rng, async () => {
    const root = tmpDir();
    const dir = path.join(root, 'vol');
    const archive = path.join(root, 'archive');
    assert.equal(cli(['init', dir, '--size', String(SIZE), '--segment-size', String(SEGMENT), '--archive', archive]).status, 0);
    const d = await ServeDaemon.start(dir, ['--seal-after', '2s']);
    const image = Buffer.alloc(SIZE);
    const expected = new Map<string, string>();
    const lags: number[] = [];
    let newestSeq = 0;
    try {
      const nbd = await openExport(d);
      // ~5x the volume, in events spread evenly: every event's history has been through turnover.
      const perEvent = Math.ceil((5 * SIZE) / WRITE / EVENTS);
      for (let e = 1; e <= EVENTS; e++) {
        for (let i = 0; i < perEvent; i++) {
          const off = rng.int(SIZE / 4096 - WRITE / 4096) * 4096;
          const data = rng.bytes(WRITE);
          assert.equal(await nbd.write(off, data), 0);
          data.copy(image, off);
        }
        assert.equal(await nbd.flush(), 0);
        newestSeq = cliJson<{ seq: number }>(['sync', dir, '--label', `e${e}`]).seq;
        expected.set(`e${e}`, sha(image));
      }
      nbd.close();
      // The newest event went into the current segment (a sync appends there, after any
      // rollover) and nothing follows it: only --seal-after can seal it.
      const before = status(dir);
      lags.push(before.archive.lag.segments);
      assert.ok(before.archive.lag.segments >= 1 && before.archive.lag.bytes > 0 && before.archive.lag.seconds > 0, `lag before the quiet seal: ${JSON.stringify(before.archive.lag)}`);
      assert.ok(before.archive.archivedSeq < newestSeq, `the archive holds seq ${before.archive.archivedSeq}, the newest event is seq ${newestSeq}`);
      const deadline = Date.now() + 20_000;
      for (;;) {
        const s = status(dir);
        lags.push(s.archive.lag.segments);
        if (s.archive.lag.segments === 0) {
          assert.equal(s.archive.lag.bytes, 0);
          assert.equal(s.archive.lag.seconds, 0);
          assert.ok(s.archive.archivedSeq >= newestSeq, `the archive holds seq ${s.archive.archivedSeq}, the newest event is seq ${newestSeq}`);
          assert.ok(lags.some((n) => n > 0), 'the lag was seen above zero first');
          assert.ok(s.log.bytesWritten >= 5 * SIZE, 'the volume was overwritten ~5x');
          assert.ok(s.log.copyForwardBytes > 0, 'copy-forward happened');
          break;
        }
        assert.ok(Date.now() < deadline, `archive lag never reached zero: ${lags.join(' ')}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      d.proc.kill('SIGKILL');
      await new Promise((r) => (d.proc.exitCode !== null || d.proc.signalCode !== null ? r(undefined) : d.proc.once('exit', r)));
    }
    // The primary disk is lost: only the archive is left.
    fs.rmSync(dir, { recursive: true, force: true });
    const target = path.join(root, 'recovered');
    const r = cli(['recover', target, '--archive', archive, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const v = await Volume.open(target);
    try {
      assert.deepEqual(v.events.map((e) => e.label), [...expected.keys()]);
      for (const [label, hash] of expected) assert.equal(sha(await v.read(0, SIZE, v.resolvePoint(label))), hash, `event ${label}`);
      assert.equal(sha(await v.read(0, SIZE)), expected.get(`e${EVENTS}`), 'live = the newest event');
    } finally {
      await v.close();
    }
  });
});
