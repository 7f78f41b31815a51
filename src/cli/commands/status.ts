import { Command } from 'commander';
import { controlCall } from '../../control/control-client';
import type { VolumeStatus } from '../../volume/volume-status';
import { formatBytes, printJson } from '../output';
import { viaDaemonOrVolume } from '../target';
import type { ProtectionStatus } from '../../replication/protection-status';

/** `chronovol status <protect state dir>`: the protection first, then the volume. */
function protectionLines(p: ProtectionStatus): string[] {
  const r = p.lastResync;
  return [
    `protection  ${p.state} since ${p.since}${p.disconnectedSince ? `; target lost at ${p.disconnectedSince}` : ''}; lag ${(p.lagMs / 1000).toFixed(1)} s${p.rpoMs !== null ? ` (RPO ${(p.rpoMs / 1000).toFixed(1)} s)` : ''}`,
    `primary     ${p.primary}; last write received ${p.lastWriteReceived ?? 'never'}; ${p.dirtyBytes === null ? '?' : formatBytes(p.dirtyBytes)} dirty since the last event`,
    `resync      ${r ? `${r.reason}: ${formatBytes(r.bytes)} in ${r.seconds.toFixed(2)} s (${r.mbPerSecond.toFixed(0)} MB/s) at ${r.at}` : 'none yet'}; hung targets cut ${p.targetHangsCut}${p.lastError ? `; last error: ${p.lastError}` : ''}`,
  ];
}

/** The archive's state line: ok, retrying since T, or backlog full with writes waiting. */
function archiveState(s: VolumeStatus): string {
  const a = s.archive;
  const b = a.backlog;
  const backlog = `backlog ${b.segments} of ${b.limitSegments} segments (${formatBytes(b.bytes)}); oldest unarchived write ${a.oldestUnarchivedSeconds.toFixed(1)} s old`;
  if (a.state === 'ok') return `ok; ${backlog}`;
  const since = a.failingSince ? ` since ${a.failingSince}` : '';
  const last = a.error ? `; last error: ${a.error}` : '';
  if (a.state === 'retrying') return `RETRYING${since} (writes go on into the backlog); ${backlog}${last}`;
  return `BACKLOG FULL${since}: writes ${a.writesWaitingSince ? `waiting since ${a.writesWaitingSince}` : 'wait'} (up to ${(b.stallTimeoutMs / 1000).toFixed(0)} s, then ENOSPC); ${backlog}${last}`;
}

export function register(program: Command): void {
  program
    .command('status')
    .description('segments by state, working set, archive, versions, write amplification; with a protect state directory, the protection too')
    .argument('<target>', "volume directory, mountpoint, or protect's --state-dir")
    .option('--json', 'print as JSON')
    .action(async (target: string, o) => {
      const s = await viaDaemonOrVolume(target, 'status', async (socket) => (await controlCall(socket, { method: 'status' })) as VolumeStatus, (vol) => vol.status(), true);
      if (o.json) return printJson(s);
      const p = (s as { protection?: ProtectionStatus }).protection;
      if (p) process.stdout.write(protectionLines(p).join('\n') + '\n');
      if (!s.volume) return; // protect's state directory while the volume's daemon is away
      const lines = [
        `volume      ${s.volume.id}  ${formatBytes(s.volume.sizeBytes)}, ${s.volume.blockSizeBytes}-byte blocks, created ${s.volume.createdAt}`,
        `segments    current ${s.segments.current}; active ${s.segments.active.length}; awaiting archive ${s.segments.awaitingArchive.length}; in primary ${s.segments.inPrimary} of at most ${s.segments.primaryLimit} (working set K=${s.volume.workingSetSegments} x ${formatBytes(s.volume.segmentSizeBytes)})`,
        `archive     ${s.archive.location}: ${s.archive.segments ?? '?'} segments, ${s.archive.bytes === null ? '?' : formatBytes(s.archive.bytes)}${s.archive.error ? `  ERROR: ${s.archive.error}` : ''}`,
        `archive state ${archiveState(s)}`,
        `archive lag ${s.archive.lag.segments} segments, ${formatBytes(s.archive.lag.bytes)}, ${s.archive.lag.seconds.toFixed(1)} s (archived through segment ${s.archive.archivedThrough})`,
        `log         seq ${s.log.lastSeq}; ${s.log.versions} block versions; ${s.log.events} events; ${formatBytes(s.log.bytesWritten)} written`,
        `copy-fwd    ${formatBytes(s.log.copyForwardBytes)} copied forward; write amplification ${s.log.copyForwardWriteAmp.toFixed(3)}`,
        `index       ${s.index.versions} versions in ${s.index.runs} runs + ${s.index.memtableVersions} in memory; ${s.index.relocatedBlocks} live blocks relocated`,
        `checksums   CRC32C by ${s.crcEngine}`,
        `retention   ${s.retention.pins} pins; ${s.retention.forgottenEvents} events forgotten; every point from seq ${s.retention.continuousFromSeq} on reachable`,
      ];
      const r = s.rollbackUnfinished;
      if (r) lines.push(`ROLLBACK    UNFINISHED: a rollback to ${r.to} (started ${r.startedAt}) was cut short; live may be part old, part new. Finish it: chronovol rollback ${target} --to ${r.to}; the state before it is event ${r.beforeEvent.id}`);
      process.stdout.write(lines.join('\n') + '\n');
    });
}
