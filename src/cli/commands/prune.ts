import { Command } from 'commander';
import { controlCall } from '../../control/control-client';
import { DEFAULTS, parseFraction, parseSize } from '../../options';
import type { PruneReport } from '../../volume/volume';
import { ProgressBar, formatBytes, printJson, printTable } from '../output';
import { viaDaemonOrVolume } from '../target';

export function register(program: Command): void {
  program
    .command('prune')
    .description('free the space of what no kept point reads: delete or compact archived segments (after forget)')
    .argument('<target>', 'volume directory or the mountpoint of a running `chronovol mount`')
    .option('--dry-run', 'only show the plan: which archived objects would be deleted or rewritten, and the bytes freed')
    .option('--max-rewrite-bytes <size>', 'write at most this much into rewritten objects (e.g. 2G); the rest waits for a later prune', parseSize)
    .option('--rewrite-threshold <fraction>', 'rewrite an archived object once at least this share of it is dead (0-1, default 0.5)', parseFraction)
    .option('--busy-share <fraction>', `while the volume's reads and writes come (a mounted or served volume), the share of the time the prune may take; the rest is left to them (0-1, default ${DEFAULTS.pruneBusyShare}; 1: no pacing, 0: only while the volume is quiet)`, parseFraction)
    .option('--json', 'print JSON')
    .addHelpText('after', `
Prune works from what forget decided: a block version stays while a kept event, a pinned point,
the continuous span (--keep-all-within) or live reads it. Archived segments that left the
working set and hold nothing needed are deleted; ones mostly dead are rewritten with only what
is needed (under a new key, verified, before the old one goes); the rest stay. Segments still in
the working set are never touched. Safe to interrupt: run it again to finish.

Examples:
  chronovol forget /srv/vol --keep-daily 7 && chronovol prune /srv/vol --dry-run
  chronovol prune /srv/vol --max-rewrite-bytes 10G --json`)
    .action(async (target: string, o) => {
      const req = { op: 'prune', dryRun: !!o.dryRun, maxRewriteBytes: o.maxRewriteBytes as number | undefined, rewriteThreshold: o.rewriteThreshold as number | undefined, busyShare: o.busyShare as number | undefined };
      const bars = new Map<string, ProgressBar>();
      const r = (await viaDaemonOrVolume(target, 'prune',
        // A prune rewrites objects: it may take far longer than a control call's usual two minutes.
        (socket) => controlCall(socket, { method: 'retention', params: req }, undefined, 24 * 3600_000),
        async (vol) => vol.prune({
          dryRun: req.dryRun, maxRewriteBytes: req.maxRewriteBytes, rewriteThreshold: req.rewriteThreshold, busyShare: req.busyShare,
          progress: (phase, done, total) => {
            if (!bars.has(phase)) bars.set(phase, new ProgressBar(phase, total, false));
            bars.get(phase)!.update(done);
          },
        }))) as PruneReport;
      for (const b of bars.values()) b.done();
      if (o.json) return printJson(r);
      const acting = r.plan.filter((e) => e.action !== 'keep');
      if (acting.length) printTable([['SEGMENT', r.dryRun ? 'WOULD' : 'DONE', 'BYTES', 'NEEDED', 'WHY'], ...acting.map((e) => [String(e.id), e.action, formatBytes(e.objectBytes), formatBytes(e.neededBytes), e.why])]);
      process.stdout.write(`${r.dryRun ? 'would delete' : 'deleted'} ${r.deleted.length} and ${r.dryRun ? 'rewrite' : 'rewrote'} ${r.rewritten.length} of ${r.candidates} archived segments; ${r.dryRun ? 'would free' : 'freed'} ${formatBytes(r.freedBytes)}${r.dryRun ? '' : `, ${r.versionsDropped} versions left the index`}${r.garbageRemoved.length ? `; removed ${r.garbageRemoved.length} objects an interrupted prune left` : ''}\n`);
    });
}
