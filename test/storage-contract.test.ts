import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as path from 'node:path';
import { archiveKeyFromSecret } from '../src/archive/archive-key';
import { BackingStore } from '../src/archive/backing-store';
import { EncryptedStore } from '../src/archive/encrypted-store';
import { FaultyStore } from '../src/archive/faulty-store';
import { LocalDirStore } from '../src/archive/local-dir-store';
import { MemoryStore } from '../src/archive/memory-store';
import { S3Store } from '../src/archive/s3-store';
import { isChronoError } from '../src/errors';
import { writeFileDurable, writeFileDurableAsync } from '../src/storage/durable-file';
import { FaultyFileSystem } from '../src/storage/faulty-file-system';
import { FileSystem } from '../src/storage/file-system';
import { MemoryFileSystem } from '../src/storage/memory-file-system';
import { NodeFileSystem } from '../src/storage/node-file-system';
import { Fault, FaultProxy, startFaultProxy } from './helpers/fault-proxy';
import { Rng } from './helpers/rng';
import { S3Server, S3_TEST_TUNING, startS3Server } from './helpers/s3-server';
import { backingStoreContract } from './helpers/store-contract';
import { tmpDir } from './helpers/tmp';

/** One contract, run against every FileSystem implementation. */
const fileSystems: Array<[string, () => { fs: FileSystem; root: string }]> = [
  ['node', () => ({ fs: new NodeFileSystem(), root: tmpDir() })],
  ['memory', () => { const fs = new MemoryFileSystem(); fs.mkdirp('/r'); return { fs, root: '/r' }; }],
  ['faulty(memory), no faults', () => { const m = new MemoryFileSystem(); m.mkdirp('/r'); return { fs: new FaultyFileSystem(m), root: '/r' }; }],
];

for (const [name, make] of fileSystems) {
  describe(`FileSystem contract: ${name}`, () => {
    test('write at offsets, read back, short read at end of file', () => {
      const { fs, root } = make();
      const h = fs.open(path.join(root, 'a'), 'createNew');
      h.write(Buffer.from('hello'), 0, 5, 0);
      h.write(Buffer.from('world'), 0, 5, 10);
      assert.equal(h.size(), 15);
      const b = Buffer.alloc(20);
      assert.equal(h.read(b, 0, 20, 0), 15);
      assert.equal(b.subarray(10, 15).toString(), 'world');
      assert.deepEqual([...b.subarray(5, 10)], [0, 0, 0, 0, 0]);
      h.sync();
      h.truncate(5);
      assert.equal(h.size(), 5);
      h.close();
    });
    test('writeFileDurableAsync, direct or not, leaves exactly the parts\' bytes (odd lengths, several 8 MiB chunks); readFileAsync reads them back', async () => {
      const { fs, root } = make();
      const parts = [Buffer.alloc(5 * 1024 * 1024 + 3, 1), Buffer.alloc(7, 2), Buffer.alloc(12 * 1024 * 1024 + 4097, 3)];
      for (const direct of [false, true]) {
        const p = path.join(root, `obj-${direct}`);
        await writeFileDurableAsync(fs, p, parts, { direct });
        assert.ok(fs.readFile(p).equals(Buffer.concat(parts)), `direct: ${direct}`);
        assert.ok((await fs.readFileAsync(p, { direct })).equals(Buffer.concat(parts)), `read back, direct: ${direct}`);
        assert.ok(!fs.exists(`${p}.tmp`));
      }
      for (const size of [0, 1, 4095, 4097]) {
        const p = path.join(root, `small-${size}`);
        await writeFileDurableAsync(fs, p, Buffer.alloc(size, 9));
        assert.ok((await fs.readFileAsync(p, { direct: true })).equals(Buffer.alloc(size, 9)), `direct read of ${size} bytes`);
      }
      await assert.rejects(fs.readFileAsync(path.join(root, 'missing'), { direct: true }), (e) => isChronoError(e, 'IO') || (e as Error).message.includes('ENOENT'));
    });
    test('syncDirAsync resolves for a directory and fails with IO for a missing one', async () => {
      const { fs, root } = make();
      fs.open(path.join(root, 'd'), 'createNew').close();
      await fs.syncDirAsync(root);
      if (name === 'node') await assert.rejects(fs.syncDirAsync(path.join(root, 'missing')), (e) => isChronoError(e, 'IO'));
    });
    test('prefetch (read-ahead) and startWriteback change nothing a read returns', () => {
      const { fs, root } = make();
      const h = fs.open(path.join(root, 'p'), 'createNew');
      const data = Buffer.alloc(3 << 20, 7);
      h.write(data, 0, data.length, 0);
      h.startWriteback?.(0, data.length);
      h.prefetch?.(0, data.length + (8 << 20)); // past the end is allowed
      const b = Buffer.alloc(data.length);
      assert.equal(h.read(b, 0, b.length, 0), data.length);
      assert.ok(b.equals(data));
      h.close();
    });
    test('readNoWait returns a prefix of what read returns (all of it once cached)', () => {
      const { fs, root } = make();
      const h = fs.open(path.join(root, 'n'), 'createNew');
      const data = Buffer.alloc(1 << 20);
      for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i, i);
      h.write(data, 0, data.length, 0);
      const b = Buffer.alloc(data.length + 5, 0xee);
      const n = h.readNoWait ? h.readNoWait(b, 5, data.length, 0) : h.read(b, 5, data.length, 0);
      assert.ok(n >= 0 && n <= data.length);
      assert.ok(b.subarray(5, 5 + n).equals(data.subarray(0, n)), 'whatever it read is right');
      assert.equal(n, data.length, 'just written: all of it is in the cache');
      h.close();
    });
    test('a read started before close completes with the file\'s bytes, though other files open meanwhile', async () => {
      const { fs, root } = make();
      const h = fs.open(path.join(root, 'r'), 'createNew');
      const data = Buffer.alloc(4 << 20, 0x5a);
      h.write(data, 0, data.length, 0);
      const b = Buffer.alloc(data.length);
      const reading = h.readAsync(b, 0, b.length, 0);
      h.close();
      fs.remove(path.join(root, 'r')); // a recycled segment: closed and unlinked under the read
      // New files may be given the closed descriptor's number: the read must not see them.
      const others = Array.from({ length: 4 }, (_, i) => {
        const o = fs.open(path.join(root, `o${i}`), 'createNew');
        o.write(Buffer.alloc(4 << 20, i), 0, 4 << 20, 0);
        return o;
      });
      assert.equal(await reading, data.length);
      assert.ok(b.equals(data));
      for (const o of others) o.close();
    });
    test('createNew refuses an existing file; open of a missing file fails with IO', () => {
      const { fs, root } = make();
      fs.open(path.join(root, 'x'), 'createNew').close();
      assert.throws(() => fs.open(path.join(root, 'x'), 'createNew'), (e) => isChronoError(e, 'IO'));
      assert.throws(() => fs.open(path.join(root, 'missing'), 'read'), (e) => isChronoError(e, 'IO'));
    });
    test('list is sorted; rename and remove', () => {
      const { fs, root } = make();
      for (const n of ['b', 'a', 'c']) fs.open(path.join(root, n), 'createNew').close();
      assert.deepEqual(fs.list(root), ['a', 'b', 'c']);
      fs.rename(path.join(root, 'a'), path.join(root, 'z'));
      fs.remove(path.join(root, 'b'));
      fs.syncDir(root);
      assert.deepEqual(fs.list(root), ['c', 'z']);
      assert.deepEqual(fs.list(path.join(root, 'nope')), []);
    });
    test('writeFileDurable replaces content whole', () => {
      const { fs, root } = make();
      const p = path.join(root, 'f');
      writeFileDurable(fs, p, Buffer.from('one'));
      writeFileDurable(fs, p, [Buffer.from('tw'), Buffer.from('o!')]);
      assert.equal(fs.readFile(p).toString(), 'two!');
      assert.ok(!fs.exists(`${p}.tmp`));
    });
  });
}

test('NodeFileSystem: a handle closed while its read-ahead and write-back hints run releases the descriptor when they end', async () => {
  const fs = new NodeFileSystem();
  const dir = tmpDir();
  // Descriptors of this process open on files in `dir`.
  const openFds = () => {
    const nfs = require('node:fs') as typeof import('node:fs');
    return nfs.readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return nfs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(dir);
      } catch {
        return false; // the listing's own descriptor, gone by now
      }
    }).length;
  };
  for (let i = 0; i < 20; i++) {
    const h = fs.open(path.join(dir, `f${i}`), 'createNew');
    h.write(Buffer.alloc(1 << 20, i), 0, 1 << 20, 0);
    h.prefetch!(0, 16 << 20);
    h.startWriteback?.(0, 1 << 20);
    h.close();
    h.close(); // idempotent
  }
  for (let t = 0; t < 100 && openFds() > 0; t++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(openFds(), 0);
});

test('MemoryFileSystem.crash keeps only synced bytes in synced directory entries', () => {
  const fs = new MemoryFileSystem();
  fs.mkdirp('/d');
  const h = fs.open('/d/f', 'createNew');
  h.write(Buffer.from('durable'), 0, 7, 0);
  h.sync();
  fs.syncDir('/d');
  h.write(Buffer.from('-lost'), 0, 5, 7);
  fs.open('/d/unsynced-entry', 'createNew').close();
  fs.crash();
  assert.equal(fs.readFile('/d/f').toString(), 'durable');
  assert.ok(!fs.exists('/d/unsynced-entry'));
});

test('FaultyFileSystem fails the chosen operation with IO', () => {
  const m = new MemoryFileSystem();
  m.mkdirp('/d');
  const fs = new FaultyFileSystem(m);
  fs.failWhen = (op) => op === 'sync';
  const h = fs.open('/d/f', 'createNew');
  h.write(Buffer.from('x'), 0, 1, 0);
  assert.throws(() => h.sync(), (e) => isChronoError(e, 'IO') && e.details.errno === 'EIO');
});

/** One contract, run against every BackingStore implementation. */
let s3: S3Server;
let proxy: FaultProxy;
let prefixes = 0;
/** Faults the proxy injects into the contract suite's S3 requests, from a printed seed. */
const faultRng = Rng.fromEnv();
const FAULTS: Fault[] = ['reset', 'slowdown', 'stall', 'reset-mid-body', 'stall-mid-body'];
before(async () => {
  s3 = await startS3Server();
  console.log(`fault proxy seed ${faultRng.seed} (replay with CHRONOVOL_SEED=${faultRng.seed})`);
  proxy = await startFaultProxy(s3.port, () => (faultRng.bool(0.05) ? FAULTS[faultRng.int(FAULTS.length)] : 'pass'));
});
after(async () => {
  await proxy?.close();
  await s3?.stop();
});

// Pages of 50 keys: the listing case crosses pages without a thousand uploads per store (the
// server's own 1,000-key page is crossed once, below).
const s3Store = (endpoint: () => string) => new S3Store({ ...S3_TEST_TUNING, listPageKeys: 50, bucket: s3.bucket, prefix: `contract-${++prefixes}`, endpoint: endpoint() });
const key = archiveKeyFromSecret(Buffer.alloc(32, 7));

const stores: Array<[string, () => BackingStore]> = [
  ['local dir', () => new LocalDirStore(tmpDir())],
  ['local dir over memory fs', () => { const fs = new MemoryFileSystem(); fs.mkdirp('/a'); return new LocalDirStore('/a', fs); }],
  ['memory', () => new MemoryStore()],
  ['faulty(memory), no faults', () => new FaultyStore(new MemoryStore())],
  ['s3 (s3rver)', () => s3Store(() => s3.endpoint)],
  ['s3 through the fault proxy', () => s3Store(() => proxy.endpoint)],
  ['encrypted memory', () => new EncryptedStore(new MemoryStore(), key)],
  ['encrypted local dir', () => new EncryptedStore(new LocalDirStore(tmpDir()), key)],
  ['encrypted s3 through the fault proxy', () => new EncryptedStore(s3Store(() => proxy.endpoint), key)],
];

for (const [name, make] of stores) backingStoreContract(name, make);

test('S3: the SDK\'s default checksum settings store a streamed upload aws-chunked on s3rver; the store\'s settings store exactly the bytes', async () => {
  const { S3Client, PutObjectCommand, GetObjectCommand } = await import('@aws-sdk/client-s3');
  const { Readable } = await import('node:stream');
  const data = new Rng(5).bytes(1 << 20);
  const defaults = new S3Client({ region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true });
  try {
    await defaults.send(new PutObjectCommand({ Bucket: s3.bucket, Key: 'defaults/obj', Body: Readable.from([data]), ContentLength: data.length }));
    const got = await (await defaults.send(new GetObjectCommand({ Bucket: s3.bucket, Key: 'defaults/obj' }))).Body!.transformToByteArray();
    assert.notEqual(got.length, data.length, 'if s3rver stops storing the aws-chunked encoding, this test has nothing left to show');
  } finally {
    defaults.destroy();
  }
  const store = new S3Store({ ...S3_TEST_TUNING, bucket: s3.bucket, prefix: 'ours', endpoint: s3.endpoint });
  await store.put('obj', data);
  const raw = await (await store.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: 'ours/obj' }))).Body!.transformToByteArray();
  assert.ok(Buffer.from(raw).equals(data), 'stored bytes are the uploaded bytes');
  store.destroy();
});

test('S3: a listing crosses the server\'s own 1,000-key page', async () => {
  const { S3Client, PutObjectCommand } = await import('@aws-sdk/client-s3');
  const store = new S3Store({ ...S3_TEST_TUNING, bucket: s3.bucket, prefix: 'page', endpoint: s3.endpoint });
  const keys = Array.from({ length: 1003 }, (_, i) => `segments/${i.toString(16).padStart(8, '0')}.cvseg`);
  // Filled with plain PutObjects, retried by the SDK (the store's puts, each verified, are covered
  // above): half the requests.
  const filler = new S3Client({ region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, maxAttempts: 10, requestChecksumCalculation: 'WHEN_REQUIRED' });
  try {
    for (let i = 0; i < keys.length; i += 50) {
      await Promise.all(keys.slice(i, i + 50).map((k) => filler.send(new PutObjectCommand({ Bucket: s3.bucket, Key: `page/${k}`, Body: Buffer.from(k) }))));
    }
  } finally {
    filler.destroy();
  }
  assert.deepEqual(await store.list('segments/'), keys);
  store.destroy();
});

test('S3: each fault the proxy injects is retried through, with the data intact', async () => {
  for (const fault of FAULTS) {
    let n = 0;
    // Every third request faults: each operation meets the fault, most of them more than once.
    const p = await startFaultProxy(s3.port, () => (n++ % 3 === 0 ? fault : 'pass'));
    try {
      const store = new S3Store({ ...S3_TEST_TUNING, bucket: s3.bucket, prefix: `each-${fault}`, endpoint: p.endpoint });
      const data = new Rng(3).bytes((5 << 20) + 5); // multipart: two parts
      await store.put('a', data);
      await store.put('b', Buffer.from('small'));
      assert.equal(await store.size('a'), data.length);
      assert.ok((await store.get('a')).equals(data));
      assert.ok((await store.getRange('a', 1 << 20, 4096)).equals(data.subarray(1 << 20, (1 << 20) + 4096)));
      assert.deepEqual(await store.list(''), ['a', 'b']);
      await store.delete('b');
      assert.equal(await store.size('b'), undefined);
      assert.ok(p.counts[fault] >= 4, `${fault}: injected ${p.counts[fault]} times`);
      store.destroy();
    } finally {
      await p.close();
    }
  }
});

test('S3: a server that keeps failing, or is not there, is ARCHIVE_UNAVAILABLE after the retries; a missing bucket at once', async () => {
  const p = await startFaultProxy(s3.port, () => 'slowdown');
  try {
    const store = new S3Store({ ...S3_TEST_TUNING, retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 5 }, bucket: s3.bucket, endpoint: p.endpoint });
    await assert.rejects(store.get('x'), (e) => isChronoError(e, 'ARCHIVE_UNAVAILABLE') && e.details.attempts === 3 && /SlowDown/.test(e.message));
    assert.equal(p.counts.slowdown, 3);
  } finally {
    await p.close();
  }
  const gone = new S3Store({ ...S3_TEST_TUNING, retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 5 }, bucket: s3.bucket, endpoint: p.endpoint });
  await assert.rejects(gone.list(''), (e) => isChronoError(e, 'ARCHIVE_UNAVAILABLE'));
  const nobucket = new S3Store({ ...S3_TEST_TUNING, bucket: 'no-such-bucket', endpoint: s3.endpoint });
  await assert.rejects(nobucket.put('k', Buffer.from('x')), (e) => isChronoError(e, 'ARCHIVE_UNAVAILABLE') && /does not exist/.test(e.message));
});

test('FaultyStore: outage and corrupted puts', async () => {
  const s = new FaultyStore(new MemoryStore());
  s.corruptPuts = true;
  await s.put('k', Buffer.from('abcd'));
  assert.notEqual((await s.get('k')).toString(), 'abcd');
  s.unreachable = true;
  await assert.rejects(s.get('k'), (e) => isChronoError(e, 'ARCHIVE_UNAVAILABLE'));
});

test('LocalDirStore reports an unreachable directory as ARCHIVE_UNAVAILABLE', async () => {
  const s = new LocalDirStore(path.join(tmpDir(), 'gone'));
  await assert.rejects(s.list('segments/'), (e) => isChronoError(e, 'ARCHIVE_UNAVAILABLE'));
});

test('MemoryFileSystem: an entry made durable by syncDirAsync survives a crash; one not synced does not', async () => {
  const fs = new MemoryFileSystem();
  fs.mkdirp('/d');
  const a = fs.open('/d/a', 'createNew');
  a.write(Buffer.from('x'), 0, 1, 0);
  a.sync();
  await fs.syncDirAsync('/d');
  const b = fs.open('/d/b', 'createNew');
  b.write(Buffer.from('y'), 0, 1, 0);
  b.sync();
  fs.crash();
  assert.deepEqual(fs.list('/d'), ['a']);
});

test('MemoryFileSystem: a power cut with reordered write-back keeps every synced byte, and unsynced pages only whole or not at all', () => {
  const fs = new MemoryFileSystem();
  fs.mkdirp('/d');
  const h = fs.open('/d/f', 'createNew');
  const synced = Buffer.alloc(5000, 1);
  h.write(synced, 0, synced.length, 0);
  h.sync();
  fs.syncDir('/d');
  const later = Buffer.alloc(20_000, 2);
  h.write(later, 0, later.length, synced.length);
  let i = 0;
  const pattern = [0.9, 0.1, 0.9, 0.1, 0.9, 0.9]; // page 1 lost, page 2 kept, page 3 lost, ...
  const after = fs.afterPowerCut({ reorder: () => pattern[i++ % pattern.length] });
  const b = after.readFile('/d/f');
  assert.ok(b.subarray(0, synced.length).equals(synced), 'synced bytes intact');
  // Pages (4 KiB) after the synced end: [5000,8192) lost, [8192,12288) kept, [12288,16384) lost,
  // [16384,20480) kept, [20480,24576) lost, [24576,25000) lost: the file ends after the last kept.
  assert.equal(b.length, 20480);
  assert.ok(b.subarray(5000, 8192).equals(Buffer.alloc(8192 - 5000)), 'a lost page reads as zeros');
  assert.ok(b.subarray(8192, 12288).equals(Buffer.alloc(4096, 2)), 'a kept page has its data');
  assert.ok(b.subarray(16384, 20480).equals(Buffer.alloc(4096, 2)));
  assert.ok(fs.readFile('/d/f').length === 25_000, 'the dead machine\'s view is unchanged');
});

test('MemoryFileSystem: a second crash keeps what survived the first', () => {
  const fs = new MemoryFileSystem();
  fs.mkdirp('/d');
  const h = fs.open('/d/f', 'createNew');
  h.write(Buffer.from('one'), 0, 3, 0);
  h.sync();
  fs.syncDir('/d');
  fs.crash();
  const h2 = fs.open('/d/f', 'readWrite');
  h2.write(Buffer.from('two'), 0, 3, 3);
  h2.sync();
  fs.crash();
  assert.equal(fs.readFile('/d/f').toString(), 'onetwo');
});
