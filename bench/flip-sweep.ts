/**
 * Byte-flip sweep (issue 10): flips one byte at a time in every kind of file a volume and its
 * archive hold, reopens a fresh copy with a cold cache (no block cache, the OS cache never
 * consulted: every primary read takes the threadpool path), appends two blocks, reads every
 * block at every event and live, compares each with a model, then runs verify. A flip must never be served, and must
 * never pass unnoticed: open refuses it, a read fails on it, or verify reports it.
 *
 *   scripts/flip-sweep [--seed N] [--payload N] [--header-stride N] [--files-per-kind N] [--json]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isChronoError } from '../src/errors';
import { ARCHIVE_TRAILER, INDEX_RUN, MANIFEST, RecordType, SEGMENT_HEADER, SUPERBLOCK } from '../src/format/constants';
import { HEADER_BYTES } from '../src/format/record';
import { bufferSource } from '../src/archive/archive-object';
import { scanSegment } from '../src/segment/segment-scanner';
import { FaultyFileSystem } from '../src/storage/faulty-file-system';
import { FileHandle, OpenMode } from '../src/storage/file-system';
import { NodeFileSystem } from '../src/storage/node-file-system';
import { Volume } from '../src/volume/volume';
import { Rng } from '../test/helpers/rng';

export type FileKind = 'superblock' | 'manifest' | 'index-run' | 'segment-sealed' | 'segment-current' | 'archive-object' | 'archive-superblock';

export interface SweepOptions {
  seed: number;
  /** Random payload (non-header) bytes flipped per file. */
  payloadFlips: number;
  /** Every n-th header byte (1 = every one). */
  headerStride: number;
  /** At most this many files of each kind (Infinity = all). */
  filesPerKind: number;
  log?: (line: string) => void;
}

export interface KindCounts {
  files: number;
  flips: number;
  /** Open refused (CORRUPT_LOG, BAD_CHECKSUM …): nothing served. */
  refusedAtOpen: number;
  /** Opened; some read failed on the damage (CORRUPT_BLOCK, ARCHIVE_* …). */
  readFailed: number;
  /** Opened; verify reported it. */
  verifyReported: number;
  /** Wrong bytes returned by a read: must stay 0. */
  served: number;
  /** Opened, every read right, verify quiet: must stay 0. */
  silent: number;
}

export interface SweepResult {
  seed: number;
  kinds: Record<FileKind, KindCounts>;
  failures: string[];
}

const BS = 4096;
const GEOMETRY = { sizeBytes: 256 * 1024, blockSizeBytes: BS, segmentSizeBytes: 64 * 1024 };


/**
 * The real file system without fsyncs: each flip opens and closes a throw-away copy, whose
 * durability nothing depends on, and on a busy machine the fsyncs were most of the time.
 */
class NoSyncFileSystem extends NodeFileSystem {
  override open(p: string, mode: OpenMode): FileHandle {
    const h = super.open(p, mode);
    return new Proxy(h, {
      get(target, key) {
        if (key === 'sync') return () => undefined;
        if (key === 'syncAsync') return async () => undefined;
        const v = Reflect.get(target, key) as unknown;
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
  }
  override syncDir(): void {}
  override async syncDirAsync(): Promise<void> {}
}

interface Template {
  root: string;
  dir: string;
  archive: string;
  /** Expected image per point: event labels, then 'live'. */
  images: Map<string, Buffer>;
}

/**
 * A small volume with history in the archive (a few archive objects), events along the way, ZERO
 * and TRIM records, and a covered tail: writes after the last sync point that the closing
 * checkpoint covers.
 */
async function buildTemplate(rng: Rng): Promise<Template> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'chronovol-flip-'));
  const dir = path.join(root, 'vol');
  const archive = path.join(root, 'archive');
  await Volume.create(dir, { ...GEOMETRY, archive });
  const vol = await Volume.open(dir);
  const live = Buffer.alloc(GEOMETRY.sizeBytes);
  const images = new Map<string, Buffer>();
  const blocks = GEOMETRY.sizeBytes / BS;
  for (let i = 0; (await vol.status()).archive.segments! < 4 || i < 60; i++) {
    const first = rng.int(blocks);
    const count = Math.min(blocks - first, 1 + rng.int(3));
    if (i % 17 === 16) {
      await vol.writeZeroes(first * BS, count * BS, i % 2 === 0);
      live.fill(0, first * BS, (first + count) * BS);
    } else {
      const data = Buffer.alloc(count * BS);
      for (let k = 0; k < count; k++) data.fill((i * 7 + k) & 0xff, k * BS, k * BS + BS).writeUInt32LE(i, k * BS);
      await vol.write(first * BS, data);
      data.copy(live, first * BS);
    }
    if (i % 50 === 49) {
      const label = `e${i}`;
      await vol.sync({ label });
      images.set(label, Buffer.from(live));
    }
  }
  await vol.sync({ label: 'last' });
  images.set('last', Buffer.from(live));
  for (let b = 0; b < 3; b++) {
    const data = Buffer.alloc(BS, 0xc0 + b);
    await vol.write(b * BS, data); // the covered tail: after the last sync point
    data.copy(live, b * BS);
  }
  images.set('live', live);
  await vol.close();
  return { root, dir, archive, images };
}

interface Target {
  kind: FileKind;
  /** Relative to the template root. */
  rel: string;
  offsets: number[];
}

function targets(t: Template, rng: Rng, o: SweepOptions): Target[] {
  const out: Target[] = [];
  const rel = (p: string) => path.relative(t.root, p);
  const add = (kind: FileKind, file: string, headerRanges: Array<[number, number]>, payloadFrom: number, extra: number[] = []) => {
    const size = fs.statSync(file).size;
    const offsets = new Set<number>();
    for (const [a, b] of headerRanges) for (let i = a; i < Math.min(b, size); i += o.headerStride) offsets.add(i);
    for (const x of extra) offsets.add(x);
    if (size > payloadFrom) for (let k = 0; k < o.payloadFlips; k++) offsets.add(payloadFrom + rng.int(size - payloadFrom));
    out.push({ kind, rel: rel(file), offsets: [...offsets].sort((a, b) => a - b) });
  };
  const pick = <T>(xs: T[]): T[] => (xs.length <= o.filesPerKind ? xs : [...xs.slice(0, o.filesPerKind - 1), xs[xs.length - 1]]);
  add('superblock', path.join(t.dir, 'superblock'), [[0, SUPERBLOCK.lengthBytes]], SUPERBLOCK.lengthBytes);
  add('archive-superblock', path.join(t.archive, 'volume.cvsb'), [[0, SUPERBLOCK.lengthBytes]], SUPERBLOCK.lengthBytes);
  add('manifest', path.join(t.dir, 'index', 'MANIFEST'), [[0, MANIFEST.lengthBytes]], MANIFEST.lengthBytes);
  const runs = fs.readdirSync(path.join(t.dir, 'index')).filter((f) => f.startsWith('run-'));
  for (const f of pick(runs)) add('index-run', path.join(t.dir, 'index', f), [[0, INDEX_RUN.lengthBytes]], INDEX_RUN.lengthBytes);
  const segs = fs.readdirSync(path.join(t.dir, 'segments')).sort();
  for (const f of [...pick(segs.slice(0, -1)), segs[segs.length - 1]]) {
    const file = path.join(t.dir, 'segments', f);
    const current = f === segs[segs.length - 1];
    const recs = scanSegment(bufferSource(fs.readFileSync(file)), { blockSizeBytes: BS, verifyData: false, segmentId: 0 }).records;
    // The headers of the last few records (the SEAL, a SYNC, the covered tail's writes), and in
    // the current segment some bytes of every record after its last sync point.
    const lastRecs = recs.slice(-3).map((r): [number, number] => [r.offset, r.offset + HEADER_BYTES]);
    const lastSync = recs.map((r) => r.header.type).lastIndexOf(RecordType.SYNC);
    const tail = current ? recs.slice(lastSync + 1).flatMap((r) => [r.offset + 5, r.offset + HEADER_BYTES + 4 + rng.int(BS)]) : [];
    add(current ? 'segment-current' : 'segment-sealed', file, [[0, SEGMENT_HEADER.lengthBytes], ...lastRecs], SEGMENT_HEADER.lengthBytes, tail);
  }
  const objs = fs.readdirSync(path.join(t.archive, 'segments')).sort();
  for (const f of pick(objs)) {
    const file = path.join(t.archive, 'segments', f);
    const size = fs.statSync(file).size;
    add('archive-object', file, [[0, SEGMENT_HEADER.lengthBytes], [size - ARCHIVE_TRAILER.lengthBytes, size]], SEGMENT_HEADER.lengthBytes);
  }
  return out;
}

type Outcome = 'refusedAtOpen' | 'readFailed' | 'verifyReported' | 'served' | 'silent';

/** One flip on a fresh copy of the template: what became of it. */
async function tryFlip(t: Template, target: Target, offset: number, xor: number, work: string): Promise<{ outcome: Outcome; detail: string }> {
  fs.rmSync(work, { recursive: true, force: true });
  fs.cpSync(t.root, work, { recursive: true });
  const dir = path.join(work, 'vol');
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ archive: path.join(work, 'archive') }));
  const file = path.join(work, target.rel);
  const b = fs.readFileSync(file);
  b[offset] ^= xor;
  fs.writeFileSync(file, b);
  const fsys = new FaultyFileSystem(new NoSyncFileSystem());
  fsys.coldCache = true;
  let vol: Volume;
  try {
    vol = await Volume.open(dir, { fs: fsys, cacheBytes: 0 });
  } catch (err) {
    if (!isChronoError(err)) throw err;
    return { outcome: 'refusedAtOpen', detail: err.code };
  }
  try {
    let readFailed = '';
    // Appends after the reopen: a cut that an index entry still points into gets overwritten by
    // them, and the blocks there would read back these bytes (issue 10, defect 1).
    const images = new Map(t.images);
    const live = Buffer.from(t.images.get('live')!);
    try {
      for (let k = 1; k <= 2; k++) {
        const data = Buffer.alloc(BS, 0xf0 + k);
        await vol.write(live.length - k * BS, data);
        data.copy(live, live.length - k * BS);
      }
      images.set('live', live);
    } catch (err) {
      if (!isChronoError(err)) throw err;
      readFailed = `${err.code} (a write after the reopen)`;
    }
    const got = Buffer.alloc(BS);
    for (const [label, image] of images) {
      const point = label === 'live' ? undefined : vol.resolvePoint(label);
      for (let blk = 0; blk < image.length / BS; blk++) {
        try {
          await vol.readInto(got, blk * BS, BS, point);
        } catch (err) {
          if (!isChronoError(err)) throw err;
          readFailed ||= `${err.code} (block ${blk} at ${label})`;
          continue;
        }
        if (!got.equals(image.subarray(blk * BS, (blk + 1) * BS))) return { outcome: 'served', detail: `block ${blk} at ${label} read back wrong bytes` };
      }
    }
    const report = await vol.verify();
    if (!report.ok) return { outcome: readFailed ? 'readFailed' : 'verifyReported', detail: report.problems.map((p) => `${p.kind}${p.code ? `:${p.code}` : ''}`).join(',') };
    if (readFailed) return { outcome: 'silent', detail: `a read failed (${readFailed}) but verify reported nothing` };
    return { outcome: 'silent', detail: 'opened, read right, verify quiet' };
  } finally {
    await vol.close().catch(() => undefined);
  }
}

export async function runFlipSweep(o: SweepOptions): Promise<SweepResult> {
  const rng = new Rng(o.seed);
  const t = await buildTemplate(rng);
  const work = path.join(os.tmpdir(), `chronovol-flip-work-${process.pid}`);
  const kinds = {} as Record<FileKind, KindCounts>;
  const failures: string[] = [];
  try {
    for (const target of targets(t, rng, o)) {
      const k = (kinds[target.kind] ??= { files: 0, flips: 0, refusedAtOpen: 0, readFailed: 0, verifyReported: 0, served: 0, silent: 0 });
      k.files++;
      for (const offset of target.offsets) {
        const xor = 1 + rng.int(255);
        const r = await tryFlip(t, target, offset, xor, work);
        k.flips++;
        k[r.outcome]++;
        if (r.outcome === 'served' || r.outcome === 'silent') {
          const line = `${r.outcome.toUpperCase()}: ${target.rel} byte ${offset} ^0x${xor.toString(16)}: ${r.detail}`;
          failures.push(line);
          o.log?.(line);
        }
      }
      o.log?.(`${target.kind} ${target.rel}: ${target.offsets.length} flips`);
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
    fs.rmSync(t.root, { recursive: true, force: true });
  }
  return { seed: o.seed, kinds, failures };
}

export function formatCounts(r: SweepResult): string {
  const cols: Array<keyof KindCounts> = ['files', 'flips', 'refusedAtOpen', 'readFailed', 'verifyReported', 'served', 'silent'];
  const rows = [['kind', ...cols], ...Object.entries(r.kinds).map(([kind, c]) => [kind, ...cols.map((x) => String(c[x]))])];
  const w = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return rows.map((row) => row.map((cell, i) => cell.padEnd(w[i])).join('  ')).join('\n');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const num = (name: string, dflt: number) => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : dflt;
  };
  const seed = num('--seed', Math.floor(Math.random() * 2 ** 32));
  const json = args.includes('--json');
  const log = json ? undefined : (line: string) => process.stderr.write(line + '\n');
  process.stderr.write(`flip-sweep: seed ${seed} (replay with --seed ${seed})\n`);
  const r = await runFlipSweep({ seed, payloadFlips: num('--payload', 64), headerStride: num('--header-stride', 1), filesPerKind: num('--files-per-kind', Infinity), log });
  if (json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
  else process.stdout.write(`${formatCounts(r)}\n${r.failures.length ? `${r.failures.length} flip(s) served or silent` : 'no flip served, none silent'}\n`);
  process.exitCode = r.failures.length ? 1 : 0;
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`flip-sweep: ${(err as Error).stack ?? err}\n`);
    process.exitCode = 2;
  });
}
