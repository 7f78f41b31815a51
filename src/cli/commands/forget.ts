import { Command } from 'commander';
import { controlCall } from '../../control/control-client';
import type { ForgetReport } from '../../retention/forget';
import { parseCount } from '../../options';
import { formatRetentionDuration, parseRetentionDuration } from '../../retention/policy';
import { formatBytes, printJson, printTable } from '../output';
import { viaDaemonOrVolume } from '../target';

const COUNTS: Array<[string, string, string]> = [
  ['--keep-last <n>', 'keepLast', 'the n newest events'],
  ['--keep-hourly <n>', 'keepHourly', 'the newest event of each of the last n hours that have one (UTC)'],
  ['--keep-daily <n>', 'keepDaily', 'the newest event of each of the last n days that have one'],
  ['--keep-weekly <n>', 'keepWeekly', 'the newest event of each of the last n ISO weeks that have one'],
  ['--keep-monthly <n>', 'keepMonthly', 'the newest event of each of the last n months that have one'],
  ['--keep-yearly <n>', 'keepYearly', 'the newest event of each of the last n years that have one'],
];

export function register(program: Command): void {
  const cmd = program
    .command('forget')
    .description('apply a retention policy: drop the events it does not keep (pinned ones always stay)')
    .argument('<target>', 'volume directory or the mountpoint of a running `chronovol mount`');
  for (const [flag, , help] of COUNTS) cmd.option(flag, `keep ${help}`, parseCount);
  cmd
    .option('--keep-within <duration>', 'keep every event at most this long before the newest (e.g. 36h, 30d, 1y)', parseRetentionDuration)
    .option('--keep-all-within <duration>', 'keep every write of this long before now reachable (at/<time> to the millisecond), and every event in it', parseRetentionDuration)
    .option('--save', "store this policy in the volume's config: forget without --keep-* and a daemon's --retention-every use it")
    .option('--dry-run', 'only say what would go and what stays, and why')
    .option('--json', 'print JSON')
    .addHelpText('after', `
Events a policy does not keep are forgotten: gone from events/ and the CLI, and their points
(and every point between kept events, outside --keep-all-within) answer POINT_FORGOTTEN naming
the nearest kept points. Durations: ms s m(inutes) h d w y, combined (1d12h).

Examples:
  chronovol forget /srv/vol --keep-last 3 --dry-run
  chronovol forget /srv/vol --keep-daily 7 --keep-weekly 5 --keep-all-within 1d --save
  chronovol forget /srv/vol               apply the stored policy`)
    .action(async (target: string, o) => {
      const policy: Record<string, string | number> = {};
      for (const [, field] of COUNTS) if (o[field] !== undefined) policy[field] = o[field];
      if (o.keepWithin !== undefined) policy.keepWithin = formatRetentionDuration(o.keepWithin);
      if (o.keepAllWithin !== undefined) policy.keepAllWithin = formatRetentionDuration(o.keepAllWithin);
      const req = { op: 'forget', policy: Object.keys(policy).length ? policy : undefined, save: !!o.save, dryRun: !!o.dryRun };
      const r = (await viaDaemonOrVolume(target, 'forget',
        (socket) => controlCall(socket, { method: 'retention', params: req }),
        async (vol) => (await import('../../retention/retention-requests')).retentionRequest(vol, req))) as ForgetReport;
      if (o.json) return printJson(r);
      const rows = [...r.kept.map((e) => ({ ...e, keep: true })), ...r.forgotten.map((e) => ({ ...e, keep: false }))].sort((a, b) => a.id - b.id);
      process.stdout.write(`${r.dryRun ? 'would apply' : 'applied'}: ${r.policyText}\n`);
      if (rows.length) printTable([['ID', 'TIME (UTC)', 'LABEL', r.dryRun ? 'WOULD' : 'DONE', 'WHY'], ...rows.map((e) => [String(e.id), e.time, e.label, e.keep ? 'keep' : 'forget', e.reasons.join(', ')])]);
      process.stdout.write(`${r.kept.length} kept, ${r.forgotten.length} ${r.dryRun ? 'to forget' : 'forgotten'}; every point from seq ${r.continuousFromSeq} on stays; a prune would free ${formatBytes(r.prunableBytes ?? 0)} (${r.prunableVersions} versions)\n`);
    });
}
