import { Command } from 'commander';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ChronoError } from '../../errors';
import { DEFAULTS, parseDurationMs } from '../../options';
import { resolveTarget } from '../target';

/** `<dir>` of a volume a daemon serves (serve or mount), or nbd+unix:///live?socket=S with --target-control. */
function targetSockets(text: string, control?: string): { nbdSocket: string; controlSocket: string; volumeDir?: string } {
  const url = /^nbd\+unix:\/\/\/([^?]*)\?socket=(.+)$/.exec(text);
  if (url) {
    if (url[1] !== 'live') throw new ChronoError('BAD_ARGUMENT', `protect mirrors into the 'live' export, not '${url[1]}'`);
    if (!control) throw new ChronoError('BAD_USAGE', 'with an nbd+unix:// URL, give --target-control <socket> (the daemon\'s control socket)');
    return { nbdSocket: path.resolve(url[2]), controlSocket: path.resolve(control) };
  }
  if (/^[a-z+]+:\/\//.test(text)) throw new ChronoError('UNSUPPORTED', `protect reaches the volume over a Unix socket for now (nbd+unix:///live?socket=…), not ${text}`);
  const dir = path.resolve(text);
  const t = resolveTarget(dir);
  return { nbdSocket: path.join(t.volumeDir ?? dir, DEFAULTS.nbdSocketName), controlSocket: control ? path.resolve(control) : t.daemonSocket ?? path.join(dir, 'control.sock'), volumeDir: t.volumeDir };
}

export function register(program: Command): void {
  program
    .command('protect')
    .description('protect a disk in use on this host: qemu-storage-daemon splits its writes into the volume; we are never in its I/O path')
    .argument('<volume>', "the volume's directory (its daemon, `chronovol serve`, must be running; it may come and go) or nbd+unix:///live?socket=PATH")
    .requiredOption('--primary <image-or-device>', 'the disk to protect: an image file or a block device (the application then uses --app-export, never this path)')
    .option('--app-export <fuse:PATH|nbd:SOCKET>', 'how the application reaches the primary: a file to mount over (losetup it, or give it to a VM), or an NBD Unix socket (export name prim)')
    .option('--target-timeout <duration>', 'a volume that owes an answer this long is cut off and the mirror torn down, so the application never waits on us longer', parseDurationMs, DEFAULTS.protectTargetTimeoutMs)
    .option('--initial <mode>', "full: copy the whole primary first (a resync window); assume-same: the volume already equals the primary", 'full')
    .option('--rpo <duration>', 'recovery point objective: warn (and run --alert) when the replica falls this far behind', parseDurationMs)
    .option('--alert <command>', 'shell command run once when the lag passes --rpo (env CHRONOVOL_PROTECT_STATE, CHRONOVOL_LAG_MS, CHRONOVOL_DISCONNECTED_SINCE)')
    .option('--state-dir <dir>', 'sockets and status.json; `agent sync --protect` and `chronovol status` take this directory', DEFAULTS.protectStateDir)
    .option('--target-control <socket>', "the volume daemon's control socket (default: the one its LOCK names)")
    .addHelpText('after', `
Example (volume served on this host; ext4 on the protected disk):
  chronovol serve /srv/vol &
  chronovol protect /srv/vol --primary /var/lib/app/disk.img --app-export fuse:/run/app/disk.img \\
    --rpo 30s --alert 'logger -p user.crit chronovol lag' &
  losetup -f --show /run/app/disk.img          # the application mounts this loop device
  chronovol agent sync --label nightly --freeze /mnt/app --pre 'psql -c CHECKPOINT'
  chronovol status ${DEFAULTS.protectStateDir}
Stop with Ctrl-C (or SIGTERM) after the application has let go of the export. See docs/REPLICATION.md.`)
    .action(async (volume: string, o) => {
      if (o.initial !== 'full' && o.initial !== 'assume-same') throw new ChronoError('BAD_USAGE', `--initial takes full or assume-same, got '${o.initial}'`);
      if (!fs.existsSync(o.primary)) throw new ChronoError('BAD_ARGUMENT', `no such primary: ${o.primary}`);
      const { parseAppExport } = await import('../../replication/splitter');
      const appExport = o.appExport ? parseAppExport(o.appExport) : undefined;
      const target = targetSockets(volume, o.targetControl);
      const { createLogger } = await import('../../log');
      const { Protector } = await import('../../replication/protector');
      const { ProtectControl } = await import('../../replication/protect-control');
      const { StatusKeeper, protectionStatus } = await import('../../replication/protection-status');
      const { runUntilStopped } = await import('../daemon-lifecycle');
      const log = createLogger();
      const stateDir = path.resolve(o.stateDir);
      fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
      const startedMs = Date.now();
      const p = new Protector({ primary: o.primary, appExport, stateDir, target, targetTimeoutMs: o.targetTimeout, initial: o.initial, log });
      const controlSocket = path.join(stateDir, 'control.sock');
      const keeper = new StatusKeeper(stateDir, controlSocket, target.volumeDir, o.alert, log);
      const status = () => protectionStatus(p, path.resolve(o.primary), o.rpo, startedMs);
      let timer: NodeJS.Timeout | undefined;
      let control: InstanceType<typeof ProtectControl> | undefined;
      const shutdown = runUntilStopped(log, async () => {
        if (timer) clearInterval(timer);
        await control?.close();
        await p.stop();
        keeper.update(await status());
      });
      control = new ProtectControl(p, controlSocket, status, shutdown, log);
      try {
        await p.start();
        await control.listen();
      } catch (err) {
        await p.stop().catch(() => undefined);
        throw err;
      }
      const tick = () => status().then((s) => keeper.update(s), (err: Error) => log.warn({ err: err.message }, 'status'));
      tick();
      timer = setInterval(tick, DEFAULTS.protectPollMs);
      const where = appExport?.kind === 'fuse' ? `the application uses ${path.resolve(appExport.path)}` : `the application uses nbd+unix:///prim?socket=${p.coreNbdSocket}`;
      process.stdout.write(`protecting ${path.resolve(o.primary)} into ${volume}; ${where}; status: chronovol status ${stateDir} (pid ${process.pid})\n`);
    });
}
