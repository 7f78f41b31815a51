/**
 * Larger runs of the power-loss model than CI's corpus (scripts/crash-sweep): many random seeds,
 * each printed with its result; a failure names the seed to replay it with
 * (CHRONOVOL_SEED=<seed> node --test dist/test/power-loss.test.js, or --seed here).
 */
import { powerLossRun } from './power-loss-run';

function usage(msg: string): never {
  process.stderr.write(`${msg}\nusage: scripts/crash-sweep [--seeds N] [--ops N] [--seed S]\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  let seeds = 50;
  let ops: number | undefined;
  let only: number | undefined;
  for (let i = 0; i < args.length; i++) {
    const num = () => {
      const v = Number(args[++i]);
      if (!Number.isSafeInteger(v) || v < 0) usage(`${args[i - 1]} takes a whole number`);
      return v;
    };
    if (args[i] === '--seeds') seeds = num();
    else if (args[i] === '--ops') ops = num();
    else if (args[i] === '--seed') only = num();
    else usage(args[i] === '-h' || args[i] === '--help' ? '' : `unknown argument: ${args[i]}`);
  }
  const list = only !== undefined ? [only] : Array.from({ length: seeds }, () => Math.floor(Math.random() * 2 ** 32));
  const failed: number[] = [];
  const total = { ops: 0, cuts: 0, reopens: 0, eventsChecked: 0 };
  for (const seed of list) {
    for (const mode of ['mixed', 'ack'] as const) {
      try {
        const s = await powerLossRun(seed, { ops, mode });
        for (const k of Object.keys(total) as Array<keyof typeof total>) total[k] += s[k];
        process.stdout.write(`ok   seed ${seed} (${mode}): ${s.ops} operations, ${s.cuts} power cuts, ${s.reopens} clean reopens, ${s.eventsChecked} event images checked\n`);
      } catch (err) {
        failed.push(seed);
        process.stdout.write(`FAIL seed ${seed} (${mode}): ${(err as Error).stack ?? err}\n     replay: CHRONOVOL_SEED=${seed} node --test dist/test/power-loss.test.js\n`);
      }
    }
  }
  process.stdout.write(`${list.length * 2 - failed.length} of ${list.length * 2} runs (${list.length} seeds, two modes) passed (${total.ops} operations, ${total.cuts} power cuts, ${total.reopens} clean reopens, ${total.eventsChecked} event images checked)${failed.length ? `; failed: ${failed.join(' ')}` : ''}\n`);
  process.exit(failed.length ? 1 : 0);
}

void main();
