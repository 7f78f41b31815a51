import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { DM_LOG } from '../src/format/dm-log-writes';
import { cli, cliJson } from './helpers/cli';
import { LogOp, writeDmLog } from './helpers/dm-log-writer';
import { Rng } from './helpers/rng';
import { tmpDir } from './helpers/tmp';

const SIZE = 4 << 20;

for (const sectorSize of [512, 4096]) {
  test(`import-log replays a dm-log-writes log (${sectorSize}-byte log sectors): MARKs are events, FLUSHes crash points, DISCARDs zero`, () => {
    const rng = Rng.fromEnv();
    const root = tmpDir();
    const dir = path.join(root, 'vol');
    cliJson(['init', dir, '--size', String(SIZE)]);
    const model = Buffer.alloc(SIZE);
    const atMark = new Map<string, Buffer>();
    const ops: LogOp[] = [];
    for (let m = 0; m < 4; m++) {
      for (let i = 0; i < 30; i++) {
        const r = rng.next();
        const off = rng.int(SIZE / sectorSize - 64) * sectorSize;
        if (r < 0.8) {
          const data = rng.bytes((1 + rng.int(32)) * sectorSize);
          ops.push({ write: { offsetBytes: off, data }, flags: rng.bool(0.1) ? DM_LOG.FUA : 0 });
          data.copy(model, off);
        } else if (r < 0.9) {
          const len = (1 + rng.int(64)) * sectorSize;
          ops.push({ discard: { offsetBytes: off, lengthBytes: len } });
          model.fill(0, off, off + len);
        } else ops.push({ flush: true });
      }
      ops.push({ mark: `mark-${m}` });
      atMark.set(`mark-${m}`, Buffer.from(model));
    }
    const log = path.join(root, 'writes.log');
    fs.writeFileSync(log, writeDmLog(ops, sectorSize));
    const summary = cliJson<{ entries: number; marks: number; flushes: number; discards: number }>(['import-log', dir, log]);
    assert.equal(summary.entries, ops.length);
    assert.equal(summary.marks, 4);
    const events = cliJson<Array<{ label: string; kind: string }>>(['events', dir]);
    assert.equal(events.filter((e) => e.kind === 'crash').length, summary.flushes, 'one crash-consistent event per FLUSH');
    for (const [label, want] of atMark) assert.ok(cli(['export', dir, '--at', label]).stdoutBytes.equals(want), label);
  });
}

test('import-log refuses a file that is not a dm-log-writes log, and one that is cut short', () => {
  const root = tmpDir();
  const dir = path.join(root, 'vol');
  cliJson(['init', dir, '--size', String(SIZE)]);
  fs.writeFileSync(path.join(root, 'junk'), Buffer.alloc(4096, 1));
  const junk = cli(['import-log', dir, path.join(root, 'junk')]);
  assert.notEqual(junk.status, 0);
  assert.match(junk.stderr, /BAD_MAGIC/);
  const full = writeDmLog([{ write: { offsetBytes: 0, data: Buffer.alloc(8192, 3) } }, { mark: 'm' }]);
  fs.writeFileSync(path.join(root, 'short'), full.subarray(0, full.length - 600));
  const short = cli(['import-log', dir, path.join(root, 'short')]);
  assert.notEqual(short.status, 0);
  assert.match(short.stderr, /runs past the end/);
});
