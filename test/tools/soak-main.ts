/**
 * `scripts/soak [--cycles N] [--seed S] [--size BYTES]`: the SIGKILL soak of issue 10 (see
 * test/tools/soak.ts). Prints cycles, writes checked, events checked and problems; exit 1 on any
 * problem, 3 when it stopped early with under 4 GiB free, 2 for bad usage. By default history is
 * bounded (forget to the newest 50 events and prune every 20 cycles, the prune racing the load
 * and the kill); --keep-all keeps everything (about 80 GB per 1,000 cycles).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cliJson } from '../helpers/cli';
import { runSoak } from './soak';

function arg(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const cycles = Number(arg(args, '--cycles') ?? 100);
  const seed = Number(arg(args, '--seed') ?? Math.floor(Math.random() * 2 ** 32));
  const size = arg(args, '--size') ?? '16M';
  const keepAll = args.includes('--keep-all');
  const keepEvents = Number(arg(args, '--keep-events') ?? 50);
  const pruneEveryCycles = Number(arg(args, '--prune-every') ?? 20);
  if (![cycles, seed, keepEvents, pruneEveryCycles].every((x) => Number.isInteger(x) && x >= 0) || cycles === 0 || pruneEveryCycles === 0) {
    process.stderr.write('usage: scripts/soak [--cycles N] [--seed S] [--size BYTES] [--keep-events N] [--prune-every CYCLES] [--keep-all]\n');
    process.exit(2);
  }
  // Not tmpfs: the daemon writes its segments with O_DIRECT where it can, as in use.
  const root = fs.mkdtempSync('/var/tmp/chronovol-soak-');
  const dir = path.join(root, 'vol');
  const mnt = path.join(root, 'mnt');
  try {
    cliJson(['init', dir, '--size', size, '--segment-size', '1M']);
    const history = keepAll ? 'all history kept' : `every ${pruneEveryCycles} cycles forget all but ${keepEvents} events, then prune under load`;
    console.log(`soak: ${cycles} cycles, seed ${seed}, volume ${size} (replay: --seed ${seed}); ${history}; SIGKILL only, no simulated power cut`);
    const t = Date.now();
    const r = await runSoak({ dir, mountpoint: mnt, cycles, seed, log: (l) => console.log(l), minFreeBytes: 4 * 2 ** 30, ...(keepAll ? {} : { keepEvents, pruneEveryCycles }) });
    console.log(`soak: cycles ${r.cycles}, writes checked ${r.writesChecked}, blocks checked ${r.blocksChecked}, events recorded ${r.eventsRecorded}, events checked ${r.eventsChecked}, events forgotten ${r.eventsForgotten}, prunes ${r.prunesCompleted} of ${r.prunesStarted} completed, problems ${r.problems.length} (${((Date.now() - t) / 1000).toFixed(0)} s, seed ${seed})`);
    for (const p of r.problems.slice(0, 20)) console.log(`  ${p}`);
    if (r.problems.length) process.exitCode = 1;
    else if (r.stoppedForSpace) {
      console.log(`soak: stopped after ${r.cycles} of ${cycles} cycles: under 4 GiB free; not a pass`);
      process.exitCode = 3;
    }
  } catch (err) {
    console.log(`soak: FAILED (seed ${seed}): ${(err as Error).stack}`);
    process.exitCode = 1;
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

void main();
