import { ChronoError } from '../errors';
import type { ResyncReasonName } from '../format/constants';

/**
 * A resync window: from a RESYNC_BEGIN to its RESYNC_END the replica is a torn mix of old and
 * new blocks (an initial copy, or a resync by dirty bitmap after the target was lost), so no
 * point inside it is a state the primary ever had.
 */
export interface ResyncWindow {
  id: number;
  reason: ResyncReasonName;
  beginSeq: number;
  beginMs: number;
  /** When the protecting host lost the target (0: never lost, an initial copy). Times from here on are refused too. */
  lostMs: number;
  endSeq?: number;
  endMs?: number;
  bytesCopied?: number;
}

/** The windows of a volume, oldest first; at most the last one is open. */
export class ResyncWindows {
  readonly all: ResyncWindow[] = [];

  get open(): ResyncWindow | undefined {
    const w = this.all[this.all.length - 1];
    return w && w.endSeq === undefined ? w : undefined;
  }

  get nextId(): number {
    return (this.all[this.all.length - 1]?.id ?? 0) + 1;
  }

  begin(w: ResyncWindow): void {
    this.all.push(w);
  }

  end(id: number, seq: number, timeMs: number, bytesCopied: number): void {
    const w = this.all.find((x) => x.id === id);
    if (!w) return; // its RESYNC_BEGIN went with an archived segment the manifest no longer names: nothing to close
    Object.assign(w, { endSeq: seq, endMs: timeMs, bytesCopied });
  }

  /**
   * The window a point falls inside, by seq (every point) or by time (time points). A window
   * whose target was lost (lostMs > 0) starts at the loss, not at its RESYNC_BEGIN: records
   * appended after lostMs and before the window opened (an event a cron `sync` recorded on a
   * daemon that came back first) already lack the primary's writes since lostMs. Their seqs are
   * found through `seqAtOrBefore` (the time table): every seq after the last one written before
   * lostMs is inside.
   */
  containing(seqLimit: number, timeMs?: number, seqAtOrBefore?: (timeMs: number) => number): ResyncWindow | undefined {
    return this.all.find((w) => {
      const from = w.lostMs > 0 ? Math.min(w.lostMs, w.beginMs) : w.beginMs;
      const fromSeq = w.lostMs > 0 && seqAtOrBefore ? Math.min(w.beginSeq, seqAtOrBefore(from - 1)) : w.beginSeq;
      const bySeq = seqLimit > fromSeq && (w.endSeq === undefined || seqLimit < w.endSeq);
      const byTime = timeMs !== undefined && timeMs >= from && (w.endMs === undefined || timeMs < w.endMs);
      return bySeq || byTime;
    });
  }

  /** POINT_IN_RESYNC for a point inside a window; `live` is never refused (the mirror writes there). */
  check(name: string, seqLimit: number, timeMs?: number, seqAtOrBefore?: (timeMs: number) => number): void {
    const w = this.containing(seqLimit, timeMs, seqAtOrBefore);
    if (!w) return;
    const until = w.endSeq === undefined ? 'still open' : `until seq ${w.endSeq} (${new Date(w.endMs!).toISOString()})`;
    throw new ChronoError('POINT_IN_RESYNC', `${name} falls inside resync window ${w.id} (from seq ${w.beginSeq}, ${new Date(w.lostMs || w.beginMs).toISOString()}, ${until}): the replica was a torn mix of old and new blocks then; choose a point before or after it`, { point: name, window: w.id });
  }
}
