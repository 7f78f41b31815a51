/**
 * `scripts/stress [--minutes N] [--seed S] [--clients C] [--stall-ms MS] [--huge]`: the NBD stress of
 * test/nbd-stress.test.ts, run long. Exit 0 with its figures, 1 when the watchdog or a check
 * fires, 2 for bad usage.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cliJson } from '../helpers/cli';
import { runStress } from './nbd-stress';

function arg(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const minutes = Number(arg(args, '--minutes') ?? 10);
  const seed = Number(arg(args, '--seed') ?? Math.floor(Math.random() * 2 ** 32));
  const clients = Number(arg(args, '--clients') ?? 4);
  const stallMs = Number(arg(args, '--stall-ms') ?? 30_000);
  const huge = args.includes('--huge');
  if (![minutes, seed, clients, stallMs].every((x) => Number.isFinite(x) && x > 0)) {
    process.stderr.write('usage: scripts/stress [--minutes N] [--seed S] [--clients C] [--stall-ms MS] [--huge]\n');
    process.exit(2);
  }
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'chronovol-stress-'));
  const dir = path.join(root, 'vol');
  try {
    cliJson(['init', dir, '--size', '16M', '--segment-size', '1M']);
    console.log(`stress: ${minutes} min, seed ${seed}, ${clients} clients, watchdog ${stallMs} ms${huge ? ', huge writes and mid-payload disconnects' : ''} (replay: --seed ${seed}${huge ? ' --huge' : ''})`);
    const t = Date.now();
    const r = await runStress({ dir, seconds: minutes * 60, seed, clients, stallMs, huge, lingerMs: 30_000, log: (l) => console.log(l) });
    console.log(`stress: passed in ${((Date.now() - t) / 1000).toFixed(0)} s: ${r.requests} requests (${r.writes} writes, ${r.reads} reads, ${r.flushes} flushes, ${r.syncs} sync events, ${r.reconnects} reconnects, ${r.probes} probes), ${r.blocksChecked} blocks read and checked, longest wait ${r.maxWaitMs} ms`);
  } catch (err) {
    console.log(`stress: FAILED (seed ${seed}): ${(err as Error).message}`);
    process.exitCode = 1;
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

void main();
