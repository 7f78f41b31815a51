import { ChronoError } from '../errors';
import { decodeArchiveHead } from '../format/archive-head';
import { ARCHIVE_TRAILER, FILE_NAMES, FIRST_SEGMENT_ID, FIRST_SEQ, SEGMENT_HEADER, parseGenerationFileName } from '../format/constants';
import { decodeSegmentHeader } from '../format/segment-header';
import { Superblock } from '../format/superblock';
import { DEFAULTS } from '../options';
import { mapLimit } from '../util/map-limit';
import { ArchiveCatalog } from './archive-catalog';
import { BackingStore } from './backing-store';
import { keptRecords, readObjectEnd } from './object-end';

/** One archived object as its header and trailer describe it: the seqs it holds. */
export interface ChainLink {
  segment: number;
  firstSeq: number;
  /** Seqs the segment spans: firstSeq … firstSeq + records − 1 (a compacted or deleted one, per the catalog, holds only some or none of them). */
  records: number;
  /** Catalogued by prune: compacted (the object holds only some records) or deleted (no object). */
  pruned?: 'compacted' | 'deleted';
}

/** Where the archive stops being provably complete, and what lies beyond. */
export interface ChainBreak {
  /** The first segment that cannot be used. */
  segment: number;
  reason: 'missing' | 'seq-gap' | 'head-mismatch';
  /** History from this seq on is not recovered. */
  fromSeq: number;
  /** The last seq the archive is known to have held (head or a later object); undefined if unknown. */
  throughSeq?: number;
  /** Segments that should be in the archive and are not. */
  missingSegments: number[];
  /** Segments present after the break: intact, maybe, but unusable without what precedes them. */
  unusableSegments: number[];
  /** Set by a partial recovery that ended before the break, at the last whole state a prune left: the first segment it left out. */
  wholeCut?: number;
}

export interface ArchiveChain {
  /** The provably complete prefix: segments 1 … n, each starting where the previous ended. */
  usable: ChainLink[];
  /** The seq after the usable prefix's last record. */
  nextSeq: number;
  break?: ChainBreak;
  /** False for an archive written before the head existed: a missing newest object cannot be seen there. */
  headPresent: boolean;
}

/**
 * Proves how much of the archive is complete, from headers alone (a ranged read of each object's
 * header and trailer): the log starts at segment 1 with seq 1, every segment starts at the seq
 * after the previous one's last record, and the archive head names the last segment archived
 * (and the seq after it), so a missing first, middle or last object all show.
 */
export async function traceArchiveChain(store: BackingStore, sb: Superblock, catalog?: ArchiveCatalog): Promise<ArchiveChain> {
  const cat = catalog ?? await ArchiveCatalog.load(store, sb.volumeId);
  // A segment is present when the object the catalog names for it is listed (a stale or newer
  // generation left by a cut prune does not count), or the catalog says prune deleted it.
  const keys = new Set(await store.list(FILE_NAMES.archiveSegmentsPrefix));
  const listed = [...keys].map((k) => parseGenerationFileName(k.slice(FILE_NAMES.archiveSegmentsPrefix.length))?.id).filter((x): x is number => x !== undefined);
  const catalogued = cat.body.segments.map((e) => e.id);
  const ids = [...new Set([...listed, ...catalogued])].sort((a, b) => a - b);
  const present = new Set(ids.filter((id) => cat.isDeleted(id) || keys.has(cat.keyOf(id))));
  const head = (await store.size(FILE_NAMES.archiveHead)) === undefined
    ? undefined
    : decodeArchiveHead(await store.get(FILE_NAMES.archiveHead), { archive: store.description, file: FILE_NAMES.archiveHead });
  if (head && !head.volumeId.equals(sb.volumeId)) {
    throw new ChronoError('FOREIGN_SEGMENT', `${store.description}: the archive head belongs to another volume`, { archive: store.description });
  }
  const last = Math.max(ids[ids.length - 1] ?? 0, head?.lastSegment ?? 0);
  const usable: ChainLink[] = [];
  let nextSeq = FIRST_SEQ;
  let brk: ChainBreak | undefined;
  // Headers and trailers of the contiguous run from segment 1, read several at a time (three
  // round trips each: one after another, a long S3 archive took seconds per hundred objects).
  let contiguous = 0;
  while (present.has(FIRST_SEGMENT_ID + contiguous) && FIRST_SEGMENT_ID + contiguous <= last) contiguous++;
  const links = await mapLimit(Array.from({ length: contiguous }, (_, i) => FIRST_SEGMENT_ID + i), DEFAULTS.archiveReadsInFlight, (id) => readLink(store, sb, id, cat).catch((err: Error) => err));
  for (let id = FIRST_SEGMENT_ID; id <= last && !brk; id++) {
    if (!present.has(id)) {
      brk = { segment: id, reason: 'missing', fromSeq: nextSeq, missingSegments: [], unusableSegments: [] };
      break;
    }
    const link = links[id - FIRST_SEGMENT_ID];
    if (link instanceof Error) throw link; // the first bad object in order, as a one-by-one walk would find it
    if (link.firstSeq !== nextSeq) brk = { segment: id, reason: 'seq-gap', fromSeq: nextSeq, missingSegments: [], unusableSegments: [] };
    else {
      usable.push(link);
      nextSeq = link.firstSeq + link.records;
    }
  }
  const lastUsable = usable[usable.length - 1]?.segment ?? 0;
  if (!brk && head && head.lastSegment === lastUsable && head.nextSeq !== nextSeq) {
    // The newest object ends elsewhere than the head says: it is not the object that was archived.
    const link = usable.pop()!;
    brk = { segment: link.segment, reason: 'head-mismatch', fromSeq: link.firstSeq, missingSegments: [], unusableSegments: [] };
    nextSeq = link.firstSeq;
  }
  if (brk) {
    for (let id = brk.segment; id <= last; id++) (present.has(id) ? brk.unusableSegments : brk.missingSegments).push(id);
    brk.throughSeq = await knownEnd(store, sb, brk, head?.lastSegment === last ? head.nextSeq - 1 : undefined, cat);
  }
  return { usable, nextSeq, break: brk, headPresent: head !== undefined };
}

/** An object's header and trailer checked (volume, id, the table where the trailer says it ends), without its data. */
export async function readLink(store: BackingStore, sb: Superblock, id: number, catalog = new ArchiveCatalog()): Promise<ChainLink> {
  const entry = catalog.entry(id);
  // Deleted by prune: the catalog (verified before the object went) is all there is.
  if (entry?.state === 'deleted') return { segment: id, firstSeq: entry.firstSeq, records: entry.nextSeq - entry.firstSeq, pruned: 'deleted' };
  const key = catalog.keyOf(id);
  const ctx = { segment: id, archive: true };
  const size = await store.size(key);
  if (size === undefined || size < SEGMENT_HEADER.lengthBytes + ARCHIVE_TRAILER.lengthBytes) {
    throw new ChronoError('BAD_LENGTH', `archived segment ${id} is truncated`, ctx);
  }
  const header = decodeSegmentHeader(await store.getRange(key, 0, SEGMENT_HEADER.lengthBytes), sb.volumeId, ctx);
  if (header.segmentId !== id) throw new ChronoError('CORRUPT_LOG', `archived segment ${id} holds segment ${header.segmentId}`, ctx);
  const end = await readObjectEnd(store, key, size, ctx);
  if (!end.linked && end.tableOffset + end.entryCount * ARCHIVE_TRAILER.entryBytes !== size - ARCHIVE_TRAILER.lengthBytes) {
    throw new ChronoError('BAD_LENGTH', `archived segment ${id} is ${size} bytes, its trailer describes ${end.tableOffset + end.entryCount * ARCHIVE_TRAILER.entryBytes + ARCHIVE_TRAILER.lengthBytes}`, ctx);
  }
  if (entry) {
    // Compacted: the object holds some of the segment's records; the catalog holds its seq span.
    const holds = entry.keptSeqs.reduce((n, [a, b]) => n + b - a + 1, 0);
    if (header.firstSeq !== entry.firstSeq || end.linked || end.entryCount !== holds) {
      throw new ChronoError('CORRUPT_LOG', `archived segment ${id} (generation ${entry.generation}) is not the object the catalog names: it starts at seq ${header.firstSeq} with ${end.linked ? 'a SEAL' : `${end.entryCount} records`}, the catalog says seq ${entry.firstSeq} with ${holds}`, ctx);
    }
    return { segment: id, firstSeq: entry.firstSeq, records: entry.nextSeq - entry.firstSeq, pruned: 'compacted' };
  }
  return { segment: id, firstSeq: header.firstSeq, records: keptRecords(end, header.firstSeq) };
}

/** The last seq the archive held: from the head, else the newest present object beyond the break. */
async function knownEnd(store: BackingStore, sb: Superblock, brk: ChainBreak, fromHead: number | undefined, catalog: ArchiveCatalog): Promise<number | undefined> {
  if (fromHead !== undefined) return fromHead;
  const newest = brk.unusableSegments[brk.unusableSegments.length - 1];
  if (newest === undefined) return undefined;
  try {
    const link = await readLink(store, sb, newest, catalog);
    return link.firstSeq + link.records - 1;
  } catch {
    return undefined;
  }
}

/** The chain break in words: which history is missing, and why. */
export function describeBreak(b: ChainBreak): string {
  const seqs = b.throughSeq !== undefined ? `seqs ${b.fromSeq}–${b.throughSeq}` : `seqs from ${b.fromSeq} on`;
  const why = b.reason === 'missing'
    ? `archived segment ${b.segment} is missing`
    : b.reason === 'seq-gap'
      ? `archived segment ${b.segment} does not start at seq ${b.fromSeq}, where the one before it ended`
      : `archived segment ${b.segment} does not end where the archive head says the archive ends`;
  const more = [
    b.missingSegments.length ? `missing segments: ${ranges(b.missingSegments)}` : '',
    b.unusableSegments.length ? `present but unusable without it: ${ranges(b.unusableSegments)}` : '',
  ].filter(Boolean).join('; ');
  const cut = b.wholeCut === undefined ? '' : `; prune thinned the history before it, so the recovery ends at the last whole state, before segment ${b.wholeCut}`;
  return `${why}: history ${seqs} cannot be recovered${more ? ` (${more})` : ''}${cut}`;
}

function ranges(ids: number[]): string {
  const out: string[] = [];
  for (let i = 0; i < ids.length; ) {
    let j = i;
    while (j + 1 < ids.length && ids[j + 1] === ids[j] + 1) j++;
    out.push(i === j ? `${ids[i]}` : `${ids[i]}–${ids[j]}`);
    i = j + 1;
  }
  return out.join(', ');
}
