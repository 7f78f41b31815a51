import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { OffsetTable } from '../src/archive/archive-object';
import { ArchiveTableFiles, decodeTableFile, encodeTableFile } from '../src/archive/archive-table-file';
import { ArchiveSettings, archiveSettings, openStore } from '../src/archive/open-store';
import { BackingStore } from '../src/archive/backing-store';
import { ErrorCode, isChronoError } from '../src/errors';
import { ARCHIVE_TABLE, tableFileName } from '../src/format/constants';
import { crc32c } from '../src/format/crc';
import { sealNow } from '../src/volume/turnover';
import { recoverFromArchive } from '../src/volume/recover';
import { Volume } from '../src/volume/volume';
import { whiteBox } from '../src/volume/white-box';
import { CountingStore } from './helpers/counting-store';
import { Rng } from './helpers/rng';
import { S3Server, startS3Server } from './helpers/s3-server';
import { tmpDir } from './helpers/tmp';
import { SMALL } from './helpers/volumes';

/**
 * Local offset tables (docs/FORMAT.md "Local offset table"): the table of each built archived
 * object is kept in the volume directory when it is archived, so the first read of a block that
 * lives only in S3 is ONE ranged GET (record header and data), not a tail read for the table and
 * then the data. A damaged or stale table file is refused or caught by the record check, and the
 * read fetches the object's own table: right bytes or an error, never another block's.
 */
const BS = SMALL.blockSizeBytes!;
const IMAGES = 5;
let s3: S3Server;
const volumes = new Map<string, { dir: string; settings: ArchiveSettings; images: Buffer[] }>();

/** A volume archived in S3 (encrypted or not), written over IMAGES times whole: e0's blocks live only in the archive. */
async function pastVolume(name: string, encrypt: boolean): Promise<void> {
  const root = tmpDir(`cvat-${name}-`);
  const dir = path.join(root, 'vol');
  const { settings } = archiveSettings({ archive: `s3://${s3.bucket}/${name}`, endpoint: s3.endpoint, ...(encrypt ? { keyFile: path.join(root, 'key'), newKey: true } : {}) });
  await Volume.create(dir, { ...SMALL, archiveSettings: settings });
  const vol = await Volume.open(dir);
  const rng = new Rng(encrypt ? 41 : 14);
  const images: Buffer[] = [];
  try {
    for (let i = 0; i < IMAGES; i++) {
      const img = rng.bytes(SMALL.sizeBytes);
      await vol.write(0, img);
      images.push(img);
      await vol.sync({ label: `e${i}` });
    }
    const core = whiteBox(vol);
    const last = core.segments.current.id;
    await sealNow(core);
    assert.equal(await core.archiver.settled(last), undefined);
  } finally {
    await vol.close();
  }
  volumes.set(name, { dir, settings, images });
}

before(async () => {
  s3 = await startS3Server();
  await pastVolume('plain', false);
  await pastVolume('sealed', true);
});
after(async () => {
  await s3?.stop();
});

interface Opened {
  vol: Volume;
  store: CountingStore;
  tables: ArchiveTableFiles;
}

/** A fresh read-only open (no archive read cache: every read is cold) with its store calls counted. */
async function withFresh<T>(dir: string, settings: ArchiveSettings, fn: (o: Opened) => Promise<T>): Promise<T> {
  const inner = openStore(settings);
  const store = new CountingStore(inner);
  const vol = await Volume.open(dir, { store, readOnly: true, archiveCacheBytes: 0 });
  try {
    return await fn({ vol, store, tables: whiteBox(vol).archive.local! });
  } finally {
    await vol.close();
    destroy(inner);
  }
}

function destroy(store: BackingStore): void {
  const s = store as { destroy?: () => void; inner?: BackingStore };
  if (s.destroy) s.destroy();
  else if (s.inner) destroy(s.inner);
}

/** Where event e0's version of `block` lives: it must be a segment that left primary. */
function locate(vol: Volume, block: number): { segment: number; offset: number } {
  const core = whiteBox(vol);
  const loc = core.index.floor(block, vol.resolvePoint('e0').seqLimit)!;
  assert.ok(loc && !core.segments.has(loc.segment), `block ${block} of e0 lives only in the archive`);
  return { segment: loc.segment, offset: loc.offset };
}

async function readE0(vol: Volume, block: number): Promise<Buffer> {
  return vol.read(block * BS, BS, vol.resolvePoint('e0'));
}

test('local table: a cold first read of an archived block makes exactly one GET (header and data in one ranged read)', async () => {
  const { dir, settings, images } = volumes.get('plain')!;
  const blocks = SMALL.sizeBytes / BS;
  const rng = new Rng(7);
  for (let i = 0; i < 6; i++) {
    const block = rng.int(blocks);
    await withFresh(dir, settings, async ({ vol, store, tables }) => {
      const { segment } = locate(vol, block);
      assert.ok(fs.existsSync(tables.pathOf(segment, 0)), `a local table for segment ${segment}`);
      const got = await readE0(vol, block);
      assert.ok(got.equals(images[0].subarray(block * BS, (block + 1) * BS)), `e0 block ${block} bit-exact`);
      assert.deepEqual(store.keys.map((k) => k.split(' ')[0]), ['getRange'], `store calls for e0 block ${block}: ${store.keys.join(', ')}`);
      assert.equal(tables.stats.loaded, 1);
    });
  }
});

test('local table file: each check refuses with its own error code', () => {
  const volumeId = Buffer.alloc(16, 7);
  const id = { volumeId, segmentId: 9, generation: 2 };
  const table = { primary: Uint32Array.of(64, 200, 4000), archive: Uint32Array.of(64, 150, 300), tableOffset: 5000 };
  const good = encodeTableFile(id, table);
  const back = decodeTableFile(good, id);
  assert.deepEqual([...back.primary], [...table.primary]);
  assert.deepEqual([...back.archive], [...table.archive]);
  assert.equal(back.tableOffset, table.tableOffset);
  const O = ARCHIVE_TABLE.off;
  const reseal = (b: Buffer) => {
    b.writeUInt32LE(crc32c(b.subarray(ARCHIVE_TABLE.lengthBytes)), O.tableCrc);
    b.writeUInt32LE(crc32c(b.subarray(0, O.crc)), O.crc);
    return b;
  };
  const cases: Array<[string, (b: Buffer) => Buffer, ErrorCode]> = [
    ['magic', (b) => { b[0] ^= 1; return b; }, 'BAD_MAGIC'],
    ['version', (b) => { b.writeUInt16LE(2, O.version); return b; }, 'BAD_VERSION'],
    ['header length', (b) => { b.writeUInt16LE(32, O.headerLength); return b; }, 'BAD_LENGTH'],
    ['header crc', (b) => { b[O.tableOffset] ^= 1; return b; }, 'BAD_CHECKSUM'],
    ['flags', (b) => { b.writeUInt32LE(1, O.flags); b.writeUInt32LE(crc32c(b.subarray(0, O.crc)), O.crc); return b; }, 'BAD_FLAGS'],
    ['cut entries', (b) => b.subarray(0, b.length - 4), 'BAD_LENGTH'],
    ['flipped entry', (b) => { b[b.length - 1] ^= 1; return b; }, 'BAD_CHECKSUM'],
    ['another volume', (b) => { b[O.volumeId] ^= 1; b.writeUInt32LE(crc32c(b.subarray(0, O.crc)), O.crc); return b; }, 'FOREIGN_SEGMENT'],
    ['another generation', (b) => { b.writeUInt32LE(1, O.generation); b.writeUInt32LE(crc32c(b.subarray(0, O.crc)), O.crc); return b; }, 'ARCHIVE_MISMATCH'],
    ['another segment', (b) => { b.writeBigUInt64LE(8n, O.segmentId); b.writeUInt32LE(crc32c(b.subarray(0, O.crc)), O.crc); return b; }, 'ARCHIVE_MISMATCH'],
    ['entries out of order', (b) => { b.writeUInt32LE(50, ARCHIVE_TABLE.lengthBytes + 8); return reseal(b); }, 'CORRUPT_LOG'],
    ['entry past the table', (b) => { b.writeBigUInt64LE(320n, O.tableOffset); return reseal(b); }, 'CORRUPT_LOG'],
  ];
  for (const [what, damage, code] of cases) {
    assert.throws(() => decodeTableFile(damage(Buffer.from(good)), id), (err) => isChronoError(err, code), what);
  }
});

test('local table: a damaged file is refused (removed) and the read fetches the object\'s table: bit-exact', async () => {
  const { dir, settings, images } = volumes.get('plain')!;
  const block = 11;
  const segment = await withFresh(dir, settings, async ({ vol }) => locate(vol, block).segment);
  const file = path.join(dir, ARCHIVE_TABLE.dirName, tableFileName(segment, 0));
  const saved = fs.readFileSync(file);
  const b = Buffer.from(saved);
  b[b.length - 5] ^= 0x10;
  fs.writeFileSync(file, b);
  // A read-only open reads through it but leaves the directory alone; a writable one removes it.
  await withFresh(dir, settings, async ({ vol, store, tables }) => {
    assert.ok((await readE0(vol, block)).equals(images[0].subarray(block * BS, (block + 1) * BS)));
    assert.equal(tables.stats.refused, 1, tables.lastRefusal);
    assert.match(tables.lastRefusal!, /checksum/);
    assert.deepEqual(store.keys.map((k) => k.split(' ')[0]), ['getTail', 'getRange'], store.keys.join(', '));
  });
  assert.ok(fs.existsSync(file), 'a read-only open changes nothing in the volume directory');
  const vol = await Volume.open(dir, { archiveCacheBytes: 0 });
  try {
    assert.ok((await readE0(vol, block)).equals(images[0].subarray(block * BS, (block + 1) * BS)));
    assert.ok(!fs.existsSync(file), 'the damaged table file is gone');
  } finally {
    await vol.close();
  }
  fs.writeFileSync(file, saved);
});

/** The table of a compaction of the object that kept every other record (a prune's next generation): wrong for the object itself. */
function compactedOf(t: OffsetTable): OffsetTable {
  const n = t.primary.length;
  const primary: number[] = [];
  const archive: number[] = [];
  let at = t.archive[0];
  for (let i = 0; i < n; i += 2) {
    primary.push(t.primary[i]);
    archive.push(at);
    at += (i + 1 < n ? t.archive[i + 1] : t.tableOffset) - t.archive[i];
  }
  return { primary: Uint32Array.from(primary), archive: Uint32Array.from(archive), tableOffset: at };
}

test('local table: a stale one (well-formed, another generation\'s mapping) is caught by the record check: never another block\'s bytes', async () => {
  for (const name of ['plain', 'sealed']) {
    const { dir, settings, images } = volumes.get(name)!;
    const tablesDir = path.join(dir, ARCHIVE_TABLE.dirName);
    const blocks = SMALL.sizeBytes / BS;
    // Every block of e0 read through a table that maps its segment as a compaction would.
    const { bySegment, volumeId } = await withFresh(dir, settings, async ({ vol }) => {
      const m = new Map<number, number[]>();
      for (let blk = 0; blk < blocks; blk++) {
        const s = locate(vol, blk).segment;
        m.set(s, [...(m.get(s) ?? []), blk]);
      }
      return { bySegment: m, volumeId: Buffer.from(vol.volumeId, 'hex') };
    });
    const segs = [...bySegment.keys()].sort((a, b) => a - b);
    const saved = new Map(segs.map((s) => [s, fs.readFileSync(path.join(tablesDir, tableFileName(s, 0)))]));
    for (const s of segs) {
      const t = decodeTableFile(saved.get(s)!, { volumeId, segmentId: s, generation: 0 });
      assert.ok(t.primary.length >= 3, `segment ${s}: ${t.primary.length} records`);
      fs.writeFileSync(path.join(tablesDir, tableFileName(s, 0)), encodeTableFile({ volumeId, segmentId: s, generation: 0 }, compactedOf(t)));
    }
    try {
      for (const s of segs) {
        await withFresh(dir, settings, async ({ vol, tables }) => {
          for (const blk of bySegment.get(s)!) {
            let got: Buffer;
            try {
              got = await readE0(vol, blk);
            } catch (err) {
              assert.fail(`${name}: e0 block ${blk} (segment ${s}) through a stale table: ${(err as Error).message}`);
            }
            assert.ok(got.equals(images[0].subarray(blk * BS, (blk + 1) * BS)), `${name}: e0 block ${blk} (segment ${s}) bit-exact despite a stale table`);
          }
          assert.equal(tables.stats.refused, 1, `${name}: segment ${s}'s stale table refused once (${tables.lastRefusal})`);
        });
        // Reads at once through the same stale table: each is done again, none fails.
        await withFresh(dir, settings, async ({ vol, tables }) => {
          const got = await Promise.all(bySegment.get(s)!.map((blk) => readE0(vol, blk)));
          bySegment.get(s)!.forEach((blk, k) => assert.ok(got[k].equals(images[0].subarray(blk * BS, (blk + 1) * BS)), `${name}: e0 block ${blk} read concurrently`));
          assert.ok(tables.stats.refused >= 1, `${name}: segment ${s}`);
        });
      }
    } finally {
      for (const [s, b] of saved) fs.writeFileSync(path.join(tablesDir, tableFileName(s, 0)), b);
    }
  }
});

test('local table: a damaged file of an encrypted archive is refused, never served: the read fetches the sealed object\'s own table, bit-exact', async () => {
  const { dir, settings, images } = volumes.get('sealed')!;
  for (const block of [5, 50]) {
    const segment = await withFresh(dir, settings, async ({ vol }) => locate(vol, block).segment);
    const file = path.join(dir, ARCHIVE_TABLE.dirName, tableFileName(segment, 0));
    const saved = fs.readFileSync(file);
    // An entry pointed elsewhere (its CRC left stale), then the same with the CRC made to match.
    for (const fixCrc of [false, true]) {
      const b = Buffer.from(saved);
      const entry = ARCHIVE_TABLE.lengthBytes + ARCHIVE_TABLE.entryBytes * Math.floor((b.length - ARCHIVE_TABLE.lengthBytes) / ARCHIVE_TABLE.entryBytes / 2) + 4;
      b.writeUInt32LE(b.readUInt32LE(entry) + BS, entry);
      if (fixCrc) {
        b.writeUInt32LE(crc32c(b.subarray(ARCHIVE_TABLE.lengthBytes)), ARCHIVE_TABLE.off.tableCrc);
        b.writeUInt32LE(crc32c(b.subarray(0, ARCHIVE_TABLE.off.crc)), ARCHIVE_TABLE.off.crc);
      }
      fs.writeFileSync(file, b);
      try {
        await withFresh(dir, settings, async ({ vol, tables }) => {
          const blocks = SMALL.sizeBytes / BS;
          for (let blk = 0; blk < blocks; blk++) {
            if (locate(vol, blk).segment !== segment) continue;
            assert.ok((await readE0(vol, blk)).equals(images[0].subarray(blk * BS, (blk + 1) * BS)), `e0 block ${blk} (crc ${fixCrc ? 'made to match' : 'stale'})`);
          }
          if (!fixCrc) assert.match(tables.lastRefusal ?? '', /checksum/);
          // A well-formed table that maps somewhere else: refused by the record check when a read lands wrong (or never used wrongly).
          assert.ok(tables.stats.refused <= 1, tables.lastRefusal);
          if (!fixCrc) assert.equal(tables.stats.refused, 1);
        });
      } finally {
        fs.writeFileSync(file, saved);
      }
    }
  }
});

test('local table: an encrypted archive reads through its local tables, bit-exact', async () => {
  const { dir, settings, images } = volumes.get('sealed')!;
  for (const block of [0, 17, 40, 63]) {
    await withFresh(dir, settings, async ({ vol, store, tables }) => {
      assert.ok((await readE0(vol, block)).equals(images[0].subarray(block * BS, (block + 1) * BS)), `e0 block ${block}`);
      assert.equal(tables.stats.loaded, 1);
      // One ranged read of the plaintext object (the encrypted store reads its header with the chunks, or beside them).
      assert.deepEqual(store.keys.map((k) => k.split(' ')[0]), ['getRange'], store.keys.join(', '));
    });
  }
});

// Last: the recovered volume archives on in the same archive, after which the original is
// another history's copy and opens read-only only (the archive fence, DESIGN rule 29).
test('local table: without it (a volume recovered from S3 alone) a cold read fetches the table, bit-exact', async () => {
  const { settings, images } = volumes.get('plain')!;
  const rec = path.join(tmpDir('cvat-rec-'), 'rec');
  await recoverFromArchive(settings, rec);
  await withFresh(rec, settings, async ({ vol, store, tables }) => {
    assert.ok(!fs.existsSync(tables.pathOf(locate(vol, 3).segment, 0)), 'recovery fetches no tables');
    const got = await readE0(vol, 3);
    assert.ok(got.equals(images[0].subarray(3 * BS, 4 * BS)));
    assert.deepEqual(store.keys.map((k) => k.split(' ')[0]), ['getTail', 'getRange'], store.keys.join(', '));
  });
});
