import { Command } from 'commander';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ChronoError } from '../../errors';
import { DEFAULTS, parseDurationMs } from '../../options';
import { clientCreds, describeEndpoint, parseControlUrl } from '../../control/control-endpoint';
import type { ProtectTarget } from '../../replication/protector';
import { qemuTlsFor } from '../../replication/target-tls';
import { resolveTarget } from '../target';

/**
 * Where the volume is: `<dir>` of a volume a daemon serves on this host, nbd+unix:///live?socket=S
 * with --target-control SOCKET, or nbd://HOST:PORT/live on another host with --target-control
 * tls://HOST:PORT and the TLS credentials (tcp:// and no credentials with --insecure).
 */
function targetOf(text: string, o: { targetControl?: string; tlsPsk?: string; tlsCerts?: string; tlsIdentity?: string; insecure?: boolean }, stateDir: string): ProtectTarget {
  const control = o.targetControl;
  const creds = clientCreds(o);
  const remote = /^nbd:\/\/(?:\[([^\]]+)\]|([^:/]+)):(\d+)\/([^?]*)$/.exec(text);
  if (!remote && (creds || o.insecure)) throw new ChronoError('BAD_USAGE', '--tls-psk, --tls-certs and --insecure are for a volume on another host (nbd://HOST:PORT/live)');
  const url = /^nbd\+unix:\/\/\/([^?]*)\?socket=(.+)$/.exec(text);
  const exportName = remote?.[4] ?? url?.[1];
  if (exportName !== undefined && exportName !== 'live') throw new ChronoError('BAD_ARGUMENT', `protect mirrors into the 'live' export, not '${exportName}'`);
  if (remote) {
    const host = remote[1] ?? remote[2];
    const c = control ? parseControlUrl(control) : undefined;
    if (!c) throw new ChronoError('BAD_USAGE', "with nbd://HOST:PORT/live, give --target-control tls://HOST:PORT (the volume daemon's --control-listen)");
    if (!creds && !o.insecure) throw new ChronoError('BAD_USAGE', 'a volume on another host is reached with TLS: give --tls-psk FILE [--tls-identity NAME] or --tls-certs DIR (or --insecure, with --target-control tcp://…)');
    if (c.tls !== !!creds) throw new ChronoError('BAD_USAGE', creds ? '--target-control takes tls://HOST:PORT with TLS credentials' : 'with --insecure, --target-control takes tcp://HOST:PORT');
    return {
      nbd: { host, port: Number(remote[3]) },
      control: { host: c.host, port: c.port, tls: creds },
      qemuTls: creds ? qemuTlsFor(creds, o.tlsCerts, stateDir, host) : undefined,
    };
  }
  if (url) {
    if (!control) throw new ChronoError('BAD_USAGE', 'with an nbd+unix:// URL, give --target-control <socket> (the daemon\'s control socket)');
    return { nbd: { path: path.resolve(url[2]) }, control: path.resolve(control) };
  }
  if (/^[a-z+]+:\/\//.test(text)) throw new ChronoError('UNSUPPORTED', `protect reaches the volume at nbd+unix:///live?socket=… or nbd://HOST:PORT/live, not ${text}`);
  const dir = path.resolve(text);
  const t = resolveTarget(dir);
  return { nbd: { path: path.join(t.volumeDir ?? dir, DEFAULTS.nbdSocketName) }, control: control ? path.resolve(control) : t.daemonSocket ?? path.join(dir, 'control.sock'), volumeDir: t.volumeDir };
}

/**
 * A volume on another host is asked first whether our credentials get in and may record events:
 * a wrong key, an unknown identity or missing rights end protect here with ACCESS_DENIED, before
 * the application is given a disk. A volume not up yet is waited for, as on this host.
 */
async function checkCredentials(target: ProtectTarget): Promise<void> {
  if (typeof target.control === 'string') return;
  const { controlCall } = await import('../../control/control-client');
  let pong: { identity?: string | null; rights?: { write: boolean } };
  try {
    pong = (await controlCall(target.control, { method: 'ping' }, undefined, 10_000)) as typeof pong;
  } catch (err) {
    if ((err as ChronoError).code === 'ACCESS_DENIED') throw err;
    return;
  }
  if (pong.rights && !pong.rights.write) throw new ChronoError('ACCESS_DENIED', `identity '${pong.identity}' may not write live on ${describeEndpoint(target.control)} (its --nbd-access rules), so it can neither mirror nor record events`);
}

export function register(program: Command): void {
  program
    .command('protect')
    .description('protect a disk in use on this host: qemu-storage-daemon splits its writes into the volume; we are never in its I/O path')
    .argument('<volume>', "the volume's directory (its daemon, `chronovol serve`, must be running; it may come and go), nbd+unix:///live?socket=PATH, or nbd://HOST:PORT/live on another host")
    .requiredOption('--primary <image-or-device>', 'the disk to protect: an image file or a block device (the application then uses --app-export, never this path)')
    .option('--app-export <fuse:PATH|nbd:SOCKET>', 'how the application reaches the primary: a file to mount over (losetup it, or give it to a VM), or an NBD Unix socket (export name prim)')
    .option('--target-timeout <duration>', 'a volume that owes an answer this long is cut off and the mirror torn down, so the application never waits on us longer', parseDurationMs, DEFAULTS.protectTargetTimeoutMs)
    .option('--initial <mode>', "full: copy the whole primary first (a resync window); assume-same: the volume already equals the primary", 'full')
    .option('--rpo <duration>', 'recovery point objective: warn (and run --alert) when the replica falls this far behind', parseDurationMs)
    .option('--alert <command>', 'shell command run once when the lag passes --rpo (env CHRONOVOL_PROTECT_STATE, CHRONOVOL_LAG_MS, CHRONOVOL_DISCONNECTED_SINCE)')
    .option('--state-dir <dir>', 'sockets and status.json; `agent sync --protect` and `chronovol status` take this directory', DEFAULTS.protectStateDir)
    .option('--target-control <socket|url>', "the volume daemon's control socket (default: the one its LOCK names), or tls://HOST:PORT (its --control-listen) for nbd://HOST:PORT/live")
    .option('--tls-psk <file>', "for a volume on another host: 'identity:hexkey' lines (the volume's --tls-psk file, or this identity's line of it)")
    .option('--tls-identity <name>', "the PSK identity to use (default: the file's first); it needs writeLive in the volume's --nbd-access")
    .option('--tls-certs <dir>', 'for a volume on another host: X.509 client credentials, ca-cert.pem, client-cert.pem, client-key.pem (identity: the certificate\'s CN)')
    .option('--insecure', 'reach a volume on another host over plain TCP (nbd://, --target-control tcp://): anyone on the path can read and change the replica')
    .addHelpText('after', `
Example (volume served on this host; ext4 on the protected disk):
  chronovol serve /srv/vol &
  chronovol protect /srv/vol --primary /var/lib/app/disk.img --app-export fuse:/run/app/disk.img \\
    --rpo 30s --alert 'logger -p user.crit chronovol lag' &
  losetup -f --show /run/app/disk.img          # the application mounts this loop device
  chronovol agent sync --label nightly --freeze /mnt/app --pre 'psql -c CHECKPOINT'
  chronovol status ${DEFAULTS.protectStateDir}
The volume on another host (it runs: chronovol serve /srv/vol --listen 0.0.0.0:10809
--control-listen 0.0.0.0:10810 --tls-psk keys.psk --nbd-access access.json):
  chronovol protect nbd://backup1:10809/live --target-control tls://backup1:10810 \\
    --tls-psk /etc/chronovol/replica.psk --tls-identity replica --primary /dev/vg0/app --app-export fuse:/run/app/disk.img
Stop with Ctrl-C (or SIGTERM) after the application has let go of the export. See docs/REPLICATION.md.`)
    .action(async (volume: string, o) => {
      if (o.initial !== 'full' && o.initial !== 'assume-same') throw new ChronoError('BAD_USAGE', `--initial takes full or assume-same, got '${o.initial}'`);
      if (!fs.existsSync(o.primary)) throw new ChronoError('BAD_ARGUMENT', `no such primary: ${o.primary}`);
      const { parseAppExport } = await import('../../replication/splitter');
      const appExport = o.appExport ? parseAppExport(o.appExport) : undefined;
      const stateDir = path.resolve(o.stateDir);
      fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
      const target = targetOf(volume, o, stateDir);
      await checkCredentials(target);
      const { createLogger } = await import('../../log');
      const { Protector } = await import('../../replication/protector');
      const { ProtectControl } = await import('../../replication/protect-control');
      const { StatusKeeper, protectionStatus } = await import('../../replication/protection-status');
      const { runUntilStopped } = await import('../daemon-lifecycle');
      const log = createLogger();
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
