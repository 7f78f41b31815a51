import { RecordType } from '../format/constants';
import { HEADER_BYTES, RecordHeader, decodeEventPayload, decodeResyncPayload, unitBytes } from '../format/record';
import { Core } from './core';

/**
 * What a record means to the in-memory state. The one place that knows it: appends call it as
 * they write, and replay calls it for the log tail, so the two cannot drift apart.
 */
export function applyRecord(core: Core, segment: number, offset: number, h: RecordHeader, payload?: Buffer): void {
  const unit = unitBytes(core.sb.blockSizeBytes);
  const bs = core.sb.blockSizeBytes;
  switch (h.type) {
    case RecordType.WRITE:
    case RecordType.ZERO:
    case RecordType.TRIM: {
      // New versions. Offset 0 marks "no data": a zero version, recorded in this segment.
      const data = h.type === RecordType.WRITE;
      for (let i = 0; i < h.blockCount; i++) core.index.add(h.firstBlock + i, h.seq, segment, data ? offset + HEADER_BYTES + i * unit : 0);
      core.index.noteTime(h.timeMs, h.seq);
      core.counters.bytesWritten += h.blockCount * bs;
      core.counters.versions += h.blockCount;
      core.changedSinceEvent += h.blockCount;
      break;
    }
    case RecordType.COPY:
    case RecordType.COPY_ZERO: {
      // Existing versions in a new place (copy-forward); the index itself is unchanged.
      const data = h.type === RecordType.COPY;
      for (let i = 0; i < h.blockCount; i++) core.index.relocate(h.firstBlock + i, { seq: h.seq, segment, offset: data ? offset + HEADER_BYTES + i * unit : 0 });
      if (data) core.counters.copyForwardBytes += h.blockCount * bs;
      break;
    }
    case RecordType.EVENT: {
      const e = decodeEventPayload(payload!, { segment, offset });
      core.index.noteTime(h.timeMs, h.seq);
      core.events.add({ id: e.eventId, seq: h.seq, timeMs: h.timeMs, label: e.label, kind: e.kind, changedBlocks: core.changedSinceEvent });
      core.changedSinceEvent = 0;
      core.nextEventId = Math.max(core.nextEventId, e.eventId + 1);
      break;
    }
    case RecordType.RESYNC_BEGIN: {
      const r = decodeResyncPayload(payload, { segment, offset });
      core.index.noteTime(h.timeMs, h.seq);
      core.events.windows.begin({ id: r.windowId, reason: r.reason ?? 'resync', beginSeq: h.seq, beginMs: h.timeMs, lostMs: r.lostMs });
      break;
    }
    case RecordType.RESYNC_END: {
      const r = decodeResyncPayload(payload, { segment, offset });
      core.index.noteTime(h.timeMs, h.seq);
      core.events.windows.end(r.windowId, h.seq, h.timeMs, r.bytesCopied);
      break;
    }
    default:
      return;
  }
  if (h.type !== RecordType.COPY && h.type !== RecordType.COPY_ZERO) {
    core.nextSeq = Math.max(core.nextSeq, h.seq + 1);
    core.lastTimeMs = Math.max(core.lastTimeMs, h.timeMs);
  }
}
