import { Command } from 'commander';
import * as path from 'node:path';
import { controlCall } from '../../control/control-client';
import { ChronoError } from '../../errors';
import { parseSeconds } from '../../options';
import { printJson } from '../output';
import { resolveTarget } from '../target';

export function register(program: Command): void {
  program
    .command('umount')
    .description('unmount a `chronovol mount` cleanly: the daemon checkpoints, closes the volume and exits')
    .argument('<mountpoint>', 'mountpoint of a running `chronovol mount`')
    .option('--timeout <seconds>', 'how long to wait for the daemon', parseSeconds, 30)
    .option('--json', 'print the result as JSON')
    .action(async (mountpoint: string, o) => {
      const { lazyUnmount, mountEntry } = await import('../../fuse/mount-guard');
      const mnt = path.resolve(mountpoint);
      if (!mountEntry(mnt)) throw new ChronoError('BAD_ARGUMENT', `${mnt} is not mounted`);
      let t;
      try {
        t = resolveTarget(mnt);
      } catch {
        // Not answering as a chronovol mount (a stale one): detach it.
        if (!lazyUnmount(mnt)) throw new ChronoError('IO', `${mnt} is not a live chronovol mount and could not be detached`);
        if (o.json) printJson({ mountpoint: mnt, stale: true });
        else process.stdout.write(`detached stale mount ${mnt}\n`);
        return;
      }
      await controlCall(t.daemonSocket!, { method: 'shutdown' });
      const deadline = Date.now() + o.timeout * 1000;
      while (mountEntry(mnt)) {
        if (Date.now() > deadline) throw new ChronoError('DAEMON', `${mnt} is still mounted after ${o.timeout}s`);
        await new Promise((r) => setTimeout(r, 100));
      }
      if (o.json) printJson({ mountpoint: mnt, stale: false });
      else process.stdout.write(`unmounted ${mnt}\n`);
    });
}
