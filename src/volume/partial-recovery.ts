import { ArchiveCatalog, CatalogBody, CatalogRetention, CatalogSegment } from '../archive/archive-catalog';
import { ArchiveChain, ChainBreak } from '../archive/archive-chain';
import { BackingStore } from '../archive/backing-store';
import { FILE_NAMES, parseGenerationFileName } from '../format/constants';
import type { Pin } from './retention-state';

/** What a partial recovery left in the archive for the recovered volume to go on from. */
export interface PartialRestart {
  /** The recovered volume's first segment id: past every id the archive may hold an object of. */
  nextSegment: number;
  /** The highest seq the lost history may have issued (event ids never exceed it). */
  seqsIssuedThrough: number;
  /** Pins on history past the break, which no longer exists (dropped from the retention state). */
  droppedPins: number;
}

/**
 * Where a partial recovery may end: the state at its last seq must be one the volume had. Prune
 * thinned what no kept point read, so a prefix ending inside a thinned span would serve, as live,
 * a mix no point ever held (the versions kept for a later point, without the dropped ones before
 * them). A segment's end is whole when no seq up to it was dropped, when the continuous span has
 * begun there, or when a kept point lies between the last dropped seq and it (that point is whole
 * and every record after it is present). The usable prefix is cut back to the last whole end; the
 * segments cut off join the break's unusable ones (moved aside with them). DESIGN rule 24.
 */
export function endAtWholeState(chain: ArchiveChain & { break: ChainBreak }, catalog: ArchiveCatalog): void {
  const r = catalog.body.retention;
  const kept = [...new Set([...r.keptSeqs, ...(r.pins as Pin[]).map((p) => p.seq)])].sort((a, b) => a - b);
  let lastDropped = 0;
  let keep = 0; // usable links up to the last whole end
  for (const [i, link] of chain.usable.entries()) {
    const end = link.firstSeq + link.records - 1;
    if (link.pruned === 'deleted' && link.records > 0) lastDropped = end;
    if (link.pruned === 'compacted') {
      const held = catalog.entry(link.segment)!.keptSeqs;
      for (let s = end; s >= link.firstSeq; s--) {
        if (!held.some(([a, b]) => s >= a && s <= b)) {
          lastDropped = s;
          break;
        }
      }
    }
    const whole = lastDropped === 0 || (r.continuousFromSeq > 0 && r.continuousFromSeq <= end) || kept.some((k) => k > lastDropped && k <= end);
    if (whole) keep = i + 1;
  }
  if (keep === chain.usable.length) return;
  const cut = chain.usable.splice(keep);
  const b = chain.break;
  b.unusableSegments = [...cut.filter((l) => l.pruned !== 'deleted').map((l) => l.segment), ...b.unusableSegments];
  b.fromSeq = cut[0].firstSeq;
  b.wholeCut = cut[0].segment;
  chain.nextSeq = cut[0].firstSeq;
}

/**
 * Makes the archive describe only the recovered history before the recovered volume writes
 * (docs/DESIGN.md, rule 24). The objects past the break go to `unrecovered/` (also those the
 * listing missed, probed by key); the catalog keeps the entries of the usable segments only, and
 * lists the ids up to the highest one the archive may hold as deleted with an empty span at the
 * break, so new segments never take an id an object may exist under and the chain proof still
 * runs from segment 1; its retention state keeps only what lies in the recovered history. Saved
 * (put, read back) under a new generation before anything is archived after it.
 */
export async function restartAfterBreak(store: BackingStore, volumeId: Buffer, catalog: ArchiveCatalog, chain: ArchiveChain & { break: ChainBreak }, lastId: number): Promise<PartialRestart> {
  const b = chain.break;
  await moveAside(store, [...b.missingSegments, ...b.unusableSegments], catalog);
  const idsOf = async (prefix: string) => (await store.list(prefix)).map((k) => parseGenerationFileName(k.slice(prefix.length))?.id ?? 0);
  const highest = maxOf([
    [lastId],
    b.missingSegments,
    b.unusableSegments,
    catalog.body.segments.map((e) => e.id),
    await idsOf(FILE_NAMES.archiveSegmentsPrefix),
    await idsOf(FILE_NAMES.archiveUnrecoveredPrefix + FILE_NAMES.archiveSegmentsPrefix),
  ]);
  const lastSeq = chain.nextSeq - 1;
  const old = catalog.body.retention;
  const pins = (old.pins as Pin[]).filter((p) => p.seq <= lastSeq);
  const seqsIssuedThrough = maxOf([
    [lastSeq, b.throughSeq ?? 0, old.continuousFromSeq - 1],
    old.keptSeqs,
    (old.pins as Pin[]).map((p) => p.seq),
    catalog.body.segments.map((e) => e.nextSeq - 1),
  ]);
  const retention: CatalogRetention = {
    ...old,
    pins,
    // History from the break on is new: nobody forgot any of it.
    continuousFromSeq: Math.min(old.continuousFromSeq, lastSeq + 1),
    keptSeqs: old.keptSeqs.filter((s) => s <= lastSeq),
  };
  const skipped: CatalogSegment[] = [];
  for (let id = lastId + 1; id <= highest; id++) skipped.push({ id, generation: 0, firstSeq: chain.nextSeq, nextSeq: chain.nextSeq, state: 'deleted', bytes: 0, keptSeqs: [] });
  const body: CatalogBody = { generation: catalog.generation + 1, segments: [...catalog.body.segments.filter((e) => e.id <= lastId), ...skipped], retention };
  await catalog.save(store, volumeId, body);
  return { nextSegment: highest + 1, seqsIssuedThrough, droppedPins: old.pins.length - pins.length };
}

/**
 * Moves archived objects the recovery could not use out of `segments/`, so nothing reads them as
 * the recovered volume's. Copied first, deleted after: never lost. An id the listing did not show
 * is probed by its key (a listing may be incomplete).
 */
async function moveAside(store: BackingStore, ids: number[], catalog: ArchiveCatalog): Promise<void> {
  for (const id of ids) {
    if (catalog.isDeleted(id)) continue;
    const key = catalog.keyOf(id);
    if ((await store.size(key)) === undefined) continue;
    await store.put(FILE_NAMES.archiveUnrecoveredPrefix + key, await store.get(key));
    await store.delete(key);
  }
}

/** The largest number in any of the lists (no spread: a catalog's lists can be long). */
function maxOf(lists: ReadonlyArray<readonly number[]>): number {
  let m = 0;
  for (const l of lists) for (const x of l) if (x > m) m = x;
  return m;
}
