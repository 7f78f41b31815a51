import { parseArchiveObject } from '../archive/archive-object';
import { ArchiveCatalog } from '../archive/archive-catalog';
import { isChronoError } from '../errors';
import { FILE_NAMES, RecordType, SUPERBLOCK, parseGenerationFileName } from '../format/constants';
import { checkPrelude } from '../format/header-check';
import { decodeSuperblock } from '../format/superblock';
import { HEADER_BYTES, RecordHeader, unitBytes } from '../format/record';
import { scanSegment } from '../segment/segment-scanner';
import { Core } from './core';

export interface Problem {
  kind: 'primary-segment' | 'archived-segment' | 'archive-missing' | 'index-mismatch' | 'archive-unreachable' | 'archive-superblock' | 'open';
  segment?: number;
  offset?: number;
  /** The error code the damage raised, where one did (BAD_MAGIC, BAD_CHECKSUM, CORRUPT_LOG …). */
  code?: string;
  message: string;
}

export interface VerifyReport {
  ok: boolean;
  problems: Problem[];
  checked: { primarySegments: number; archivedSegments: number; records: number; blocks: number; indexEntries: number };
}

export type Progress = (done: number, total: number) => void;

/**
 * Reads everything once: every primary and archived segment with every block CRC, the index
 * against the log (each version the log holds must be what the index returns at its seq, and
 * the index holds no version the log lacks), the archive's superblock, and the archive for gaps.
 * Reports every problem found rather than stopping at the first.
 */
export async function verifyVolume(core: Core, progress?: Progress): Promise<VerifyReport> {
  const problems: Problem[] = [];
  const checked = { primarySegments: 0, archivedSegments: 0, records: 0, blocks: 0, indexEntries: 0 };
  const { sb } = core;
  const unit = unitBytes(sb.blockSizeBytes);
  const primary = [...core.segments.sealed, core.segments.current.id];
  let archived: number[] = [];
  let catalog = core.catalog;
  /** Segments prune deleted: their versions are gone from the index too, and no object is missing. */
  let deleted: number[] = [];
  try {
    // Read afresh: verify checks what the archive holds now (a prune in another process may have run).
    catalog = await ArchiveCatalog.load(core.store, sb.volumeId);
    const keys = new Set(await core.store.list(FILE_NAMES.archiveSegmentsPrefix));
    const ids = [...keys].map((k) => parseGenerationFileName(k.slice(FILE_NAMES.archiveSegmentsPrefix.length))?.id).filter((x): x is number => x !== undefined);
    archived = [...new Set(ids)].filter((id) => !catalog.isDeleted(id) && keys.has(catalog.keyOf(id)));
    deleted = catalog.body.segments.filter((e) => e.state === 'deleted').map((e) => e.id);
  } catch (err) {
    problems.push({ kind: 'archive-unreachable', message: (err as Error).message });
  }
  if (!problems.length) await checkArchiveSuperblock(core, problems); // unless the archive is unreachable
  const total = primary.length + archived.length;
  let done = 0;
  /** Versions the log holds, per segment (a segment awaiting recycling is in both places). */
  const logVersions = new Map<number, number>();

  const checkIndex = (segment: number, primaryOffset: number, h: RecordHeader, versions: { n: number }) => {
    if (h.type !== RecordType.WRITE && h.type !== RecordType.ZERO && h.type !== RecordType.TRIM) return;
    versions.n += h.blockCount;
    for (let i = 0; i < h.blockCount; i++) {
      const want = h.type === RecordType.WRITE ? primaryOffset + HEADER_BYTES + i * unit : 0;
      const v = core.index.floor(h.firstBlock + i, h.seq);
      checked.indexEntries++;
      if (!v || v.seq !== h.seq || v.segment !== segment || v.offset !== want) {
        problems.push({ kind: 'index-mismatch', segment, offset: primaryOffset, message: `index disagrees with the log for block ${h.firstBlock + i} at seq ${h.seq}` });
        return;
      }
    }
  };

  /** Segments recycled out of primary (once archived) while the archive was being listed above. */
  const recycledSince: number[] = [];
  for (const id of primary) {
    if (!core.segments.has(id)) {
      recycledSince.push(id);
      continue;
    }
    try {
      const scan = scanSegment(core.segments.source(id), { blockSizeBytes: sb.blockSizeBytes, volumeId: sb.volumeId, verifyData: true, segmentId: id });
      const isCurrent = id === core.segments.current.id;
      if (scan.corruptAt !== undefined || scan.tornAt !== undefined || (!isCurrent && !scan.sealed)) {
        problems.push({ kind: 'primary-segment', segment: id, offset: scan.corruptAt ?? scan.tornAt ?? scan.validEnd, message: scan.corruptReason ?? 'segment ends early' });
      }
      const versions = { n: 0 };
      for (const r of scan.records) {
        checked.records++;
        checked.blocks += r.header.type === RecordType.WRITE || r.header.type === RecordType.COPY ? r.header.blockCount : 0;
        checkIndex(id, r.offset, r.header, versions);
      }
      // A segment with damage does not say how many versions it held.
      if (scan.corruptAt === undefined && scan.tornAt === undefined) logVersions.set(id, versions.n);
    } catch (err) {
      if (!isChronoError(err)) throw err;
      problems.push({ kind: 'primary-segment', segment: id, message: err.message });
    }
    checked.primarySegments++;
    progress?.(++done, total);
  }

  // Recycling only follows archiving, so those are in the archive now: checked there instead.
  for (const id of recycledSince) if (!archived.includes(id) && !catalog.isDeleted(id)) archived.push(id);
  const present = new Set([...archived, ...deleted]);
  for (const id of archived) {
    try {
      const { scan, table } = parseArchiveObject(await core.store.get(catalog.keyOf(id)), sb.blockSizeBytes, id, sb.volumeId);
      const versions = { n: 0 };
      scan.records.forEach((r, i) => {
        checked.records++;
        checked.blocks += r.header.type === RecordType.WRITE ? r.header.blockCount : 0;
        checkIndex(id, table.primary[i], r.header, versions);
      });
      logVersions.set(id, versions.n);
    } catch (err) {
      if (!isChronoError(err)) throw err;
      problems.push({ kind: 'archived-segment', segment: id, message: err.message });
    }
    checked.archivedSegments++;
    progress?.(++done, total);
  }
  // Every segment before the oldest one in primary must be in the archive.
  const oldestPrimary = Math.min(...primary);
  const firstArchived = archived.length ? Math.min(...archived) : oldestPrimary;
  for (let id = Math.min(1, firstArchived); id < oldestPrimary; id++) {
    if (id >= 1 && !present.has(id)) problems.push({ kind: 'archive-missing', segment: id, message: `segment ${id} is neither in primary nor in the archive` });
  }
  // The other direction: every version the index holds is one the log holds. Only when the whole
  // log was read, so a count that differs is the index's fault.
  if (!problems.length) {
    let inLog = 0;
    for (const n of logVersions.values()) inLog += n;
    if (inLog !== core.index.versionCount) {
      problems.push({ kind: 'index-mismatch', message: `the index holds ${core.index.versionCount} block versions, the log ${inLog}` });
    }
  }
  return { ok: problems.length === 0, problems, checked };
}

/**
 * The archive's copy of the superblock (`volume.cvsb`): recover needs it. Checked in the house
 * order (magic, version, length, checksum, flags; one code per rule), then against the volume's.
 */
async function checkArchiveSuperblock(core: Core, problems: Problem[]): Promise<void> {
  const what = `archive superblock (${FILE_NAMES.archiveSuperblock})`;
  let bytes: Buffer;
  try {
    bytes = await core.store.get(FILE_NAMES.archiveSuperblock);
  } catch (err) {
    problems.push({ kind: 'archive-superblock', code: isChronoError(err) ? err.code : 'IO', message: `${what} cannot be read: ${(err as Error).message}` });
    return;
  }
  try {
    checkPrelude(bytes, { what, magic: SUPERBLOCK.magic, lengthBytes: SUPERBLOCK.lengthBytes, crcOffset: SUPERBLOCK.off.crc }, { file: FILE_NAMES.archiveSuperblock }, { wholeFile: true });
  } catch (err) {
    if (!isChronoError(err)) throw err;
    problems.push({ kind: 'archive-superblock', code: err.code, message: err.message });
    return;
  }
  const a = decodeSuperblock(bytes);
  const v = core.sb;
  const same = a.volumeId.equals(v.volumeId) && a.volumeSizeBytes === v.volumeSizeBytes && a.blockSizeBytes === v.blockSizeBytes
    && a.segmentSizeBytes === v.segmentSizeBytes && a.workingSetSegments === v.workingSetSegments && a.createdMs === v.createdMs;
  if (!same) problems.push({ kind: 'archive-superblock', code: 'FOREIGN_SEGMENT', message: `${what} does not describe this volume (another volume's archive, or a different geometry)` });
}
