import { Command } from 'commander';
import { controlCall } from '../../control/control-client';
import { ChronoError } from '../../errors';
import type { HistoryResult } from '../../investigate/queries';
import { parseSize } from '../../options';
import { printJson, printTable } from '../output';
import { viaDaemonOrVolume } from '../target';

export function register(program: Command): void {
  program
    .command('history')
    .description('every version of the blocks under a byte range, oldest first')
    .argument('<target>', 'volume directory or mountpoint (a running daemon answers for the volume it holds)')
    .requiredOption('--offset <bytes>', 'start of the byte range', parseSize)
    .option('--length <bytes>', 'length of the byte range (default: one byte, so one block)', parseSize, 1)
    .option('--hash', "add a sha256 (first 16 hex digits) of each version's block bytes")
    .option('--json', 'print as JSON')
    .addHelpText('after', `
Each version shows its block, seq, time, the sync event it belongs to (the first event at or
after it; '-' if none yet) and its kind: 'write' (data), or 'zero|trim' (the index records no
data for either; both read as zeros).

Examples:
  chronovol history /srv/vol1 --offset 1M
  chronovol history /srv/vol1 --offset 0 --length 16K --hash --json
  chronovol history /mnt/vol1 --offset 1M            # a running mount answers
`)
    .action(async (target: string, o) => {
      if (o.length < 1) throw new ChronoError('BAD_ARGUMENT', '--length must be at least 1');
      const h = await viaDaemonOrVolume<HistoryResult>(target, 'history',
        async (socket) => (await controlCall(socket, { method: 'history', params: { offset: o.offset, length: o.length, hash: !!o.hash } })) as HistoryResult,
        async (vol) => (await import('../../investigate/queries')).historyOf(vol, o.offset, o.length, !!o.hash), true);
      if (o.json) return printJson(h);
      const rows = h.versions;
      process.stdout.write(`${rows.length} versions of blocks ${h.firstBlock}..${h.firstBlock + h.blockCount - 1} (${h.blockSizeBytes}-byte blocks)\n`);
      if (rows.length) {
        printTable([
          ['BLOCK', 'SEQ', 'TIME (UTC)', 'EVENT', 'KIND', ...(o.hash ? ['SHA256'] : [])],
          ...rows.map((r) => [String(r.block), String(r.seq), r.time ?? '?', r.event ? `${r.event.id}${r.event.label ? ` (${r.event.label})` : ''}` : '-', r.kind, ...(o.hash ? [r.sha256 ?? ''] : [])]),
        ]);
      }
    });
}
