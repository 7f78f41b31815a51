import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ScanTracker } from '../src/volume/scan-tracker';

const opts = { minBlocks: 8, windowBlocks: 1024, aheadBlocks: 4096, stepBlocks: 1024 };

function tracker() {
  const prefetched: Array<[number, number, number]> = [];
  const t = new ScanTracker(opts, (first, count, seq) => prefetched.push([first, count, seq]));
  return { t, prefetched };
}

test('scan tracker: requests of a scan that arrive out of order still count as the scan', () => {
  const { t } = tracker();
  assert.equal(t.note(0, 32, 7), false); // nothing known about the image yet
  // The kernel's read-ahead, answered by several threads: 64, 32, 128, 96, ...
  const order = [64, 32, 128, 96, 192, 160, 224];
  for (const first of order) assert.equal(t.note(first, 32, 7), true, `read at ${first}`);
});

test('scan tracker: small reads and far jumps are random reads', () => {
  const { t, prefetched } = tracker();
  t.note(0, 32, 1);
  assert.equal(t.note(32, 1, 1), false, 'a 1-block read');
  assert.equal(t.note(50_000, 32, 1), false, 'far from the frontier');
  assert.equal(t.note(50_032, 32, 1), true, 'a new scan starts where the jump landed');
  assert.ok(prefetched.every(([first]) => first >= 50_064), 'read-ahead follows the new scan only');
});

test('scan tracker: read-ahead keeps aheadBlocks in front of the frontier, in steps, once each', () => {
  const { t, prefetched } = tracker();
  t.note(0, 32, 3);
  t.note(32, 32, 3);
  assert.deepEqual(prefetched.map(([f, c]) => [f, c]), [[64, 1024], [1088, 1024], [2112, 1024], [3136, 1024]]);
  prefetched.length = 0;
  for (let b = 64; b < 1024; b += 32) t.note(b, 32, 3);
  assert.deepEqual(prefetched.map(([f]) => f), [4160], 'one new step once the frontier moved a step');
  // Each block is prefetched once, and never behind the frontier.
  const all = [...prefetched];
  assert.equal(new Set(all.map(([f]) => f)).size, all.length);
});

test('scan tracker: images are tracked apart, and the least recently read is forgotten past 64', () => {
  const { t } = tracker();
  t.note(0, 32, 100);
  for (let img = 0; img < 64; img++) t.note(0, 32, img);
  assert.equal(t.note(32, 32, 100), false, 'image 100 was forgotten');
  assert.equal(t.note(32, 32, 63), true, 'a recent image is remembered');
});
