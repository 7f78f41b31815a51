import { Command } from 'commander';
import * as path from 'node:path';
import { ChronoError } from '../../errors';
import { DEFAULTS, parseDurationMs, parseSize } from '../../options';
import { parseRetentionDuration } from '../../retention/policy';
import { volumeDirOf } from '../target';
import { parseId, parseMode } from '../../fuse/tree-sharing';
import { addArchiveBacklogOptions, addNbdOptions, controlTcpFrom, nbdOptionsFrom } from './serve';

/** --fuse-cpu's parser, loaded when the option is given: thread-placement.ts loads the native addon. */
const parseFuseCpu = (v: string) => (require('../../fuse/thread-placement') as typeof import('../../fuse/thread-placement')).parseFuseCpu(v);

export function register(program: Command): void {
  const cmd = program
    .command('mount')
    .description('serve the volume as a file tree: live/volume.img (read-write), events/<event>/volume.img, at/<time>/volume.img, status.json')
    .argument('<dir>', 'volume directory')
    .argument('<mountpoint>', 'where to mount (created if missing)')
    .option('--cache <bytes>', 'LRU cache of reconstructed blocks', parseSize, DEFAULTS.blockCacheBytes)
    .option('--archive-cache <bytes>', 'on-disk cache of data read from the archive (chunks and offset tables, kept across restarts) under <dir>/archive-cache; 0: off', parseSize, DEFAULTS.archiveCacheBytes)
    .option('--auto-sync <interval>', 'record a crash-consistent event at an fsync when this long has passed since the last (e.g. 30s, 5m)', parseDurationMs, DEFAULTS.fuseAutoSyncMs)
    .option('--seal-after <duration>', 'seal the current segment once no write has come for this long, so the last writes reach the archive (e.g. 30s, 5m; 0: off)', parseDurationMs, DEFAULTS.sealAfterMs)
    .option('--read-ahead <bytes>', "kernel read-ahead for the mount's files (0 keeps the kernel's 128 KiB); needs root", parseSize, DEFAULTS.fuseReadAheadBytes)
    .option('--fuse-cpu <cpu>', "run the FUSE threads on one CPU: a number, auto (the daemon's CPU at mount) or off (anywhere); see docs/DESIGN.md", parseFuseCpu, DEFAULTS.fuseCpu);
  cmd
    .option('--allow-other', "let other users use the tree (FUSE allow_other with default_permissions): the kernel checks --uid, --gid and --mode; off by default, when only you can")
    .option('--uid <uid>', "owner of the tree's files with --allow-other (default: yours)", parseId('uid'))
    .option('--gid <gid>', "group of the tree's files with --allow-other (default: yours)", parseId('gid'))
    .option('--mode <octal>', "permission bits of the tree's files with --allow-other, e.g. 0640 so a group reads past images; read-only files never get w (default 0640)", parseMode)
    .option('--http [addr]', "serve a read-only web page too (status, events, timeline, changes, block history): unix:PATH, or loopback [HOST:]PORT (default 127.0.0.1, a free port) with a random token in the URL it prints")
    .option('--nbd', `serve NBD too, on <dir>/${DEFAULTS.nbdSocketName} (implied by --socket and --listen)`)
    .option('--retention-every <duration>', "apply the volume's stored retention policy (forget --save) this often, e.g. 1h", parseRetentionDuration);
  addArchiveBacklogOptions(cmd, 'daemon');
  addNbdOptions(cmd) // one daemon can serve NBD too
    .addHelpText('after', `
Runs in the foreground until Ctrl-C, SIGTERM or 'chronovol umount <mountpoint>'.

Try:
  losetup -f --show <mnt>/live/volume.img         then mkfs/mount the loop device
  chronovol sync <mnt> --label before --freeze /mnt/data
  mount -o ro,loop <mnt>/events/<event>/volume.img /mnt/old
  dd if=<mnt>/at/2026-11-27T08:00:00Z/volume.img bs=4096 skip=100 count=1 | xxd
  chronovol mount /srv/vol1 /mnt/vol1 --http      then open the printed http://127.0.0.1:…/?token=… URL
  chronovol mount /srv/vol1 /mnt/vol1 --http unix:/run/user/1000/vol1.sock   (curl --unix-socket …)
Crash-consistent images (--auto-sync, or sync without --freeze) may need -o ro,noload (ext4)
or -o ro,norecovery (xfs) to mount.`)
    .action(async (dir: string, mountpoint: string, o) => {
      const { DaemonHost } = await import('../../daemon/daemon-host');
      const { createLogger } = await import('../../log');
      const { runUntilStopped } = await import('../daemon-lifecycle');
      const log = createLogger();
      const vdir = volumeDirOf(dir);
      const nbd = o.nbd || o.listen || o.socket ? nbdOptionsFrom(o, vdir, log) : undefined;
      if (!nbd && (o.tlsPsk || o.tlsCerts || o.nbdAccess || o.insecure) && !o.controlListen) throw new ChronoError('BAD_ARGUMENT', '--tls-psk, --tls-certs, --nbd-access and --insecure are for --listen or --control-listen');
      const controlTcp = controlTcpFrom(o);
      if ((o.uid !== undefined || o.gid !== undefined || o.mode !== undefined) && !o.allowOther) throw new ChronoError('BAD_ARGUMENT', '--uid, --gid and --mode take effect with --allow-other only');
      const share = o.allowOther ? { uid: o.uid ?? process.getuid!(), gid: o.gid ?? process.getgid!(), mode: o.mode ?? 0o640 } : undefined;
      const http = o.http !== undefined ? (await import('../../http/http-listen')).parseHttpListen(o.http, vdir) : undefined;
      const daemon = await DaemonHost.start({ dir: vdir, cacheBytes: o.cache, archiveCacheBytes: o.archiveCache, log, nbd, controlTcp, http, sealAfterMs: o.sealAfter, archiveBacklogBytes: o.archiveBacklog, archiveStallTimeoutMs: o.archiveStallTimeout, fuse: { mountpoint: path.resolve(mountpoint), autoSyncMs: o.autoSync, readAheadBytes: o.readAhead, fuseCpu: o.fuseCpu, share } });
      const also = (daemon.nbdAddresses.length ? `; NBD on ${daemon.nbdAddresses.join(' and ')}` : '') + (daemon.httpUrl ? `; web page at ${daemon.httpUrl}` : '') + (daemon.controlAddress ? `; control on ${daemon.controlAddress}` : '');
      const mnt = daemon.mountpoint!;
      process.stdout.write(`mounted ${daemon.volume.directory.root} at ${mnt} (pid ${process.pid})${also}; Ctrl-C or 'chronovol umount ${mnt}' to unmount\n`);
      const stopRetention = o.retentionEvery ? (await import('../../retention/retention-schedule')).startRetentionSchedule(daemon.volume, o.retentionEvery, log) : () => undefined;
      daemon.onStopped = runUntilStopped(log, () => (stopRetention(), daemon.stop()));
    });
}
