import { Command } from 'commander';
import { createHash } from 'node:crypto';
import { ChronoError } from '../../errors';
import { parseSize } from '../../options';
import { printJson, printTable } from '../output';
import { openForCli, volumeDirOf } from '../target';

export function register(program: Command): void {
  program
    .command('history')
    .description('every version of the blocks under a byte range, oldest first')
    .argument('<target>', 'volume directory (a volume held by a running daemon is refused: LOCKED)')
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
`)
    .action(async (target: string, o) => {
      if (o.length < 1) throw new ChronoError('BAD_ARGUMENT', '--length must be at least 1');
      const { historyOfRange } = await import('../../service/images');
      const vol = await openForCli(volumeDirOf(target), 'history', 0, true);
      try {
        const bs = vol.blockSizeBytes;
        const { firstBlock: first, blockCount, versions } = historyOfRange(vol, o.offset, o.length);
        const end = first + blockCount;
        const rows = [];
        for (const v of versions) {
          const hash = o.hash ? createHash('sha256').update(await vol.read(v.block * bs, bs, { seqLimit: v.seq, name: `seq:${v.seq}` })).digest('hex').slice(0, 16) : undefined;
          rows.push({ ...v, offset: v.block * bs, time: v.timeMs >= 0 ? new Date(v.timeMs).toISOString() : null, ...(hash ? { sha256: hash } : {}) });
        }
        if (o.json) return printJson({ blockSizeBytes: bs, firstBlock: first, blockCount: end - first, versions: rows });
        process.stdout.write(`${rows.length} versions of blocks ${first}..${end - 1} (${bs}-byte blocks)\n`);
        if (rows.length) {
          printTable([
            ['BLOCK', 'SEQ', 'TIME (UTC)', 'EVENT', 'KIND', ...(o.hash ? ['SHA256'] : [])],
            ...rows.map((r) => [String(r.block), String(r.seq), r.time ?? '?', r.event ? `${r.event.id}${r.event.label ? ` (${r.event.label})` : ''}` : '-', r.kind, ...(o.hash ? [r.sha256 ?? ''] : [])]),
          ]);
        }
      } finally {
        await vol.close();
      }
    });
}
