import { Command } from 'commander';
import { controlCall } from '../../control/control-client';
import { SyncEvent } from '../../volume/events';
import { printJson, printTable } from '../output';
import { openForCli, resolveTarget } from '../target';

export function register(program: Command): void {
  program
    .command('events')
    .description('list sync events, oldest first')
    .argument('<target>', 'volume directory or mountpoint')
    .option('--json', 'print as JSON')
    .action(async (target: string, o) => {
      const t = resolveTarget(target);
      let events: SyncEvent[];
      if (t.daemonSocket) events = (await controlCall(t.daemonSocket, { method: 'events' })) as SyncEvent[];
      else {
        const vol = await openForCli(t.volumeDir!, 'events');
        events = [...vol.events];
        await vol.close();
      }
      if (o.json) return printJson(events);
      printTable([
        ['ID', 'SEQ', 'TIME (UTC)', 'KIND', 'CHANGED', 'LABEL'],
        ...events.map((e) => [String(e.id), String(e.seq), new Date(e.timeMs).toISOString(), e.kind, String(e.changedBlocks), e.label]),
      ]);
    });
}
