import { Command } from 'commander';
import { controlCall } from '../../control/control-client';
import type { SyncEvent } from '../../service/images';
import { printJson, printTable } from '../output';
import { viaDaemonOrVolume } from '../target';

export function register(program: Command): void {
  program
    .command('events')
    .description('list sync events, oldest first')
    .argument('<target>', 'volume directory or mountpoint')
    .option('--json', 'print as JSON')
    .action(async (target: string, o) => {
      const events = await viaDaemonOrVolume(target, 'events', async (socket) => (await controlCall(socket, { method: 'events' })) as SyncEvent[], async (vol) => [...vol.events], true);
      if (o.json) return printJson(events);
      printTable([
        ['ID', 'SEQ', 'TIME (UTC)', 'KIND', 'CHANGED', 'LABEL'],
        ...events.map((e) => [String(e.id), String(e.seq), new Date(e.timeMs).toISOString(), e.kind, String(e.changedBlocks), e.label]),
      ]);
    });
}
