import { Command } from 'commander';
import { controlCall } from '../../control/control-client';
import type { Pin } from '../../retention/pins';
import { printJson, printTable } from '../output';
import { viaDaemonOrVolume } from '../target';

export function register(program: Command): void {
  program
    .command('pin')
    .description('hold a point so no forget or prune ever removes it; without a point, list the pins')
    .argument('<target>', 'volume directory or the mountpoint of a running `chronovol mount`')
    .argument('[point]', 'an event id or label, seq:<n>, an ISO-8601 time, or live (the state now)')
    .option('--reason <text>', 'why it is held; forget --dry-run shows it', '')
    .option('--json', 'print JSON')
    .addHelpText('after', `
Examples:
  chronovol pin /srv/vol before-upgrade --reason "rollback target until the upgrade is signed off"
  chronovol pin /srv/vol                 list every pin (clones hold their base points too)
  chronovol unpin /srv/vol before-upgrade`)
    .action(async (target: string, point: string | undefined, o) => {
      const req = point === undefined ? { op: 'pins' } : { op: 'pin', point, reason: o.reason };
      const result = await viaDaemonOrVolume(target, 'pin',
        (socket) => controlCall(socket, { method: 'retention', params: req }),
        async (vol) => (await import('../../retention/retention-requests')).retentionRequest(vol, req));
      if (o.json) return printJson(result);
      if (point === undefined) {
        const pins = result as Pin[];
        if (!pins.length) return void process.stdout.write('no pins\n');
        printTable([['POINT', 'SEQ', 'HOLDER', 'SINCE', 'REASON'], ...pins.map((p) => [p.point, String(p.seq), p.holder, p.createdAt, p.reason])]);
      } else {
        const p = result as Pin;
        process.stdout.write(`pinned ${p.point} (seq ${p.seq})${p.reason ? `: ${p.reason}` : ''}\n`);
      }
    });
}
