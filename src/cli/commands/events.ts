import { Command } from 'commander';
import { controlCall } from '../../control/control-client';
import type { ResyncWindow, SyncEvent } from '../../service/images';
import { printJson, printTable } from '../output';
import { viaDaemonOrVolume } from '../target';

/** A resync window as `events` lists it: kind 'resync', no id (it is not a point). */
export interface WindowEntry extends ResyncWindow {
  kind: 'resync';
  seq: number;
  timeMs: number;
  state: 'open' | 'closed';
}

export function register(program: Command): void {
  program
    .command('events')
    .description('list sync events, oldest first, and the resync windows between them (points there are refused)')
    .argument('<target>', 'volume directory or mountpoint')
    .option('--json', "print as JSON: the events, and each resync window as an entry of kind 'resync' (no id)")
    .addHelpText('after', `
Example:
  chronovol events /srv/vol
  ID  SEQ   TIME (UTC)                KIND    CHANGED  LABEL
  1   120   2026-12-01T10:00:00.000Z  app     118      nightly
  -   130   2026-12-01T10:05:00.000Z  resync  -        window 1 (resync): seq 130-190, 12.0 MiB copied`)
    .action(async (target: string, o) => {
      const [events, windows] = await viaDaemonOrVolume(target, 'events',
        async (socket) => [(await controlCall(socket, { method: 'events' })) as SyncEvent[], await windowsOrNone(socket)] as const,
        async (vol) => [[...vol.events], [...vol.resyncWindows]] as const, true);
      const entries: Array<SyncEvent | WindowEntry> = [...events, ...windows.map(windowEntry)].sort((a, b) => a.seq - b.seq);
      if (o.json) return printJson(entries);
      printTable([
        ['ID', 'SEQ', 'TIME (UTC)', 'KIND', 'CHANGED', 'LABEL'],
        ...entries.map((e) => e.kind === 'resync'
          ? ['-', String(e.seq), new Date(e.timeMs).toISOString(), 'resync', '-', describeWindow(e)]
          : [String(e.id), String(e.seq), new Date(e.timeMs).toISOString(), e.kind, String(e.changedBlocks), e.label]),
      ]);
    });
}

/** A daemon from before resync windows answers UNSUPPORTED: it has none. */
async function windowsOrNone(socket: string): Promise<ResyncWindow[]> {
  try {
    return (await controlCall(socket, { method: 'windows' })) as ResyncWindow[];
  } catch {
    return [];
  }
}

export function windowEntry(w: ResyncWindow): WindowEntry {
  return { kind: 'resync', ...w, seq: w.beginSeq, timeMs: w.lostMs || w.beginMs, state: w.endSeq === undefined ? 'open' : 'closed' };
}

function describeWindow(w: WindowEntry): string {
  const copied = w.bytesCopied === undefined ? '' : `, ${(w.bytesCopied / 1048576).toFixed(1)} MiB copied`;
  return `window ${w.id} (${w.reason}): seq ${w.beginSeq}-${w.endSeq ?? 'open'}${copied}`;
}
