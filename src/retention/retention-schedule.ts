import type { Logger } from 'pino';
import type { Volume } from '../volume/volume';
import { forget } from './forget';
import { isEmptyPolicy } from './policy';
import { configuredPolicy } from './retention-requests';

/**
 * A daemon's `--retention-every`: applies the configured policy (read afresh each time, so a
 * `forget --save` takes effect without a restart) on that schedule, then prunes in the
 * background. Returns the stop function.
 */
export function startRetentionSchedule(volume: Volume, everyMs: number, log: Logger): () => void {
  let pruning: Promise<void> | undefined;
  const run = () => {
    try {
      const policy = configuredPolicy(volume);
      if (isEmptyPolicy(policy)) return log.debug('no retention policy configured; nothing forgotten');
      const r = forget(volume, policy, { countPrunable: false });
      log.info({ forgotten: r.forgotten.map((e) => e.id), kept: r.kept.length }, 'retention policy applied');
      // Then prune, in the background (reads and writes go on; one prune at a time).
      if (!pruning) {
        pruning = volume.prune()
          .then((p) => log.info({ deleted: p.deleted.length, rewritten: p.rewritten.length, freedBytes: p.freedBytes, versionsDropped: p.versionsDropped }, 'scheduled prune done'))
          .catch((err: Error) => log.error({ err: err.message, code: (err as { code?: string }).code }, 'scheduled prune failed; the next one finishes it'))
          .finally(() => (pruning = undefined));
      }
    } catch (err) {
      log.error({ err: (err as Error).message }, 'applying the retention policy failed');
    }
  };
  const timer = setInterval(run, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
