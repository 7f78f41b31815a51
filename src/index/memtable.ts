import { Location, SortedRun } from './sorted-run';

/**
 * Versions appended since the last checkpoint, in seq order. Per-block chains make floor lookups
 * cheap while the table is small; `freeze` turns it into a sorted run without a comparison sort.
 */
export class Memtable {
  private blocks = new Float64Array(1024);
  private seqs = new Float64Array(1024);
  private segs = new Uint32Array(1024);
  private offs = new Uint32Array(1024);
  private prev = new Int32Array(1024);
  private readonly head = new Map<number, number>();
  private n = 0;
  firstSeq = -1;
  lastSeq = -1;

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
    this.prev[i] = this.head.get(block) ?? -1;
    this.head.set(block, i);
    if (this.firstSeq < 0) this.firstSeq = seq;
    this.lastSeq = seq;
  }

  floor(block: number, seqLimit: number): Location | undefined {
    for (let i = this.head.get(block) ?? -1; i >= 0; i = this.prev[i]) {
      if (this.seqs[i] <= seqLimit) return { seq: this.seqs[i], segment: this.segs[i], offset: this.offs[i] };
    }
    return undefined;
  }

  freeze(): SortedRun {
    // Blocks first written in ascending order (sequential ingest) are already sorted: skip the sort.
    const keys = Float64Array.from(this.head.keys());
    let sorted = true;
    for (let i = 1; i < keys.length && sorted; i++) sorted = keys[i - 1] < keys[i];
    if (!sorted) keys.sort();
    const blocks = new Float64Array(this.n);
    const seqs = new Float64Array(this.n);
    const segs = new Uint32Array(this.n);
    const offs = new Uint32Array(this.n);
    let end = 0;
    for (const block of keys) {
      let len = 0;
      for (let i = this.head.get(block)!; i >= 0; i = this.prev[i]) len++;
      // Chains run newest first: fill this block's slice from its end.
      let k = end + len - 1;
      for (let i = this.head.get(block)!; i >= 0; i = this.prev[i], k--) {
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
