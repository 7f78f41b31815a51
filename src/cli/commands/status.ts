import { Command } from 'commander';
import { controlCall } from '../../control/control-client';
import type { VolumeStatus } from '../../volume/volume-status';
import { formatBytes, printJson } from '../output';
import { viaDaemonOrVolume } from '../target';

export function register(program: Command): void {
  program
    .command('status')
    .description('segments by state, working set, archive, versions, write amplification')
    .argument('<target>', 'volume directory or mountpoint')
    .option('--json', 'print as JSON')
    .action(async (target: string, o) => {
      const s = await viaDaemonOrVolume(target, 'status', async (socket) => (await controlCall(socket, { method: 'status' })) as VolumeStatus, (vol) => vol.status(), true);
      if (o.json) return printJson(s);
      const lines = [
        `volume      ${s.volume.id}  ${formatBytes(s.volume.sizeBytes)}, ${s.volume.blockSizeBytes}-byte blocks, created ${s.volume.createdAt}`,
        `segments    current ${s.segments.current}; active ${s.segments.active.length}; awaiting archive ${s.segments.awaitingArchive.length}; in primary ${s.segments.inPrimary} of at most ${s.segments.primaryLimit} (working set K=${s.volume.workingSetSegments} x ${formatBytes(s.volume.segmentSizeBytes)})`,
        `archive     ${s.archive.location}: ${s.archive.segments ?? '?'} segments, ${s.archive.bytes === null ? '?' : formatBytes(s.archive.bytes)}${s.archive.error ? `  ERROR: ${s.archive.error}` : ''}`,
        `archive lag ${s.archive.lag.segments} segments, ${formatBytes(s.archive.lag.bytes)}, ${s.archive.lag.seconds.toFixed(1)} s (archived through segment ${s.archive.archivedThrough})`,
        `log         seq ${s.log.lastSeq}; ${s.log.versions} block versions; ${s.log.events} events; ${formatBytes(s.log.bytesWritten)} written`,
        `copy-fwd    ${formatBytes(s.log.copyForwardBytes)} copied forward; write amplification ${s.log.copyForwardWriteAmp.toFixed(3)}`,
        `index       ${s.index.versions} versions in ${s.index.runs} runs + ${s.index.memtableVersions} in memory; ${s.index.relocatedBlocks} live blocks relocated`,
        `checksums   CRC32C by ${s.crcEngine}`,
      ];
      process.stdout.write(lines.join('\n') + '\n');
    });
}
