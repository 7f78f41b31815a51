import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { clonesOf } from '../src/clone/clone-service';
import { Volume } from '../src/volume/volume';
import { whiteBox } from '../src/volume/white-box';
import { SMALL, freshVolume } from './helpers/volumes';

const BS = 4096;

/**
 * Review3 repro (issue 10, clonefix2 follow-up): clone create now pins its base before the
 * flush that makes it durable, and says "a crash before the clone exists leaves a pin the next
 * open's sweep releases". The sweep (Volume.open) releases only pins past the log's end: a
 * crash during the flush when the base is already durable (an event) leaves `clone:<name>`'s
 * pin for good, with no clone. It cannot be unpinned (clone pins go with the clone) and the
 * clone cannot be deleted (UNKNOWN_CLONE): the base's state is kept from pruning forever.
 */
test('clone create killed during its flush leaves no clone pin behind', async () => {
  const { dir, vol } = await freshVolume(SMALL);
  await vol.write(0, Buffer.alloc(BS, 0x11));
  await vol.sync({ label: 'one' });
  await vol.close();
  const dist = path.join(__dirname, '..', 'src');
  const child = `
    const { Volume } = require(${JSON.stringify(path.join(dist, 'volume', 'volume.js'))});
    const { clonesOf } = require(${JSON.stringify(path.join(dist, 'clone', 'clone-service.js'))});
    (async () => {
      const vol = await Volume.open(${JSON.stringify(dir)});
      vol.flush = () => { process.kill(process.pid, 'SIGKILL'); return new Promise(() => {}); };
      await clonesOf(vol).create('c', 'one');
    })();`;
  const r = spawnSync(process.execPath, ['-e', child], { encoding: 'utf8' });
  assert.equal(r.signal, 'SIGKILL', `the child was killed in create's flush: ${r.stderr}`);
  const again = await Volume.open(dir);
  try {
    const clones = clonesOf(again).list();
    const pins = whiteBox(again).retention.pins;
    console.log(JSON.stringify({ clones, pins: pins.map((p) => p.holder) }));
    assert.deepEqual(clones, []);
    assert.ok(!pins.some((p) => p.holder === 'clone:c'), 'a pin of clone c, which does not exist, survived the open');
  } finally {
    await again.close();
  }
});
