import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BlockMap } from '../src/index/block-map';
import { Rng, withSeed } from './helpers/rng';

/** Against a plain Map: every swap's previous value, every get, and the first-insertion order. */
test('block map: matches a Map model through growth, with sequential, strided, random and huge keys, seeded', async () => {
  const rng = Rng.fromEnv();
  await withSeed(rng, async () => {
    for (const shape of ['sequential', 'strided', 'random', 'huge'] as const) {
      const m = new BlockMap(4); // small, so it grows many times
      const model = new Map<number, number>();
      for (let i = 0; i < 20_000; i++) {
        const key = shape === 'sequential' ? i % 5000
          : shape === 'strided' ? (i % 3000) * 65536
            : shape === 'random' ? rng.int(8000)
              : 2 ** 40 + rng.int(4000) * 2 ** 33 + rng.int(3);
        const value = rng.int(2 ** 31) - 2 ** 30;
        assert.equal(m.swap(key, value, -1), model.get(key) ?? -1, `${shape}: swap ${i}`);
        model.set(key, value);
        const probe = rng.bool() ? key : key + 1;
        assert.equal(m.get(probe, -7), model.get(probe) ?? -7, `${shape}: get after ${i}`);
      }
      assert.equal(m.size, model.size);
      assert.deepEqual(Array.from(m.keys()), [...model.keys()], `${shape}: keys in first-insertion order`);
    }
  });
});
