import { ChronoError } from '../errors';
import { RecordType } from '../format/constants';
import { HEADER_BYTES, RecordHeader, unitBytes } from '../format/record';
import { ScannedRecord, scanSegment } from '../segment/segment-scanner';
import { Core } from './core';
import { LIVE_SEQ } from './events';

/**
 * Makes room for a record of `bytes`. The working set holds K segments (sealed + current).
 * Segments that leave it wait in primary until the archive holds them (`core.leaving`): normally
 * one, recycled within moments of its turnover; while the archive is unreachable, up to the
 * backlog more (--archive-backlog), so writes go on. Before a rollover past that bound the write
 * waits for the archive, up to --archive-stall-timeout, then fails with ARCHIVE_BACKLOG_FULL
 * (ENOSPC at the edges) instead of growing primary without bound: it holds K + 1 + backlog at most.
 */
export async function ensureSpace(core: Core, bytes: number): Promise<void> {
  // A loop: evicting after the rollover copies live blocks into the new segment, which can
  // leave it too full for this record. Each pass frees a segment, so it ends.
  while (core.segments.current.remaining() < bytes) await sealNow(core);
}

/**
 * Before a write appends anything: when its `bytes` of records will need rollovers, waits until
 * the backlog has room for them (or throws ARCHIVE_BACKLOG_FULL after the stall timeout), so a
 * refused write leaves its range as it was rather than half written. The count is an estimate
 * (copy-forward after a rollover can need one more) and at most the backlog plus one, so a
 * write longer than the whole backlog can still be refused part way (rule 8).
 */
export async function reserveRollovers(core: Core, bytes: number): Promise<void> {
  const remaining = core.segments.current.remaining();
  if (remaining >= bytes) return;
  const rollovers = Math.min(1 + Math.floor((bytes - remaining) / core.sb.segmentSizeBytes), core.backlog.segments + 1);
  for (;;) {
    recycleArchived(core);
    if (core.leaving.length + rollovers - 1 <= core.backlog.segments) return;
    await waitForBacklog(core);
  }
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
 * under way, or the archive is down), and it is recycled once it is archived (`core.leaving`,
 * recycleArchived), so the write that made room does not wait for the archive. `strict` (before
 * a rollover) also waits while more than the backlog's worth of segments wait for the archive.
 */
export async function drainEvictions(core: Core, strict: boolean): Promise<void> {
  for (;;) {
    recycleArchived(core);
    if (strict && core.leaving.length > core.backlog.segments) {
      await waitForBacklog(core);
      continue;
    }
    if (core.segments.count - core.leaving.length <= core.sb.workingSetSegments) return;
    const oldest = core.segments.sealed.find((id) => !core.leaving.includes(id));
    if (oldest === undefined) return;
    await detach(core, oldest);
    core.leaving.push(oldest);
  }
}

/**
 * Recycles the detached segments the archive now holds (verified, and named by the head: rule
 * 7), oldest first. Called before each turnover and by the archiver after each segment it
 * archives, so a backlog drains out of primary as soon as the archive is back.
 */
export function recycleArchived(core: Core): void {
  while (core.leaving.length && core.leaving[0] <= core.archiver.archivedThrough) {
    const segment = core.leaving[0];
    core.segments.recycle(segment);
    core.leaving.shift();
    core.log.debug({ segment, backlog: Math.max(0, core.leaving.length - 1) }, 'segment recycled');
  }
}

/**
 * The backlog is full: waits for the oldest detached segment to be archived, up to the stall
 * timeout, then throws ARCHIVE_BACKLOG_FULL (nothing of the write was appended).
 */
async function waitForBacklog(core: Core): Promise<void> {
  const segment = core.leaving[0];
  const b = core.backlog;
  const startedMs = Date.now();
  if (b.waitingSinceMs === undefined) {
    core.log.warn({ segment, backlogSegments: b.segments, stallTimeoutMs: b.stallTimeoutMs, err: core.archiver.error }, `archive backlog full (${b.segments} segments): writes wait for the archive, up to ${b.stallTimeoutMs / 1000} s each`);
  }
  b.waitingSinceMs = startedMs;
  try {
    if (await core.archiver.waitArchived(segment, startedMs + b.stallTimeoutMs)) {
      core.log.info({ segment, waitedMs: Date.now() - startedMs }, 'archive backlog drains: writes go on');
      return;
    }
  } finally {
    b.waitingSinceMs = undefined;
  }
  const sinceMs = core.archiver.failingSince;
  throw new ChronoError(
    'ARCHIVE_BACKLOG_FULL',
    `the archive ${core.store.description} is unreachable${sinceMs ? ` since ${new Date(sinceMs).toISOString()}` : ''} and the backlog of ${b.segments} sealed segments waiting for it in primary is full; this write waited ${b.stallTimeoutMs / 1000} s (--archive-stall-timeout) for segment ${segment} to be archived: ${core.archiver.error ?? 'not archived yet'}`,
    { segment, backlogSegments: b.segments, stallTimeoutMs: b.stallTimeoutMs, failingSinceMs: sinceMs ?? null },
  );
}

/** Stops background archiving and waits for a run under way (at close); a failure was logged. */
export async function quiesceTurnover(core: Core): Promise<void> {
  core.archiver.stop();
  await core.archiver.idle();
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
  const unit = unitBytes(core.sb.blockSizeBytes);
  // The records as written here (no disk reads), else read back header by header.
  const summary = core.segments.summaries.records(segment, unit);
  if (summary) {
    try {
      return copyRecords(core, segment, summary, unit, true);
    } catch (err) {
      if (!(err instanceof SummaryMismatch)) throw err;
      // Never seen: a summary is noted by the very append that writes the record. Should it
      // ever disagree, the file decides (blocks copied already are no longer live here).
      core.log.error({ segment, block: err.block }, 'segment summary disagrees with the index; reading the segment\'s record headers instead');
      core.segments.summaries.drop(segment);
    }
  }
  copyRecords(core, segment, scannedRecords(core, segment), unit, false);
}

/** A summary names a version the index places elsewhere in the same segment. */
class SummaryMismatch extends Error {
  constructor(readonly block: number) {
    super(`segment summary disagrees with the index at block ${block}`);
  }
}

/**
 * Copies the live blocks of `records` (all of `segment`'s). `fromSummary`: each live version
 * must sit exactly where its record says (its unit, or 0 for a zero version), or nothing is
 * trusted (SummaryMismatch): a wrong row must never copy another block's bytes, CRCs and all.
 */
function copyRecords(core: Core, segment: number, records: ScannedRecord[], unit: number, fromSummary: boolean): void {
  for (const { offset, header: h } of records) {
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
      const at = v !== undefined && v.seq === h.seq ? core.index.where(block, v) : undefined;
      const live = at !== undefined && at.segment === segment;
      if (live && fromSummary && at.offset !== (data ? offset + HEADER_BYTES + i * unit : 0)) throw new SummaryMismatch(block);
      if (live && runStart < 0) runStart = i;
      if (!live) flush(i);
    }
    flush(h.blockCount);
  }
}

function scannedRecords(core: Core, segment: number): ScannedRecord[] {
  const scan = scanSegment(core.segments.source(segment), { blockSizeBytes: core.sb.blockSizeBytes, volumeId: core.sb.volumeId, verifyData: false, segmentId: segment });
  if (!scan.sealed) {
    throw new ChronoError('CORRUPT_LOG', `segment ${segment} is damaged (${scan.corruptReason ?? 'not sealed'}); its live blocks cannot be copied forward`, { segment });
  }
  return scan.records;
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
