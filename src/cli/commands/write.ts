import { Command } from 'commander';
import * as fs from 'node:fs';
import { parseSize } from '../../options';
import { printJson } from '../output';
import { openForCli, volumeDirOf } from '../target';

export function register(program: Command): void {
  program
    .command('write')
    .description('write bytes at an offset of the live volume (durable when the command returns)')
    .argument('<dir>', 'volume directory')
    .requiredOption('--offset <bytes>', 'byte offset to write at', parseSize)
    .option('--input <file>', "data to write; '-' reads stdin", '-')
    .option('--json', 'print the result as JSON')
    .action(async (dir: string, o) => {
      const data = fs.readFileSync(o.input === '-' ? 0 : o.input);
      const vol = await openForCli(volumeDirOf(dir), 'write');
      try {
        await vol.write(o.offset, data);
        await vol.flush();
        if (o.json) printJson({ offset: o.offset, bytes: data.length, seq: vol.lastSeq });
        else process.stdout.write(`wrote ${data.length} bytes at ${o.offset} (seq ${vol.lastSeq})\n`);
      } finally {
        await vol.close();
      }
    });
}
