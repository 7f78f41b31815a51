import { ChronoError, isChronoError } from '../errors';
import { encodeArchiveHead } from '../format/archive-head';
import { FILE_NAMES } from '../format/constants';
import { decodeSuperblock } from '../format/superblock';
import { VersionIndex } from '../index/version-index';
import { DEFAULTS } from '../options';
import { writeFileDurable } from '../storage/durable-file';
import { FileSystem } from '../storage/file-system';
import { NodeFileSystem } from '../storage/node-file-system';
import { ArchiveChain, ChainBreak, describeBreak, traceArchiveChain } from '../archive/archive-chain';
import { parseArchiveObject } from '../archive/archive-object';
import { ArchiveCatalog } from '../archive/archive-catalog';
import { BackingStore } from '../archive/backing-store';
import { ArchiveSettings, archiveSettings, openStore } from '../archive/open-store';
import { EventList } from './events';
import { materializeLive } from './materialize';
import { Volume } from './volume';
import { VolumeDir } from './volume-dir';
import { VolumeLog } from './volume-log';
import { whiteBox } from './white-box';
import { PartialRestart, endAtWholeState, restartAfterBreak } from './partial-recovery';
import { writeRetentionFromCatalog } from './retention-state';

export interface RecoverReport {
  segments: number;
  events: number;
  versions: number;
  lastSeq: number;
  materializedBlocks: number;
  /** Set when the archive was not complete and the user accepted a partial recovery: what is missing. */
  missing?: ChainBreak & { description: string; movedTo: string; droppedPins: number };
  /** False for an archive written before its head existed: a missing newest object could not be detected. */
  headPresent: boolean;
  /** The recovered history's last record time (ISO): times from it up to the recovery are refused, POINT_LOST (rule 27). */
  lostFrom: string;
  /** Objects lying in `unrecovered/` (this or an earlier partial recovery): history this archive no longer recovers. */
  unrecoveredObjects: number;
}

export interface RecoverOptions {
  fs?: FileSystem;
  store?: BackingStore;
  progress?: (phase: string, done: number, total: number) => void;
  /**
   * Recover the provably complete part of an incomplete archive (every segment from the first up
   * to the first one missing) instead of refusing. The objects after the break are moved to
   * `unrecovered/` in the archive, and the catalog and retention state are trimmed to the
   * recovered history; the recovered volume's new segments take ids past every one the archive
   * may hold an object of (partial-recovery.ts).
   */
  acceptPartial?: boolean;
}

/**
 * Disaster recovery: rebuilds a volume directory from the backing store alone. The archive
 * carries the superblock and every segment; the index is rebuilt from them, then the live
 * volume is copied into a fresh working set. An archive that cannot be proven complete (see
 * traceArchiveChain) is refused with ARCHIVE_MISSING unless the caller accepts a partial recovery.
 */
export async function recoverFromArchive(archive: string | ArchiveSettings, dir: string, o: RecoverOptions = {}): Promise<RecoverReport> {
  const fs = o.fs ?? new NodeFileSystem();
  const settings = typeof archive === 'string' ? archiveSettings({ archive }).settings : archive;
  const store = o.store ?? openStore(settings, { fs });
  const vd = new VolumeDir(fs, dir);
  if (vd.isVolume()) throw new ChronoError('EXISTS', `${dir} already holds a volume; recover into an empty directory`);
  const sbBytes = await store.get(FILE_NAMES.archiveSuperblock).catch((err) => {
    if (isChronoError(err, 'ARCHIVE_WRONG_KEY') || isChronoError(err, 'ARCHIVE_AUTH_FAILED')) throw err; // an archive, but not readable with this key
    throw new ChronoError('NOT_A_VOLUME', `${store.description} holds no chronovol archive (${(err as Error).message})`, {}, err);
  });
  const sb = decodeSuperblock(sbBytes, { archive: store.description });
  const catalog = await ArchiveCatalog.load(store, sb.volumeId);
  const chain = await traceArchiveChain(store, sb, catalog);
  // A prefix ending inside a thinned span would serve a state that never was: it ends at a whole one.
  if (chain.break && catalog.present) endAtWholeState(chain as ArchiveChain & { break: ChainBreak }, catalog);
  if (chain.break) {
    const b = chain.break;
    const description = describeBreak(b);
    if (!chain.usable.length) {
      throw new ChronoError('ARCHIVE_MISSING', `${store.description}: ${description}; no state of the volume is provably complete, so nothing can be recovered`, { ...b });
    }
    if (!o.acceptPartial) {
      throw new ChronoError('ARCHIVE_MISSING', `${store.description}: ${description}; refusing to recover. A partial recovery (--accept-partial) would end at seq ${b.fromSeq - 1}`, { ...b });
    }
  }
  const ids = chain.usable.map((l) => l.segment);
  // Segments prune deleted have no object: nothing of them is read (their versions are ones no kept point needs).
  const fetched = chain.usable.filter((l) => l.pruned !== 'deleted').map((l) => l.segment);
  const fetchIndex = new Map(fetched.map((id, n) => [id, n]));
  fs.mkdirp(vd.segmentsDir);
  fs.mkdirp(vd.indexDir);
  const index = new VersionIndex(fs, vd.indexDir);
  // Applied through the volume's own log, with no segments to append to: the log's meaning is defined once.
  const log = new VolumeLog(sb.blockSizeBytes, index, new EventList());
  o.progress?.('index', 0, ids.length);
  // Objects are fetched several at a time ahead of the one being applied: each is a round trip.
  const fetches = new Map<number, Promise<Buffer>>();
  const fetch = (n: number) => {
    if (n < fetched.length && !fetches.has(n)) {
      const p = store.get(catalog.keyOf(fetched[n]));
      p.catch(() => undefined); // awaited in order below
      fetches.set(n, p);
    }
  };
  for (const [step, link] of chain.usable.entries()) {
    const id = link.segment;
    const n = fetchIndex.get(id);
    if (n === undefined) {
      o.progress?.('index', step + 1, ids.length);
      continue;
    }
    for (let k = n; k < n + DEFAULTS.archiveReadsInFlight; k++) fetch(k);
    const obj = await fetches.get(n)!;
    fetches.delete(n);
    const { scan, table } = parseArchiveObject(obj, sb.blockSizeBytes, id, sb.volumeId);
    // The chain was proven from headers; the records themselves must hold exactly those seqs
    // (a compacted object: exactly the seqs the catalog says it kept, in order).
    const want = link.pruned === 'compacted' ? expandRanges(catalog.entry(id)!.keptSeqs) : undefined;
    if (want && want.length !== scan.records.length) throw new ChronoError('CORRUPT_LOG', `archived segment ${id}: ${scan.records.length} records, the catalog says ${want.length}`, { segment: id, archive: true });
    scan.records.forEach((r, i) => {
      const expected = want ? want[i] : link.firstSeq + i;
      if (r.header.seq !== expected) {
        throw new ChronoError('CORRUPT_LOG', `archived segment ${id}: record ${i} has seq ${r.header.seq}, expected ${expected}`, { segment: id, archive: true });
      }
    });
    scan.records.forEach((r, i) => {
      if (r.header.seq > log.nextSeq) noteDropped(index, log, r.header.seq - 1, Math.min(sb.createdMs, r.header.timeMs));
      log.apply(id, table.primary[i], r.header, r.payload);
    });
    o.progress?.('index', step + 1, ids.length);
  }
  if (chain.nextSeq > log.nextSeq) noteDropped(index, log, chain.nextSeq - 1, sb.createdMs);
  let missing: RecoverReport['missing'];
  const lastId = ids[ids.length - 1] ?? 0;
  let restart: PartialRestart | undefined;
  if (chain.break) {
    const movedTo = `${store.description}/${FILE_NAMES.archiveUnrecoveredPrefix}`;
    // Before the head: a rerun cut after it finds the break covered by the new catalog (a full recovery of the same prefix).
    restart = await restartAfterBreak(store, sb.volumeId, catalog, { ...chain, break: chain.break }, lastId);
    missing = { ...chain.break, description: describeBreak(chain.break), movedTo, droppedPins: restart.droppedPins };
  }
  // From here on the archive head names what was recovered: the recovered volume archives on after it.
  const next = restart?.nextSegment ?? lastId + 1;
  if (lastId > 0) await store.put(FILE_NAMES.archiveHead, encodeArchiveHead({ volumeId: sb.volumeId, lastSegment: next - 1, nextSeq: chain.nextSeq }));
  // Event ids are issued past every id a forget recorded and (partial) every one the lost history
  // may have issued (ids never exceed seqs): a new event never takes an id that named another.
  const forgottenThrough = catalog.body.retention.forgotten.reduce((m, [, b]) => Math.max(m, b), 0);
  const nextEventId = Math.max(log.nextEventId, forgottenThrough + 1, (restart?.seqsIssuedThrough ?? 0) + 1);
  // Whatever the lost volume wrote after the archive's last record is gone, and when it wrote
  // it is unknown: a time from that record on names no known state (rule 27). The span is in
  // the manifest before the directory becomes a volume (the superblock, below), so a recovery
  // cut before its LOST record is durable still refuses it; the record restates it (same seq).
  const lostFromMs = log.lastTimeMs > 0 ? log.lastTimeMs : sb.createdMs;
  const lastRecoveredSeq = log.nextSeq - 1;
  const nextSeq = Math.max(log.nextSeq, chain.nextSeq);
  log.events.lost.push({ seq: nextSeq, fromMs: lostFromMs, toMs: Date.now(), lastSeq: lastRecoveredSeq });
  // The log goes on after the last segment's span, also when prune dropped its last records.
  await index.checkpoint({ covered: { segment: next, offset: 0 }, ...log.position(), nextEventId, nextSeq });
  // What prune dropped was justified by the catalog's retention state: the recovered volume keeps
  // it (as a partial recovery trimmed it to the recovered history), or a point in a thinned span
  // would read an older version than it had (wrong data).
  if (catalog.present) writeRetentionFromCatalog(fs, dir, catalog, nextSeq);
  // A partial recovery that failed after moving objects aside leaves a complete-looking archive:
  // say so. (Asked before the superblock: a failure here leaves no volume, and recover may rerun.)
  const unrecoveredObjects = (await store.list(FILE_NAMES.archiveUnrecoveredPrefix + FILE_NAMES.archiveSegmentsPrefix)).length;
  vd.writeConfig(settings);
  writeFileDurable(fs, vd.superblockPath, sbBytes);
  const vol = await Volume.open(dir, { fs, store });
  try {
    // (Its open appended the LOST record: the span is in the manifest with the next seq.)
    const materialized = await materializeLive(whiteBox(vol), (d, t) => o.progress?.('working set', d, t));
    return { segments: ids.length, events: log.events.all.length, versions: log.counters.versions, lastSeq: lastRecoveredSeq, materializedBlocks: materialized, missing, lostFrom: new Date(lostFromMs).toISOString(), headPresent: chain.headPresent, unrecoveredObjects };
  } finally {
    await vol.close();
  }
}

/**
 * Seqs log.nextSeq … `throughSeq` have no record left (prune dropped them), so no time: they are
 * noted as written at the time of the record before them (DESIGN rule 23), so a time that may fall
 * among them resolves to a dropped seq, which lies in a thinned span and is refused, never to the
 * kept point before them. `firstMs` is for a gap before any record.
 */
function noteDropped(index: VersionIndex, log: VolumeLog, throughSeq: number, firstMs: number): void {
  index.noteTime(log.lastTimeMs > 0 ? log.lastTimeMs : firstMs, throughSeq);
}

function expandRanges(r: ReadonlyArray<readonly [number, number]>): number[] {
  const out: number[] = [];
  for (const [a, b] of r) for (let s = a; s <= b; s++) out.push(s);
  return out;
}
