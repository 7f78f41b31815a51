import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { FaultyStore } from '../src/archive/faulty-store';
import { openStore } from '../src/archive/open-store';
import { isChronoError } from '../src/errors';
import { NodeFileSystem } from '../src/storage/node-file-system';
import { recoverFromArchive } from '../src/volume/recover';
import { sealNow } from '../src/volume/turnover';
import { Volume } from '../src/volume/volume';
import { whiteBox } from '../src/volume/white-box';
import { cli } from './helpers/cli';
import { tmpDir } from './helpers/tmp';
import { SMALL, freshVolume } from './helpers/volumes';

// DESIGN rule 29: two volume processes with one volume id (a copied volume directory) must not
// both archive to one archive. Before the fence the second overwrote the first's segment objects
// and head: the archive then held a mix of two histories, and a recovery served it.

const BS = 4096;
const conflict = (e: unknown) => isChronoError(e, 'ARCHIVE_CONFLICT');

/** Fills blocks 0..n-1 with `byte`, then seals and archives what it wrote. */
async function writeAndArchive(vol: Volume, byte: number, blocks = 32): Promise<{ segment: number; err: unknown }> {
  for (let b = 0; b < blocks; b++) await vol.write(b * BS, Buffer.alloc(BS, byte));
  await vol.sync({ label: `fill-${byte}` });
  const core = whiteBox(vol);
  const segment = core.segments.current.id;
  await sealNow(core);
  return { segment, err: await core.archiver.settled(segment) };
}

async function twoCopies(): Promise<{ dir: string; copy: string; archive: string }> {
  const { dir, vol, archive } = await freshVolume(SMALL);
  await writeAndArchive(vol, 0x11);
  await vol.close();
  const copy = path.join(path.dirname(dir), 'copy');
  fs.cpSync(dir, copy, { recursive: true });
  return { dir, copy, archive };
}

test('archive fence: of two copies of a volume running at once, the second to archive is refused (ARCHIVE_CONFLICT) and the archive keeps the first one\'s history', async () => {
  const { dir, copy, archive } = await twoCopies();
  const a = await Volume.open(dir);
  const b = await Volume.open(copy);
  try {
    const first = await writeAndArchive(a, 0xaa);
    assert.equal(first.err, undefined, 'the first copy archives');
    const second = await writeAndArchive(b, 0xbb);
    assert.equal(second.segment, first.segment, 'both copies sealed the same segment id');
    assert.ok(conflict(second.err), `the second copy is refused: ${String(second.err)}`);
    assert.match((await b.status()).archive.error ?? '', /another process/);
    // The first goes on archiving.
    assert.equal((await writeAndArchive(a, 0xac)).err, undefined);
  } finally {
    await a.close();
    await b.close();
  }
  // The archive is the first copy's alone: a recovery reads its bytes, none of the second's.
  const target = path.join(tmpDir(), 'recovered');
  await recoverFromArchive(archive, target);
  const r = await Volume.open(target, { readOnly: true });
  try {
    assert.ok((await r.read(0, 32 * BS, r.resolvePoint('fill-172'))).equals(Buffer.alloc(32 * BS, 0xac)));
    assert.ok((await r.read(0, 32 * BS, r.resolvePoint('fill-170'))).equals(Buffer.alloc(32 * BS, 0xaa)));
  } finally {
    await r.close();
  }
});

test('archive fence: a copy opened after the other archived its own history is refused for writing at open (ARCHIVE_CONFLICT); read-only it opens', async () => {
  const { dir, copy, archive } = await twoCopies();
  // A copy that never wrote past the fork: the archive will name segments past its log.
  const late = path.join(path.dirname(dir), 'late');
  fs.cpSync(copy, late, { recursive: true });
  // The copy sealed a segment of its own (a different history) before the first archived.
  // (Its archive unreachable meanwhile, so only the first copy's history reaches the archive.)
  const down = new FaultyStore(openStore(archive, { fs: new NodeFileSystem() }));
  const b0 = await Volume.open(copy, { store: down });
  down.unreachable = true;
  for (let blk = 0; blk < 32; blk++) await b0.write(blk * BS, Buffer.alloc(BS, 0xbb));
  await b0.sync({ label: 'copy' });
  await sealNow(whiteBox(b0));
  await b0.close();
  const a = await Volume.open(dir);
  assert.equal((await writeAndArchive(a, 0xaa)).err, undefined);
  await a.close();
  await assert.rejects(Volume.open(copy), conflict);
  const ro = await Volume.open(copy, { readOnly: true });
  try {
    assert.ok((await ro.read(0, BS, ro.resolvePoint('copy'))).equals(Buffer.alloc(BS, 0xbb)), 'its own history reads');
  } finally {
    await ro.close();
  }
  await assert.rejects(Volume.open(late), (e: unknown) => conflict(e) && /past this volume's log/.test((e as Error).message));
  const r = cli(['status', late, '--json']);
  assert.equal(r.status, 0, `status opens read-only: ${r.stderr}`);
  // And the CLI says which rule refused a writable open.
  const w = cli(['write', late, '--offset', '0'], Buffer.alloc(BS, 1));
  assert.notEqual(w.status, 0);
  assert.match(w.stderr, /ARCHIVE_CONFLICT/);
});

test('archive fence: the same volume reopened (a new process, a new writer id) archives on after its own head', async () => {
  const { dir } = await twoCopies();
  for (let i = 0; i < 3; i++) {
    const v = await Volume.open(dir);
    try {
      assert.equal((await writeAndArchive(v, 0x20 + i)).err, undefined, `reopen ${i}`);
    } finally {
      await v.close();
    }
  }
});
