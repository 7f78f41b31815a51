import { Command } from 'commander';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { ChronoError } from '../../errors';
import type { ControlTcpOptions } from '../../control/control-listener';
import type { NbdAccess } from '../../nbd/nbd-access';
import type { NbdServerOptions } from '../../nbd/nbd-server';
import type { NbdTls } from '../../nbd/nbd-tls';
import { DEFAULTS, parseDurationMs, parseSize } from '../../options';
import { parseRetentionDuration } from '../../retention/policy';
import { volumeDirOf } from '../target';

/**
 * --archive-backlog and --archive-stall-timeout (init stores them in config.json; mount and
 * serve override them for the run). No commander default: absent means "as stored".
 */
export function addArchiveBacklogOptions(cmd: Command, where: 'init' | 'daemon'): Command {
  const stored = where === 'daemon' ? " (default: as set at init, else" : ' (default';
  return cmd
    .option('--archive-backlog <size>', `while the archive is unreachable, up to this much of sealed segments waits in primary beyond the working set and writes go on; rounded down to whole segments, 0: none${stored} ${DEFAULTS.archiveBacklogSegments} segments)`, parseSize)
    .option('--archive-stall-timeout <duration>', `past the backlog, a write waits this long for the archive, then fails with ENOSPC (ARCHIVE_BACKLOG_FULL)${stored} ${DEFAULTS.archiveStallTimeoutMs / 1000}s)`, parseDurationMs);
}

export function addNbdOptions(cmd: Command): Command {
  return cmd
    .option('--socket <path>', `NBD's Unix socket (default <dir>/${DEFAULTS.nbdSocketName}, mode 0600)`)
    .option('--socket-group <group>', 'let this group use the Unix socket too (mode 0660)')
    .option('--listen <host:port>', 'NBD over TCP as well; requires --tls-psk or --tls-certs (or --insecure)')
    .option('--tls-psk <file>', "TLS with pre-shared keys: 'identity:hexkey' lines (psktool's format, as qemu and nbdkit read)")
    .option('--tls-certs <dir>', 'TLS with X.509: ca-cert.pem, server-cert.pem, server-key.pem; clients need a certificate the CA signed (identity: its CN)')
    .option('--nbd-access <file>', 'JSON: per TLS identity, the exports it may use and whether it may write live (default: every identity may do everything)')
    .option('--control-listen <host:port>', 'the control channel over TCP as well (for `protect` on another host): TLS with the same --tls-psk/--tls-certs identities, rights from --nbd-access (writing live is needed to record events)')
    .option('--insecure', 'allow --listen and --control-listen without TLS: anyone who reaches the port can read and write the volume')
    .option('--sync-on-flush', 'record a crash-consistent event at every NBD flush that follows writes');
}

/** The NBD server's options from the command line; bad combinations are usage errors. */
export function nbdOptionsFrom(o: Record<string, unknown>, volumeDir: string, log: Logger): NbdServerOptions {
  if (o.tlsPsk && o.tlsCerts) throw new ChronoError('BAD_ARGUMENT', 'give --tls-psk or --tls-certs, not both');
  if ((o.tlsPsk || o.tlsCerts) && !o.listen && !o.controlListen) throw new ChronoError('BAD_ARGUMENT', '--tls-psk and --tls-certs are for TCP: give --listen or --control-listen host:port too (the Unix sockets are guarded by their modes)');
  if ((o.tlsPsk || o.tlsCerts) && o.insecure) throw new ChronoError('BAD_ARGUMENT', '--insecure and TLS contradict each other');
  if (o.nbdAccess && !(o.tlsPsk || o.tlsCerts)) throw new ChronoError('BAD_ARGUMENT', '--nbd-access applies to TLS identities: give --tls-psk or --tls-certs');
  const { tls, access } = tlsAndAccessFrom(o);
  return {
    listen: o.listen as string | undefined,
    socket: path.resolve((o.socket as string | undefined) ?? path.join(volumeDir, DEFAULTS.nbdSocketName)),
    socketGroup: o.socketGroup as string | undefined,
    tls,
    insecure: Boolean(o.insecure),
    access,
    syncOnFlush: Boolean(o.syncOnFlush),
    log,
  };
}

/** The TLS credentials and access rules, read once for both listeners (NBD and control share them). */
const tlsCache = new WeakMap<Record<string, unknown>, { tls?: NbdTls; access?: NbdAccess }>();
function tlsAndAccessFrom(o: Record<string, unknown>): { tls?: NbdTls; access?: NbdAccess } {
  let r = tlsCache.get(o);
  if (r) return r;
  // Loaded here, not at the top: only the daemons need TLS and the access rules.
  const { pskTls, x509Tls } = require('../../nbd/nbd-tls') as typeof import('../../nbd/nbd-tls');
  const { NbdAccess } = require('../../nbd/nbd-access') as typeof import('../../nbd/nbd-access');
  r = { tls: o.tlsPsk ? pskTls(o.tlsPsk as string) : o.tlsCerts ? x509Tls(o.tlsCerts as string) : undefined, access: o.nbdAccess ? NbdAccess.fromFile(o.nbdAccess as string) : undefined };
  tlsCache.set(o, r);
  return r;
}

/** `--control-listen`: the control channel over TCP, with NBD's TLS credentials, rules and --insecure. */
export function controlTcpFrom(o: Record<string, unknown>): ControlTcpOptions | undefined {
  if (!o.controlListen) return undefined;
  if (o.tlsPsk && o.tlsCerts) throw new ChronoError('BAD_ARGUMENT', 'give --tls-psk or --tls-certs, not both');
  if (o.nbdAccess && !(o.tlsPsk || o.tlsCerts)) throw new ChronoError('BAD_ARGUMENT', '--nbd-access applies to TLS identities: give --tls-psk or --tls-certs');
  if ((o.tlsPsk || o.tlsCerts) && o.insecure) throw new ChronoError('BAD_ARGUMENT', '--insecure and TLS contradict each other');
  const { tls, access } = tlsAndAccessFrom(o);
  if (!tls && !o.insecure) throw new ChronoError('BAD_ARGUMENT', '--control-listen needs TLS: give --tls-psk FILE or --tls-certs DIR (or --insecure for plain TCP that anyone who reaches the port may drive)');
  return { listen: o.controlListen as string, tls, insecure: Boolean(o.insecure), access };
}

export function register(program: Command): void {
  const cmd = program
    .command('serve')
    .description("serve the volume over NBD: export 'live' (read-write) and clone/<name> (read-write), every event, seq:<n> or time (read-only)")
    .argument('<dir>', 'volume directory')
    .option('--cache <bytes>', 'LRU cache of reconstructed blocks', parseSize, DEFAULTS.blockCacheBytes)
    .option('--archive-cache <bytes>', 'on-disk cache of data read from the archive (chunks and offset tables, kept across restarts) under <dir>/archive-cache; 0: off', parseSize, DEFAULTS.archiveCacheBytes)
    .option('--retention-every <duration>', "apply the volume's stored retention policy (forget --save) this often, e.g. 1h", parseRetentionDuration)
    .option('--seal-after <duration>', 'seal the current segment once no write has come for this long, so the last writes reach the archive (e.g. 30s, 5m; 0: off)', parseDurationMs, DEFAULTS.sealAfterMs);
  addArchiveBacklogOptions(cmd, 'daemon');
  addNbdOptions(cmd).addHelpText('after', `
Examples (local clients use the Unix socket; TCP needs TLS):
  qemu-img convert -n -O raw disk.img 'nbd+unix:///live?socket=/srv/vol/nbd.sock'
  qemu-io -f raw 'nbd+unix:///before-upgrade?socket=/srv/vol/nbd.sock' -c 'read -v 0 512'
  qemu-io -f raw 'nbd+unix:///clone/try1?socket=/srv/vol/nbd.sock' -c 'write -P 7 0 64k' -c flush
  chronovol serve /srv/vol --listen 0.0.0.0:10809 --tls-psk /etc/chronovol/keys.psk
  qemu-img info --object tls-creds-psk,id=tls0,endpoint=client,dir=/etc/qemu-psk,username=replica \\
    --image-opts driver=nbd,host=server,port=10809,export=live,tls-creds=tls0
See docs/SECURITY.md and the README's NBD section.`)
    .action(async (dir: string, o) => {
      const { DaemonHost } = await import('../../daemon/daemon-host');
      const { createLogger } = await import('../../log');
      const { runUntilStopped } = await import('../daemon-lifecycle');
      const log = createLogger();
      const vdir = volumeDirOf(dir);
      const daemon = await DaemonHost.start({ dir: vdir, cacheBytes: o.cache, archiveCacheBytes: o.archiveCache, log, nbd: nbdOptionsFrom(o, vdir, log), controlTcp: controlTcpFrom(o), sealAfterMs: o.sealAfter, archiveBacklogBytes: o.archiveBacklog, archiveStallTimeoutMs: o.archiveStallTimeout });
      const stopRetention = o.retentionEvery ? (await import('../../retention/retention-schedule')).startRetentionSchedule(daemon.volume, o.retentionEvery, log) : () => undefined;
      daemon.onStopped = runUntilStopped(log, () => (stopRetention(), daemon.stop()));
      const control = daemon.controlAddress ? `; control on ${daemon.controlAddress}` : '';
      process.stdout.write(`serving ${vdir} on ${daemon.nbdAddresses.join(' and ')}${control} (pid ${process.pid}); Ctrl-C to stop\n`);
    });
}
