import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PayloadPool } from '../src/nbd/payload-pool';

test('payload pool: buffers of the asked length, reused once released, never beyond its budget', () => {
  const pool = new PayloadPool(4 << 20);
  const a = pool.get(3 << 20);
  assert.equal(a.length, 3 << 20);
  a.fill(7);
  pool.release(a);
  const b = pool.get((2 << 20) + 1); // same 4 MiB size class
  assert.equal(b.length, (2 << 20) + 1);
  assert.equal(b.buffer, a.buffer, 'the released buffer came back');
  const c = pool.get(3 << 20);
  assert.notEqual(c.buffer, a.buffer, 'a buffer in use is never handed out twice');
  pool.release(b);
  pool.release(c); // over the 4 MiB budget: dropped, not pooled
  const d = pool.get(3 << 20);
  const e = pool.get(3 << 20);
  assert.notEqual(d.buffer, e.buffer);
  assert.ok([d.buffer, e.buffer].includes(b.buffer));
  pool.release(Buffer.alloc(100)); // not from the pool: ignored
  assert.equal(pool.get(10).length, 10);
});
