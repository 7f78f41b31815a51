import { Command } from 'commander';
import * as path from 'node:path';
import { ProgressBar, printJson } from '../output';

export function register(program: Command): void {
  program
    .command('recover')
    .description('rebuild a volume directory from its archive alone (disaster recovery)')
    .argument('<dir>', 'new, empty volume directory')
    .requiredOption('--archive <path>', 'the backing-store directory of the lost volume')
    .option('--json', 'print the report as JSON')
    .action(async (dir: string, o) => {
      const { recoverFromArchive } = await import('../../archive/recover');
      const bars = new Map<string, ProgressBar>();
      const report = await recoverFromArchive(o.archive, path.resolve(dir), {
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
