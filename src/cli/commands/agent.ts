import { Command } from 'commander';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { controlCall } from '../../control/control-client';
import { ChronoError } from '../../errors';
import { DEFAULTS, parseDurationMs } from '../../options';
import type { SyncEvent } from '../../service/images';
import { printJson } from '../output';

function run(what: string, args: string[]): void {
  const r = spawnSync(args[0], args.slice(1), { encoding: 'utf8', stdio: ['ignore', 'inherit', 'pipe'] });
  if (r.status !== 0) throw new ChronoError('IO', `${what} failed (exit ${r.status ?? r.signal}): ${(r.stderr || r.error?.message || '').trim()}`);
}

/** protect's control socket: a state directory, or the socket itself. */
function protectSocket(p: string): string {
  const abs = path.resolve(p);
  return fs.existsSync(abs) && fs.statSync(abs).isDirectory() ? path.join(abs, 'control.sock') : abs;
}

/**
 * One application-consistent event: pre hook, freeze, event (protect turns its dirty bitmap over
 * with it), thaw (always, also when the event fails), post hook (only after a thaw).
 */
export async function agentSync(o: { protect: string; label?: string; freeze?: string; pre?: string; post?: string }): Promise<SyncEvent> {
  if (o.pre) run('the pre hook', ['sh', '-c', o.pre]);
  let event: SyncEvent;
  if (o.freeze) run(`fsfreeze -f ${o.freeze}`, ['fsfreeze', '-f', o.freeze]);
  try {
    event = (await controlCall(protectSocket(o.protect), { method: 'sync', params: { label: o.label, kind: 'app' } })) as SyncEvent;
  } finally {
    if (o.freeze) run(`fsfreeze -u ${o.freeze}`, ['fsfreeze', '-u', o.freeze]);
  }
  if (o.post) run('the post hook', ['sh', '-c', o.post]);
  return event;
}

export function register(program: Command): void {
  const agent = program.command('agent').description('on the protected host: application-consistent events for `chronovol protect`');
  agent
    .command('sync')
    .description('record an application-consistent event: pre hook, fsfreeze, event, thaw (always), post hook')
    .requiredOption('--label <label>', 'name for the event (a point: export --at LABEL, restore --at LABEL)')
    .option('--protect <state-dir>', "protect's state directory (or its control.sock)", DEFAULTS.protectStateDir)
    .option('--freeze <mountpoint>', 'fsfreeze this file system (on the protected disk) around the event')
    .option('--pre <command>', 'shell command before the freeze (e.g. a database checkpoint); its failure aborts the event')
    .option('--post <command>', 'shell command after the thaw')
    .option('--every <duration>', 'repeat at this interval until stopped (a failed event is reported, and the next one tried)', parseDurationMs)
    .option('--json', 'print each event as JSON')
    .addHelpText('after', `
Examples:
  chronovol agent sync --label nightly --freeze /mnt/app --pre 'psql -c CHECKPOINT'
  chronovol agent sync --label hourly --freeze /mnt/app --every 1h`)
    .action(async (o) => {
      const once = async () => {
        const e = await agentSync(o);
        if (o.json) printJson(e);
        else process.stdout.write(`event ${e.id} at seq ${e.seq} (${new Date(e.timeMs).toISOString()}) '${e.label}'\n`);
      };
      if (!o.every) return once();
      for (;;) {
        await once().catch((err: Error) => process.stderr.write(`chronovol: ${err.message}${err instanceof ChronoError ? ` [${err.code}]` : ''}\n`));
        await new Promise((r) => setTimeout(r, o.every));
      }
    });
}
