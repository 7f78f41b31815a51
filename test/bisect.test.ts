import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Volume } from '../src/volume/volume';
import { cli } from './helpers/cli';
import { MountedVolume, chronovol, fuseSkipReason, ok } from './helpers/fuse-harness';
import { Rng } from './helpers/rng';
import { tmpDir } from './helpers/tmp';

const skip = fuseSkipReason();
const SEED = Number(process.env.CHRONOVOL_SEED ?? 1717);
const BS = 4096;

interface BisectJson {
  firstBad: { name: string; seq: number };
  lastGood: { name: string; seq: number };
  candidates: number;
  probes: Array<{ point: string; good: boolean }>;
  diff: { changes: Array<{ firstBlock: number; blockCount: number }> };
}

function bisect(args: string[]): BisectJson {
  const r = cli(['bisect', '--json', ...args]);
  assert.equal(r.status, 0, `bisect ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as BisectJson;
}

// The probe: block 5 of the clone must not hold the marker. Reads the clone's image as a file.
const MARKER_CHECK = ['--', 'sh', '-c', `dd if={} bs=${BS} skip=5 count=1 status=none | grep -q BROKEN && exit 1; exit 0`];

test('bisect finds exactly the event (and with --writes the write) where a block goes bad, on a stopped volume, in at most ceil(log2(n)) probes', { skip, timeout: 120_000 }, async () => {
  const rng = new Rng(SEED);
  console.log(`seed ${SEED} (CHRONOVOL_SEED replays)`);
  const root = tmpDir('chronovol-bisect-');
  const dir = path.join(root, 'vol');
  await Volume.create(dir, { sizeBytes: 1 << 20, blockSizeBytes: BS, segmentSizeBytes: 64 * 1024, archive: path.join(root, 'archive') });
  const vol = await Volume.open(dir);
  const EVENTS = 24 + rng.int(40);
  const badAt = 2 + rng.int(EVENTS - 2); // event ids 1..EVENTS; 1 is good, EVENTS is bad
  let badSeq = 0;
  for (let id = 1; id <= EVENTS; id++) {
    // Noise elsewhere in every event, some of it before the marker's write in the same event.
    for (let k = rng.int(3); k > 0; k--) await vol.write((10 + rng.int(200)) * BS, rng.bytes(BS));
    if (id === badAt) {
      await vol.write(5 * BS, Buffer.from('BROKEN '.repeat(BS / 7 + 1).slice(0, BS)));
      badSeq = vol.lastSeq;
    }
    await vol.write((10 + rng.int(200)) * BS, rng.bytes(BS));
    await vol.sync({ label: `e${id}` });
  }
  await vol.close();

  const r = bisect([dir, '--good', 'e1', '--bad', `e${EVENTS}`, ...MARKER_CHECK]);
  assert.equal(r.firstBad.name, `event:${badAt}`, 'first bad event');
  assert.equal(r.lastGood.name, `event:${badAt - 1}`, 'last good event');
  assert.equal(r.candidates, EVENTS - 1);
  assert.ok(r.probes.length <= Math.ceil(Math.log2(EVENTS - 1)), `${r.probes.length} probes for ${EVENTS - 1} candidates`);
  assert.ok(r.diff.changes.some((e) => e.firstBlock <= 5 && 5 < e.firstBlock + e.blockCount), 'the diff from the last good point lists the bad block');

  const w = bisect([dir, '--good', `e${badAt - 1}`, '--bad', `e${badAt}`, '--writes', ...MARKER_CHECK]);
  assert.equal(w.firstBad.seq, badSeq, '--writes: the exact write');
  assert.deepEqual(w.diff.changes, [{ firstBlock: 5, blockCount: 1, offset: 5 * BS, length: BS }], '--writes: the diff is that write alone');

  // The clones were thrown away and bisect's own mount is gone.
  assert.deepEqual(fs.existsSync(path.join(dir, 'clones')) ? fs.readdirSync(path.join(dir, 'clones')) : [], [], 'no clone left behind');
  assert.ok(!fs.readFileSync('/proc/mounts', 'utf8').includes('chronovol-bisect-'), 'no bisect mount left behind');
  const bad = cli(['bisect', dir, '--good', 'e1', '--bad', 'e2', '--', 'true']);
  assert.equal(bad.status, 2, 'a command without {} is a usage error');
  const backwards = cli(['bisect', dir, '--good', 'e2', '--bad', 'e1', ...MARKER_CHECK]);
  assert.equal(backwards.status, 2, `--good after --bad is a usage error: ${backwards.stderr}`);
  assert.ok(!fs.readFileSync('/proc/mounts', 'utf8').includes('chronovol-bisect-'), 'and leaves no mount behind');
});

test('bisect through a running mount finds the event where fsck.ext4 -fn starts failing', { skip, timeout: 180_000 }, async () => {
  const root = tmpDir('chronovol-bisect-ext4-');
  const dir = path.join(root, 'vol');
  const mnt = path.join(root, 'mnt');
  assert.equal(chronovol(['init', dir, '--size', '16M']).status, 0);
  const m = await MountedVolume.start(dir, mnt);
  try {
    const live = path.join(mnt, 'live/volume.img');
    ok('mkfs.ext4', ['-q', '-F', live]);
    const sync = (label: string) => assert.equal(chronovol(['sync', mnt, '--label', label]).status, 0);
    sync('mkfs');
    const EVENTS = 12;
    const badAt = 8;
    for (let i = 1; i <= EVENTS; i++) {
      // File data in free blocks (fsck does not read it) in every event ...
      ok('dd', ['if=/dev/urandom', `of=${live}`, `bs=${BS}`, `seek=${3000 + i * 4}`, 'count=4', 'conv=notrunc,fsync', 'status=none']);
      // ... and at one event the superblock is wiped: from there on the checker fails.
      if (i === badAt) ok('dd', ['if=/dev/zero', `of=${live}`, 'bs=1024', 'seek=1', 'count=1', 'conv=notrunc,fsync', 'status=none']);
      sync(`e${i}`);
    }
    const r = bisect([mnt, '--good', 'mkfs', '--bad', `e${EVENTS}`, '--', 'fsck.ext4', '-fn', '{}']);
    assert.equal(r.firstBad.name, `event:${badAt + 1}`, 'first bad event (event 1 is mkfs)');
    assert.ok(r.probes.length <= Math.ceil(Math.log2(EVENTS)), `${r.probes.length} probes`);
    assert.ok(r.diff.changes.some((e) => e.firstBlock === 0), 'the diff lists the superblock block');
    assert.equal(JSON.parse(ok('cat', [path.join(mnt, 'status.json')]).stdout).daemon.pid, m.proc.pid, 'the mount kept running');
    assert.deepEqual(fs.readdirSync(path.join(mnt, 'clones')), [], 'no clone left behind');
  } finally {
    await m.cleanup();
  }
});
