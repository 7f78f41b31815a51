import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { archiveKeyFromSecret } from '../src/archive/archive-key';
import type { BackingStore } from '../src/archive/backing-store';
import { EncryptedStore } from '../src/archive/encrypted-store';
import { LocalDirStore } from '../src/archive/local-dir-store';
import { FILE_NAMES } from '../src/format/constants';
import { sealNow } from '../src/volume/turnover';
import { OpenOptions, Volume } from '../src/volume/volume';
import { whiteBox } from '../src/volume/white-box';
import { tmpDir } from './helpers/tmp';
import { archiveAll } from './helpers/versioned-blocks';
import { SMALL } from './helpers/volumes';

const BS = 4096;

// Archiver.load: "Unreachable or damaged: archive from the oldest segment in primary on,
// rewriting the head." The archive fence's first version broke that (found by review): load left
// its base unread, and check() read the damaged head again before every segment and threw, so
// nothing was archived ever again. A damaged head is now taken as it is, replaced by the next one.
// On an encrypted archive the damage shows as a head that fails authentication
// (ARCHIVE_AUTH_FAILED), with no bytes at all: the same rule.

/** A write and an event, sealed: the segment must reach the archive, and the head be rewritten. */
async function archivesNext(v: Volume): Promise<void> {
  await v.write(0, Buffer.alloc(BS, 2));
  await v.sync({ label: 'b' });
  const core = whiteBox(v);
  const segment = core.segments.current.id;
  await sealNow(core);
  const err = await core.archiver.settled(segment);
  assert.equal(err, undefined, `the segment is archived and the head rewritten: ${String(err)}`);
}

/** A volume archived once, its head then damaged at `flipAt` (from the end when negative); archiving must go on. */
async function archivesPastDamagedHead(storeFor: ((archive: string) => BackingStore) | undefined, flipAt: number): Promise<void> {
  const root = tmpDir();
  const dir = path.join(root, 'vol');
  const archive = path.join(root, 'archive');
  fs.mkdirSync(archive, { recursive: true });
  const o = (): OpenOptions => (storeFor ? { store: storeFor(archive) } : {});
  await Volume.create(dir, { archive, ...SMALL }, o());
  const vol = await Volume.open(dir, o());
  await vol.write(0, Buffer.alloc(BS, 1));
  await vol.sync({ label: 'a' });
  await archiveAll(vol);
  await vol.close();
  // Bit rot (or a torn upload) in the head.
  const headPath = path.join(archive, FILE_NAMES.archiveHead);
  const b = fs.readFileSync(headPath);
  b[flipAt < 0 ? b.length + flipAt : flipAt] ^= 0xff;
  fs.writeFileSync(headPath, b);

  const v = await Volume.open(dir, o());
  try {
    assert.ok((await v.status()).archive.error, 'open notes the damaged head');
    await archivesNext(v);
    // And prune, which checks the fence too, is not refused for it.
    await v.prune({ dryRun: false });
  } finally {
    await v.close();
  }
}

test('a damaged archive head is rewritten by the next segment archived (archiving does not stop for good)', { timeout: 30_000 }, async () => {
  await archivesPastDamagedHead(undefined, 20);
});

test('encrypted archive: a head that fails authentication is rewritten by the next segment archived', { timeout: 30_000 }, async () => {
  const key = archiveKeyFromSecret(Buffer.alloc(32, 7));
  await archivesPastDamagedHead((archive) => new EncryptedStore(new LocalDirStore(archive), key), -5);
});

// A head of ours that landed short (s3rver under load once stored 0 bytes of a 64-byte put: the
// put's own check fails it and the next run retries) was then read back before the next segment
// and taken for another writer's: ARCHIVE_CONFLICT, for good. A head that does not decode is
// damaged, not another writer's.
test('a head damaged while the volume runs (landed short) is replaced by the next, not taken for another writer\'s', { timeout: 30_000 }, async () => {
  const root = tmpDir();
  const dir = path.join(root, 'vol');
  const archive = path.join(root, 'archive');
  await Volume.create(dir, { archive, ...SMALL });
  const v = await Volume.open(dir);
  try {
    await v.write(0, Buffer.alloc(BS, 1));
    await v.sync({ label: 'a' });
    await archiveAll(v);
    fs.writeFileSync(path.join(archive, FILE_NAMES.archiveHead), Buffer.alloc(0));
    await archivesNext(v);
    assert.equal(fs.statSync(path.join(archive, FILE_NAMES.archiveHead)).size, 64);
  } finally {
    await v.close();
  }
});
