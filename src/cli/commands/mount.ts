import { Command } from 'commander';
import * as path from 'node:path';
import { FuseDaemon } from '../../fuse/fuse-daemon';
import { createLogger } from '../../log';
import { DEFAULTS, parseDurationMs, parseSize } from '../../options';
import { volumeDirOf } from '../target';

export function register(program: Command): void {
  program
    .command('mount')
    .description('serve the volume as a file tree: live/volume.img (read-write), events/<event>/volume.img, at/<time>/volume.img, status.json')
    .argument('<dir>', 'volume directory')
    .argument('<mountpoint>', 'where to mount (created if missing)')
    .option('--cache <bytes>', 'LRU cache of reconstructed blocks', parseSize, DEFAULTS.blockCacheBytes)
    .option('--auto-sync <interval>', 'record a crash-consistent event at an fsync when this long has passed since the last (e.g. 30s, 5m)', parseDurationMs, 0)
    .addHelpText('after', `
Runs in the foreground until Ctrl-C, SIGTERM or 'chronovol umount <mountpoint>'.

Try:
  losetup -f --show <mnt>/live/volume.img         then mkfs/mount the loop device
  chronovol sync <mnt> --label before --freeze /mnt/data
  mount -o ro,loop <mnt>/events/<event>/volume.img /mnt/old
  dd if=<mnt>/at/2026-11-27T08:00:00Z/volume.img bs=4096 skip=100 count=1 | xxd
Crash-consistent images (--auto-sync, or sync without --freeze) may need -o ro,noload (ext4)
or -o ro,norecovery (xfs) to mount.`)
    .action(async (dir: string, mountpoint: string, o) => {
      const log = createLogger();
      const daemon = await FuseDaemon.start({ dir: volumeDirOf(dir), mountpoint: path.resolve(mountpoint), cacheBytes: o.cache, autoSyncMs: o.autoSync, log });
      process.stdout.write(`mounted ${daemon.volume.directory.root} at ${daemon.mountpoint} (pid ${process.pid}); Ctrl-C or 'chronovol umount ${daemon.mountpoint}' to unmount\n`);
      // The FUSE thread alone does not keep node's event loop alive.
      const keepAlive = setInterval(() => undefined, 1 << 30);
      const stop = (why: string) => {
        log.info({ why }, 'unmounting');
        daemon.stop().then(() => {
          clearInterval(keepAlive);
          process.exit(0);
        }, (err: Error) => {
          log.error({ err: err.message }, 'clean shutdown failed');
          process.exit(1);
        });
      };
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
      daemon.onStopped = () => stop('umount');
    });
}
