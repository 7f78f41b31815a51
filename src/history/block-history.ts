import { VersionIndex } from '../index/version-index';

/** What this needs of a sync event (history sits below volume/, which defines them). */
export interface EventMark {
  id: number;
  seq: number;
  label: string;
}

/** The index knows whether a version holds data; a zero and a trim both hold none. */
export type VersionKind = 'write' | 'zero|trim';

export interface BlockVersion {
  block: number;
  seq: number;
  /** Wall-clock time of the record that wrote it; -1 if the time table has no entry. */
  timeMs: number;
  kind: VersionKind;
  /** The sync event it belongs to: the first with seq ≥ the version's; none if written after the last. */
  event?: { id: number; label: string };
}

/**
 * Every version of blocks first … first+count-1, oldest first (by seq, then block), from the
 * index: a search per run and a chain walk in the memtable per block.
 */
export function blockHistory(index: VersionIndex, events: readonly EventMark[], firstBlock: number, blockCount: number): BlockVersion[] {
  const out: BlockVersion[] = [];
  for (let b = firstBlock; b < firstBlock + blockCount; b++) {
    index.versionsOfBlock(b, (block, seq, _segment, offset) => {
      const e = eventAtOrAfter(events, seq);
      out.push({ block, seq, timeMs: index.times.timeOfSeq(seq), kind: offset === 0 ? 'zero|trim' : 'write', event: e && { id: e.id, label: e.label } });
    });
  }
  return out.sort((a, b) => a.seq - b.seq || a.block - b.block);
}

function eventAtOrAfter(events: readonly EventMark[], seq: number): EventMark | undefined {
  let lo = 0;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (events[mid].seq < seq) lo = mid + 1;
    else hi = mid;
  }
  return events[lo];
}
