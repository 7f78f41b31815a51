import { Command } from 'commander';
import * as path from 'node:path';
import type { ControlServer } from '../../control/control-server';
import { DEFAULTS, parseSize } from '../../options';
import { volumeDirOf } from '../target';

export function addNbdOptions(cmd: Command, defaultListen?: string): Command {
  return cmd
    .option('--listen <host:port>', `NBD over TCP${defaultListen ? ` (default ${defaultListen}, loopback)` : ''}; a non-loopback host must be given explicitly`, defaultListen)
    .option('--socket <path>', 'NBD over a Unix socket as well')
    .option('--sync-on-flush', 'record a crash-consistent event at every NBD flush that follows writes');
}

export function register(program: Command): void {
  const cmd = program
    .command('serve')
    .description("serve the volume over NBD: export 'live' (read-write) and every event, seq:<n> or time (read-only)")
    .argument('<dir>', 'volume directory')
    .option('--cache <bytes>', 'LRU cache of reconstructed blocks', parseSize, DEFAULTS.blockCacheBytes);
  addNbdOptions(cmd, DEFAULTS.nbdListen).addHelpText('after', `
Examples:
  qemu-img convert -n -O raw disk.img nbd://127.0.0.1:10809/live
  qemu-io -f raw nbd://127.0.0.1:10809/before-upgrade -c 'read -v 0 512'
  nbd-client -N live 127.0.0.1 10809 /dev/nbd0
  nbdinfo --list nbd://127.0.0.1:10809`)
    .action(async (dir: string, o) => {
      const { ControlServer } = await import('../../control/control-server');
      const { createLogger } = await import('../../log');
      const { NbdServer } = await import('../../nbd/nbd-server');
      const { Volume } = await import('../../volume/volume');
      const { runUntilStopped } = await import('../daemon-lifecycle');
      const log = createLogger();
      const vdir = volumeDirOf(dir);
      const socket = path.join(vdir, 'control.sock');
      const volume = await Volume.open(vdir, { cacheBytes: o.cache, log, role: 'serve', socket });
      const nbd = new NbdServer(volume, { listen: o.listen, socket: o.socket, syncOnFlush: Boolean(o.syncOnFlush), log });
      let control: ControlServer | undefined;
      try {
        await nbd.start();
        const shutdown = runUntilStopped(log, async () => {
          await nbd.close();
          await control?.close();
          await volume.close();
        });
        control = new ControlServer(volume, socket, log, { shutdown });
        await control.listen();
      } catch (err) {
        await nbd.close();
        await volume.close();
        throw err;
      }
      process.stdout.write(`serving ${vdir} on ${nbd.addresses.join(' and ')} (pid ${process.pid}); Ctrl-C to stop\n`);
    });
}
