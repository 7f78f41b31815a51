import { Core } from './core';

/**
 * Checkpoints the index. The current segment is synced first: the checkpoint must never point
 * at log bytes that a crash could still take away.
 */
export function checkpoint(core: Core): void {
  core.segments.current.sync();
  core.index.checkpoint({
    covered: { segment: core.segments.current.id, offset: core.segments.current.end },
    nextSeq: core.nextSeq,
    nextEventId: core.nextEventId,
    lastTimeMs: core.lastTimeMs,
    events: core.events.all,
    changedSinceEvent: core.changedSinceEvent,
    stats: core.counters,
  });
}
