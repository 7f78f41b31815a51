import { Command } from 'commander';
import * as path from 'node:path';
import { ProgressBar, printJson } from '../output';

export function register(program: Command): void {
  program
    .command('recover')
    .description('rebuild a volume directory from its archive alone (disaster recovery)')
    .argument('<dir>', 'new, empty volume directory')
    .requiredOption('--archive <path|url>', 'the lost volume\'s archive: a directory, or s3://bucket/prefix')
    .option('--archive-endpoint <url>', 'S3 endpoint, e.g. http://127.0.0.1:7480 (default: AWS); credentials from the AWS chain')
    .option('--archive-region <region>', 'S3 region (default us-east-1)')
    .option('--encrypt', 'the archive was created with --encrypt (implied by --key-file)')
    .option('--key-file <file>', 'the archive key file, for an archive created with --encrypt')
    .option('--accept-partial', 'if the archive is incomplete, recover its provably complete part (up to the first missing segment) instead of refusing; the objects after it are moved to unrecovered/ in the archive')
    .option('--json', 'print the report as JSON')
    .action(async (dir: string, o) => {
      const { recoverFromArchive } = await import('../../volume/recover');
      const bars = new Map<string, ProgressBar>();
      const { archiveSettings, checkNotSealed, openStore } = await import('../../archive/open-store');
      const { ChronoError } = await import('../../errors');
      const { FILE_NAMES } = await import('../../format/constants');
      if (o.encrypt && !o.keyFile) throw new ChronoError('BAD_ARGUMENT', '--encrypt needs --key-file FILE: the key the archive was sealed with');
      const { settings } = archiveSettings({ archive: o.archive, endpoint: o.archiveEndpoint, region: o.archiveRegion, keyFile: o.keyFile });
      if (!settings.encryption) await checkNotSealed(openStore(settings), FILE_NAMES.archiveSuperblock);
      const report = await recoverFromArchive(settings, path.resolve(dir), {
        acceptPartial: o.acceptPartial === true,
        progress: (phase, done, total) => {
          if (!bars.has(phase)) bars.set(phase, new ProgressBar(phase, total, false));
          bars.get(phase)!.update(done);
        },
      });
      for (const b of bars.values()) b.done();
      if (o.json) return printJson(report);
      process.stdout.write(`recovered ${report.segments} archived segments: ${report.events} events, ${report.versions} block versions, up to seq ${report.lastSeq}; ${report.materializedBlocks} live blocks copied into the working set\n`);
      process.stdout.write(`what the volume wrote after the archive's last record (${report.lostFrom}) was not archived: times from then up to now answer POINT_LOST\n`);
      if (report.missing) process.stdout.write(`PARTIAL: ${report.missing.description}; the recovered volume ends at seq ${report.lastSeq}. Unusable objects were moved to ${report.missing.movedTo}\n`);
      if (report.missing?.droppedPins) process.stdout.write(`note: ${report.missing.droppedPins} pins held points past seq ${report.lastSeq}, which were not recovered; they were dropped\n`);
      if (!report.missing && report.unrecoveredObjects > 0) process.stdout.write(`note: ${report.unrecoveredObjects} archived segments lie in unrecovered/ from an earlier partial recovery: the history they held is not in this volume\n`);
      if (!report.headPresent && report.segments > 0) process.stdout.write('note: this archive predates its head (volume.cvhd), so a missing newest segment could not have been detected\n');
    });
}
