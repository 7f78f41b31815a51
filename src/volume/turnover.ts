import { archiveKey, buildArchiveObject } from '../archive/archive-object';
import { ChronoError, isChronoError } from '../errors';
import { RecordType } from '../format/constants';
import { HEADER_BYTES, RecordHeader, unitBytes } from '../format/record';
import { scanSegment } from '../segment/segment-scanner';
import { applyRecord } from './apply-record';
import { Core } from './core';
import { LIVE_SEQ } from './events';

/**
 * Makes room for a record of `bytes`. The working set holds K segments (sealed + current); one
 * more may wait for the archive. Rolling over while one already waits would exceed K + 1, so
 * that case fails with ARCHIVE_UNAVAILABLE instead of growing primary without bound.
 */
export async function ensureSpace(core: Core, bytes: number): Promise<void> {
  // A loop: evicting after the rollover copies live blocks into the new segment, which can
  // leave it too full for this record. Each pass frees a segment, so it ends.
  while (core.segments.current.remaining() < bytes) {
    await drainEvictions(core, true);
    rollover(core);
    await drainEvictions(core, false);
  }
}

/**
 * Seals the current segment and starts the next. The sealed one becomes durable in the
 * background, and a checkpoint follows every so often: the write path does not wait for the disk.
 */
export function rollover(core: Core): void {
  const next = core.segments.current.id + 1;
  const sealedBytes = core.segments.current.end;
  core.segments.sealCurrent();
  core.segments.startCurrent(next, core.nextSeq);
  core.checkpointer.noteSealed(sealedBytes);
}

/** Evicts oldest segments until the working set is K again; retries earlier failures first. */
export async function drainEvictions(core: Core, strict: boolean): Promise<void> {
  while (core.segments.count > core.sb.workingSetSegments) {
    const oldest = core.segments.sealed[0];
    try {
      await evict(core, oldest);
      core.archiveError = undefined;
    } catch (err) {
      const archiveTrouble = isChronoError(err, 'ARCHIVE_UNAVAILABLE') || isChronoError(err, 'ARCHIVE_MISMATCH');
      if (!archiveTrouble) throw err;
      core.archiveError = (err as Error).message;
      if (strict) {
        throw new ChronoError('ARCHIVE_UNAVAILABLE', `the working set is full and segment ${oldest} cannot be archived: ${(err as Error).message}`, { segment: oldest }, err);
      }
      core.log.warn({ segment: oldest, err: (err as Error).message }, 'archive failed; will retry at the next turnover');
      return;
    }
  }
}

/**
 * Moves a segment out of the working set. Order (docs/DESIGN.md): its live blocks are copied
 * forward and synced, then it is archived and the archive read back and compared, and only then
 * is its primary copy recycled.
 */
async function evict(core: Core, segment: number): Promise<void> {
  copyForward(core, segment);
  await core.segments.syncAll(); // the copies are durable before the original can go
  if (core.index.coveredSegment <= segment) {
    // Replay after a crash must never need a recycled segment: checkpoint past it first.
    core.checkpointer.request();
    await core.checkpointer.idle();
  }
  const whole = core.segments.readWhole(segment);
  const obj = buildArchiveObject(whole, core.sb.blockSizeBytes, segment, core.sb.volumeId);
  const key = archiveKey(segment);
  await core.store.put(key, obj);
  const back = await core.store.get(key);
  if (!back.equals(obj)) {
    throw new ChronoError('ARCHIVE_MISMATCH', `archived segment ${segment} reads back different from what was written`, { segment });
  }
  core.segments.recycle(segment);
  core.log.debug({ segment, archiveBytes: obj.length }, 'segment archived and recycled');
}

/** Copies the blocks of `segment` that are still live into the current segment. */
export function copyForward(core: Core, segment: number): void {
  const scan = scanSegment(core.segments.source(segment), { blockSizeBytes: core.sb.blockSizeBytes, volumeId: core.sb.volumeId, verifyData: false, segmentId: segment });
  if (!scan.sealed) {
    throw new ChronoError('CORRUPT_LOG', `segment ${segment} is damaged (${scan.corruptReason ?? 'not sealed'}); its live blocks cannot be copied forward`, { segment });
  }
  const unit = unitBytes(core.sb.blockSizeBytes);
  for (const { offset, header: h } of scan.records) {
    const data = h.type === RecordType.WRITE || h.type === RecordType.COPY;
    if (!data && h.type !== RecordType.ZERO && h.type !== RecordType.TRIM && h.type !== RecordType.COPY_ZERO) continue;
    let runStart = -1;
    const flush = (end: number) => {
      if (runStart < 0) return;
      for (let s = runStart; s < end; s += core.maxBlocksPerRecord) copyRun(core, segment, offset, h, s, Math.min(end, s + core.maxBlocksPerRecord) - s, data, unit);
      runStart = -1;
    };
    for (let i = 0; i < h.blockCount; i++) {
      const block = h.firstBlock + i;
      const v = core.index.floor(block, LIVE_SEQ);
      const live = v !== undefined && v.seq === h.seq && core.index.where(block, v).segment === segment;
      if (live && runStart < 0) runStart = i;
      if (!live) flush(i);
    }
    flush(h.blockCount);
  }
}

function copyRun(core: Core, segment: number, recordOffset: number, h: RecordHeader, first: number, count: number, data: boolean, unit: number): void {
  const payloadLength = data ? count * unit : 0;
  if (core.segments.current.remaining() < HEADER_BYTES + payloadLength) rollover(core); // rare: see docs/DESIGN.md
  const origin = core.index.floor(h.firstBlock + first, LIVE_SEQ)!;
  const copy: RecordHeader = {
    type: data ? RecordType.COPY : RecordType.COPY_ZERO,
    blockCount: count,
    seq: h.seq,
    timeMs: h.timeMs,
    firstBlock: h.firstBlock + first,
    payloadLength,
    originSegment: origin.segment,
    originOffset: origin.offset,
  };
  const units = data ? core.segments.readExact(segment, recordOffset + HEADER_BYTES + first * unit, payloadLength) : undefined;
  const at = core.segments.current.append(copy, units && ((buf, pos) => units.copy(buf, pos)));
  applyRecord(core, core.segments.current.id, at, copy);
}
