import { ChronoError, isChronoError } from '../errors';
import { RecordType } from '../format/constants';
import { HEADER_BYTES, RecordHeader, unitBytes } from '../format/record';
import { scanSegment } from '../segment/segment-scanner';
import { Core } from './core';
import { LIVE_SEQ } from './events';

/**
 * Makes room for a record of `bytes`. The working set holds K segments (sealed + current); one
 * more may wait to be recycled. Before a rollover the previous one must be gone (archived and
 * recycled): rolling over while it waits would exceed K + 1, so if its archive keeps failing the
 * write fails with ARCHIVE_UNAVAILABLE instead of growing primary without bound.
 */
export async function ensureSpace(core: Core, bytes: number): Promise<void> {
  // A loop: evicting after the rollover copies live blocks into the new segment, which can
  // leave it too full for this record. Each pass frees a segment, so it ends.
  while (core.segments.current.remaining() < bytes) await sealNow(core);
}

/**
 * Seals the current segment (it is archived in the background as soon as it is durable) and
 * brings the working set back to K. `--seal-after` calls it for a quiet volume's last writes.
 */
export async function sealNow(core: Core): Promise<void> {
  await drainEvictions(core, true);
  rollover(core);
  await drainEvictions(core, false);
}

/**
 * Seals the current segment and starts the next. The sealed one becomes durable in the
 * background and is archived as soon as it is (archive on seal); a checkpoint follows every so
 * often: the write path does not wait for the disk.
 */
export function rollover(core: Core): void {
  const next = core.segments.current.id + 1;
  const sealedBytes = core.segments.current.end;
  core.segments.sealCurrent();
  core.segments.startCurrent(next, core.volumeLog.nextSeq);
  core.checkpointer.noteSealed(sealedBytes);
  void core.archiver.kick();
}

/**
 * Brings the working set back to K segments. The oldest segment's live blocks are copied
 * forward and made durable here; it was archived when it was sealed (or its archiving is still
 * under way), and it is recycled once it is (`core.leaving`), so the write that made room does
 * not wait for the archive. `strict` (before a rollover) also waits until that segment is gone,
 * retrying a failed archive once.
 */
export async function drainEvictions(core: Core, strict: boolean): Promise<void> {
  for (;;) {
    if (core.leaving && !(await settleLeaving(core, strict))) return;
    if (core.segments.count <= core.sb.workingSetSegments) return;
    const oldest = core.segments.sealed[0];
    await detach(core, oldest);
    core.leaving = { segment: oldest, done: recycleWhenArchived(core, oldest) };
    if (!strict) return;
  }
}

/**
 * Waits for the segment leaving in the background. True once it is gone. An archive failure is
 * recorded (status shows it) and, if `strict`, retried once here: a second failure throws
 * ARCHIVE_UNAVAILABLE. Any other failure is thrown: the writer then refuses further writes.
 */
async function settleLeaving(core: Core, strict: boolean): Promise<boolean> {
  const leaving = core.leaving!;
  let err = await leaving.done;
  if (err !== undefined && isArchiveTrouble(err) && strict) {
    err = await recycleWhenArchived(core, leaving.segment);
    if (err !== undefined && isArchiveTrouble(err)) {
      throw new ChronoError('ARCHIVE_UNAVAILABLE', `the working set is full and segment ${leaving.segment} cannot be archived: ${(err as Error).message}`, { segment: leaving.segment }, err);
    }
  }
  if (err === undefined) {
    core.leaving = undefined;
    return true;
  }
  if (!isArchiveTrouble(err)) {
    core.leaving = undefined;
    throw err;
  }
  core.log.warn({ segment: leaving.segment, err: (err as Error).message }, 'archive failed; will retry at the next turnover');
  leaving.done = Promise.resolve(err); // settled: the next strict drain retries it
  return false;
}

/** Waits for background archiving to end (at close); its failure is only logged. */
export async function quiesceTurnover(core: Core): Promise<void> {
  const err = core.leaving && (await core.leaving.done);
  if (err !== undefined && err !== null) core.log.warn({ err: (err as Error).message }, 'background archive failed; it is retried when the volume next opens');
  await core.archiver.idle();
}

/**
 * Recycles a detached segment once the archive holds it (verified, and named by the head: rule
 * 7), starting a new archive run if the last one failed; settles with the failure instead of
 * rejecting.
 */
async function recycleWhenArchived(core: Core, segment: number): Promise<unknown> {
  const err = await core.archiver.settled(segment);
  if (err !== undefined) return err;
  try {
    core.segments.recycle(segment);
    core.log.debug({ segment }, 'segment recycled');
    return undefined;
  } catch (e) {
    return e ?? new Error('recycle failed');
  }
}

function isArchiveTrouble(err: unknown): boolean {
  return isChronoError(err, 'ARCHIVE_UNAVAILABLE') || isChronoError(err, 'ARCHIVE_MISMATCH');
}

/**
 * Takes a segment out of the working set: its live blocks are copied forward and synced, and a
 * checkpoint covers it, so neither the live volume nor replay needs it any more. Idempotent: a
 * second pass finds nothing live left in it.
 */
async function detach(core: Core, segment: number): Promise<void> {
  copyForward(core, segment);
  await core.segments.syncAll(); // the copies are durable before the original can go
  if (core.index.coveredSegment <= segment) {
    // Replay after a crash must never need a recycled segment: checkpoint past it first.
    core.checkpointer.request();
    await core.checkpointer.idle();
  }
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
  core.volumeLog.appendCopy(copy, units);
}
