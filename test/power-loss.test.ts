import { test } from 'node:test';
import { powerLossRun } from './helpers/power-loss-run';
import { seedsFor } from './helpers/seeds';

/** Fixed seeds, run in CI every time; each also ran clean when it was added. */
const CORPUS = [1, 2, 3, 4, 5, 6, 7, 8];

for (const { seed, source } of seedsFor(CORPUS)) {
  test(`power loss with held fsyncs, cuts inside operations and torn rewrites: model and engine agree (seed ${seed}, ${source})`, async (t) => {
    try {
      const s = await powerLossRun(seed);
      t.diagnostic(`seed ${seed}: ${s.ops} operations, ${s.cuts} power cuts, ${s.reopens} clean reopens, ${s.eventsChecked} event images checked`);
    } catch (err) {
      const e = err as Error;
      e.message = `${e.message}\n    (replay with CHRONOVOL_SEED=${seed} node --test dist/test/power-loss.test.js)`;
      throw e;
    }
  });
}
