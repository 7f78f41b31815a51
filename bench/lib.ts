import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { nativeAddon } from '../src/util/native-addon';

const scratchDirs: string[] = [];

/** A scratch directory on the same disk as the system temp dir; removed by clearScratch or at exit. */
export function scratch(prefix: string): string {
  const d = fs.mkdtempSync(path.join(process.env.CHRONOVOL_BENCH_DIR ?? os.tmpdir(), `chronovol-bench-${prefix}-`));
  scratchDirs.push(d);
  return d;
}

/**
 * Removes every scratch directory so far, and writes the removal back, so that the next section
 * does not run beside gigabytes of the last one's files (the history section leaves a volume of
 * 10^7 versions and its archive).
 */
export function clearScratch(): void {
  for (const d of scratchDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  settle();
}

process.on('exit', () => {
  for (const d of scratchDirs) fs.rmSync(d, { recursive: true, force: true });
});

export function seconds(since: bigint): number {
  return Number(process.hrtime.bigint() - since) / 1e9;
}

/** Writes back every dirty page, so a timed run does not pay for the previous run's writeback. */
export function settle(): void {
  spawnSync('sync');
}

/**
 * Empties the page cache (after writing back dirty pages, which it cannot drop), so "cold" reads
 * really go to disk; false where not allowed (root only).
 */
export function dropCaches(): boolean {
  settle();
  try {
    fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
    return true;
  } catch {
    return false;
  }
}

export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Incompressible, non-zero data whose every block differs: zero detection must not help. */
export function patternChunk(bytes: number, salt: number): Buffer {
  const b = Buffer.allocUnsafe(bytes);
  let x = (salt * 2654435761) >>> 0 || 1;
  for (let i = 0; i < bytes; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  return b;
}

/**
 * Raw writer 1: append the same bytes, in the same write sizes, to one file through the page
 * cache, with fdatasync at the same points.
 */
export function rawAppend(file: string, writes: Buffer[], syncEveryBytes: number): number {
  const fd = fs.openSync(file, 'w');
  const t = process.hrtime.bigint();
  let since = 0;
  let at = 0;
  for (const w of writes) {
    fs.writeSync(fd, w, 0, w.length, at);
    at += w.length;
    since += w.length;
    if (since >= syncEveryBytes) {
      fs.fdatasyncSync(fd);
      since = 0;
    }
  }
  fs.fdatasyncSync(fd);
  const s = seconds(t);
  fs.closeSync(fd);
  fs.rmSync(file);
  return at / s;
}

const DIRECT_CHUNK_BYTES = 4 << 20;

/**
 * Raw writer 2: the same bytes gathered into 4 MiB aligned buffers and written with O_DIRECT
 * (the page cache skipped, as the engine's segment writes skip it), fdatasync at the same
 * points. Undefined where O_DIRECT or the addon's aligned buffers are missing.
 */
export function rawDirect(file: string, writes: Buffer[], syncEveryBytes: number): number | undefined {
  if (!nativeAddon.alignedBuffer) return undefined;
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_DIRECT, 0o644);
  } catch {
    return undefined;
  }
  const buf = nativeAddon.alignedBuffer(DIRECT_CHUNK_BYTES, 4096);
  const t = process.hrtime.bigint();
  let fill = 0;
  let at = 0;
  let since = 0;
  const flush = (bytes: number, last = false) => {
    // Only the last chunk may end off the alignment: it is padded, and the file cut to length below.
    if (bytes % 4096 && !last) throw new Error('rawDirect: writes must be multiples of 4 KiB');
    const n = Math.ceil(bytes / 4096) * 4096;
    buf.fill(0, bytes, n);
    for (let done = 0; done < n; ) done += fs.writeSync(fd, buf, done, n - done, at + done);
    at += bytes;
    fill = 0;
  };
  for (const w of writes) {
    for (let off = 0; off < w.length; ) {
      const n = Math.min(w.length - off, DIRECT_CHUNK_BYTES - fill);
      w.copy(buf, fill, off, off + n);
      fill += n;
      off += n;
      if (fill === DIRECT_CHUNK_BYTES) flush(fill);
    }
    since += w.length;
    if (since >= syncEveryBytes) {
      if (fill) flush(fill);
      fs.fdatasyncSync(fd);
      since = 0;
    }
  }
  if (fill) flush(fill, true);
  fs.ftruncateSync(fd, at);
  fs.fdatasyncSync(fd);
  const s = seconds(t);
  fs.closeSync(fd);
  fs.rmSync(file);
  return at / s;
}

export type RawWriter = 'buffered' | 'direct';

/**
 * The baseline every ingest figure is measured against: whichever raw writer of the same bytes
 * is faster on this machine, each measured once here (settled first), in the same run.
 */
export function bestRawWriter(file: string, writes: Buffer[], syncEveryBytes: number): { writer: RawWriter; mbps: Record<RawWriter, number | undefined> } {
  settle();
  const buffered = rawAppend(file, writes, syncEveryBytes);
  settle();
  const direct = rawDirect(file, writes, syncEveryBytes);
  return { writer: direct !== undefined && direct > buffered ? 'direct' : 'buffered', mbps: { buffered: buffered / 1e6, direct: direct === undefined ? undefined : direct / 1e6 } };
}

/** Runs the chosen raw writer once. */
export function rawWrite(writer: RawWriter, file: string, writes: Buffer[], syncEveryBytes: number): number {
  return writer === 'direct' ? rawDirect(file, writes, syncEveryBytes)! : rawAppend(file, writes, syncEveryBytes);
}

export interface BenchResult {
  /** Human lines for the report. */
  lines: string[];
  /** Figures for the --json object. */
  figures: Record<string, unknown>;
}

/**
 * Uniform random integers (mulberry32). Not an LCG taken modulo a power of two: its low bits
 * cycle with short periods, which turns "random" overwrites into a sequential sweep.
 */
export function uniform(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n: number) => {
    let t = (s = (s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

export interface Paired {
  /** Median of the per-round ratios ours/baseline (each round measures both back to back). */
  ratio: number;
  ours: number;
  baseline: number;
  ratios: number[];
  /** Every round in the order run: each side's figure and which ran first (an order effect shows here). */
  rounds: Array<{ ours: number; baseline: number; oursFirst: boolean }>;
}

/**
 * Runs baseline and ours back to back, `rounds` times, and reports the median per-round ratio
 * (higher is better for both figures). A shared machine drifts over a run; a pair measured
 * seconds apart sees the same weather, and the median drops the odd outlier. The side that runs
 * first alternates from round to round, so neither side always inherits the other's leftovers
 * (dirty pages, a warm cache, a daemon's queued work) or always runs on a fresher machine.
 */
export async function paired(rounds: number, baseline: () => Promise<number> | number, ours: () => Promise<number> | number): Promise<Paired> {
  const rows: Array<{ b: number; o: number; r: number }> = [];
  const order: Paired['rounds'] = [];
  for (let i = 0; i < rounds; i++) {
    let b: number;
    let o: number;
    if (i % 2 === 0) {
      b = await baseline();
      o = await ours();
    } else {
      o = await ours();
      b = await baseline();
    }
    rows.push({ b, o, r: o / b });
    order.push({ ours: o, baseline: b, oursFirst: i % 2 === 1 });
  }
  rows.sort((x, y) => x.r - y.r);
  const mid = rows[Math.floor(rows.length / 2)];
  return { ratio: mid.r, ours: mid.o, baseline: mid.b, ratios: rows.map((x) => x.r), rounds: order };
}

/** The per-pair ratios of a Paired, for a report line. */
export function pairList(p: Paired): string {
  return p.ratios.map((r) => r.toFixed(2)).join(', ');
}

/** The rounds of a Paired in the order run, `ours/baseline` each scaled by `scale`, ours-first rounds marked `*`. */
export function roundList(p: Paired, scale = 1e-6): string {
  return p.rounds.map((r) => `${r.oursFirst ? '*' : ''}${(r.ours * scale).toFixed(0)}/${(r.baseline * scale).toFixed(0)}`).join(' ');
}

/** A free TCP port on loopback (the kernel picks). */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}
