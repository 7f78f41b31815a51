import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { isChronoError } from '../src/errors';
import { openDestination } from '../src/replication/restore-destination';
import { tmpDir } from './helpers/tmp';

/**
 * Review 4 (a hazard it named): restore reads the destination a chunk at a time into one buffer
 * and writes only the blocks that differ from the point. A read that came back short left the
 * previous chunk's bytes in that buffer, so a block that differs could compare equal and never be
 * written. A destination that ends early (truncated while restore runs) is an error instead.
 */
test('a restore destination that ends before a read is done fails the read (IO), never leaves old bytes in the buffer', async () => {
  const file = path.join(tmpDir(), 'disk.img');
  fs.writeFileSync(file, Buffer.alloc(1 << 20, 0x5a));
  const dest = await openDestination(file);
  try {
    assert.equal(dest.sizeBytes, 1 << 20);
    const buf = Buffer.alloc(64 * 1024, 0x11);
    await dest.read(buf, buf.length, 0);
    assert.ok(buf.equals(Buffer.alloc(buf.length, 0x5a)), 'a whole read');
    fs.truncateSync(file, 512 * 1024 + 4096); // shrinks under restore
    buf.fill(0x11);
    await assert.rejects(dest.read(buf, buf.length, 512 * 1024), (e) => isChronoError(e, 'IO'), 'a read past the new end fails');
  } finally {
    await dest.close();
  }
});
