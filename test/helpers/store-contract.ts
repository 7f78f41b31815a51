import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BackingStore } from '../../src/archive/backing-store';
import { isChronoError } from '../../src/errors';
import { Rng } from './rng';

/**
 * The BackingStore contract, run against every store (memory, local directory, s3rver, Ceph's
 * radosgw, each plain and encrypted): `make` gives a fresh, empty store per test.
 */
export function backingStoreContract(name: string, make: () => BackingStore): void {
  describe(`BackingStore contract: ${name}`, () => {
    test('put, size, ranged get, whole get, overwrite', async () => {
      const s = make();
      await s.put('segments/1', Buffer.from('0123456789'));
      assert.equal(await s.size('segments/1'), 10);
      assert.equal((await s.getRange('segments/1', 3, 4)).toString(), '3456');
      await s.put('segments/1', Buffer.from('abc'));
      assert.equal((await s.get('segments/1')).toString(), 'abc');
      assert.equal(await s.size('segments/1'), 3);
    });
    test('getTail, where the store has it: the last bytes and the size in one read; all of a short object; ARCHIVE_MISSING', async () => {
      const s = make();
      if (!s.getTail) return;
      const data = Buffer.from(Array.from({ length: 100 }, (_, i) => i));
      await s.put('segments/t', data);
      const t = await s.getTail('segments/t', 10);
      assert.equal(t.sizeBytes, 100);
      assert.ok(t.data.equals(data.subarray(90)));
      const all = await s.getTail('segments/t', 1000);
      assert.equal(all.sizeBytes, 100);
      assert.ok(all.data.equals(data));
      await assert.rejects(s.getTail('nope', 5), (e) => isChronoError(e, 'ARCHIVE_MISSING'));
    });
    test('missing objects: size undefined, reads fail with ARCHIVE_MISSING', async () => {
      const s = make();
      assert.equal(await s.size('nope'), undefined);
      await assert.rejects(s.get('nope'), (e) => isChronoError(e, 'ARCHIVE_MISSING'));
      await assert.rejects(s.getRange('nope', 0, 1), (e) => isChronoError(e, 'ARCHIVE_MISSING'));
      await s.put('k', Buffer.from('ab'));
      await assert.rejects(s.getRange('k', 1, 5), (e) => isChronoError(e, 'ARCHIVE_MISSING'));
    });
    test('list by prefix, sorted; delete', async () => {
      const s = make();
      for (const k of ['segments/b', 'segments/a', 'volume.cvsb']) await s.put(k, Buffer.from(k));
      assert.deepEqual(await s.list('segments/'), ['segments/a', 'segments/b']);
      await s.delete('segments/a');
      assert.deepEqual(await s.list('segments/'), ['segments/b']);
      await s.delete('segments/a'); // deleting what is gone is not an error
    });
    test('what is stored is exactly what was put: empty, odd-sized parts, and past the multipart threshold', async () => {
      const s = make();
      const rng = new Rng(11);
      await s.put('empty', []);
      assert.equal(await s.size('empty'), 0);
      assert.equal((await s.get('empty')).length, 0);
      // 11 MiB + 3 bytes in parts that do not line up with upload parts or encryption chunks.
      const parts = [rng.bytes(3 << 20), rng.bytes(7), rng.bytes((8 << 20) - 4)];
      const whole = Buffer.concat(parts);
      await s.put('segments/big', parts);
      assert.equal(await s.size('segments/big'), whole.length);
      assert.ok((await s.get('segments/big')).equals(whole), 'whole get is bit-exact');
      for (const [at, len] of [[0, 1], [(5 << 20) - 2, 4], [(64 << 10) - 1, 2], [whole.length - 32, 32], [(3 << 20) + 1, 1 << 20]]) {
        assert.ok((await s.getRange('segments/big', at, len)).equals(whole.subarray(at, at + len)), `range ${at}+${len}`);
      }
    });
    test('puts at once, and then one after another, each read back as put (a buffer a store keeps between puts is never shared)', async () => {
      const s = make();
      const rng = new Rng(77);
      await s.put('warm', [rng.bytes(2 << 20)]); // leaves whatever a store keeps between puts
      const objs = Array.from({ length: 6 }, (_, i) => rng.bytes((1 << 20) + i * 4099));
      await Promise.all(objs.map((o, i) => s.put(`segments/o${i}`, [o])));
      // Past the multipart threshold of the S3 stores under test as well.
      const big = [rng.bytes((6 << 20) + 3), rng.bytes((7 << 20) + 5)];
      await Promise.all(big.map((o, i) => s.put(`segments/b${i}`, [o])));
      for (const [i, o] of [...objs, ...big].entries()) {
        const k = i < objs.length ? `segments/o${i}` : `segments/b${i - objs.length}`;
        assert.ok((await s.get(k)).equals(o), `${k} reads back as put`);
      }
      await s.put('segments/o0', [objs[5]]);
      assert.ok((await s.get('segments/o0')).equals(objs[5]), 'a later put of other bytes');
    });
    test('list crosses pages, and only lists its prefix', async () => {
      const s = make();
      const keys = Array.from({ length: 123 }, (_, i) => `segments/${i.toString(16).padStart(8, '0')}.cvseg`);
      for (let i = 0; i < keys.length; i += 25) await Promise.all(keys.slice(i, i + 25).map((k) => s.put(k, Buffer.from(k))));
      await s.put('segmentsX', Buffer.from('x'));
      await s.put('other/1', Buffer.from('y'));
      assert.deepEqual(await s.list('segments/'), keys);
    });
  });
}
