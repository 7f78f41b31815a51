/**
 * An immutable run of block versions sorted by (block, seq), in typed arrays: 24 bytes a
 * version (block f64, seq f64, segment u32, offset u32) and a binary-search floor lookup.
 * Runs hold disjoint, increasing seq ranges, so the newest run that answers wins.
 */
export interface Location { seq: number; segment: number; offset: number }

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

  at(i: number): Location {
    return { seq: this.seqs[i], segment: this.segs[i], offset: this.offs[i] };
  }

  static merge(older: SortedRun, newer: SortedRun): SortedRun {
    const n = older.count + newer.count;
    const blocks = new Float64Array(n);
    const seqs = new Float64Array(n);
    const segs = new Uint32Array(n);
    const offs = new Uint32Array(n);
    let i = 0;
    let j = 0;
    for (let k = 0; k < n; k++) {
      // Same block: the older run's seqs are all smaller, so it goes first.
      const takeOlder = j >= newer.count || (i < older.count && older.blocks[i] <= newer.blocks[j]);
      const src = takeOlder ? older : newer;
      const at = takeOlder ? i++ : j++;
      blocks[k] = src.blocks[at];
      seqs[k] = src.seqs[at];
      segs[k] = src.segs[at];
      offs[k] = src.offs[at];
    }
    const times = new Float64Array(older.times.length + newer.times.length);
    times.set(older.times);
    times.set(newer.times, older.times.length);
    const timeSeqs = new Float64Array(times.length);
    timeSeqs.set(older.timeSeqs);
    timeSeqs.set(newer.timeSeqs, older.timeSeqs.length);
    return new SortedRun(blocks, seqs, segs, offs, older.firstSeq, newer.lastSeq, times, timeSeqs);
  }
}
