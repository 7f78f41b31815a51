import { ChronoError } from '../errors';
import { ARCHIVE_CATALOG, FILE_NAMES, generationFileName } from '../format/constants';
import { crc32c } from '../format/crc';
import { checkPrelude, newPrelude, sealPrelude } from '../format/header-check';
import { BackingStore } from './backing-store';

/** What prune did to one archived segment (docs/FORMAT.md, "Archive catalog"). */
export interface CatalogSegment {
  id: number;
  /** The object's generation: 0 the original `<id>.cvseg`, g > 0 `<id>.g<g>.cvseg` (a compacted rewrite). */
  generation: number;
  /** The segment's seqs: firstSeq … nextSeq − 1, whatever of them the object still holds. */
  firstSeq: number;
  nextSeq: number;
  state: 'compacted' | 'deleted';
  /** Bytes of the object the catalog names (0 when deleted). */
  bytes: number;
  /** Seqs of the records the object holds, as inclusive [first, last] ranges (empty when deleted). */
  keptSeqs: Array<[number, number]>;
}

/** The retention state that justified what the catalog drops: a recovered volume takes it over. */
export interface CatalogRetention {
  /** retention.json's pins, as they were (opaque here). */
  pins: unknown[];
  forgotten: Array<[number, number]>;
  /** retention.json's forgottenLabels (absent in catalogs written before labels were recorded). */
  forgottenLabels?: Array<[string, number]>;
  continuousFromSeq: number;
  /** Every kept point's seq (kept events and pins). */
  keptSeqs: number[];
}

/**
 * What the prune that wrote the catalog walked (absent: the next prune walks the whole index):
 * the kept points and span start it decided against, the segments it could touch, and its
 * rewrite threshold. A prune that left rewrites for later keeps the walk before it.
 */
export interface CatalogWalk {
  keptSeqs: number[];
  continuousFromSeq: number;
  /** Every segment id up to this one had left primary and was archived (a candidate) then. */
  eligibleThrough: number;
  rewriteThreshold: number;
}

export interface CatalogBody {
  /** Bumped by every prune that replaces the catalog; rewritten objects take the new value as their generation. */
  generation: number;
  segments: CatalogSegment[];
  retention: CatalogRetention;
  walked?: CatalogWalk;
}

const O = ARCHIVE_CATALOG.off;
const SPEC = { what: 'archive catalog', magic: ARCHIVE_CATALOG.magic, lengthBytes: ARCHIVE_CATALOG.lengthBytes, crcOffset: O.crc };

export function encodeCatalog(volumeId: Buffer, body: CatalogBody): Buffer {
  const json = Buffer.from(JSON.stringify({ segments: body.segments, retention: body.retention, ...(body.walked ? { walked: body.walked } : {}) }), 'utf8');
  const h = newPrelude(SPEC);
  volumeId.copy(h, O.volumeId, 0, 16);
  h.writeBigUInt64LE(BigInt(body.generation), O.generation);
  h.writeUInt32LE(json.length, O.bodyLength);
  h.writeUInt32LE(crc32c(json), O.bodyCrc);
  return Buffer.concat([sealPrelude(h, SPEC), json]);
}

/** Checks the header in the house order, then the body's length and CRC, then the volume. */
export function decodeCatalog(b: Buffer, volumeId: Buffer | undefined, context: Record<string, unknown> = {}): CatalogBody {
  checkPrelude(b, SPEC, context);
  const n = b.readUInt32LE(O.bodyLength);
  if (b.length !== ARCHIVE_CATALOG.lengthBytes + n) throw new ChronoError('BAD_LENGTH', `archive catalog: ${b.length} bytes, its header says ${ARCHIVE_CATALOG.lengthBytes + n}`, context);
  const json = b.subarray(ARCHIVE_CATALOG.lengthBytes);
  if (crc32c(json) !== b.readUInt32LE(O.bodyCrc)) throw new ChronoError('BAD_CHECKSUM', 'archive catalog: body checksum mismatch', context);
  if (volumeId && !b.subarray(O.volumeId, O.volumeId + 16).equals(volumeId)) throw new ChronoError('FOREIGN_SEGMENT', 'archive catalog belongs to another volume', context);
  const d = JSON.parse(json.toString('utf8')) as Omit<CatalogBody, 'generation'>;
  return { generation: Number(b.readBigUInt64LE(O.generation)), segments: d.segments, retention: d.retention, ...(d.walked ? { walked: d.walked } : {}) };
}

/**
 * The one resolver of archived segment ids to objects: every reader, verify, scrub, recover and
 * the chain proof go through it. Absent catalog: no prune ever ran, every id is `<id>.cvseg`.
 */
export class ArchiveCatalog {
  private byId = new Map<number, CatalogSegment>();
  private data: CatalogBody;

  constructor(body?: CatalogBody) {
    this.data = body ?? { generation: 0, segments: [], retention: { pins: [], forgotten: [], continuousFromSeq: 0, keptSeqs: [] } };
    this.index();
  }

  static async load(store: BackingStore, volumeId: Buffer | undefined): Promise<ArchiveCatalog> {
    if ((await store.size(FILE_NAMES.archiveCatalog)) === undefined) return new ArchiveCatalog();
    return new ArchiveCatalog(decodeCatalog(await store.get(FILE_NAMES.archiveCatalog), volumeId, { archive: store.description, file: FILE_NAMES.archiveCatalog }));
  }

  get body(): CatalogBody {
    return this.data;
  }
  get generation(): number {
    return this.data.generation;
  }
  /** True once some prune wrote a catalog. */
  get present(): boolean {
    return this.data.generation > 0;
  }

  entry(id: number): CatalogSegment | undefined {
    return this.byId.get(id);
  }

  /** The key of the object that holds segment `id` now. */
  keyOf(id: number): string {
    return FILE_NAMES.archiveSegmentsPrefix + generationFileName(id, this.byId.get(id)?.generation ?? 0);
  }

  isDeleted(id: number): boolean {
    return this.byId.get(id)?.state === 'deleted';
  }

  isCompacted(id: number): boolean {
    return this.byId.get(id)?.state === 'compacted';
  }

  /** The seqs the segment spanned, for a catalogued one (its object no longer says). */
  seqRange(id: number): { firstSeq: number; nextSeq: number } | undefined {
    const e = this.byId.get(id);
    return e && { firstSeq: e.firstSeq, nextSeq: e.nextSeq };
  }

  /** Does the (compacted) object still hold the record with this seq? Uncatalogued: yes. */
  holdsSeq(id: number, seq: number): boolean {
    const e = this.byId.get(id);
    if (!e) return true;
    return e.keptSeqs.some(([a, b]) => seq >= a && seq <= b);
  }

  /**
   * A test for "prune removed this version's record" (a deleted segment, or a seq its compacted
   * object does not hold), fast enough for every version of the index at open: a flag per
   * segment id, and a binary search of the kept ranges of catalogued ones only.
   */
  prunedTest(): (block: number, seq: number, segment: number) => boolean {
    const max = this.data.segments.reduce((m, e) => Math.max(m, e.id), 0);
    const flagged = new Uint8Array(max + 1);
    for (const e of this.data.segments) flagged[e.id] = 1;
    return (_block, seq, segment) => {
      if (segment > max || flagged[segment] === 0) return false;
      const r = this.byId.get(segment)!.keptSeqs;
      let lo = 0;
      let hi = r.length - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (seq < r[mid][0]) hi = mid - 1;
        else if (seq > r[mid][1]) lo = mid + 1;
        else return false;
      }
      return true;
    };
  }

  /**
   * Puts the catalog and reads it back (DESIGN rule: durable and verified before anything it
   * drops is deleted); only then does this resolver answer with it.
   */
  async save(store: BackingStore, volumeId: Buffer, body: CatalogBody): Promise<void> {
    const bytes = encodeCatalog(volumeId, body);
    await store.put(FILE_NAMES.archiveCatalog, bytes);
    const back = await store.get(FILE_NAMES.archiveCatalog);
    if (!back.equals(bytes)) throw new ChronoError('ARCHIVE_MISMATCH', `${store.description}: the archive catalog reads back different from what was written`);
    this.replace(body);
  }

  /** Takes over another catalog's state (after a save, or one read afresh). */
  replace(body: CatalogBody): void {
    this.data = body;
    this.index();
  }

  private index(): void {
    this.byId = new Map(this.data.segments.map((s) => [s.id, s]));
  }
}

/** Sorted seqs as inclusive ranges. */
export function seqRanges(seqs: readonly number[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const s of seqs) {
    const last = out[out.length - 1];
    if (last && s === last[1] + 1) last[1] = s;
    else out.push([s, s]);
  }
  return out;
}
