import { ArchiveCatalog } from '../archive/archive-catalog';
import { isChronoError } from '../errors';
import { DEFAULTS } from '../options';
import type { Core } from './core';
import { dropCataloguedVersions, noteIndexFiltered } from './prune';

export interface CatalogRefreshOptions {
  baseDelayMs?: number;
  maxDelayMs?: number;
}

/**
 * Reads the archive catalog again after open could not (the archive unreachable). Until it is
 * read, an object a prune replaced reads as missing: an error, never other bytes (keys are never
 * reused), but an error a volume should not keep until the next prune happens to run. Retries
 * with backoff until read; then drops from the index what the catalog says is gone, as open does.
 * Returns the stop function (await it before close).
 */
export function refreshCatalogUntilRead(core: Core, readOnly: boolean, o: CatalogRefreshOptions = {}): () => Promise<void> {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let attempt: Promise<void> = Promise.resolve();
  let delayMs = o.baseDelayMs ?? DEFAULTS.archiveRetryBaseDelayMs;
  const maxDelayMs = o.maxDelayMs ?? DEFAULTS.archiveRetryMaxDelayMs;

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => (attempt = tryOnce()), delayMs);
    timer.unref();
    delayMs = Math.min(maxDelayMs, delayMs * 2);
  };
  const tryOnce = async () => {
    let fresh: ArchiveCatalog;
    try {
      fresh = await ArchiveCatalog.load(core.store, core.sb.volumeId);
    } catch (err) {
      if (stopped) return;
      if (isChronoError(err) && err.code !== 'ARCHIVE_UNAVAILABLE' && err.code !== 'IO') {
        // Open refuses a damaged catalog; found damaged later, objects a prune replaced stay missing.
        core.log.error({ err: (err as Error).message, code: err.code }, 'the archive catalog is damaged: objects a prune replaced read as missing');
        return;
      }
      return schedule();
    }
    if (stopped) return;
    // A prune meanwhile read it afresh itself, and may have replaced it since: never go back.
    if (fresh.generation > core.catalog.generation) core.catalog.replace(fresh.body);
    core.log.info({ generation: core.catalog.generation }, 'the archive catalog is read again: objects a prune replaced are found');
    if (!core.catalog.present) return;
    if (!readOnly) {
      await dropCataloguedVersions(core);
    } else {
      // Nothing persists on a read-only open: filtered in memory, as open does.
      core.index.dropVersions(core.catalog.prunedTest());
      noteIndexFiltered(core.index, core.catalog.generation);
    }
  };

  schedule();
  return async () => {
    stopped = true;
    clearTimeout(timer);
    await attempt.catch(() => undefined);
  };
}
