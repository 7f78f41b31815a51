import { Command } from 'commander';
import { CloneInfo, CloneService, clonesOf } from '../../clone/clone-service';
import { ChronoError } from '../../errors';
import { controlCall } from '../../control/control-client';
import { formatBytes, printJson, printTable } from '../output';
import { viaDaemonOrVolume } from '../target';

type CloneOp = { op: 'create'; name: string; at: string } | { op: 'delete'; name: string } | { op: 'list' };

/** Which of create / --delete / --list the options ask for; bad combinations are usage errors. */
function opOf(name: string | undefined, o: { at?: string; delete?: boolean; list?: boolean }): CloneOp {
  const modes = [o.at !== undefined, !!o.delete, !!o.list].filter(Boolean).length;
  if (modes !== 1) throw new ChronoError('BAD_ARGUMENT', 'give exactly one of --at <point>, --delete or --list');
  if (o.list) {
    if (name !== undefined) throw new ChronoError('BAD_ARGUMENT', '--list takes no clone name');
    return { op: 'list' };
  }
  if (name === undefined) throw new ChronoError('BAD_ARGUMENT', 'a clone name is required');
  CloneService.checkName(name);
  return o.delete ? { op: 'delete', name } : { op: 'create', name, at: o.at! };
}

export function register(program: Command): void {
  program
    .command('clone')
    .description('make, list or discard clones: writable images of any point whose writes never reach history')
    .argument('<target>', 'volume directory or the mountpoint of a running `chronovol mount`')
    .argument('[name]', 'clone name (letters, digits, . _ -)')
    .option('--at <point>', 'make clone <name> of this point (live, an event id or label, seq:<n>, an ISO-8601 time)')
    .option('--delete', 'discard clone <name> and everything written into it')
    .option('--list', 'list the clones')
    .option('--json', 'print JSON')
    .action(async (target: string, name: string | undefined, o) => {
      const req = opOf(name, o);
      const result = await viaDaemonOrVolume(target, 'clone',
        (socket) => controlCall(socket, { method: 'clone', params: req }),
        async (vol) => {
          const s = clonesOf(vol);
          try {
            return await s.request(req);
          } finally {
            await s.closeAll();
          }
        });
      if (o.json) return printJson(result);
      if (req.op === 'list') {
        const rows = (result as CloneInfo[]).map((c) => [c.name, c.point, String(c.seq), c.time ?? '-', formatBytes(c.overlayBytes)]);
        if (rows.length) printTable([['NAME', 'POINT', 'SEQ', 'TIME', 'WRITTEN'], ...rows]);
        else process.stdout.write('no clones\n');
      } else if (req.op === 'create') {
        const c = result as CloneInfo;
        process.stdout.write(`clone ${c.name} of ${c.point} (seq ${c.seq}); its image is clones/${c.name}/volume.img under a mount\n`);
      } else process.stdout.write(`clone ${req.name} discarded\n`);
    });
}
