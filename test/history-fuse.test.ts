import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { cliJson } from './helpers/cli';
import { MountedVolume, chronovol, eventDir, fuseSkipReason, ok } from './helpers/fuse-harness';
import { tmpDir } from './helpers/tmp';

const skip = fuseSkipReason();

test('events/<event>/changes.json lists the extents changed since the event before, as diff does', { skip, timeout: 180_000 }, async () => {
  const root = tmpDir('chronovol-history-fuse-');
  const dir = path.join(root, 'vol');
  const mnt = path.join(root, 'mnt');
  const must = (args: string[]) => {
    const r = chronovol(args);
    assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
  };
  must(['init', dir, '--size', '4M']);
  const data = path.join(root, 'data');
  fs.writeFileSync(data, Buffer.alloc(3 * 4096, 7));
  must(['write', dir, '--offset', String(10 * 4096), '--input', data]);
  must(['sync', dir, '--label', 'one']);
  const m = await MountedVolume.start(dir, mnt);
  try {
    // Blocks 2 and 11-12 (overlapping what event one wrote) through the live image.
    const live = path.join(mnt, 'live/volume.img');
    ok('dd', ['if=/dev/urandom', `of=${live}`, 'bs=4096', 'seek=2', 'count=1', 'conv=notrunc,fsync', 'status=none']);
    ok('dd', ['if=/dev/urandom', `of=${live}`, 'bs=4096', 'seek=11', 'count=2', 'conv=notrunc,fsync', 'status=none']);
    must(['sync', mnt, '--label', 'two']);
    const read = (label: string) => JSON.parse(ok('cat', [path.join(eventDir(mnt, label), 'changes.json')]).stdout) as { from: string; to: string; changes: Array<{ firstBlock: number; blockCount: number }> };
    const one = read('one');
    assert.equal(one.from, 'seq:0');
    assert.deepEqual(one.changes.map((e) => [e.firstBlock, e.blockCount]), [[10, 3]], 'event one: since creation');
    const two = read('two');
    assert.equal(two.from, 'event:1');
    assert.deepEqual(two.changes.map((e) => [e.firstBlock, e.blockCount]), [[2, 1], [11, 2]], 'event two: since event one');
    assert.ok(ok('ls', [eventDir(mnt, 'two')]).stdout.includes('changes.json'), 'listed in the event directory');
    await m.stop();
    const viaCli = cliJson<{ changes: unknown[] }>(['diff', dir, 'one', 'two']);
    assert.deepEqual(viaCli.changes, two.changes, 'the tree and the CLI agree');
  } finally {
    await m.cleanup();
  }
});
