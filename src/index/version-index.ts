import * as path from 'node:path';
import { FILE_NAMES } from '../format/constants';
import { decodeIndexRun, encodeIndexRun } from '../format/index-run-file';
import { ManifestBody, decodeManifest, encodeManifest } from '../format/manifest';
import { writeFileDurableAsync } from '../storage/durable-file';
import { FileSystem } from '../storage/file-system';
import { Memtable } from './memtable';
import { Location, RangeResult, SortedRun, VersionVisitor } from './sorted-run';
import { TimeTable } from './time-table';

export type { Location, RangeResult, VersionVisitor } from './sorted-run';
export { rangeResult } from './sorted-run';

/**
 * "Latest version of block b at or before seq p": a memtable of recent versions over a handful
 * of sorted runs (size-tiered, so O(log n) runs of O(log n) lookups). Locations are where each
 * version was first written (its archive location); `reloc` holds where a live version was
 * copied forward to inside the working set.
 */
export class VersionIndex {
  private runs: SortedRun[] = [];
  private mem = new Memtable();
  readonly times = new TimeTable();
  /** block → current primary copy of its latest version, when it was copied forward. */
  readonly reloc = new Map<number, Location>();
  /** Time-table entries up to this seq are in run files already. */
  private timesPersistedSeq = -1;

  constructor(private readonly fs: FileSystem, private readonly dir: string) {}

  get versionCount(): number {
    return this.runs.reduce((n, r) => n + r.count, 0) + this.mem.count;
  }
  get memtableCount(): number {
    return this.mem.count;
  }
  get runCount(): number {
    return this.runs.length;
  }
  /** Bytes held by the sorted runs' arrays. */
  get runBytes(): number {
    return this.runs.reduce((n, r) => n + r.count * 24 + r.times.length * 16, 0);
  }

  add(block: number, seq: number, segment: number, offset: number): void {
    this.mem.add(block, seq, segment, offset);
    if (this.reloc.size) this.reloc.delete(block); // the check: a Map lookup per written block adds up
  }

  /** Notes a record's time in the time table: once per record, not per block. */
  noteTime(timeMs: number, seq: number): void {
    this.times.note(timeMs, seq);
  }

  relocate(block: number, loc: Location): void {
    this.reloc.set(block, loc);
  }

  floor(block: number, seqLimit: number): Location | undefined {
    const m = this.mem.floor(block, seqLimit);
    if (m) return m;
    for (let r = this.runs.length - 1; r >= 0; r--) {
      const run = this.runs[r];
      if (run.firstSeq > seqLimit) continue;
      const i = run.floorIndex(block, seqLimit);
      if (i >= 0) return run.at(i);
    }
    return undefined;
  }

  /**
   * The seq of the version of `block` that follows the one at `seq` (Infinity: none yet): the
   * oldest run holding a newer one answers, as runs hold increasing seq ranges. Prune asks it
   * per version of a candidate segment, instead of walking every version.
   */
  nextSeqAfter(block: number, seq: number): number {
    for (const run of this.runs) {
      if (run.lastSeq <= seq) continue;
      const n = run.nextSeqAfter(block, seq);
      if (n !== Infinity) return n;
    }
    return this.mem.nextSeqAfter(block, seq);
  }

  /** floor() for a run of consecutive blocks: one search per source instead of one per block. */
  floorRange(first: number, count: number, seqLimit: number, out: RangeResult): void {
    out.found.fill(0, 0, count);
    let left = count;
    if (this.mem.count > 0) {
      for (let k = 0; k < count; k++) {
        const m = this.mem.floor(first + k, seqLimit);
        if (m) {
          out.found[k] = 1;
          out.seqs[k] = m.seq;
          out.segs[k] = m.segment;
          out.offs[k] = m.offset;
          left--;
        }
      }
    }
    for (let r = this.runs.length - 1; r >= 0 && left > 0; r--) {
      const run = this.runs[r];
      if (run.firstSeq > seqLimit) continue;
      run.floorRange(first, count, seqLimit, out);
      left = 0;
      for (let k = 0; k < count; k++) if (out.found[k] !== 1) left++;
    }
  }

  /**
   * Every version written with fromSeq < seq ≤ toSeq (unordered). Runs outside the range are
   * skipped by their seq bounds, so the cost follows the versions in range, not the volume.
   */
  versionsInSeqRange(fromSeq: number, toSeq: number, visit: VersionVisitor): void {
    for (const run of this.runs) run.versionsInSeqRange(fromSeq, toSeq, visit);
    this.mem.versionsInSeqRange(fromSeq, toSeq, visit);
  }

  /** The block of every version with fromSeq < seq ≤ toSeq, in no particular order. */
  blocksInSeqRange(fromSeq: number, toSeq: number, visit: (block: number) => void): void {
    for (const run of this.runs) run.blocksInSeqRange(fromSeq, toSeq, visit);
    this.mem.blocksInSeqRange(fromSeq, toSeq, visit);
  }

  /**
   * Every version in (block, seq) order, without sorting them all: a merge of the runs (each
   * sorted by (block, seq), their seq ranges increasing, so for one block an older run's
   * versions all come first) and the memtable's few versions, sorted. O(versions × runs) in the
   * worst case, with runs few (size-tiered); a sort of 10^7 versions took seconds.
   */
  versionsInBlockOrder(visit: VersionVisitor): void {
    const m: Array<[number, number, number, number]> = [];
    this.mem.versionsInSeqRange(-1, Number.MAX_SAFE_INTEGER, (b, q, g, o) => m.push([b, q, g, o]));
    m.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
    const mem = new SortedRun(Float64Array.from(m, (x) => x[0]), Float64Array.from(m, (x) => x[1]), Uint32Array.from(m, (x) => x[2]), Uint32Array.from(m, (x) => x[3]), 0, 0);
    const sources = [...this.runs, mem].filter((r) => r.count > 0);
    const at = new Uint32Array(sources.length);
    for (;;) {
      let block = Infinity;
      for (let k = 0; k < sources.length; k++) if (at[k] < sources[k].count && sources[k].blocks[at[k]] < block) block = sources[k].blocks[at[k]];
      if (block === Infinity) return;
      for (let k = 0; k < sources.length; k++) {
        const r = sources[k];
        let i = at[k];
        for (; i < r.count && r.blocks[i] === block; i++) visit(block, r.seqs[i], r.segs[i], r.offs[i]);
        at[k] = i;
      }
    }
  }

  /** Every version of one block, oldest first (runs hold increasing seq ranges, then the memtable). */
  versionsOfBlock(block: number, visit: VersionVisitor): void {
    for (const run of this.runs) run.versionsOfBlock(block, visit);
    this.mem.versionsOfBlock(block, visit);
  }

  /** Where to read a version now: its forward copy if it has one, else where it was written. */
  where(block: number, v: Location): Location {
    const r = this.reloc.get(block);
    return r && r.seq === v.seq ? r : v;
  }

  /**
   * Drops the versions `drop` names from the sorted runs (prune: versions whose records left the
   * archive), in one tick: each run that loses any is replaced by a filtered copy, not yet
   * written (the next persist writes it under the same name, atomically, and the manifest). The
   * memtable is left alone: it holds versions of segments still in primary, which prune never
   * touches. The caller runs it with no persist in flight (Checkpointer.idle). Returns how many went.
   */
  dropVersions(drop: (block: number, seq: number, segment: number) => boolean, seqSpans?: ReadonlyArray<readonly [number, number]>): number {
    let dropped = 0;
    this.runs = this.runs.map((run) => {
      // `seqSpans` (inclusive): the only seqs `drop` can name; a run outside them all is not scanned.
      if (seqSpans && !seqSpans.some(([a, b]) => a <= run.lastSeq && b >= run.firstSeq)) return run;
      const keep = new Uint8Array(run.count);
      let n = 0;
      for (let i = 0; i < run.count; i++) {
        if (!drop(run.blocks[i], run.seqs[i], run.segs[i])) {
          keep[i] = 1;
          n++;
        }
      }
      if (n === run.count) return run;
      dropped += run.count - n;
      const blocks = new Float64Array(n);
      const seqs = new Float64Array(n);
      const segs = new Uint32Array(n);
      const offs = new Uint32Array(n);
      for (let i = 0, j = 0; i < run.count; i++) {
        if (!keep[i]) continue;
        blocks[j] = run.blocks[i];
        seqs[j] = run.seqs[i];
        segs[j] = run.segs[i];
        offs[j] = run.offs[i];
        j++;
      }
      // Same seq range (and so the same file name, replaced atomically by the next persist).
      return new SortedRun(blocks, seqs, segs, offs, run.firstSeq, run.lastSeq, run.times, run.timeSeqs);
    });
    return dropped;
  }

  /**
   * Freezes the memtable (and new time entries) into a run, not yet written. Instant. Returns how
   * many runs are frozen now: a checkpoint persists those and no later ones.
   */
  freeze(): number {
    const t = this.times.sliceAfter(this.timesPersistedSeq);
    if (this.mem.count === 0 && t.times.length === 0) return this.runs.length;
    const frozen = this.mem.freeze();
    // A run may hold only time entries (events with no writes since the last checkpoint).
    const seqs = [frozen.firstSeq, frozen.lastSeq, t.seqs[0] ?? -1, t.seqs[t.seqs.length - 1] ?? -1].filter((x) => x >= 0);
    this.runs.push(new SortedRun(frozen.blocks, frozen.seqs, frozen.segs, frozen.offs, Math.min(...seqs), Math.max(...seqs), t.times, t.seqs));
    if (t.seqs.length) this.timesPersistedSeq = t.seqs[t.seqs.length - 1];
    // Sized for what the last one held, so adds rarely stop to grow it.
    this.mem = new Memtable(frozen.count);
    return this.runs.length;
  }

  /** Freeze, then persist: for callers with nothing in flight (recovery, tools). */
  async checkpoint(body: Omit<ManifestBody, 'runs'>): Promise<void> {
    this.freeze();
    await this.persist(body);
  }

  /**
   * Compacts the frozen runs, writes the new ones, then durably points the manifest at them.
   * The caller makes sure the log up to body.covered is durable first, and runs one persist at a
   * time (the Checkpointer does). It works on the first `runCount` runs, those frozen when
   * body.covered was taken: a run frozen since (a seal while the caller waited for the log to
   * become durable) holds versions past body.covered, which may not be durable yet; the next
   * persist takes it. Merges happen in memory, in one tick each
   * (lookups see the two inputs or the result, never a mix), before any file is written, so
   * several frozen runs reach the disk as one file; writes and fsyncs go to the threadpool.
   */
  async persist(body: Omit<ManifestBody, 'runs'>, runCount = this.runs.length): Promise<void> {
    this.fs.mkdirp(this.dir);
    const obsolete: string[] = [];
    let m = runCount;
    // Size-tiered: merge while the older neighbour is not much bigger, keeping few runs.
    for (; m >= 2 && this.runs[m - 2].count <= 2 * this.runs[m - 1].count; m--) {
      const [older, newer] = [this.runs[m - 2], this.runs[m - 1]];
      this.runs.splice(m - 2, 2, SortedRun.merge(older, newer));
      for (const r of [older, newer]) if (r.fileName) obsolete.push(r.fileName);
    }
    const persisted = this.runs.slice(0, m);
    for (const run of persisted) if (!run.fileName) await this.writeRun(run);
    await writeFileDurableAsync(this.fs, path.join(this.dir, FILE_NAMES.manifest), encodeManifest({ ...body, runs: persisted.map((r) => r.fileName!) }));
    for (const name of obsolete) this.fs.remove(path.join(this.dir, name));
    this.coveredSegment = body.covered.segment;
  }

  /** Segments before this one are covered by the durable checkpoint: replay never needs them. */
  coveredSegment = 0;

  /** Loads the checkpoint; returns its manifest, or undefined for a volume never checkpointed. */
  load(): ManifestBody | undefined {
    const manifestPath = path.join(this.dir, FILE_NAMES.manifest);
    if (!this.fs.exists(manifestPath)) return undefined;
    const m = decodeManifest(this.fs.readFile(manifestPath), { file: manifestPath });
    this.coveredSegment = m.covered.segment;
    for (const name of m.runs) {
      const d = decodeIndexRun(this.fs.readFile(path.join(this.dir, name)), { file: name });
      this.runs.push(new SortedRun(d.blocks, d.seqs, d.segs, d.offs, d.firstSeq, d.lastSeq, d.times, d.timeSeqs, name));
      this.times.load(d.times, d.timeSeqs);
      if (d.timeSeqs.length) this.timesPersistedSeq = Math.max(this.timesPersistedSeq, d.timeSeqs[d.timeSeqs.length - 1]);
    }
    return m;
  }

  /** Removes run files no manifest names (left by a crash between write and manifest). */
  removeStrayRuns(): void {
    const live = new Set(this.runs.map((r) => r.fileName));
    for (const name of this.fs.list(this.dir)) {
      if (name.startsWith('run-') && !live.has(name)) this.fs.remove(path.join(this.dir, name));
    }
  }

  /** Writes a run's file durably; its fileName is set only then (a named run is on disk). */
  private async writeRun(run: SortedRun): Promise<void> {
    const name = `run-${run.firstSeq}-${run.lastSeq}.cvidx`;
    await writeFileDurableAsync(this.fs, path.join(this.dir, name), encodeIndexRun({
      blocks: run.blocks, seqs: run.seqs, segs: run.segs, offs: run.offs, times: run.times, timeSeqs: run.timeSeqs,
      firstSeq: run.firstSeq, lastSeq: run.lastSeq,
    }));
    run.fileName = name;
  }
}
