import { test } from 'node:test';
import { PowerLossOptions, powerLossRun } from './helpers/power-loss-run';
import { seedsFor } from './helpers/seeds';

/**
 * Fixed seeds, run in CI every time; each ran clean when it was added. 139255876 (ack mode, op
 * 26): a write whose first block, filled in from the live volume, is all zeros is logged as a
 * ZERO record and a WRITE record, two seqs; the model once assumed one.
 */
const CORPUS = [3, 4, 5, 6, 139255876];

const MODES: Array<[NonNullable<PowerLossOptions['mode']>, string]> = [
  ['mixed', 'held fsyncs released in any order, cuts inside operations, torn rewrites'],
  ['ack', 'fsyncs released newest first, cut the moment durability is acknowledged'],
];

for (const [mode, what] of MODES) {
  for (const { seed, source } of seedsFor(CORPUS)) {
    test(`power loss (${what}): model and engine agree (seed ${seed}, ${source})`, async (t) => {
      try {
        const s = await powerLossRun(seed, { mode });
        t.diagnostic(`${mode} seed ${seed}: ${s.ops} operations, ${s.cuts} power cuts, ${s.reopens} clean reopens, ${s.eventsChecked} event images checked`);
      } catch (err) {
        const e = err as Error;
        e.message = `${e.message}\n    (replay with CHRONOVOL_SEED=${seed} node --test dist/test/power-loss.test.js; mode ${mode})`;
        throw e;
      }
    });
  }
}
