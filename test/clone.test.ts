import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { CloneService, clonesOf } from '../src/clone/clone-service';
import { CLONE_CRC, CLONE_MAP } from '../src/format/constants';
import { Volume } from '../src/volume/volume';
import { Rng, withSeed } from './helpers/rng';
import { tmpDir } from './helpers/tmp';
import { freshVolume } from './helpers/volumes';

const MiB = 1 << 20;

async function imageOf(read: (out: Buffer, off: number, len: number) => Promise<void> | undefined, size: number): Promise<Buffer> {
  const out = Buffer.alloc(size);
  const p = read(out, 0, size);
  if (p) await p;
  return out;
}

test('clone overlay: reads fall through to the point, writes (aligned and not) stay in the clone, the event and live never change', async () => {
  const rng = Rng.fromEnv();
  console.log(`seed ${rng.seed}`);
  await withSeed(rng, async () => {
    const { dir, vol } = await freshVolume({ sizeBytes: 4 * MiB, blockSizeBytes: 4096, segmentSizeBytes: MiB });
    try {
      await vol.write(0, rng.bytes(4 * MiB));
      const e = await vol.sync({ label: 'base' });
      await vol.write(MiB, rng.bytes(MiB)); // live moves on past the event
      const eventBefore = await vol.read(0, vol.sizeBytes, vol.resolvePoint('base'));
      const liveBefore = await vol.read(0, vol.sizeBytes);
      const clones = clonesOf(vol);
      const info = await clones.create('work', 'base');
      assert.equal(info.seq, e.seq);
      assert.deepEqual(info.event, { id: e.id, label: 'base', kind: 'app' });
      const o = clones.overlay('work');
      assert.deepEqual(await imageOf((b, off, len) => o.readInto(b, off, len), vol.sizeBytes), eventBefore, 'a fresh clone reads as its point');
      const model = Buffer.from(eventBefore);
      for (let i = 0; i < 60; i++) {
        const off = rng.int(vol.sizeBytes - 1);
        const data = rng.bytes(Math.min(vol.sizeBytes - off, 1 + rng.int(20_000)));
        const p = o.write(off, data);
        if (p) await p;
        data.copy(model, off);
      }
      await o.sync();
      assert.deepEqual(await imageOf((b, off, len) => o.readInto(b, off, len), vol.sizeBytes), model);
      const odd = Buffer.alloc(777);
      const p = o.readInto(odd, 12345, 777);
      if (p) await p;
      assert.deepEqual(odd, model.subarray(12345, 12345 + 777), 'an unaligned read');
      assert.deepEqual(await vol.read(0, vol.sizeBytes, vol.resolvePoint('base')), eventBefore, 'the event is untouched');
      assert.deepEqual(await vol.read(0, vol.sizeBytes), liveBefore, 'live is untouched');
      const held = clones.info('work').overlayBytes;
      assert.ok(held > 0 && held % 4096 === 0 && held < vol.sizeBytes, `overlay holds ${held} bytes`);
      // Private files, the map header as FORMAT.md says.
      const cdir = path.join(dir, 'clones', 'work');
      assert.equal(fs.statSync(cdir).mode & 0o777, 0o700);
      for (const f of fs.readdirSync(cdir)) assert.equal(fs.statSync(path.join(cdir, f)).mode & 0o777, 0o600, f);
      const map = fs.readFileSync(path.join(cdir, 'overlay.map'));
      assert.deepEqual(map.subarray(0, 8), CLONE_MAP.magic);
      assert.equal(map.length, CLONE_MAP.lengthBytes + vol.sizeBytes / 4096 / 8 + 4 * Math.ceil(vol.sizeBytes / 4096 / 8 / CLONE_MAP.pageBytes));
      const blocks = vol.sizeBytes / 4096;
      assert.equal(fs.statSync(path.join(cdir, 'overlay.crc')).size, CLONE_CRC.lengthBytes + 4 * blocks + Math.ceil(blocks / CLONE_CRC.markRegionBlocks / 8), 'entries, then the region marks');
      await clones.closeAll();
      await vol.close();
      // What a crash in the middle of a make or a discard leaves: dot-named, never a clone.
      for (const d of ['.half.new', '.gone.discard']) {
        fs.mkdirSync(path.join(dir, 'clones', d));
        fs.writeFileSync(path.join(dir, 'clones', d, 'clone.json'), '{}');
      }
      // After a reopen the clone holds what was synced.
      const again = await Volume.open(dir);
      try {
        const c2 = clonesOf(again);
        assert.deepEqual(c2.names(), ['work']);
        assert.deepEqual(fs.readdirSync(path.join(dir, 'clones')), ['work'], 'a crashed make and discard are swept at open');
        assert.equal(c2.info('work').overlayBytes, held);
        const o2 = c2.overlay('work');
        assert.deepEqual(await imageOf((b, off, len) => o2.readInto(b, off, len), again.sizeBytes), model);
        await c2.delete('work');
        assert.deepEqual(c2.names(), []);
        assert.deepEqual(fs.readdirSync(path.join(dir, 'clones')), [], 'nothing left behind');
        await assert.rejects(c2.delete('work'), { code: 'UNKNOWN_CLONE' });
      } finally {
        await again.close();
      }
    } finally {
      await vol.close();
    }
  });
});

test('clone: only synced writes reach the map; an unsynced map bit never points at missing data', async () => {
  const { dir, vol } = await freshVolume({ sizeBytes: MiB, blockSizeBytes: 4096, segmentSizeBytes: MiB });
  try {
    await vol.write(0, Buffer.alloc(MiB, 0xaa));
    await vol.sync({ label: 'a' });
    const clones = clonesOf(vol);
    await clones.create('c', 'a');
    const o = clones.overlay('c');
    o.write(0, Buffer.alloc(8192, 0x11));
    const mapFile = path.join(dir, 'clones', 'c', 'overlay.map');
    assert.equal(fs.readFileSync(mapFile)[CLONE_MAP.lengthBytes], 0, 'no bit on disk before sync');
    await o.sync();
    assert.equal(fs.readFileSync(mapFile)[CLONE_MAP.lengthBytes], 0b11, 'both blocks after sync');
  } finally {
    await clonesOf(vol).closeAll();
    await vol.close();
  }
});

test('clone: names, points and duplicates are checked; creation writes the same few bytes whatever the volume size', async () => {
  for (const sizeBytes of [MiB, 256 * MiB]) {
    const { dir, vol } = await freshVolume({ sizeBytes, blockSizeBytes: 4096, segmentSizeBytes: MiB });
    try {
      const clones = clonesOf(vol);
      await assert.rejects(() => clones.create('../x', 'live'), { code: 'BAD_ARGUMENT' });
      await assert.rejects(() => clones.create('.hidden', 'live'), { code: 'BAD_ARGUMENT' });
      await assert.rejects(() => clones.create('a@b', 'live'), { code: 'BAD_ARGUMENT' });
      await assert.rejects(() => clones.create('x', 'no-such-event'), { code: 'UNKNOWN_POINT' });
      await clones.create('x', 'live');
      await assert.rejects(() => clones.create('x', 'live'), { code: 'EXISTS' });
      // Allocated bytes, not apparent size: the map is sparse past its header, the data file empty.
      const cdir = path.join(dir, 'clones', 'x');
      const allocated = fs.readdirSync(cdir).reduce((n, f) => n + fs.statSync(path.join(cdir, f)).blocks * 512, 0);
      assert.ok(allocated <= 3 * 4096, `${allocated} bytes allocated for a ${sizeBytes}-byte volume`);
      assert.doesNotThrow(() => CloneService.checkName('a.b_c-1'));
    } finally {
      await clonesOf(vol).closeAll();
      await vol.close();
    }
  }
});

test('a clone and a pin of live name a durable state: after a SIGKILL, writes made later never show through them (review finding)', async () => {
  const root = tmpDir();
  const dir = path.join(root, 'vol');
  await Volume.create(dir, { archive: path.join(root, 'archive'), sizeBytes: 1 << 20, blockSizeBytes: 4096, segmentSizeBytes: 256 << 10 });
  const r = spawnSync(process.execPath, [path.join(__dirname, 'helpers', 'clone-live-child.js'), dir], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.signal, 'SIGKILL', r.stderr);
  const recorded = JSON.parse(r.stdout) as { cloneSeq: number; pinSeq: number };
  const vol = await Volume.open(dir);
  const clones = clonesOf(vol);
  try {
    // After the restart, other writes; had the clone's base been cut, they would take its seqs.
    await vol.write(0, Buffer.alloc(4096, 0xcc));
    await vol.write(4096, Buffer.alloc(4096, 0xdd));
    await vol.flush();
    assert.ok(vol.lastSeq > recorded.cloneSeq, `the records up to the clone's base (seq ${recorded.cloneSeq}) survived: lastSeq ${vol.lastSeq}`);
    const got = Buffer.alloc(2 * 4096);
    const pending = clones.overlay('c').readInto(got, 0, got.length);
    if (pending) await pending;
    assert.equal(got[0], 0xbb, 'the clone shows block 0 as live held it when the clone was made');
    assert.equal(got[4096], 0, 'a write made after the clone never shows through it');
    const pinned = await vol.read(0, 2 * 4096, vol.resolvePoint(`seq:${recorded.pinSeq}`));
    assert.deepEqual([pinned[0], pinned[4096]], [0xbb, 0], 'the pinned state is the one live held');
  } finally {
    await clones.closeAll();
    await vol.close();
  }
});
