import { BlockMap } from './block-map';
import { Location, SortedRun, VersionVisitor } from './sorted-run';

/**
 * Versions appended since the last checkpoint, in seq order. Per-block chains make floor lookups
 * cheap while the table is small; `freeze` turns it into a sorted run without a comparison sort.
 */
export class Memtable {
  private blocks: Float64Array;
  private seqs: Float64Array;
  private segs: Uint32Array;
  private offs: Uint32Array;
  private prev: Int32Array;
  /** block → index of its newest version; versions chain to older ones through `prev`. */
  private readonly head: BlockMap;
  private n = 0;
  firstSeq = -1;
  lastSeq = -1;

  /** `expectedVersions`: sized up front (the last memtable's count), so adds rarely grow it. */
  constructor(expectedVersions = 1024) {
    const n = Math.max(1024, expectedVersions);
    this.blocks = new Float64Array(n);
    this.seqs = new Float64Array(n);
    this.segs = new Uint32Array(n);
    this.offs = new Uint32Array(n);
    this.prev = new Int32Array(n);
    this.head = new BlockMap(n);
  }

  get count(): number {
    return this.n;
  }

  add(block: number, seq: number, segment: number, offset: number): void {
    if (this.n === this.blocks.length) this.grow();
    const i = this.n++;
    this.blocks[i] = block;
    this.seqs[i] = seq;
    this.segs[i] = segment;
    this.offs[i] = offset;
    this.prev[i] = this.head.swap(block, i, -1);
    if (this.firstSeq < 0) this.firstSeq = seq;
    this.lastSeq = seq;
  }

  floor(block: number, seqLimit: number): Location | undefined {
    for (let i = this.head.get(block, -1); i >= 0; i = this.prev[i]) {
      if (this.seqs[i] <= seqLimit) return { seq: this.seqs[i], segment: this.segs[i], offset: this.offs[i] };
    }
    return undefined;
  }

  /** The seq of the oldest version of `block` here newer than `seq`, or Infinity (chains run newest first). */
  nextSeqAfter(block: number, seq: number): number {
    let next = Infinity;
    for (let i = this.head.get(block, -1); i >= 0 && this.seqs[i] > seq; i = this.prev[i]) next = this.seqs[i];
    return next;
  }

  /** Versions with fromSeq < seq ≤ toSeq: entries are in seq order, so one search, then a walk. */
  versionsInSeqRange(fromSeq: number, toSeq: number, visit: VersionVisitor): void {
    let lo = 0;
    let hi = this.n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.seqs[mid] <= fromSeq) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.n && this.seqs[i] <= toSeq; i++) visit(this.blocks[i], this.seqs[i], this.segs[i], this.offs[i]);
  }

  /** The blocks of those versions (the index diff's query). */
  blocksInSeqRange(fromSeq: number, toSeq: number, visit: (block: number) => void): void {
    this.versionsInSeqRange(fromSeq, toSeq, (block) => visit(block));
  }

  /** Every version of one block here, oldest first. */
  versionsOfBlock(block: number, visit: VersionVisitor): void {
    const chain: number[] = [];
    for (let i = this.head.get(block, -1); i >= 0; i = this.prev[i]) chain.push(i);
    for (let k = chain.length - 1; k >= 0; k--) visit(block, this.seqs[chain[k]], this.segs[chain[k]], this.offs[chain[k]]);
  }

  freeze(): SortedRun {
    // Blocks first written in ascending order (sequential ingest) are already sorted: skip the sort.
    const keys = this.head.keys().slice();
    let sorted = true;
    for (let i = 1; i < keys.length && sorted; i++) sorted = keys[i - 1] < keys[i];
    if (sorted && keys.length === this.n) {
      // Every block once, in ascending order (a sequential fill): arrival order is run order.
      return new SortedRun(this.blocks.slice(0, this.n), this.seqs.slice(0, this.n), this.segs.slice(0, this.n), this.offs.slice(0, this.n), this.firstSeq, this.lastSeq);
    }
    if (!sorted) keys.sort();
    const blocks = new Float64Array(this.n);
    const seqs = new Float64Array(this.n);
    const segs = new Uint32Array(this.n);
    const offs = new Uint32Array(this.n);
    let end = 0;
    for (const block of keys) {
      let len = 0;
      for (let i = this.head.get(block, -1); i >= 0; i = this.prev[i]) len++;
      // Chains run newest first: fill this block's slice from its end.
      let k = end + len - 1;
      for (let i = this.head.get(block, -1); i >= 0; i = this.prev[i], k--) {
        blocks[k] = block;
        seqs[k] = this.seqs[i];
        segs[k] = this.segs[i];
        offs[k] = this.offs[i];
      }
      end += len;
    }
    return new SortedRun(blocks, seqs, segs, offs, this.firstSeq, this.lastSeq);
  }

  private grow(): void {
    const size = this.blocks.length * 2;
    const grow = <T extends Float64Array | Uint32Array | Int32Array>(a: T, make: (n: number) => T): T => {
      const b = make(size);
      b.set(a);
      return b;
    };
    this.blocks = grow(this.blocks, (s) => new Float64Array(s));
    this.seqs = grow(this.seqs, (s) => new Float64Array(s));
    this.segs = grow(this.segs, (s) => new Uint32Array(s));
    this.offs = grow(this.offs, (s) => new Uint32Array(s));
    this.prev = grow(this.prev, (s) => new Int32Array(s));
  }
}
