import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { FILE_NAMES } from '../src/format/constants';
import { sealNow } from '../src/volume/turnover';
import { Volume } from '../src/volume/volume';
import { whiteBox } from '../src/volume/white-box';
import { freshVolume } from './helpers/volumes';
import { archiveAll } from './helpers/versioned-blocks';

const BS = 4096;

// Archiver.load: "Unreachable or damaged: archive from the oldest segment in primary on,
// rewriting the head." The fence's first version broke that (found by review): load left its
// base unread, and check() decoded the damaged head again before every segment and threw, so
// nothing was archived ever again. A damaged head is now the base as it is, replaced by the next.
test('a damaged archive head is rewritten by the next segment archived (archiving does not stop for good)', { timeout: 30_000 }, async () => {
  const { dir, vol, archive } = await freshVolume();
  await vol.write(0, Buffer.alloc(BS, 1));
  await vol.sync({ label: 'a' });
  await archiveAll(vol);
  await vol.close();
  // Bit rot (or a torn upload) in the head.
  const headPath = path.join(archive, FILE_NAMES.archiveHead);
  const b = fs.readFileSync(headPath);
  b[20] ^= 0xff;
  fs.writeFileSync(headPath, b);

  const v = await Volume.open(dir);
  try {
    assert.ok((await v.status()).archive.error, 'open notes the damaged head');
    await v.write(0, Buffer.alloc(BS, 2));
    await v.sync({ label: 'b' });
    const core = whiteBox(v);
    const segment = core.segments.current.id;
    await sealNow(core);
    const err = await core.archiver.settled(segment);
    assert.equal(err, undefined, `the segment is archived and the head rewritten: ${String(err)}`);
  } finally {
    await v.close();
  }
});
