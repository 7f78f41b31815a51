import { Command } from 'commander';
import * as path from 'node:path';
import { archiveSettings, checkNotSealed, openStore } from '../../archive/open-store';
import { recoverFromArchive } from '../../archive/recover';
import { ChronoError } from '../../errors';
import { FILE_NAMES } from '../../format/constants';
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
    .option('--json', 'print the report as JSON')
    .action(async (dir: string, o) => {
      const bars = new Map<string, ProgressBar>();
      if (o.encrypt && !o.keyFile) throw new ChronoError('BAD_ARGUMENT', '--encrypt needs --key-file FILE: the key the archive was sealed with');
      const { settings } = archiveSettings({ archive: o.archive, endpoint: o.archiveEndpoint, region: o.archiveRegion, keyFile: o.keyFile });
      if (!settings.encryption) await checkNotSealed(openStore(settings), FILE_NAMES.archiveSuperblock);
      const report = await recoverFromArchive(settings, path.resolve(dir), {
        progress: (phase, done, total) => {
          if (!bars.has(phase)) bars.set(phase, new ProgressBar(phase, total, false));
          bars.get(phase)!.update(done);
        },
      });
      for (const b of bars.values()) b.done();
      if (o.json) return printJson(report);
      process.stdout.write(`recovered ${report.segments} archived segments: ${report.events} events, ${report.versions} block versions, up to seq ${report.lastSeq}; ${report.materializedBlocks} live blocks copied into the working set\n`);
    });
}
