import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { controlCall } from '../src/control/control-client';
import { ControlServer } from '../src/control/control-server';
import { silentLogger } from '../src/log';
import { forget } from '../src/retention/forget';
import { FaultyFileSystem } from '../src/storage/faulty-file-system';
import { MemoryFileSystem } from '../src/storage/memory-file-system';
import { Volume } from '../src/volume/volume';
import { tmpDir } from './helpers/tmp';
import { freshVolume } from './helpers/volumes';

const BS = 4096;
const MIB = 1 << 20;

/**
 * Review 4, finding 2 (issue 10): `export --at live` through a daemon streams the image a chunk
 * at a time. Each chunk used to read live as it stood then, so writes landing during the export
 * made an image the volume never held. Block 0 (first chunk) and block 768 (at 3 MiB, the fourth
 * chunk) both hold 1; once the first chunk has arrived, block 0 and then block 768 are set to 2.
 * The volume's states are (1,1), (2,1), (2,2): an export that reads (1,2) is a mix.
 */
test('export --at live through the control socket is one state of the volume, whatever is written meanwhile', { timeout: 60_000 }, async () => {
  const { dir, vol } = await freshVolume({ sizeBytes: 4 * MIB, blockSizeBytes: BS, segmentSizeBytes: 256 * 1024 });
  const socket = path.join(dir, 'control.sock');
  const server = new ControlServer(vol, socket, silentLogger());
  await server.listen();
  try {
    for (let round = 1; round <= 5; round++) {
      await vol.write(0, Buffer.alloc(BS, round));
      await vol.write(3 * MIB, Buffer.alloc(BS, round));
      const parts: Buffer[] = [];
      let writes: Promise<void> | undefined;
      await controlCall(socket, { method: 'export', params: { at: 'live' } }, (chunk) => {
        parts.push(Buffer.from(chunk));
        writes ??= (async () => {
          await vol.write(0, Buffer.alloc(BS, round + 1));
          await vol.write(3 * MIB, Buffer.alloc(BS, round + 1));
        })();
      });
      await writes;
      const image = Buffer.concat(parts);
      assert.equal(image.length, 4 * MIB);
      const pair = [image[0], image[3 * MIB]];
      assert.ok(pair[0] >= pair[1], `round ${round}: the export read block 0 as ${pair[0]} and block 768 as ${pair[1]}, a state the volume never held`);
      assert.deepEqual(pair, [round, round], `round ${round}: the state when the export began`);
    }
  } finally {
    await server.close();
    await vol.close();
  }
});

/**
 * Review 5: the pinned seq of a live export is no event, so a forget meanwhile (a daemon's
 * --retention-every runs one on its schedule) thinned it, and the next chunk failed
 * POINT_FORGOTTEN. The export holds its point (in memory) until its last byte, and releases it.
 */
test('a forget during an export through the control socket does not fail it; the export\'s hold is gone afterwards', { timeout: 60_000 }, async () => {
  const { dir, vol } = await freshVolume({ sizeBytes: 4 * MIB, blockSizeBytes: BS, segmentSizeBytes: 256 * 1024 });
  const socket = path.join(dir, 'control.sock');
  const server = new ControlServer(vol, socket, silentLogger());
  await server.listen();
  try {
    await vol.write(0, Buffer.alloc(BS, 1));
    await vol.sync({ label: 'e0' });
    await vol.write(3 * MIB, Buffer.alloc(BS, 1));
    for (const at of ['live', 'e0']) {
      const parts: Buffer[] = [];
      let forgetting: Promise<number> | undefined;
      await controlCall(socket, { method: 'export', params: { at } }, (chunk) => {
        parts.push(Buffer.from(chunk));
        if (parts.length === 1) assert.ok(vol.retention.keptPointSeqs().length > vol.retention.pins.length, 'the export holds its point');
        // A write, then a forget that keeps only the newest event: the export's seq is thinned.
        forgetting ??= (async () => {
          await vol.write(2 * MIB, Buffer.alloc(BS, 9));
          forget(vol, { keepLast: 1 });
          return parts.length;
        })();
      });
      const chunksBeforeForget = await forgetting!;
      assert.ok(chunksBeforeForget < 4, `the forget ran while the export had chunks to go (${chunksBeforeForget} of 4 sent)`);
      const image = Buffer.concat(parts);
      assert.equal(image.length, 4 * MIB, `export ${at}: whole`);
      assert.equal(image[0], 1);
      assert.equal(image[3 * MIB], at === 'live' ? 1 : 0, `export ${at}: its own state`);
      assert.equal(image[2 * MIB], 0, 'the write during the export is not in it');
      assert.equal(vol.retention.keptPointSeqs().length, vol.retention.pins.length, 'the hold is released');
      await vol.write(3 * MIB + BS, Buffer.alloc(BS, 2)); // the next round's live has moved on
    }
  } finally {
    await server.close();
    await vol.close();
  }
});

/**
 * Review 6: an export is how data leaves a sick disk. Holding its point by a pin wrote
 * retention.json twice per export, so with that file unwritable (a full disk, a file system
 * remounted read-only) every export was refused. The hold is in memory: nothing is written.
 */
test('an export through the control socket writes nothing: it works while retention.json cannot be written', { timeout: 60_000 }, async () => {
  const mem = new MemoryFileSystem();
  const fs = new FaultyFileSystem(mem);
  mem.mkdirp('/v');
  await Volume.create('/v', { sizeBytes: 2 * MIB, blockSizeBytes: BS, segmentSizeBytes: 256 * 1024 }, { fs });
  const vol = await Volume.open('/v', { fs });
  const socket = path.join(tmpDir(), 'control.sock');
  const server = new ControlServer(vol, socket, silentLogger());
  await server.listen();
  try {
    await vol.write(0, Buffer.alloc(BS, 7));
    await vol.sync({ label: 'e0' });
    fs.failWhen = (_op, p) => p.includes('retention');
    for (const at of ['live', 'e0']) {
      const parts: Buffer[] = [];
      await controlCall(socket, { method: 'export', params: { at } }, (c) => parts.push(Buffer.from(c)));
      const image = Buffer.concat(parts);
      assert.equal(image.length, 2 * MIB);
      assert.equal(image[0], 7, `export ${at}`);
    }
  } finally {
    fs.failWhen = () => false;
    await server.close();
    await vol.close();
  }
});
