import { Command } from 'commander';
import { ErrorCode, isChronoError } from '../../errors';
import type { Volume } from '../../volume/volume';
import type { VerifyReport } from '../../volume/verify';
import { ProgressBar, printJson } from '../output';
import { openForCli, volumeDirOf } from '../target';

/** Errors that say the volume is in use or not a volume: usage problems, not damage. */
const NOT_DAMAGE: ErrorCode[] = ['LOCKED', 'NOT_A_VOLUME', 'BAD_ARGUMENT', 'IO'];

export function register(program: Command): void {
  program
    .command('verify')
    .description('check every checksum, the index against the log, and the archive for gaps; exits 1 on damage')
    .argument('<dir>', 'volume directory (not while a daemon holds it)')
    .option('--json', 'print the report as JSON')
    .action(async (dir: string, o) => {
      let vol: Volume;
      let report: VerifyReport;
      try {
        vol = await openForCli(volumeDirOf(dir), 'verify', 0, true);
      } catch (err) {
        // Damage that stops the volume from opening (a damaged superblock, manifest or index run,
        // damage under the checkpoint) is what verify is for: report it, never just crash.
        if (!isChronoError(err) || NOT_DAMAGE.includes(err.code)) throw err;
        report = { ok: false, problems: [{ kind: 'open', code: err.code, segment: numberOr(err.details.segment), offset: numberOr(err.details.offset), message: `the volume cannot be opened: ${err.message}` }], checked: { primarySegments: 0, archivedSegments: 0, records: 0, blocks: 0, indexEntries: 0 } };
        print(report, o.json);
        process.exitCode = 1;
        return;
      }
      try {
        const bar = new ProgressBar('verify', 0, false);
        report = await vol.verify((d, t) => {
          Object.assign(bar, { total: t });
          bar.update(d);
        });
        bar.done();
        print(report, o.json);
      } finally {
        await vol.close();
      }
      if (!report.ok) process.exitCode = 1;
    });
}

function print(report: VerifyReport, json: boolean): void {
  if (json) return printJson(report);
  const c = report.checked;
  process.stdout.write(`checked ${c.primarySegments} primary and ${c.archivedSegments} archived segments, ${c.records} records, ${c.blocks} blocks, ${c.indexEntries} index entries\n`);
  for (const p of report.problems) {
    process.stdout.write(`DAMAGE ${p.kind}${p.code ? ` [${p.code}]` : ''}${p.segment !== undefined ? ` segment ${p.segment}` : ''}${p.offset !== undefined ? ` offset ${p.offset}` : ''}: ${p.message}\n`);
  }
  process.stdout.write(report.ok ? 'ok\n' : `${report.problems.length} problem(s) found\n`);
}

function numberOr(x: unknown): number | undefined {
  return typeof x === 'number' ? x : undefined;
}
