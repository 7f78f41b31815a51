import { Command } from 'commander';
import { controlCall } from '../../control/control-client';
import type { RollbackResult } from '../../rollback/rollback';
import { ProgressBar, formatBytes, printJson } from '../output';
import { viaDaemonOrVolume } from '../target';

/** A rollback through a daemon gets this long to answer: it writes at most what changed. */
const DAEMON_TIMEOUT_MS = 6 * 3600_000;

export function register(program: Command): void {
  program
    .command('rollback')
    .description('make live the state of a past point (or of a clone) by writing only the blocks that differ; undo by rolling back to the event it records before')
    .argument('<target>', 'volume directory or the mountpoint of a running `chronovol mount` / `chronovol serve`')
    .requiredOption('--to <point>', 'an event id or label, seq:<n>, an ISO-8601 time, or clone:<name> to promote a clone')
    .option('--label <label>', "label of the event recorded after the rollback (default rollback-to-<point>); the one before gets 'before-<label>'")
    .option('--force', 'roll back even while live/volume.img is open for writing through the tree or an NBD client is attached to live')
    .option('--json', 'print the result as JSON')
    .addHelpText('after', `
Unmount any file system on live first: rollback rewrites the blocks under it. Without --force it
refuses (LIVE_IN_USE) while live/volume.img is open for writing through a mount's tree or an NBD
client is attached to the live export, and says which.

The state being left is recorded as event 'before-<label>' first, so a rollback is undone by
rolling back to that event. If it is cut short (power cut, kill), 'chronovol status' says so
(ROLLBACK UNFINISHED) and running the same rollback again finishes it.

Examples:
  chronovol rollback /srv/vol1 --to before-upgrade
  chronovol rollback /srv/vol1 --to before-rollback-to-event:3   # undo it
  chronovol rollback /srv/vol1 --to clone:fixed --label promoted-fix
`)
    .action(async (target: string, o) => {
      const params = { to: String(o.to), label: o.label as string | undefined, force: Boolean(o.force) };
      const r = await viaDaemonOrVolume(target, 'rollback',
        async (socket) => (await controlCall(socket, { method: 'rollback', params }, undefined, DAEMON_TIMEOUT_MS)) as RollbackResult,
        async (vol) => {
          const { rollback } = await import('../../rollback/rollback');
          let progress: ProgressBar | undefined;
          try {
            return await rollback(vol, { ...params, onProgress: (done, total) => (progress ??= new ProgressBar('comparing blocks', total, false)).update(done) });
          } finally {
            progress?.done();
          }
        });
      if (o.json) return printJson(r);
      process.stdout.write(`${r.resumed ? 'finished the interrupted rollback' : 'rolled back'}: live is now ${r.to}; ${r.writtenBlocks} blocks (${formatBytes(r.writtenBytes)}) differed and were written, of ${r.comparedBlocks} compared, in ${(r.elapsedMs / 1000).toFixed(2)} s\n`);
      process.stdout.write(`event ${r.before.id} '${r.before.label}' holds the state before; event ${r.after.id} '${r.after.label}' the state after\n`);
      process.stdout.write(`undo: chronovol rollback ${target} --to ${r.before.id}\n`);
    });
}
