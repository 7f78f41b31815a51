import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { ArchiveDiskCache } from '../src/archive/archive-disk-cache';
import { archiveKey, parseArchiveObject } from '../src/archive/archive-object';
import { ArchiveReader } from '../src/archive/archive-reader';
import { BackingStore, PutData } from '../src/archive/backing-store';
import { LocalDirStore } from '../src/archive/local-dir-store';
import { ARCHIVE_TABLE, ARCHIVE_TRAILER, RecordType } from '../src/format/constants';
import { HEADER_BYTES, unitBytes } from '../src/format/record';
import { Volume } from '../src/volume/volume';
import { tmpDir } from './helpers/tmp';
import { SMALL } from './helpers/volumes';

/**
 * Review finding 3: a damaged offset table in a BUILT archive object must never be served as
 * another block's bytes. A unit's CRC covers its data only, so before these checks a table entry
 * that landed on another record's unit was served. Each case below damages segment 1's table in
 * a way that served wrong bytes (or could) and expects CORRUPT_LOG.
 */

const BS = SMALL.blockSizeBytes!;
const UNIT = unitBytes(BS);

/** A local archive that cannot link: every object is put in the built form, as S3 gets it. */
class CopyingStore extends LocalDirStore {
  override async linkFrom(): Promise<boolean> {
    return false;
  }
}

/** Counts ranged reads of archived segments. */
class CountingStore implements BackingStore {
  ranges = 0;
  constructor(private readonly inner: BackingStore) {}
  get description(): string { return this.inner.description; }
  put(key: string, data: PutData): Promise<void> { return this.inner.put(key, data); }
  getRange(key: string, offset: number, length: number): Promise<Buffer> { this.ranges++; return this.inner.getRange(key, offset, length); }
  get(key: string): Promise<Buffer> { return this.inner.get(key); }
  size(key: string): Promise<number | undefined> { return this.inner.size(key); }
  list(prefix: string): Promise<string[]> { return this.inner.list(prefix); }
  delete(key: string): Promise<void> { return this.inner.delete(key); }
}

const fill = (s: string) => Buffer.from(s.padEnd(BS, '.'));

/**
 * Rounds of: a 1-block write (blocks 0..7 in turn), a 1-block write (block 20), a 2-block write
 * (blocks 10-11), a 1-block write (block 30), then an event. Every block is overwritten later, so no old version is copied
 * forward: segment 1's versions are read from its archived object alone.
 */
let template: Promise<{ dir: string; archive: string }> | undefined;
async function builtArchive(o: { keepLocalTables?: boolean } = {}): Promise<{ dir: string; archive: string; file: string }> {
  template ??= (async () => {
    const root = tmpDir('crc-arch-');
    const dir = path.join(root, 'vol');
    const archive = path.join(root, 'archive');
    fs.mkdirSync(archive, { recursive: true });
    await Volume.create(dir, { archive, ...SMALL });
    const vol = await Volume.open(dir, { store: new CopyingStore(archive) });
    for (let r = 0; r < 40 || (await vol.status()).segments.active.some((id) => id <= 2); r++) {
      await vol.write((r % 8) * BS, fill(`a${r}`));
      await vol.write(20 * BS, fill(`c${r}`));
      await vol.write(10 * BS, Buffer.concat([fill(`b${r}-0`), fill(`b${r}-1`)]));
      await vol.write(30 * BS, fill(`d${r}`));
      await vol.sync({ label: `e${r}` });
    }
    await vol.close();
    return { dir, archive };
  })();
  const t = await template;
  const root = tmpDir('crc-case-');
  const dir = path.join(root, 'vol');
  const archive = path.join(root, 'archive');
  fs.cpSync(t.dir, dir, { recursive: true });
  fs.cpSync(t.archive, archive, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ archive }));
  // These cases damage the object's own table: without the volume's local copies (as after a
  // recover from the archive alone), reads map through it. (Stale local tables: archive-table-file.test.ts.)
  if (!o.keepLocalTables) fs.rmSync(path.join(dir, ARCHIVE_TABLE.dirName), { recursive: true, force: true });
  return { dir, archive, file: path.join(archive, archiveKey(1)) };
}

interface Entry { i: number; primary: number; archive: number; type: number; seq: number; firstBlock: number; blockCount: number }

/** Segment 1's table entries with their records' headers (from the undamaged object). */
function entries(file: string): Entry[] {
  const obj = fs.readFileSync(file);
  const { scan, table } = parseArchiveObject(obj, BS, 1, undefined);
  return scan.records.map((r, i) => ({ i, primary: table.primary[i], archive: table.archive[i], type: r.header.type, seq: r.header.seq, firstBlock: r.header.firstBlock, blockCount: r.header.blockCount }));
}

/** Rewrites table entries in place (the object CRC is left stale, as damage leaves it). */
function setEntries(file: string, set: Array<{ i: number; primary?: number; archive?: number }>): void {
  const obj = fs.readFileSync(file);
  const tableOffset = Number(obj.readBigUInt64LE(obj.length - ARCHIVE_TRAILER.lengthBytes + ARCHIVE_TRAILER.off.tableOffset));
  for (const e of set) {
    if (e.primary !== undefined) obj.writeUInt32LE(e.primary, tableOffset + e.i * ARCHIVE_TRAILER.entryBytes);
    if (e.archive !== undefined) obj.writeUInt32LE(e.archive, tableOffset + e.i * ARCHIVE_TRAILER.entryBytes + 4);
  }
  fs.writeFileSync(file, obj);
}

/** Block k of record e read at the record's seq (fresh process state): its text, or the error code. */
async function readBlock(dir: string, e: Entry, k = 0): Promise<{ got: string }> {
  const vol = await Volume.open(dir);
  try {
    const got = await vol.read((e.firstBlock + k) * BS, BS, vol.resolvePoint(`seq:${e.seq}`)).then((b) => b.toString().replace(/\.+$/, ''), (err) => err.code as string);
    return { got };
  } finally {
    await vol.close();
  }
}

/** What record e's block k holds (read from the intact object). */
function content(file: string, e: Entry, k = 0): string {
  const obj = fs.readFileSync(file);
  const at = e.archive + HEADER_BYTES + k * UNIT + 4;
  return obj.subarray(at, at + BS).toString().replace(/\.+$/, '');
}

const writes = (es: Entry[]) => es.filter((e) => e.type === RecordType.WRITE);

test('archive record check: an undamaged built archive reads every archived version exactly', async () => {
  const { dir, file } = await builtArchive();
  const es = writes(entries(file));
  assert.ok(es.length >= 6, `segment 1 holds ${es.length} writes`);
  for (const e of es) {
    for (let k = 0; k < e.blockCount; k++) assert.equal((await readBlock(dir, e, k)).got, content(file, e, k), `block ${e.firstBlock + k} at seq ${e.seq}`);
  }
});

test('archive record check: a table entry moved onto another record\'s unit (table still increasing) is refused, not served', async () => {
  const { dir, file } = await builtArchive();
  const es = entries(file);
  // A 2-block WRITE followed by a 1-block WRITE: point the second's entry at the first's unit 1.
  const j = es.findIndex((e, i) => e.type === RecordType.WRITE && e.blockCount === 2 && es[i + 1]?.type === RecordType.WRITE && es[i + 1].blockCount === 1);
  assert.ok(j >= 0);
  const [a, b] = [es[j], es[j + 1]];
  const wrong = content(file, a, 1);
  setEntries(file, [{ i: b.i, archive: a.archive + UNIT }]);
  const { got } = await readBlock(dir, b);
  assert.notEqual(got, wrong, `block ${b.firstBlock} at seq ${b.seq} was served block ${a.firstBlock + 1}'s bytes of seq ${a.seq}`);
  assert.equal(got, 'CORRUPT_LOG');
});

test('archive record check: a table that sends reads to another record\'s valid header is refused (seq and block checked)', async () => {
  const { dir, file } = await builtArchive();
  const es = entries(file);
  // Two 1-block WRITEs in a row: entry j takes j+1's primary offset (and each later entry the
  // next one's), so j+1's block is read through entry j: record j's bytes, a valid unit.
  const j = es.findIndex((e, i) => e.type === RecordType.WRITE && e.blockCount === 1 && es[i + 1]?.type === RecordType.WRITE && es[i + 1].blockCount === 1);
  assert.ok(j >= 0);
  const set = es.slice(j, -1).map((e, k) => ({ i: e.i, primary: es[j + k + 1].primary }));
  set.push({ i: es.length - 1, primary: es[es.length - 1].primary + 1 });
  const wrong = content(file, es[j]);
  setEntries(file, set);
  const { got } = await readBlock(dir, es[j + 1]);
  assert.notEqual(got, wrong, `block ${es[j + 1].firstBlock} at seq ${es[j + 1].seq} was served record ${j}'s bytes`);
  assert.equal(got, 'CORRUPT_LOG');
});

test('archive record check: with the volume\'s local table (verified at archiving), a damaged object table is not consulted: the right bytes', async () => {
  const { dir, file } = await builtArchive({ keepLocalTables: true });
  const es = entries(file);
  const j = es.findIndex((e, i) => e.type === RecordType.WRITE && e.blockCount === 2 && es[i + 1]?.type === RecordType.WRITE && es[i + 1].blockCount === 1);
  assert.ok(j >= 0);
  const [a, b] = [es[j], es[j + 1]];
  const right = content(file, b);
  setEntries(file, [{ i: b.i, archive: a.archive + UNIT }]);
  assert.equal((await readBlock(dir, b)).got, right);
});

test('archive record check: a duplicated archive offset in the table is refused, not served (review reproduction)', async () => {
  const { dir, file } = await builtArchive();
  const es = writes(entries(file));
  const [a, b] = [es[0], es[1]];
  assert.equal(a.archive, 64, 'the first record follows the segment header');
  const wrong = content(file, b);
  setEntries(file, [{ i: a.i, archive: b.archive }]); // entry 0's archiveOffset := entry 1's
  const { got } = await readBlock(dir, a);
  assert.notEqual(got, wrong, `block ${a.firstBlock} at seq ${a.seq} was served block ${b.firstBlock}'s bytes`);
  assert.equal(got, 'CORRUPT_LOG');
});

test('archive record check: a table whose archive offsets do not increase (two entries swapped) is refused', async () => {
  const { dir, file } = await builtArchive();
  const es = entries(file);
  const j = es.findIndex((e, i) => i > 0 && e.type === RecordType.WRITE && e.blockCount === 1 && es[i + 1]?.type === RecordType.WRITE && es[i + 1].blockCount === 1);
  assert.ok(j > 0);
  const [a, b] = [es[j], es[j + 1]];
  const wrong = content(file, b);
  setEntries(file, [{ i: a.i, archive: b.archive }, { i: b.i, archive: a.archive }]);
  const { got } = await readBlock(dir, a);
  assert.notEqual(got, wrong, `block ${a.firstBlock} at seq ${a.seq} was served block ${b.firstBlock}'s bytes`);
  assert.equal(got, 'CORRUPT_LOG');
});

test('archive record check: isolated reads fetch each record header in the same ranged read; a checked header costs nothing more', async () => {
  const { archive, file } = await builtArchive();
  const es = writes(entries(file));
  const store = new CountingStore(new LocalDirStore(archive));
  const reader = new ArchiveReader(store, 8);
  await reader.table(1);
  store.ranges = 0;
  // Far apart (one read per record, no scan): one ranged read each, the header included.
  for (const e of es.slice().reverse()) {
    const b = await reader.read(1, e.primary + HEADER_BYTES, UNIT, { block: e.firstBlock, seq: e.seq, unitBytes: UNIT });
    assert.equal(b.subarray(4).toString().replace(/\.+$/, ''), content(file, e));
  }
  assert.equal(store.ranges, es.length, 'one ranged read per block read');
  const two = es.find((e) => e.blockCount === 2)!;
  store.ranges = 0;
  await reader.read(1, two.primary + HEADER_BYTES + UNIT, UNIT, { block: two.firstBlock + 1, seq: two.seq, unitBytes: UNIT });
  assert.equal(store.ranges, 1, 'its header was checked already: just the bytes');
  // The index's version is checked against the (cached) header too.
  await assert.rejects(reader.read(1, two.primary + HEADER_BYTES, UNIT, { block: two.firstBlock, seq: two.seq + 1, unitBytes: UNIT }), (e: { code?: string }) => e.code === 'CORRUPT_LOG');
  await assert.rejects(reader.read(1, two.primary + HEADER_BYTES, UNIT, { block: two.firstBlock + 1, seq: two.seq, unitBytes: UNIT }), (e: { code?: string }) => e.code === 'CORRUPT_LOG');
});

test('archive record check: the disk read cache keeps nothing of a segment whose table or record check failed', async () => {
  const { archive, file } = await builtArchive();
  const intact = fs.readFileSync(file);
  const es = entries(file);
  const j = es.findIndex((e, i) => e.type === RecordType.WRITE && e.blockCount === 2 && es[i + 1]?.type === RecordType.WRITE && es[i + 1].blockCount === 1);
  const [a, b] = [es[j], es[j + 1]];
  const cacheDir = tmpDir('crc-cache-');
  const files = () => fs.readdirSync(path.join(cacheDir, 'archive-cache')).filter((n) => n.includes('-00000001-'));
  const open = () => {
    const disk = ArchiveDiskCache.open(cacheDir, Buffer.alloc(16, 7), 64 << 20)!;
    return { disk, reader: new ArchiveReader(new LocalDirStore(archive), 8, disk) };
  };
  const expectB = { block: b.firstBlock, seq: b.seq, unitBytes: UNIT };
  // A table that fails its parse checks is not stored.
  setEntries(file, [{ i: a.i, archive: b.archive }]);
  let { disk, reader } = open();
  await assert.rejects(reader.read(1, b.primary + HEADER_BYTES, UNIT, expectB), (e: { code?: string }) => e.code === 'CORRUPT_LOG');
  await disk.settled();
  assert.deepEqual(files(), [], 'no table file for a table that failed');
  // A table that parses but misdirects a read: table (and the chunks the scan stored) dropped.
  fs.writeFileSync(file, intact);
  setEntries(file, [{ i: b.i, archive: a.archive + UNIT }]);
  ({ disk, reader } = open());
  const w = es.find((e) => e.type === RecordType.WRITE && e.i < a.i)!; // an undamaged record: the table gets cached
  await reader.read(1, w.primary + HEADER_BYTES, UNIT, { block: w.firstBlock, seq: w.seq, unitBytes: UNIT });
  await assert.rejects(reader.read(1, b.primary + HEADER_BYTES, UNIT, expectB), (e: { code?: string }) => e.code === 'CORRUPT_LOG');
  await disk.settled();
  assert.deepEqual(files(), [], 'nothing of segment 1 kept after its record check failed');
  // The object repaired: read right, through a fresh table.
  fs.writeFileSync(file, intact);
  const got = await reader.read(1, b.primary + HEADER_BYTES, UNIT, expectB);
  assert.equal(got.subarray(4).toString().replace(/\.+$/, ''), content(file, b));
});
