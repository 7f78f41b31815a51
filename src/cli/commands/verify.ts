import { Command } from 'commander';
import { ChronoError, ErrorCode, isChronoError } from '../../errors';
import { parseCount } from '../../options';
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
    .option('--archive', 'scrub the archive in place instead: list every object, check every segment\'s header and trailer and the chain to the archive head (works while the volume is mounted)')
    .option('--read-data [fraction]', 'with --archive: also read segments whole and check every checksum: all of them, or a seeded sample (e.g. 0.1)', parseFraction)
    .option('--seed <n>', 'with --read-data=FRACTION: the sample\'s seed (printed by every run), to read the same segments again', parseCount)
    .option('--json', 'print the report as JSON')
    .addHelpText('after', '\nExamples:\n  chronovol verify /srv/vol1\n  chronovol verify /srv/vol1 --archive --read-data=0.1   # heads of every object, a tenth of the data\n')
    .action(async (dir: string, o) => {
      if ((o.readData !== undefined || o.seed !== undefined) && !o.archive) throw new ChronoError('BAD_USAGE', '--read-data and --seed go with --archive');
      if (o.archive) return scrub(dir, o);
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

/** `--read-data` alone is 1 (everything); a value is a fraction from 0 to 1. */
function parseFraction(text: string): number {
  const n = /^(0(\.\d+)?|1(\.0*)?|\.\d+)$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!Number.isFinite(n)) throw new ChronoError('BAD_USAGE', `--read-data takes a fraction from 0 to 1, e.g. 0.1; got ${text}`);
  return n;
}

/** verify --archive: the archive scrubbed in place from the volume's settings (no lock taken). */
async function scrub(dir: string, o: { readData?: number | true; seed?: number; json?: boolean }): Promise<void> {
  const { scrubArchive } = await import('../../archive/archive-scrub');
  const { openStore } = await import('../../archive/open-store');
  const { VolumeDir } = await import('../../volume/volume-dir');
  const { NodeFileSystem } = await import('../../storage/node-file-system');
  const vd = new VolumeDir(new NodeFileSystem(), volumeDirOf(dir));
  const store = openStore(vd.readConfig());
  const bar = new ProgressBar('scrub', 0, false);
  const report = await scrubArchive(store, {
    sb: vd.readSuperblock(),
    readDataFraction: o.readData === true ? 1 : o.readData ?? 0,
    seed: o.seed,
    progress: (d, t) => {
      Object.assign(bar, { total: t });
      bar.update(d);
    },
  });
  bar.done();
  (store as { destroy?: () => void }).destroy?.();
  if (!report.ok) process.exitCode = 1;
  if (o.json) return printJson(report);
  const c = report.checked;
  const sample = report.readDataFraction > 0 && report.readDataFraction < 1 ? ` (a ${report.readDataFraction} sample, seed ${report.seed})` : '';
  process.stdout.write(`${store.description}: ${c.objects} objects listed, ${c.segmentHeads} segment heads checked, ${c.segmentsRead} segments read whole${sample}, ${c.bytesRead} bytes\n`);
  for (const p of report.problems) process.stdout.write(`DAMAGE ${p.kind}${p.code ? ` [${p.code}]` : ''}${p.segment !== undefined ? ` segment ${p.segment}` : ''}: ${p.message}\n`);
  process.stdout.write(report.ok ? 'ok\n' : `${report.problems.length} problem(s) found\n`);
}
