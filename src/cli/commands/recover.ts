import { Command } from 'commander';
import * as path from 'node:path';
import { ProgressBar, printJson } from '../output';

export function register(program: Command): void {
  program
    .command('recover')
    .description('rebuild a volume directory from its archive alone (disaster recovery)')
    .argument('<dir>', 'new, empty volume directory')
    .requiredOption('--archive <path>', 'the backing-store directory of the lost volume')
    .option('--accept-partial', 'if the archive is incomplete, recover its provably complete part (up to the first missing segment) instead of refusing; the objects after it are moved to unrecovered/ in the archive')
    .option('--json', 'print the report as JSON')
    .action(async (dir: string, o) => {
      const { recoverFromArchive } = await import('../../archive/recover');
      const bars = new Map<string, ProgressBar>();
      const report = await recoverFromArchive(o.archive, path.resolve(dir), {
        acceptPartial: o.acceptPartial === true,
        progress: (phase, done, total) => {
          if (!bars.has(phase)) bars.set(phase, new ProgressBar(phase, total, false));
          bars.get(phase)!.update(done);
        },
      });
      for (const b of bars.values()) b.done();
      if (o.json) return printJson(report);
      process.stdout.write(`recovered ${report.segments} archived segments: ${report.events} events, ${report.versions} block versions, up to seq ${report.lastSeq}; ${report.materializedBlocks} live blocks copied into the working set\n`);
      if (report.missing) process.stdout.write(`PARTIAL: ${report.missing.description}; the recovered volume ends at seq ${report.lastSeq}. Unusable objects were moved to ${report.missing.movedTo}\n`);
      if (!report.missing && report.unrecoveredObjects > 0) process.stdout.write(`note: ${report.unrecoveredObjects} archived segments lie in unrecovered/ from an earlier partial recovery: the history they held is not in this volume\n`);
      if (!report.headPresent && report.segments > 0) process.stdout.write('note: this archive predates its head (volume.cvhd), so a missing newest segment could not have been detected\n');
    });
}
