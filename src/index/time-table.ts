import { lastAtOrBelow } from '../util/sorted-search';

/**
 * Maps wall-clock time to log position: one entry per distinct millisecond, holding the last seq
 * written in it. Times are forced monotonic at append, so the table is sorted on both columns.
 */
export class TimeTable {
  private times = new Float64Array(1024);
  private seqs = new Float64Array(1024);
  private n = 0;

  get count(): number {
    return this.n;
  }

  get lastTimeMs(): number {
    return this.n ? this.times[this.n - 1] : 0;
  }

  note(timeMs: number, seq: number): void {
    if (this.n && this.times[this.n - 1] === timeMs) {
      this.seqs[this.n - 1] = seq;
      return;
    }
    if (this.n && timeMs < this.times[this.n - 1]) throw new Error('time table: time went backwards');
    if (this.n === this.times.length) {
      const t = new Float64Array(this.n * 2);
      const s = new Float64Array(this.n * 2);
      t.set(this.times);
      s.set(this.seqs);
      this.times = t;
      this.seqs = s;
    }
    this.times[this.n] = timeMs;
    this.seqs[this.n++] = seq;
  }

  /** Last seq written at or before timeMs, or -1 when nothing was. */
  seqAtOrBefore(timeMs: number): number {
    const i = lastAtOrBelow(this.times, timeMs, this.n);
    return i < 0 ? -1 : this.seqs[i];
  }

  /** Time of the record with this seq: the first entry whose last seq is ≥ it; -1 if none. */
  timeOfSeq(seq: number): number {
    let lo = 0;
    let hi = this.n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.seqs[mid] < seq) lo = mid + 1;
      else hi = mid;
    }
    return lo < this.n ? this.times[lo] : -1;
  }

  /** Entries with seq > afterSeq, for the next checkpoint run. */
  sliceAfter(afterSeq: number): { times: Float64Array; seqs: Float64Array } {
    let i = this.n;
    while (i > 0 && this.seqs[i - 1] > afterSeq) i--;
    return { times: this.times.slice(i, this.n), seqs: this.seqs.slice(i, this.n) };
  }

  load(times: Float64Array, seqs: Float64Array): void {
    // The newest entry of one run may be repeated, updated, at the start of the next.
    for (let i = 0; i < times.length; i++) if (!this.n || seqs[i] > this.seqs[this.n - 1]) this.note(times[i], seqs[i]);
  }
}
