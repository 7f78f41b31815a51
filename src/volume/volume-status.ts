import { crcEngine } from '../format/crc';
import { FILE_NAMES } from '../format/constants';
import { CacheStats } from './block-reader';
import { Core } from './core';
import { RollbackIntent, readRollbackIntent } from './rollback-intent';

export interface VolumeStatus {
  volume: { id: string; sizeBytes: number; blockSizeBytes: number; segmentSizeBytes: number; workingSetSegments: number; createdAt: string };
  segments: { current: number; active: number[]; awaitingArchive: number[]; inPrimary: number; primaryLimit: number };
  archive: {
    location: string; segments: number | null; bytes: number | null; error: string | null;
    /** The newest segment in the archive (every one up to it is archived); 0 when none. */
    archivedThrough: number;
    /** The last seq (write or event) the archive holds: recover brings back every event up to it. */
    archivedSeq: number;
    /** What is not in the archive yet: sealed segments awaiting it plus the current one if it holds writes. */
    lag: { segments: number; bytes: number; seconds: number };
    /**
     * ok; retrying (the archive failed since `failingSince` and is retried with backoff, writes go
     * on into the backlog); backlog-full (the backlog is full: writes wait, up to the stall
     * timeout, and then fail with ENOSPC; `writesWaitingSince` while one waits).
     */
    state: 'ok' | 'retrying' | 'backlog-full';
    failingSince: string | null;
    writesWaitingSince: string | null;
    /** Sealed segments beyond the working set waiting in primary for the archive (--archive-backlog: at most limitSegments). */
    backlog: { segments: number; bytes: number; limitSegments: number; stallTimeoutMs: number };
    /** Age of the oldest write the archive does not hold yet (lag.seconds). */
    oldestUnarchivedSeconds: number;
  };
  log: { lastSeq: number; versions: number; events: number; bytesWritten: number; copyForwardBytes: number; copyForwardWriteAmp: number };
  index: { versions: number; runs: number; memtableVersions: number; runBytes: number; relocatedBlocks: number };
  cache: CacheStats;
  /** Which CRC32C implementation checks the blocks: the native addon, or the fallback. */
  crcEngine: string;
  /** A rollback cut short (its intent file is there): live may be a mix; repeat it to finish. */
  rollbackUnfinished: RollbackIntent | null;
  /** Pins, events forgotten, and where the continuous span starts (src/retention/). */
  retention: { pins: number; forgottenEvents: number; continuousFromSeq: number };
}

export async function volumeStatus(core: Core): Promise<VolumeStatus> {
  const { sb, segments, index } = core;
  const counters = core.volumeLog.counters;
  const k = sb.workingSetSegments;
  const sealed = segments.sealed;
  const awaiting = core.archiver.pending;
  let archiveSegments: number | null = null;
  let archiveBytes: number | null = null;
  let error = core.archiver.error ?? null;
  const failingSince = core.archiver.failingSince;
  // In an outage the listing would only wait out the store's retries: status answers at once.
  if (failingSince === undefined) {
    try {
      const keys = await core.store.list(FILE_NAMES.archiveSegmentsPrefix);
      archiveSegments = keys.length;
      archiveBytes = 0;
      for (const key of keys) archiveBytes += (await core.store.size(key)) ?? 0;
    } catch (err) {
      error = (err as Error).message;
    }
  }
  const b = core.backlog;
  const unarchivedLeaving = core.leaving.filter((id) => id > core.archiver.archivedThrough);
  // One leaving segment is the working set's own turnover (K + 1); those beyond it are the backlog.
  const backlogIds = unarchivedLeaving.slice(1);
  const backlog = { segments: backlogIds.length, bytes: backlogIds.reduce((n, id) => n + segments.source(id).size, 0), limitSegments: b.segments, stallTimeoutMs: b.stallTimeoutMs };
  const state = b.waitingSinceMs !== undefined || (unarchivedLeaving.length > b.segments) ? 'backlog-full' : failingSince !== undefined ? 'retrying' : 'ok';
  const lag = core.archiver.lag();
  return {
    volume: { id: sb.volumeId.toString('hex'), sizeBytes: sb.volumeSizeBytes, blockSizeBytes: sb.blockSizeBytes, segmentSizeBytes: sb.segmentSizeBytes, workingSetSegments: k, createdAt: new Date(sb.createdMs).toISOString() },
    segments: { current: segments.current.id, active: sealed.filter((id) => !awaiting.includes(id)), awaitingArchive: awaiting, inPrimary: segments.count, primaryLimit: k + 1 + b.segments },
    archive: { location: core.store.description, segments: archiveSegments, bytes: archiveBytes, error, archivedThrough: core.archiver.archivedThrough, archivedSeq: core.archiver.archivedSeq, lag,
      state, failingSince: failingSince === undefined ? null : new Date(failingSince).toISOString(), writesWaitingSince: b.waitingSinceMs === undefined ? null : new Date(b.waitingSinceMs).toISOString(), backlog, oldestUnarchivedSeconds: lag.seconds,
    },
    log: {
      lastSeq: core.volumeLog.nextSeq - 1,
      versions: counters.versions,
      events: core.events.all.length,
      bytesWritten: counters.bytesWritten,
      copyForwardBytes: counters.copyForwardBytes,
      copyForwardWriteAmp: counters.bytesWritten ? (counters.bytesWritten + counters.copyForwardBytes) / counters.bytesWritten : 1,
    },
    index: { versions: index.versionCount, runs: index.runCount, memtableVersions: index.memtableCount, runBytes: index.runBytes, relocatedBlocks: index.reloc.size },
    cache: core.reader.stats(),
    crcEngine,
    rollbackUnfinished: readRollbackIntent(core) ?? null,
    retention: { pins: core.retention.pins.length, forgottenEvents: core.retention.forgottenRanges.reduce((n, [a, b]) => n + b - a + 1, 0), continuousFromSeq: core.retention.continuousFromSeq },
  };
}
