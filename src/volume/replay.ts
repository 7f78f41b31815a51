import { ChronoError, isChronoError } from '../errors';
import { RecordType, SEGMENT_HEADER, SegmentFlags } from '../format/constants';
import { crc32c } from '../format/crc';
import { HEADER_BYTES } from '../format/record';
import { ManifestBody } from '../format/manifest';
import { ByteSource, scanSegment } from '../segment/segment-scanner';
import { SegmentSet } from '../segment/segment-set';
import { SegmentWriterState } from '../segment/segment-writer';
import { applyRecord } from './apply-record';
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
 * which rebuild where live blocks now sit. A torn tail is cut; damage before the tail is fatal.
 */
export function replay(core: Core, manifest: ManifestBody | undefined): ReplayReport {
  const { fs, dir, sb } = core;
  const ids = SegmentSet.listIds(fs, dir.segmentsDir); // may be cut short by a torn seal below
  const covered = manifest?.covered ?? { segment: ids[0] ?? 1, offset: 0 };
  const report: ReplayReport = { replayedRecords: 0, tornTailCutBytes: 0, segments: ids.length };
  let resume: SegmentWriterState | undefined;
  for (const id of ids) {
    const last = id === ids[ids.length - 1];
    const path = core.segments.pathOf(id);
    const h = fs.open(path, 'read');
    const size = h.size();
    const src: ByteSource = {
      size,
      read: (p, l) => {
        const b = Buffer.allocUnsafe(l);
        const n = h.read(b, 0, l, p);
        return n === l ? b : b.subarray(0, n);
      },
    };
    try {
      if (id >= covered.segment && headerNeverWritten(src) && !headerValid(core, src, id)) {
        // A crash before this segment's header reached the disk (the file holds at most part of
        // a header, or zeros where it belongs while later pages made it). The header goes out
        // with its first records and every acknowledgment waits for it, so nothing in this
        // segment or in any later one was acknowledged: the log ends before it. (The handle is
        // closed once, by the finally below.)
        const dropped = ids.filter((x) => x >= id);
        if (!last) core.log.warn({ segment: id, dropped }, 'a segment\'s header never reached the disk; dropping it and the unacknowledged segments after it');
        for (const x of dropped) fs.remove(core.segments.pathOf(x));
        fs.syncDir(dir.segmentsDir);
        ids.length = ids.indexOf(id);
        break;
      }
      const tail = id >= covered.segment;
      const scan = scanSegment(src, { blockSizeBytes: sb.blockSizeBytes, volumeId: sb.volumeId, verifyData: tail, segmentId: id });
      if (!scan.sealed && !last && scan.corruptAt === undefined && tail) {
        // A torn segment with later ones after it: a crash (or failed fsync) while it was being
        // sealed in the background. Every acknowledgment waits for all earlier segments to be
        // durable, so nothing after the tear was ever acknowledged: the log ends here.
        const later = ids.filter((x) => x > id);
        core.log.warn({ segment: id, offset: scan.validEnd, dropped: later }, 'log torn in a segment that was being sealed; dropping the unacknowledged segments after it');
        for (const x of later) fs.remove(core.segments.pathOf(x));
        fs.syncDir(dir.segmentsDir);
        ids.length = ids.indexOf(id) + 1;
      }
      const isLast = id === ids[ids.length - 1];
      if (scan.corruptAt !== undefined || (!scan.sealed && !isLast)) {
        throw new ChronoError('CORRUPT_LOG', `segment ${id} is damaged at offset ${scan.corruptAt ?? scan.validEnd}: ${scan.corruptReason ?? 'unsealed segment before the last'}; run 'chronovol verify' for details`, { segment: id, offset: scan.corruptAt ?? scan.validEnd });
      }
      for (const r of scan.records) {
        const copy = r.header.type === RecordType.COPY || r.header.type === RecordType.COPY_ZERO;
        const fresh = tail && (id > covered.segment || r.offset >= covered.offset);
        if (fresh || copy) applyRecord(core, id, r.offset, r.header, r.payload);
        if (fresh) report.replayedRecords++;
      }
      if (scan.sealed) core.segments.addSealed(id);
      else {
        if (scan.tornAt !== undefined) {
          report.tornTailCutBytes = size - scan.tornAt;
          core.log.info({ segment: id, offset: scan.tornAt, bytes: report.tornTailCutBytes }, 'cut a torn tail');
        }
        const bodyCrc = scan.records.reduce((crc, r) => crc32c(src.read(r.offset, HEADER_BYTES), crc), 0);
        resume = { id, end: scan.validEnd, recordCount: scan.records.length, bodyCrc, lastSeq: core.nextSeq - 1, syncPoints: (scan.header.flags & SegmentFlags.syncPoints) !== 0 };
      }
    } finally {
      h.close();
    }
  }
  if (resume) core.segments.resumeCurrent(resume);
  else {
    const lastId = core.segments.sealed[core.segments.sealed.length - 1] ?? Math.max(0, covered.segment - 1);
    core.segments.startCurrent(lastId + 1, core.nextSeq);
  }
  return report;
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
