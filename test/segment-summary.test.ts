import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LocalDirStore } from '../src/archive/local-dir-store';
import { RecordType } from '../src/format/constants';
import { HEADER_BYTES, RecordHeader } from '../src/format/record';
import { DEFAULTS } from '../src/options';
import { SegmentSummaries } from '../src/segment/segment-summary';
import { FileHandle } from '../src/storage/file-system';
import { MemoryFileSystem } from '../src/storage/memory-file-system';
import { FaultyStore } from '../src/archive/faulty-store';
import { LIVE_SEQ } from '../src/volume/events';
import { Volume } from '../src/volume/volume';
import { whiteBox } from '../src/volume/white-box';
import { Rng, withSeed } from './helpers/rng';

const header = (type: RecordHeader['type'], firstBlock: number, blockCount: number, seq: number): RecordHeader => ({ type, blockCount, seq, timeMs: 1000 + seq, firstBlock, payloadLength: 0, originSegment: 0, originOffset: 0 });

test('segment summaries: handed out only whole (sealed, every record seen), within their budget', () => {
  const s = new SegmentSummaries(1 << 20);
  s.start(7);
  s.note(7, 64, header(RecordType.WRITE, 10, 4, 1));
  s.note(7, 64 + 64 + 4 * 4100, header(RecordType.EVENT, 0, 0, 2)); // not what copy-forward looks at
  s.note(7, 999, header(RecordType.COPY_ZERO, 3, 2, 1));
  assert.equal(s.records(7, 4100), undefined, 'not sealed yet');
  s.seal(7, 3);
  const r = s.records(7, 4100)!;
  assert.deepEqual(r.map((x) => [x.offset, x.header.type, x.header.firstBlock, x.header.blockCount, x.header.seq, x.header.timeMs, x.header.payloadLength]), [
    [64, RecordType.WRITE, 10, 4, 1, 1001, 4 * 4100],
    [999, RecordType.COPY_ZERO, 3, 2, 1, 1001, 0],
  ]);
  assert.equal(s.records(8, 4100), undefined, 'a segment never started here (resumed after an open) has none');
  // One that heard of fewer records than its segment counts at the seal is dropped.
  s.start(9);
  s.note(9, 64, header(RecordType.WRITE, 1, 1, 5));
  s.seal(9, 2);
  assert.equal(s.records(9, 4100), undefined, 'a record the summary missed: scanned instead');
  // Past the budget a summary is dropped, never handed out part-filled.
  const small = new SegmentSummaries(64 * 48 + 10);
  small.start(1);
  for (let i = 0; i < 100; i++) small.note(1, 64 + i * 100, header(RecordType.WRITE, i, 1, i + 1));
  small.seal(1, 100);
  assert.equal(small.records(1, 4100), undefined, 'outgrew the budget: scanned instead');
  assert.equal(small.heldBytes, 0);
  small.start(2);
  assert.equal(small.heldBytes, 64 * 48, 'room again once the dropped one is gone');
  s.drop(7);
  assert.equal(s.records(7, 4100), undefined);
  assert.equal(s.heldBytes, 0);
});

/** Segment files read in pieces the length of a record header: what scanning a segment's headers does. */
function countHeaderReads(mem: MemoryFileSystem): { n: number; files: Set<string> } {
  const counter = { n: 0, files: new Set<string>() };
  const open = mem.open.bind(mem);
  mem.open = ((path: string, mode: Parameters<MemoryFileSystem['open']>[1]) => {
    const h = open(path, mode) as FileHandle;
    if (!path.startsWith('/v/segments/')) return h; // the volume's own, not the archive's
    const read = h.read.bind(h);
    h.read = (buf, off, len, pos) => {
      if (len === HEADER_BYTES) {
        counter.n++;
        counter.files.add(path.split('/').pop()!);
      }
      return read(buf, off, len, pos);
    };
    return h;
  }) as MemoryFileSystem['open'];
  return counter;
}

test('turnover copies forward from the segment summaries (no record header read back), with the same result as scanning them (summaries off), also across a reopen', async () => {
  const rng = Rng.fromEnv();
  await withSeed(rng, async () => {
    const seed = rng.int(2 ** 31);
    const results: Array<{ copied: number; headerReads: number; scannedNew: string[]; live: Buffer }> = [];
    // The budget is read when a volume opens its segments (a default, not an option).
    const defaults = DEFAULTS as { segmentSummaryBytes: number };
    const saved = defaults.segmentSummaryBytes;
    try {
      for (const budget of [saved, 0]) {
        defaults.segmentSummaryBytes = budget;
        const mem = new MemoryFileSystem();
        mem.mkdirp('/v');
        mem.mkdirp('/a');
        const deps = { fs: mem, store: new LocalDirStore('/a', mem) };
        const size = 512 * 1024;
        await Volume.create('/v', { sizeBytes: size, blockSizeBytes: 4096, segmentSizeBytes: 256 * 1024, archive: '/a' }, deps);
        const counter = countHeaderReads(mem);
        const model = Buffer.alloc(size);
        const w = new Rng(seed);
        let vol = await Volume.open('/v', deps);
        // The segment the open resumed was not started here: it has no summary.
        const atOpen = new Set(mem.list('/v/segments'));
        const churn = async (n: number) => {
          for (let i = 0; i < n; i++) {
            const blocks = 1 + w.int(8);
            const at = w.int(size / 4096 - blocks) * 4096;
            const data = w.int(5) === 0 ? Buffer.alloc(blocks * 4096) : w.bytes(blocks * 4096); // zero runs too
            data.copy(model, at);
            await vol.write(at, data);
          }
        };
        await churn(400);
        const headerReads = counter.n;
        const scannedNew = [...counter.files].filter((f) => !atOpen.has(f));
        // Segments written before a reopen have no summary: scanned, as before.
        await vol.close();
        vol = await Volume.open('/v', deps);
        await churn(200);
        const st = await vol.status();
        assert.ok(st.log.copyForwardBytes > 0, 'copy-forward happened');
        results.push({ copied: st.log.copyForwardBytes, headerReads, scannedNew, live: await vol.read(0, size) });
        assert.ok(results[results.length - 1].live.equals(model), `live image bit-exact (summary budget ${budget})`);
        await vol.close();
      }
    } finally {
      defaults.segmentSummaryBytes = saved;
    }
    assert.deepEqual(results[0].scannedNew, [], 'with summaries, turnover read no header of a segment written here');
    assert.ok(results[1].scannedNew.length >= 3, `without, it scans them (${results[1].scannedNew.length} segments)`);
    assert.ok(results[0].headerReads < results[1].headerReads / 3, `${results[0].headerReads} header reads with summaries, ${results[1].headerReads} without`);
    assert.equal(results[0].copied, results[1].copied, 'the same blocks copied forward either way');
  });
});

/** Every live version sits in a segment in primary (DESIGN: the working set alone holds every live block). */
function assertLiveInPrimary(vol: Volume, blocks: number, what: string): void {
  const core = whiteBox(vol);
  for (let b = 0; b < blocks; b++) {
    const v = core.index.floor(b, LIVE_SEQ);
    if (!v) continue;
    const at = core.index.where(b, v);
    assert.ok(core.segments.has(at.segment), `${what}: block ${b} seq ${v.seq} lives in segment ${at.segment} (offset ${at.offset}), not in primary`);
  }
}

/**
 * Data, ZERO and TRIM versions over a volume written whole, so a zero version lost from the
 * working set would bring old bytes back: every live version stays in primary, and the live image
 * is bit-exact with the archive unreachable. `spoil` may damage a summary before turnover uses it.
 */
async function churnZeroesAndData(rng: Rng, ops: number, spoil?: (vol: Volume) => void): Promise<void> {
  const mem = new MemoryFileSystem();
  mem.mkdirp('/v');
  mem.mkdirp('/a');
  const store = new FaultyStore(new LocalDirStore('/a', mem));
  const deps = { fs: mem, store };
  const size = 512 * 1024;
  const blocks = size / 4096;
  await Volume.create('/v', { sizeBytes: size, blockSizeBytes: 4096, segmentSizeBytes: 256 * 1024, archive: '/a' }, deps);
  const model = rng.bytes(size);
  let vol = await Volume.open('/v', deps);
  await vol.write(0, model);
  for (let i = 0; i < ops; i++) {
    const n = 1 + rng.int(8);
    const at = rng.int(blocks - n) * 4096;
    const kind = rng.int(6);
    if (kind < 2) {
      await vol.writeZeroes(at, n * 4096, kind === 1);
      model.fill(0, at, at + n * 4096);
    } else {
      const d = rng.bytes(n * 4096);
      await vol.write(at, d);
      d.copy(model, at);
    }
    spoil?.(vol);
    if (i % 100 === 99) assertLiveInPrimary(vol, blocks, `after ${i + 1} writes`);
  }
  assert.ok((await vol.status()).log.copyForwardBytes > 0, 'copy-forward happened');
  await vol.close();
  store.unreachable = true;
  vol = await Volume.open('/v', deps);
  assertLiveInPrimary(vol, blocks, 'after reopen');
  assert.ok((await vol.read(0, size)).equals(model), 'live image with the archive unreachable');
  await vol.close();
}

test('with summaries, copy-forward keeps every live version in primary, data, ZERO and TRIM alike: the live image reads bit-exact with the archive unreachable', async () => {
  const rng = Rng.fromEnv();
  await withSeed(rng, () => churnZeroesAndData(rng, 1500));
});

test('a summary row that disagrees with the index is never trusted: the segment\'s headers are read instead, and nothing live is lost', async () => {
  const rng = Rng.fromEnv();
  await withSeed(rng, async () => {
    const spoiled = new Set<number>();
    await churnZeroesAndData(rng, 600, (vol) => {
      // White box: shift the first row of each newly sealed summary by one unit, as a wrong
      // offset would (the next turnover must notice it, not copy its neighbour's bytes).
      const sums = whiteBox(vol).segments.summaries as unknown as { bySegment: Map<number, { rows: Float64Array; count: number; sealed: boolean }> };
      for (const [id, s] of sums.bySegment) {
        if (!s.sealed || spoiled.has(id) || s.count === 0) continue;
        spoiled.add(id);
        s.rows[0] += 4100;
      }
    });
    assert.ok(spoiled.size >= 3, `summaries spoiled: ${spoiled.size}`);
  });
});
