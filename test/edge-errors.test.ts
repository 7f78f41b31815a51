import assert from 'node:assert/strict';
import * as path from 'node:path';
import test from 'node:test';
import Fuse from 'fuse-native';
import { FaultyStore } from '../src/archive/faulty-store';
import { MemoryStore } from '../src/archive/memory-store';
import { ChronoError } from '../src/errors';
import { makeOps } from '../src/fuse/fuse-ops';
import { Tree } from '../src/fuse/tree';
import { silentLogger } from '../src/log';
import { NBD } from '../src/nbd/nbd-protocol';
import { NbdServer } from '../src/nbd/nbd-server';
import { EDGE_ERRORS, exitCodeFor, fuseErrno, nbdErrno } from '../src/service/edge-errors';
import { Volume } from '../src/volume/volume';
import { RawNbdClient, openExport } from './helpers/nbd-client';
import { SMALL } from './helpers/volumes';
import { tmpDir } from './helpers/tmp';

test('the edge error table: usage codes exit 2, others 1; unknown errors are EIO everywhere', () => {
  for (const code of ['BAD_USAGE', 'BAD_ARGUMENT', 'OUT_OF_RANGE', 'UNKNOWN_POINT', 'NOT_A_VOLUME', 'EXISTS', 'POINT_FORGOTTEN'] as const) assert.equal(exitCodeFor(new ChronoError(code, 'x')), 2, code);
  for (const code of ['LOCKED', 'IO', 'ARCHIVE_UNAVAILABLE', 'CORRUPT_BLOCK', 'NO_SPACE'] as const) assert.equal(exitCodeFor(new ChronoError(code, 'x')), 1, code);
  assert.equal(exitCodeFor(new Error('plain')), 1);
  assert.equal(fuseErrno(new Error('plain'), 'read'), Fuse.EIO);
  assert.equal(nbdErrno(new Error('plain'), 'write'), NBD.EIO);
  // fuse-native's constants are the negated Linux errnos the table is written in.
  assert.equal(fuseErrno(new ChronoError('OUT_OF_RANGE', 'x'), 'write'), Fuse.EFBIG);
  assert.equal(fuseErrno(new ChronoError('READ_ONLY', 'x'), 'write'), Fuse.EROFS);
  assert.equal(nbdErrno(new ChronoError('READ_ONLY', 'x'), 'write'), NBD.EPERM);
  assert.equal(fuseErrno(new ChronoError('POINT_FORGOTTEN', 'x'), 'read'), Fuse.ENOENT, 'a forgotten point is gone, as from events/');
  // NBD carries only the errors its protocol defines.
  const nbdValues = new Set<number>([NBD.EPERM, NBD.EIO, NBD.EINVAL, NBD.ENOSPC]);
  for (const code of Object.keys(EDGE_ERRORS) as Array<keyof typeof EDGE_ERRORS>) {
    for (const op of ['read', 'write'] as const) assert.ok(nbdValues.has(nbdErrno(new ChronoError(code, 'x'), op)), `${code} ${op}`);
  }
});

/**
 * A volume whose archive becomes unreachable once old history lives only there: a read of that
 * history fails (EIO), and a write that finds the working set and the archive backlog full fails,
 * after the stall timeout, as a full disk would (ENOSPC), at the FUSE edge and at the NBD edge alike.
 */
test('an unavailable archive: EIO on a read and ENOSPC on a write, over FUSE and over NBD', async () => {
  const dir = path.join(tmpDir(), 'vol');
  const store = new FaultyStore(new MemoryStore());
  await Volume.create(dir, SMALL, { store });
  const vol = await Volume.open(dir, { store, archiveStallTimeoutMs: 200 });
  const bs = SMALL.blockSizeBytes!;
  const size = SMALL.sizeBytes;
  await vol.write(0, Buffer.alloc(bs, 1));
  await vol.sync({ label: 'old' });
  // Overwrite the whole volume until block 0's first version has left the working set.
  for (let pass = 0; pass < 6; pass++) for (let off = 0; off < size; off += 16 * bs) await vol.write(off, Buffer.alloc(16 * bs, pass + 2));
  await vol.sync({ label: 'new' });
  assert.ok((await vol.read(0, bs, vol.resolvePoint('old'))).equals(Buffer.alloc(bs, 1)), 'the old version is readable from the archive');
  store.unreachable = true;
  const log = silentLogger();
  const ops = makeOps(vol, new Tree(vol, () => Buffer.from('{}'), Date.now()), { autoSyncMs: 0, log });
  const call = <T extends unknown[]>(fn: (cb: (...a: T) => void) => void) => new Promise<T>((resolve) => fn((...a: T) => resolve(a)));
  // events/old/ is a label: its volume.img is a link to the event's listed path, as the kernel follows it.
  const [, link] = await call<[number, string?]>((cb) => ops.readlink!('/events/old/volume.img', cb));
  const oldPath = path.posix.join('/events/old', link!);
  const [, oldFd] = await call<[number, number?]>((cb) => ops.open!(oldPath, 0, cb));
  const [, liveFd] = await call<[number, number?]>((cb) => ops.open!('/live/volume.img', 2, cb));
  const socket = path.join(tmpDir(), 'nbd.sock');
  const server = new NbdServer(vol, { socket, syncOnFlush: false, log });
  await server.start();
  const connect = () => RawNbdClient.connect({ path: socket });
  const oldNbd = await openExport({ connect }, 'old');
  const liveNbd = await openExport({ connect }, 'live');
  try {
    const buf = Buffer.alloc(bs);
    assert.deepEqual(await call((cb) => ops.read!(oldPath, oldFd!, buf, bs, 0, cb)), [Fuse.EIO], 'FUSE read of archived history');
    await assert.rejects(oldNbd.read(0, bs), new RegExp(`error ${NBD.EIO}$`), 'NBD read of archived history');
    // Writes go on until the working set and the backlog are full and the stall timeout passes.
    let fuseResult = 0;
    for (let off = 0; fuseResult >= 0; off = (off + bs) % size) [fuseResult] = await call<[number]>((cb) => ops.write!('/live/volume.img', liveFd!, Buffer.alloc(bs, 9), bs, off, cb));
    assert.equal(fuseResult, Fuse.ENOSPC, 'FUSE write into a full working set');
    assert.equal(await liveNbd.write(0, Buffer.alloc(bs, 9)), NBD.ENOSPC, 'NBD write into a full working set');
  } finally {
    oldNbd.close();
    liveNbd.close();
    await server.close();
    store.unreachable = false;
    await vol.close();
  }
});
