import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatherBuffer } from '../src/archive/gather-buffer';
import { PartStream } from '../src/storage/durable-file';

/** A stream that hands out each part in the same scratch buffer, as sealing does. */
function reusedParts(parts: Buffer[]): PartStream {
  const scratch = Buffer.alloc(Math.max(...parts.map((p) => p.length)));
  return {
    totalBytes: parts.reduce((n, p) => n + p.length, 0),
    parts: (function* () {
      for (const p of parts) yield scratch.subarray(0, p.copy(scratch));
    })(),
  };
}

const shares = (a: Buffer, b: Buffer) => a.buffer === b.buffer;

test('gather buffer: a stream is gathered whole, its parts copied as taken; a stream that can seal into the buffer does', () => {
  const g = new GatherBuffer(60_000);
  const parts = [Buffer.from('abc'), Buffer.from('defgh'), Buffer.from('ij')];
  const got = g.fill(reusedParts(parts));
  assert.equal(got.toString(), 'abcdefghij');
  g.give(got, true);
  const into = g.fill({ totalBytes: 4, parts: [], into: (out) => out.write('wxyz') });
  assert.equal(into.toString(), 'wxyz');
  g.give(into, true);
  g.release();
});

test('gather buffer: kept between puts, never shared by two at once, handed back after a quiet spell', async () => {
  const g = new GatherBuffer(50);
  const a = g.fill(reusedParts([Buffer.alloc(1000, 1)]));
  // A second put while the first still uploads gets memory of its own: sharing would send one
  // object's bytes under the other's name.
  const b = g.fill(reusedParts([Buffer.alloc(800, 2)]));
  assert.ok(!shares(a, b), 'two puts at once share a buffer');
  assert.ok(a.every((x) => x === 1) && b.every((x) => x === 2));
  g.give(a, true);
  g.give(b, true);
  assert.equal(g.keptBytes, 1000);
  const c = g.fill(reusedParts([Buffer.alloc(600, 3)]));
  assert.ok(shares(a, c), 'the kept buffer is used again (no fresh pages per put)');
  assert.equal(c.length, 600);
  const d = g.fill(reusedParts([Buffer.alloc(600, 4)]));
  assert.ok(!shares(c, d), 'the kept buffer is in use: a fresh one');
  g.give(d, true);
  g.give(c, true);
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(g.keptBytes, 0, 'handed back after the quiet spell');
});

test('gather buffer: after a failed put or a failed fill the buffer is never used again, and nothing stays pinned', () => {
  const g = new GatherBuffer(60_000);
  const a = g.fill(reusedParts([Buffer.alloc(1000, 1)]));
  g.give(a, true);
  // A failed put's request may still be sending from its buffer: the next put gets fresh memory.
  const b = g.fill(reusedParts([Buffer.alloc(900, 2)]));
  assert.ok(shares(a, b));
  g.give(b, false);
  assert.equal(g.keptBytes, 0, 'a failed put\'s buffer is not kept');
  const c = g.fill(reusedParts([Buffer.alloc(900, 3)]));
  assert.ok(!shares(a, c), 'fresh memory after a failed put');
  g.give(c, true);
  // A stream that fails while it is gathered (a short stream, a sealing error) leaves no buffer
  // marked in use for good.
  assert.throws(() => g.fill({ totalBytes: 10, parts: [], into: () => { throw new Error('sealing failed'); } }), /sealing failed/);
  assert.throws(() => g.fill({ totalBytes: 10, parts: [Buffer.alloc(5)] }), /gave 5/);
  const d = g.fill(reusedParts([Buffer.alloc(700, 4)]));
  g.give(d, true);
  const e = g.fill(reusedParts([Buffer.alloc(700, 5)]));
  assert.ok(shares(d, e), 'kept and used again after the failures');
  g.give(e, true);
  g.release();
});
