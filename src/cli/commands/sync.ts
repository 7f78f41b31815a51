import { Command } from 'commander';
import { spawnSync } from 'node:child_process';
import { ChronoError } from '../../errors';
import { controlCall } from '../../control/control-client';
import type { SyncEvent } from '../../service/images';
import { printJson } from '../output';
import { viaDaemonOrVolume } from '../target';

function fsfreeze(flag: '-f' | '-u', mountpoint: string): void {
  const r = spawnSync('fsfreeze', [flag, mountpoint], { encoding: 'utf8' });
  if (r.status !== 0) throw new ChronoError('IO', `fsfreeze ${flag} ${mountpoint} failed: ${(r.stderr || r.error?.message || '').trim()}`);
}

export function register(program: Command): void {
  program
    .command('sync')
    .description('record a sync event (a consistency point); everything before it is durable when this returns')
    .argument('<target>', 'volume directory or the mountpoint of a running `chronovol mount`')
    .option('--label <label>', 'name for the event (shows in events/ and works as a point)')
    .option('--freeze <fs-mountpoint>', 'fsfreeze this filesystem (mounted from live/volume.img) around the event, so the image mounts cleanly')
    .option('--kind <kind>', "consistency kind: 'app' or 'crash'", 'app')
    .option('--json', 'print the event as JSON')
    .action(async (target: string, o) => {
      if (o.kind !== 'app' && o.kind !== 'crash') throw new ChronoError('BAD_ARGUMENT', `--kind must be app or crash, got ${o.kind}`);
      let event: SyncEvent;
      if (o.freeze) fsfreeze('-f', o.freeze);
      try {
        event = await viaDaemonOrVolume(target, 'sync',
          async (socket) => (await controlCall(socket, { method: 'sync', params: { label: o.label, kind: o.kind } })) as SyncEvent,
          (vol) => vol.sync({ label: o.label, kind: o.kind }));
      } finally {
        if (o.freeze) fsfreeze('-u', o.freeze); // always thaw, also on error
      }
      if (o.json) printJson(event);
      else process.stdout.write(`event ${event.id} at seq ${event.seq} (${new Date(event.timeMs).toISOString()})${event.label ? ` '${event.label}'` : ''}\n`);
    });
}
