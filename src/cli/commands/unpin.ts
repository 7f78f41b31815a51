import { Command } from 'commander';
import { controlCall } from '../../control/control-client';
import type { Pin } from '../../retention/pins';
import { printJson } from '../output';
import { viaDaemonOrVolume } from '../target';

export function register(program: Command): void {
  program
    .command('unpin')
    .description('release a pin made with `chronovol pin` (a clone releases its own when discarded)')
    .argument('<target>', 'volume directory or the mountpoint of a running `chronovol mount`')
    .argument('<point>', 'the pinned point, as pin named it or as `chronovol pin <target>` lists it')
    .option('--holder <holder>', "release another holder's pin, e.g. rollback:<label> (the undo point a rollback keeps); `chronovol pin <target>` lists holders", 'user')
    .option('--json', 'print JSON')
    .addHelpText('after', `
Examples:
  chronovol unpin /srv/vol before-upgrade    the next forget may drop it, if the policy does not keep it
  chronovol unpin /srv/vol before-fix --holder rollback:fix    give up the undo point of rollback 'fix'`)
    .action(async (target: string, point: string, o) => {
      const req = { op: 'unpin', point, holder: o.holder };
      const p = (await viaDaemonOrVolume(target, 'unpin',
        (socket) => controlCall(socket, { method: 'retention', params: req }),
        async (vol) => (await import('../../retention/retention-requests')).retentionRequest(vol, req))) as Pin;
      if (o.json) return printJson(p);
      process.stdout.write(`unpinned ${p.point} (seq ${p.seq})\n`);
    });
}
