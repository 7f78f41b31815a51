import assert from 'node:assert/strict';
import { test } from 'node:test';
import { forget } from '../src/retention/forget';
import { ForegroundActivity, Pacer } from '../src/volume/prune-pacer';
import { hotWrites } from './helpers/prune';
import { Rng } from './helpers/rng';
import { SMALL, freshVolume } from './helpers/volumes';
import { VolumeModel } from './helpers/volume-model';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('prune pacer: on a quiet volume the steps run back to back; busyShare 1 never waits', async () => {
  const activity = new ForegroundActivity();
  const quiet = new Pacer(activity, { busyShare: 0.1, quietMs: 1000 });
  for (let i = 0; i < 20; i++) await quiet.step(() => undefined);
  assert.equal(quiet.yielded, 0);
  const unpaced = new Pacer(activity, { busyShare: 1, quietMs: 1000 });
  for (let i = 0; i < 20; i++) await unpaced.step(() => void activity.requests++);
  assert.equal(unpaced.yielded, 0);
});

test('prune pacer: busyShare 0 takes no step while requests keep coming, and goes on once they stop', async () => {
  const activity = new ForegroundActivity();
  const pacer = new Pacer(activity, { busyShare: 0, quietMs: 300 });
  let busy = true;
  const foreground = (async () => {
    for (let i = 0; i < 100; i++) {
      activity.requests++;
      await sleep(5);
    }
    busy = false;
  })();
  const during: boolean[] = [];
  for (let i = 0; i < 3; i++) await pacer.step(() => void during.push(busy));
  await foreground;
  assert.deepEqual(during, [false, false, false]);
  assert.equal(pacer.yielded, 1);
});

test('prune pacer: a busy volume still sees progress at busyShare > 0 (every step waits, none forever)', async () => {
  const activity = new ForegroundActivity();
  const pacer = new Pacer(activity, { busyShare: 0.5, quietMs: 20 });
  const timer = setInterval(() => activity.requests++, 2);
  try {
    for (let i = 0; i < 5; i++) await pacer.step(() => sleep(10));
  } finally {
    clearInterval(timer);
  }
  assert.ok(pacer.yielded >= 4, `${pacer.yielded} of 5 steps waited`);
});

test('prune yields to the volume\'s writes: with busyShare 0 it reads, rewrites and deletes nothing while they come (issue 15)', async () => {
  const rng = new Rng(1517);
  const { vol } = await freshVolume(SMALL);
  const model = new VolumeModel(SMALL.sizeBytes);
  try {
    await hotWrites(vol, model, rng, 400);
    forget(vol, { keepLast: 2 });
    let writing = true;
    const writer = (async () => {
      // The upper half (hotWrites uses the lower): live only, nothing a prune looks at.
      for (let i = 0; i < 150; i++) {
        const off = SMALL.sizeBytes / 2 + rng.int(SMALL.sizeBytes / 2 / 4096) * 4096;
        const data = rng.bytes(4096);
        await vol.write(off, data);
        model.write(off, data);
        await sleep(5);
      }
      writing = false;
    })();
    const steps: boolean[] = [];
    const rep = await vol.prune({ busyShare: 0, quietMs: 1000, progress: (phase) => void (phase !== 'index' && steps.push(writing)) });
    await writer;
    assert.ok(rep.deleted.length + rep.rewritten.length > 0, JSON.stringify(rep.plan));
    assert.ok(steps.length > 0);
    assert.ok(steps.every((w) => !w), `${steps.filter((w) => w).length} of ${steps.length} prune steps ran while writes came`);
    assert.ok(rep.yieldedMs > 0);
    assert.ok((await vol.read(0, vol.sizeBytes)).equals(model.live));
    const ver = await vol.verify();
    assert.ok(ver.ok, JSON.stringify(ver.problems.slice(0, 3)));
  } finally {
    await vol.close();
  }
});
