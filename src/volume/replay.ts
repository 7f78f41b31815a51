import { ChronoError, isChronoError } from '../errors';
import { RecordType, SEGMENT_HEADER, SegmentFlags } from '../format/constants';
import { crc32c } from '../format/crc';
import { HEADER_BYTES } from '../format/record';
import { ManifestBody } from '../format/manifest';
import { ByteSource, furthestSyncPoint, scanSegment } from '../segment/segment-scanner';
import { SegmentSet } from '../segment/segment-set';
import { SegmentWriterState } from '../segment/segment-writer';
import { FileHandle } from '../storage/file-system';
import { Core } from './core';

export interface ReplayReport {
  replayedRecords: number;
  tornTailCutBytes: number;
  segments: number;
}

/**
 * Rebuilds in-memory state on open. The index comes from its checkpoint; only the log after the
 * checkpoint's position is replayed (with every block CRC checked, since a torn tail must be
 * found). Sealed segments before it are walked header by header for copy-forward records alone,
 * which rebuild where live blocks now sit. Only a torn tail past everything acknowledged is cut;
 * damage under anything acknowledged is CORRUPT_LOG (DESIGN.md, "Acknowledged bytes are never cut").
 */
export function replay(core: Core, manifest: ManifestBody | undefined): ReplayReport {
  const { fs, dir, sb } = core;
  const ids = SegmentSet.listIds(fs, dir.segmentsDir); // may be cut short by a torn seal below
  const covered = manifest?.covered ?? { segment: ids[0] ?? 1, offset: 0 };
  const report: ReplayReport = { replayedRecords: 0, tornTailCutBytes: 0, segments: ids.length };
  let scratch = Buffer.alloc(0);
  const sourceOf = (h: FileHandle): ByteSource => ({
    size: h.size(),
    read: (p, l) => {
      const b = Buffer.allocUnsafe(l);
      const n = h.read(b, 0, l, p);
      return n === l ? b : b.subarray(0, n);
    },
    readTransient: (p, l) => {
      if (scratch.length < l) scratch = Buffer.allocUnsafe(l);
      const n = h.read(scratch, 0, l, p);
      return scratch.subarray(0, n);
    },
  });
  const scanOpts = (id: number) => ({ blockSizeBytes: sb.blockSizeBytes, volumeId: sb.volumeId, segmentId: id });
  checkCheckpointedSegments(ids, manifest);
  const syncedAfter = laterSyncPoints(core, ids, covered.segment, sourceOf, scanOpts);
  dropAfterGap(core, ids, covered.segment, syncedAfter);
  /** Where acknowledged bytes end in a segment. */
  const acknowledgedThrough = (id: number): number => {
    if (syncedAfter.has(id)) return Infinity;
    if (!manifest || id > covered.segment) return 0;
    return id < covered.segment ? Infinity : covered.offset;
  };
  let resume: SegmentWriterState | undefined;
  for (const id of ids) {
    const last = id === ids[ids.length - 1];
    const path = core.segments.pathOf(id);
    const h = fs.open(path, 'read');
    const size = h.size();
    const src = sourceOf(h);
    const acked = acknowledgedThrough(id);
    try {
      if (acked === 0 && headerNeverWritten(src) && !headerValid(core, src, id)) {
        // A crash before this segment's header reached the disk (the file holds at most part of
        // a header, or zeros where it belongs while later pages made it). The header goes out
        // with its first records and every acknowledgment waits for it, so nothing in this
        // segment or in any later one was acknowledged (no checkpoint covers it, no later sync
        // point vouches for it): the log ends before it. (The handle is closed once, by the
        // finally below.)
        const dropped = ids.filter((x) => x >= id);
        if (!last) core.log.warn({ segment: id, dropped }, 'a segment\'s header never reached the disk; dropping it and the unacknowledged segments after it');
        removeSegments(core, dropped);
        ids.length = ids.indexOf(id);
        break;
      }
      const tail = id >= covered.segment;
      const scan = scanSegment(src, { ...scanOpts(id), verifyData: tail, acknowledgedThrough: acked });
      if (!scan.sealed && !last && scan.corruptAt === undefined && tail) {
        // A torn segment with later ones after it: a crash (or failed fsync) while it was being
        // sealed in the background. Every acknowledgment waits for all earlier segments to be
        // durable, so nothing after the tear was ever acknowledged (no later segment holds a
        // sync point, or the scan would have called this corruption): the log ends here.
        const later = ids.filter((x) => x > id);
        core.log.warn({ segment: id, offset: scan.validEnd, dropped: later }, 'log torn in a segment that was being sealed; dropping the unacknowledged segments after it');
        removeSegments(core, later);
        ids.length = ids.indexOf(id) + 1;
      }
      const isLast = id === ids[ids.length - 1];
      if (scan.corruptAt !== undefined || (!scan.sealed && !isLast)) {
        throw new ChronoError('CORRUPT_LOG', `segment ${id} is damaged at offset ${scan.corruptAt ?? scan.validEnd}: ${scan.corruptReason ?? 'unsealed segment before the last'}; run 'chronovol verify' for details`, { segment: id, offset: scan.corruptAt ?? scan.validEnd });
      }
      for (const r of scan.records) {
        const copy = r.header.type === RecordType.COPY || r.header.type === RecordType.COPY_ZERO;
        const fresh = tail && (id > covered.segment || r.offset >= covered.offset);
        if (fresh) {
          core.volumeLog.apply(id, r.offset, r.header, r.payload);
          report.replayedRecords++;
        } else if (copy) {
          // Re-applied only to rebuild relocations: the checkpoint's stats count its bytes already.
          core.volumeLog.apply(id, r.offset, r.header, r.payload, false);
        }
      }
      if (scan.sealed) {
        if (size > scan.validEnd) cutPastSeal(core, id, size, scan.validEnd);
        core.segments.addSealed(id);
      } else {
        if (scan.tornAt !== undefined) {
          report.tornTailCutBytes = size - scan.tornAt;
          core.log.info({ segment: id, offset: scan.tornAt, bytes: report.tornTailCutBytes }, 'cut a torn tail');
        }
        const bodyCrc = scan.records.reduce((crc, r) => crc32c(src.read(r.offset, HEADER_BYTES), crc), 0);
        resume = { id, end: scan.validEnd, recordCount: scan.records.length, bodyCrc, lastSeq: core.volumeLog.nextSeq - 1, syncPoints: (scan.header.flags & SegmentFlags.syncPoints) !== 0 };
      }
    } finally {
      h.close();
    }
  }
  // The must-rule, checked once more where it matters: appends resume past every byte the
  // checkpoint covers, so no index entry can point at bytes a later append overwrites.
  const next = resume ? { segment: resume.id, offset: resume.end } : { segment: (core.segments.sealed[core.segments.sealed.length - 1] ?? Math.max(0, covered.segment - 1)) + 1, offset: 0 };
  if (manifest && (next.segment < covered.segment || (next.segment === covered.segment && next.offset < covered.offset))) {
    throw new ChronoError('CORRUPT_LOG', `the log ends at segment ${next.segment} offset ${next.offset}, before the checkpoint's position (segment ${covered.segment} offset ${covered.offset})`, { segment: next.segment, offset: next.offset });
  }
  if (resume) core.segments.resumeCurrent(resume);
  else core.segments.startCurrent(next.segment, core.volumeLog.nextSeq);
  return report;
}

/**
 * Segments up to the checkpoint's must all be there: the checkpoint covers them, and the
 * recycled ones (before the first present) are in the archive.
 */
function checkCheckpointedSegments(ids: number[], manifest: ManifestBody | undefined): void {
  if (!manifest) return;
  const covered = manifest.covered;
  // Offset 0: nothing in it is covered yet (recover checkpoints so, before the segment exists).
  if (covered.offset > 0 && !ids.includes(covered.segment)) {
    throw new ChronoError('CORRUPT_LOG', `segment ${covered.segment}, which the index checkpoint covers up to offset ${covered.offset}, is missing`, { segment: covered.segment });
  }
  for (let i = 1; i < ids.length && ids[i] <= covered.segment; i++) {
    if (ids[i] !== ids[i - 1] + 1) throw new ChronoError('CORRUPT_LOG', `segment ${ids[i - 1] + 1}, which the index checkpoint covers, is missing`, { segment: ids[i - 1] + 1 });
  }
}

/**
 * Segments followed by a later segment that holds a sync point. A sync appends its SYNC record
 * only after every earlier segment is durable (rule 2), so each of these was acknowledged
 * whole: damage anywhere in them is corruption.
 */
function laterSyncPoints(core: Core, ids: number[], coveredSegment: number, sourceOf: (h: FileHandle) => ByteSource, scanOpts: (id: number) => { blockSizeBytes: number; volumeId: Buffer; segmentId: number }): Set<number> {
  const out = new Set<number>();
  let synced = false;
  for (let i = ids.length - 1; i >= 0 && ids[i] >= coveredSegment; i--) {
    if (synced) out.add(ids[i]);
    if (synced || i === 0 || ids[i - 1] < coveredSegment) continue; // earlier ones are covered whole anyway
    const h = core.fs.open(core.segments.pathOf(ids[i]), 'read');
    try {
      synced = furthestSyncPoint(sourceOf(h), { ...scanOpts(ids[i]), verifyData: false }) > 0;
    } finally {
      h.close();
    }
  }
  return out;
}

/**
 * A missing segment after the checkpoint's: what follows it was never acknowledged (a crash while
 * dropping unacknowledged segments can leave such a hole), unless a sync point after it vouches
 * for the missing one, which is then lost acknowledged data.
 */
function dropAfterGap(core: Core, ids: number[], coveredSegment: number, syncedAfter: Set<number>): void {
  for (let i = 1; i < ids.length; i++) {
    if (ids[i] === ids[i - 1] + 1 || ids[i] <= coveredSegment) continue;
    if (syncedAfter.has(ids[i - 1])) {
      throw new ChronoError('CORRUPT_LOG', `segment ${ids[i - 1] + 1} is missing, though a later sync point shows it was acknowledged`, { segment: ids[i - 1] + 1 });
    }
    const dropped = ids.slice(i);
    core.log.warn({ missing: ids[i - 1] + 1, dropped }, 'a segment after the checkpoint is missing; dropping the unacknowledged segments after it');
    removeSegments(core, dropped);
    ids.length = i;
    return;
  }
}

/**
 * Finishes a seal a crash interrupted (DESIGN.md, rules 7 and 15): a sealed segment's last direct
 * write is zero-padded to a page, and its writer cuts that padding only after the SEAL's
 * fdatasync. Killed in between, the file runs on past its SEAL; linked into the archive so, the
 * object would end in zeros (neither a trailer nor a SEAL). The archiver links a segment only
 * after that cut is durable, so such a file was never verified into the archive: cutting it
 * here (and making the length durable) is finishing the writer's close, before any link.
 */
function cutPastSeal(core: Core, id: number, size: number, sealEnd: number): void {
  core.log.info({ segment: id, offset: sealEnd, bytes: size - sealEnd }, 'cut the padding after a sealed segment\'s SEAL (its close was interrupted)');
  const h = core.fs.open(core.segments.pathOf(id), 'readWrite');
  try {
    h.truncate(sealEnd);
    h.sync();
  } finally {
    h.close();
  }
}

/** Newest first, so a crash part-way leaves the log without a hole. */
function removeSegments(core: Core, ids: number[]): void {
  for (const x of [...ids].sort((a, b) => b - a)) core.fs.remove(core.segments.pathOf(x));
  core.fs.syncDir(core.dir.segmentsDir);
}

/** No more than a partial header, or a header-sized run of zeros: never written, not damaged. */
function headerNeverWritten(src: ByteSource): boolean {
  if (src.size <= SEGMENT_HEADER.lengthBytes) return true;
  return src.read(0, SEGMENT_HEADER.lengthBytes).every((b) => b === 0);
}

function headerValid(core: Core, src: ByteSource, id: number): boolean {
  try {
    scanSegment({ ...src, size: Math.min(src.size, SEGMENT_HEADER.lengthBytes) }, { blockSizeBytes: core.sb.blockSizeBytes, volumeId: core.sb.volumeId, verifyData: false, segmentId: id });
    return true;
  } catch (err) {
    if (isChronoError(err) && err.code !== 'FOREIGN_SEGMENT') return false;
    throw err;
  }
}
