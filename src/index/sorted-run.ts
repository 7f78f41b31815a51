import { firstAtOrAbove } from '../util/sorted-search';

/**
 * An immutable run of block versions sorted by (block, seq), in typed arrays: 24 bytes a
 * version (block f64, seq f64, segment u32, offset u32) and a binary-search floor lookup.
 * Runs hold disjoint, increasing seq ranges, so the newest run that answers wins.
 */
export interface Location { seq: number; segment: number; offset: number }

/** Answers for a block range, filled newest source first; found: 0 none yet, 1 final. */
export interface RangeResult {
  found: Uint8Array;
  seqs: Float64Array;
  segs: Uint32Array;
  offs: Uint32Array;
}

export function rangeResult(count: number): RangeResult {
  return { found: new Uint8Array(count), seqs: new Float64Array(count), segs: new Uint32Array(count), offs: new Uint32Array(count) };
}

/** One version: its block, seq and origin location (offset 0: a zero or trim, no data). */
export type VersionVisitor = (block: number, seq: number, segment: number, offset: number) => void;

export class SortedRun {
  constructor(
    readonly blocks: Float64Array,
    readonly seqs: Float64Array,
    readonly segs: Uint32Array,
    readonly offs: Uint32Array,
    readonly firstSeq: number,
    readonly lastSeq: number,
    /** Time-table entries for this run's seq range, kept with it in its checkpoint file. */
    public times: Float64Array = new Float64Array(0),
    public timeSeqs: Float64Array = new Float64Array(0),
    /** File name of its checkpoint, once written. */
    public fileName?: string,
  ) {}

  get count(): number {
    return this.blocks.length;
  }

  /** Indexes of the entries in seq order, for seq-range queries; built on first need. */
  private bySeq?: Uint32Array;

  /** Index of the newest version of `block` with seq ≤ seqLimit, or -1. */
  floorIndex(block: number, seqLimit: number): number {
    const { blocks, seqs } = this;
    let lo = 0;
    let hi = blocks.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const b = blocks[mid];
      if (b < block || (b === block && seqs[mid] <= seqLimit)) {
        found = mid;
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return found >= 0 && blocks[found] === block ? found : -1;
  }

  /** The seq of the oldest version of `block` newer than `seq` in this run, or Infinity. */
  nextSeqAfter(block: number, seq: number): number {
    const { blocks, seqs } = this;
    let lo = 0;
    let hi = blocks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const b = blocks[mid];
      if (b < block || (b === block && seqs[mid] <= seq)) lo = mid + 1;
      else hi = mid;
    }
    return lo < blocks.length && blocks[lo] === block ? seqs[lo] : Infinity;
  }

  /**
   * For blocks first … first+count-1 not yet answered (found[i] === 0), the newest version with
   * seq ≤ seqLimit in this run: one binary search, then a walk over the range.
   */
  floorRange(first: number, count: number, seqLimit: number, out: RangeResult): void {
    const { blocks, seqs } = this;
    const lo = firstAtOrAbove(blocks, first);
    const end = first + count;
    for (let i = lo; i < blocks.length && blocks[i] < end; i++) {
      const k = blocks[i] - first;
      // Entries of one block run in seq order: the last one within the limit wins.
      if (out.found[k] !== 1 && seqs[i] <= seqLimit) {
        out.found[k] = 2;
        out.seqs[k] = seqs[i];
        out.segs[k] = this.segs[i];
        out.offs[k] = this.offs[i];
      }
    }
    for (let k = 0; k < count; k++) if (out.found[k] === 2) out.found[k] = 1;
  }

  /**
   * Calls visit for each version with fromSeq < seq ≤ toSeq. A run wholly inside the range is
   * walked as it is; one it straddles is searched through a seq-order permutation built on first
   * need (4 bytes a version, kept with the immutable run), so the cost is the versions visited.
   */
  versionsInSeqRange(fromSeq: number, toSeq: number, visit: VersionVisitor): void {
    if (this.lastSeq <= fromSeq || this.firstSeq > toSeq) return;
    const { blocks, seqs, segs, offs } = this;
    if (this.firstSeq > fromSeq && this.lastSeq <= toSeq) {
      for (let i = 0; i < blocks.length; i++) visit(blocks[i], seqs[i], segs[i], offs[i]);
      return;
    }
    const order = this.seqOrder();
    const end = this.seqRank(order, toSeq);
    for (let k = this.seqRank(order, fromSeq); k < end; k++) {
      const i = order[k];
      visit(blocks[i], seqs[i], segs[i], offs[i]);
    }
  }

  /**
   * The blocks of the versions with fromSeq < seq ≤ toSeq (a block once per version), for the
   * index diff: where the range straddles the run, one random access a version (its block)
   * instead of four, since the diff's cost in a big run is memory latency.
   */
  blocksInSeqRange(fromSeq: number, toSeq: number, visit: (block: number) => void): void {
    if (this.lastSeq <= fromSeq || this.firstSeq > toSeq) return;
    const blocks = this.blocks;
    if (this.firstSeq > fromSeq && this.lastSeq <= toSeq) {
      for (let i = 0; i < blocks.length; i++) visit(blocks[i]);
      return;
    }
    const order = this.seqOrder();
    const end = this.seqRank(order, toSeq);
    for (let k = this.seqRank(order, fromSeq); k < end; k++) visit(blocks[order[k]]);
  }

  private seqOrder(): Uint32Array {
    return (this.bySeq ??= seqOrder(this.seqs, this.firstSeq, this.lastSeq));
  }

  /** How many entries have seq ≤ seq: the position in seq order where later seqs start. */
  private seqRank(order: Uint32Array, seq: number): number {
    const seqs = this.seqs;
    let lo = 0;
    let hi = order.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (seqs[order[mid]] <= seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Calls visit for every version of one block, oldest first. */
  versionsOfBlock(block: number, visit: VersionVisitor): void {
    const { blocks, seqs, segs, offs } = this;
    for (let i = firstAtOrAbove(blocks, block); i < blocks.length && blocks[i] === block; i++) visit(block, seqs[i], segs[i], offs[i]);
  }

  at(i: number): Location {
    return { seq: this.seqs[i], segment: this.segs[i], offset: this.offs[i] };
  }

  /**
   * Merges two runs whose seq ranges do not overlap. Stretches that come wholly from one side
   * (sequential writes make long ones) are found by galloping and copied in bulk; the merge of
   * two runs of distinct block ranges is four memcpys.
   */
  static merge(older: SortedRun, newer: SortedRun): SortedRun {
    const n = older.count + newer.count;
    const blocks = new Float64Array(n);
    const seqs = new Float64Array(n);
    const segs = new Uint32Array(n);
    const offs = new Uint32Array(n);
    const take = (src: SortedRun, from: number, to: number, at: number) => {
      if (to - from < 16) {
        for (let x = from; x < to; x++, at++) {
          blocks[at] = src.blocks[x];
          seqs[at] = src.seqs[x];
          segs[at] = src.segs[x];
          offs[at] = src.offs[x];
        }
        return;
      }
      blocks.set(src.blocks.subarray(from, to), at);
      seqs.set(src.seqs.subarray(from, to), at);
      segs.set(src.segs.subarray(from, to), at);
      offs.set(src.offs.subarray(from, to), at);
    };
    let i = 0;
    let j = 0;
    let k = 0;
    while (i < older.count && j < newer.count) {
      // Same block: the older run's seqs are all smaller, so it goes first.
      const fromOlder = older.blocks[i] <= newer.blocks[j];
      const src = fromOlder ? older : newer;
      const at = fromOlder ? i : j;
      const e = fromOlder ? stretchEnd(older.blocks, i, older.count, newer.blocks[j], true) : stretchEnd(newer.blocks, j, newer.count, older.blocks[i], false);
      if (e === at + 1) {
        blocks[k] = src.blocks[at];
        seqs[k] = src.seqs[at];
        segs[k] = src.segs[at];
        offs[k] = src.offs[at];
      } else take(src, at, e, k);
      k += e - at;
      if (fromOlder) i = e;
      else j = e;
    }
    take(older, i, older.count, k);
    take(newer, j, newer.count, k + older.count - i);
    const times = new Float64Array(older.times.length + newer.times.length);
    times.set(older.times);
    times.set(newer.times, older.times.length);
    const timeSeqs = new Float64Array(times.length);
    timeSeqs.set(older.timeSeqs);
    timeSeqs.set(newer.timeSeqs, older.timeSeqs.length);
    return new SortedRun(blocks, seqs, segs, offs, older.firstSeq, newer.lastSeq, times, timeSeqs);
  }
}

/**
 * Entry indexes sorted by seq, stable (equal seqs stay in block order). A run covers every
 * version in its seq range, so the span is about its count: a counting sort, O(n), no
 * comparator calls. Its cost is memory latency (entries are in block order, so the accesses
 * jump): about 2.5 s for 10^7 entries on the dev machine, once per run.
 */
function seqOrder(seqs: Float64Array, firstSeq: number, lastSeq: number): Uint32Array {
  const n = seqs.length;
  const order = new Uint32Array(n);
  const span = lastSeq - firstSeq + 1;
  if (span > 4 * n + 1024) {
    for (let i = 0; i < n; i++) order[i] = i;
    return order.sort((a, b) => seqs[a] - seqs[b] || a - b);
  }
  const starts = new Uint32Array(span + 1);
  // Integer keys (span < 2^31 here) index the typed arrays without a double-to-int conversion.
  for (let i = 0; i < n; i++) starts[((seqs[i] - firstSeq) | 0) + 1]++;
  for (let k = 1; k <= span; k++) starts[k] += starts[k - 1];
  for (let i = 0; i < n; i++) order[starts[(seqs[i] - firstSeq) | 0]++] = i;
  return order;
}

/**
 * The end of the stretch from `from` (whose element qualifies) of elements below `limit` (or
 * equal, if `orEqual`) in an ascending array. A stretch of one, the usual case when blocks
 * interleave, costs one comparison; longer ones gallop (steps 1, 2, 4, ...) then bisect.
 */
function stretchEnd(a: Float64Array, from: number, end: number, limit: number, orEqual: boolean): number {
  if (from + 1 >= end || (orEqual ? a[from + 1] > limit : a[from + 1] >= limit)) return from + 1;
  let lo = from + 1; // a[lo] qualifies
  let step = 1;
  while (lo + step < end && (orEqual ? a[lo + step] <= limit : a[lo + step] < limit)) {
    lo += step;
    step *= 2;
  }
  let hi = Math.min(end, lo + step); // a[hi] does not qualify, or hi is the end
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (orEqual ? a[mid] <= limit : a[mid] < limit) lo = mid;
    else hi = mid;
  }
  return lo + 1;
}
