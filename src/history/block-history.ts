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
  // One {id, label} per event, shared by its versions: a hot block's 10^4 versions fall in few
  // events, and the fewer objects a query makes, the fewer collector pauses land in its tail.
  const marks = new Map<EventMark, { id: number; label: string }>();
  const markOf = (e: EventMark) => {
    let m = marks.get(e);
    if (!m) marks.set(e, (m = { id: e.id, label: e.label }));
    return m;
  };
  for (let b = firstBlock; b < firstBlock + blockCount; b++) {
    index.versionsOfBlock(b, (block, seq, _segment, offset) => {
      const e = eventAtOrAfter(events, seq);
      out.push({ block, seq, timeMs: index.times.timeOfSeq(seq), kind: offset === 0 ? 'zero|trim' : 'write', event: e && markOf(e) });
    });
  }
  // One block's versions come oldest first already (runs hold rising seq ranges, then the memtable).
  return blockCount === 1 ? out : out.sort((a, b) => a.seq - b.seq || a.block - b.block);
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
