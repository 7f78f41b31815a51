import { Command } from 'commander';
import { ProgressBar, printJson } from '../output';
import { openForCli, volumeDirOf } from '../target';

export function register(program: Command): void {
  program
    .command('verify')
    .description('check every checksum, the index against the log, and the archive for gaps; exits 1 on damage')
    .argument('<dir>', 'volume directory (not while a daemon holds it)')
    .option('--json', 'print the report as JSON')
    .action(async (dir: string, o) => {
      const { verifyVolume } = await import('../../volume/verify');
      const vol = await openForCli(volumeDirOf(dir), 'verify');
      let ok = false;
      try {
        const bar = new ProgressBar('verify', 0, false);
        const report = await verifyVolume(vol.internals, (d, t) => {
          Object.assign(bar, { total: t });
          bar.update(d);
        });
        bar.done();
        ok = report.ok;
        if (o.json) printJson(report);
        else {
          const c = report.checked;
          process.stdout.write(`checked ${c.primarySegments} primary and ${c.archivedSegments} archived segments, ${c.records} records, ${c.blocks} blocks, ${c.indexEntries} index entries\n`);
          for (const p of report.problems) process.stdout.write(`DAMAGE ${p.kind}${p.segment !== undefined ? ` segment ${p.segment}` : ''}${p.offset !== undefined ? ` offset ${p.offset}` : ''}: ${p.message}\n`);
          process.stdout.write(report.ok ? 'ok\n' : `${report.problems.length} problem(s) found\n`);
        }
      } finally {
        await vol.close();
      }
      if (!ok) process.exitCode = 1;
    });
}
