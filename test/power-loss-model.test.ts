/** The power-loss model itself (MemoryFileSystem): held fsyncs, cuts by call count, torn rewrites. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isChronoError } from '../src/errors';
import { LocalDirStore } from '../src/archive/local-dir-store';
import { MemoryFileSystem } from '../src/storage/memory-file-system';

const turn = () => new Promise((r) => setImmediate(r));

test('held fsyncs complete only when released, in the order the test picks', async () => {
  const fs = new MemoryFileSystem();
  fs.mkdirp('/d');
  fs.holdSyncs = true;
  const h = fs.open('/d/f', 'createNew');
  await h.writeAsync(Buffer.from('abc'), 0, 3, 0);
  let fileDone = false;
  let dirDone = false;
  void h.syncAsync().then(() => (fileDone = true));
  void fs.syncDirAsync('/d').then(() => (dirDone = true));
  await turn();
  assert.deepEqual(fs.heldSyncs.map(({ path, kind }) => ({ path, kind })), [{ path: '/d/f', kind: 'file' }, { path: '/d', kind: 'dir' }]);
  assert.ok(!fileDone && !dirDone, 'nothing completes by itself');
  assert.equal(fs.afterPowerCut().exists('/d/f'), false, 'a cut now loses the file: its entry is not durable');
  fs.releaseSync(1); // the directory first
  await turn();
  assert.ok(dirDone && !fileDone);
  assert.equal(fs.afterPowerCut().readFile('/d/f').length, 0, 'the entry survives, the data not yet');
  fs.releaseSync(0);
  await turn();
  assert.ok(fileDone);
  assert.equal(fs.afterPowerCut().readFile('/d/f').toString(), 'abc');
});

test('a power cut armed by call count lands inside an operation, before that call takes effect', async () => {
  // put = create the temporary, write, fsync, rename, fsync the directory: cut before each.
  const seen: string[] = [];
  for (let n = 0; n <= 5; n++) {
    const fs = new MemoryFileSystem();
    fs.mkdirp('/a');
    const store = new LocalDirStore('/a', fs);
    await store.put('k', Buffer.from('old'));
    fs.armPowerCut(n);
    await store.put('k', Buffer.from('new'));
    assert.equal(!!fs.cutImage, n < 5, `a cut before call ${n} of the put's 5`);
    seen.push((await new LocalDirStore('/a', fs.cutImage ?? fs).get('k')).toString());
  }
  // Old until the directory fsync after the rename: a put is atomic across a power cut.
  assert.deepEqual(seen, ['old', 'old', 'old', 'old', 'old', 'new']);
});

test('a rewritten synced page tears at sector granularity: old or new per 512-byte sector', () => {
  const fs = new MemoryFileSystem({ directAlignBytes: 4096 });
  fs.mkdirp('/d');
  const h = fs.open('/d/f', 'createNewDirect');
  assert.equal(h.directWrites?.alignBytes, 4096);
  h.write(Buffer.alloc(4096, 1), 0, 4096, 0);
  h.sync();
  fs.syncDir('/d');
  h.write(Buffer.alloc(4096, 2), 0, 4096, 0);
  const pattern = [0.9, 0.1, 0.9, 0.1, 0.1, 0.9, 0.9, 0.1]; // < 0.5: the new sector
  let i = 0;
  const b = fs.afterPowerCut({ reorder: () => pattern[i++] }).readFile('/d/f');
  assert.equal(i, 8, 'one choice per rewritten sector');
  assert.deepEqual([...Array(8)].map((_, s) => b[s * 512]), [1, 2, 1, 2, 2, 1, 1, 2]);
  for (let s = 0; s < 8; s++) assert.ok(b.subarray(s * 512, s * 512 + 512).every((x) => x === b[s * 512]), `sector ${s} is whole`);
  assert.ok(fs.afterPowerCut().readFile('/d/f').equals(Buffer.alloc(4096, 1)), 'without write-back, the synced content');
});

test('direct writes must be aligned, as O_DIRECT requires', () => {
  const fs = new MemoryFileSystem({ directAlignBytes: 4096 });
  fs.mkdirp('/d');
  const h = fs.open('/d/f', 'createNewDirect');
  assert.throws(() => h.write(Buffer.alloc(100), 0, 100, 0), (e) => isChronoError(e, 'IO') && e.details.errno === 'EINVAL');
  assert.equal(fs.open('/d/g', 'createNew').directWrites, undefined, 'buffered files take any write');
});
