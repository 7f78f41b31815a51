import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { cliJson } from './helpers/cli';
import { MountedVolume, chronovol, eventDir, fuseSkipReason, ok } from './helpers/fuse-harness';
import { tmpDir } from './helpers/tmp';

const skip = fuseSkipReason();

test('events/<event>/changes.json lists the extents changed since the event before, as diff does; diff and history work while the daemon runs', { skip, timeout: 180_000 }, async () => {
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
    // While the daemon runs, diff and history go through its control socket (by the volume
    // directory or by the mountpoint) instead of failing LOCKED.
    type Diff = { changes: Array<{ firstBlock: number; blockCount: number }>; toSeq: number };
    type Hist = { versions: Array<{ block: number; seq: number; kind: string; sha256: string; event?: { id: number } }> };
    for (const t of [dir, mnt]) {
      assert.deepEqual(cliJson<Diff>(['diff', t, 'one', 'two']).changes, two.changes, `diff via the daemon (${t}) agrees with the tree`);
      const h = cliJson<Hist>(['history', t, '--offset', String(11 * 4096), '--hash']);
      assert.deepEqual(h.versions.map((v) => v.event?.id), [1, 2], `history of block 11 via the daemon (${t}): written at events one and two`);
    }
    const liveOut = path.join(root, 'changed-live.img');
    const d = cliJson<Diff>(['diff', mnt, 'one', 'live', '--out', liveOut]);
    const img = fs.readFileSync(live);
    const out = fs.readFileSync(liveOut);
    assert.equal(out.length, img.length, '--out via the daemon has the volume size');
    for (const e of d.changes) {
      const [a, b] = [e.firstBlock * 4096, (e.firstBlock + e.blockCount) * 4096];
      assert.ok(out.subarray(a, b).equals(img.subarray(a, b)), `--out via the daemon holds live's bytes in blocks ${e.firstBlock}+${e.blockCount}`);
    }
    const hist = cliJson<Hist>(['history', dir, '--offset', String(2 * 4096), '--hash']);
    // timeline.svg: the recent window, drawn in the background; it shows both events.
    let svg = '';
    for (let i = 0; i < 300 && !/>2 two</.test(svg); i++) { // redrawn within 5 s, longer on a loaded machine
      await new Promise((r) => setTimeout(r, 200));
      svg = fs.existsSync(path.join(mnt, 'timeline.svg')) ? ok('cat', [path.join(mnt, 'timeline.svg')]).stdout : '';
    }
    assert.match(svg, /^<svg/, 'timeline.svg is an SVG');
    assert.match(svg, />1 one</, 'timeline.svg labels event one');
    assert.match(svg, />2 two</, 'timeline.svg labels event two');
    const tl = cliJson<{ events: number; versions: number; bytes: number }>(['timeline', mnt, '--from', 'one', '--out', path.join(root, 't.svg')]);
    assert.deepEqual([tl.events, tl.versions], [2, 3], 'timeline via the daemon: events one and two, the 3 versions written after one');
    assert.equal(fs.statSync(path.join(root, 't.svg')).size, tl.bytes);
    await m.stop();
    const viaCli = cliJson<{ changes: unknown[] }>(['diff', dir, 'one', 'two']);
    assert.deepEqual(viaCli.changes, two.changes, 'the tree and the CLI agree');
    assert.deepEqual(cliJson<Hist>(['history', dir, '--offset', String(2 * 4096), '--hash']), hist, 'history of a stopped volume equals what the daemon answered');
  } finally {
    await m.cleanup();
  }
});
