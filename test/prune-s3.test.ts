import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { ArchiveCatalog } from '../src/archive/archive-catalog';
import { archiveSettings, openStore } from '../src/archive/open-store';
import { isChronoError } from '../src/errors';
import { ARCHIVE_TABLE, FILE_NAMES, parseTableFileName, tableFileName } from '../src/format/constants';
import { forget } from '../src/retention/forget';
import { recoverFromArchive } from '../src/volume/recover';
import { sealNow } from '../src/volume/turnover';
import { Volume } from '../src/volume/volume';
import { whiteBox } from '../src/volume/white-box';
import { hotWrites } from './helpers/prune';
import { Rng } from './helpers/rng';
import { S3Server, startS3Server } from './helpers/s3-server';
import { tmpDir } from './helpers/tmp';
import { SMALL } from './helpers/volumes';
import { VolumeModel } from './helpers/volume-model';

let s3: S3Server;
before(async () => {
  s3 = await startS3Server();
});
after(async () => {
  await s3?.stop();
});

/**
 * Prune against a real S3 server (s3rver): objects deleted and rewritten under generation keys,
 * the catalog put and read back; the archive's bytes shrink; kept points bit-exact, verify clean;
 * then the volume directory is gone and recovery from S3 alone keeps forgotten points refused.
 */
test('S3: forget, prune, verify, recover from S3 alone', async () => {
  const root = tmpDir();
  const dir = path.join(root, 'vol');
  const { settings } = archiveSettings({ archive: `s3://${s3.bucket}/prune`, endpoint: s3.endpoint });
  await Volume.create(dir, { ...SMALL, archiveSettings: settings });
  let vol = await Volume.open(dir);
  const model = new VolumeModel(SMALL.sizeBytes);
  const store = openStore(settings);
  const bytes = async () => {
    let n = 0;
    for (const k of await store.list(FILE_NAMES.archiveSegmentsPrefix)) n += (await store.size(k)) ?? 0;
    return n;
  };
  try {
    const events = await hotWrites(vol, model, new Rng(31), 300, 30);
    forget(vol, { keepLast: 2 });
    const kept = events.slice(-2);
    const core = whiteBox(vol);
    const last = core.segments.current.id;
    await sealNow(core);
    assert.equal(await core.archiver.settled(last), undefined);
    const before = await bytes();
    const r = await vol.prune();
    assert.ok(r.deleted.length > 0 && r.rewritten.length > 0, JSON.stringify(r.plan));
    const afterBytes = await bytes();
    assert.ok(afterBytes < before * 0.7, `S3 archive ${before} -> ${afterBytes} bytes`);
    const keys = await store.list(FILE_NAMES.archiveSegmentsPrefix);
    assert.ok(keys.some((k) => /\.g1\.cvseg$/.test(k)), `generation keys in ${keys.join(' ')}`);
    // Local offset tables follow the generation: the rewrite's kept, the replaced and deleted ones gone.
    const tables = fs.readdirSync(path.join(dir, ARCHIVE_TABLE.dirName));
    for (const id of r.rewritten) assert.ok(tables.includes(tableFileName(id, 1)) && !tables.includes(tableFileName(id, 0)), `segment ${id}: ${tables.join(' ')}`);
    for (const id of r.deleted) assert.ok(!tables.some((n) => parseTableFileName(n)?.id === id), `segment ${id} deleted: ${tables.join(' ')}`);
    const cat = await ArchiveCatalog.load(store, undefined);
    for (const id of r.deleted) assert.ok(!keys.includes(`segments/${id.toString(16).padStart(8, '0')}.cvseg`));
    assert.equal(cat.generation, 1);
    const check = async (v: Volume, ctx: string) => {
      for (const e of kept) assert.ok((await v.read(0, v.sizeBytes, v.resolvePoint(String(e.id)))).equals(model.atSeq.get(e.seq)!), `${ctx}: event ${e.id}`);
      assert.ok((await v.read(0, v.sizeBytes)).equals(model.live), `${ctx}: live`);
      assert.throws(() => v.resolvePoint(String(events[0].id)), (err) => isChronoError(err, 'POINT_FORGOTTEN'));
      assert.throws(() => v.resolvePoint(`seq:${events[events.length - 3].seq + 1}`), (err) => isChronoError(err, 'POINT_FORGOTTEN'));
      const ver = await v.verify();
      assert.ok(ver.ok, `${ctx}: ${JSON.stringify(ver.problems.slice(0, 3))}`);
    };
    await check(vol, 'pruned');
    await vol.close();
    const rdir = path.join(root, 'rec');
    await recoverFromArchive(settings, rdir);
    vol = await Volume.open(rdir);
    await check(vol, 'recovered from S3');
  } finally {
    await vol.close();
  }
});
