import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { sampleIds, scrubArchive } from '../src/archive/archive-scrub';
import { LocalDirStore } from '../src/archive/local-dir-store';
import { archiveKey } from '../src/archive/archive-object';
import { readObjectEnd } from '../src/archive/object-end';
import { cli } from './helpers/cli';
import { Rng } from './helpers/rng';
import { VolumeModel } from './helpers/volume-model';
import { tmpDir } from './helpers/tmp';
import { SMALL, churn, freshVolume } from './helpers/volumes';

/** A local archive that cannot link: every object is put in the built form, as S3 and encrypted archives get it. */
class CopyingStore extends LocalDirStore {
  override async linkFrom(): Promise<boolean> {
    return false;
  }
}

type Form = 'linked' | 'built';

/**
 * `verify --archive`: the archive scrubbed in place, heads always, data all or sampled. A local
 * archive on the volume's file system holds linked objects (the sealed segments themselves);
 * `built` makes it hold the built form instead.
 */
async function archivedVolume(form: Form = 'linked'): Promise<{ dir: string; archive: string; ids: number[] }> {
  const root = tmpDir();
  const archive = path.join(root, 'archive');
  if (form === 'built') fs.mkdirSync(archive, { recursive: true }); // what `init` does for the store it opens
  const o = form === 'built' ? { store: new CopyingStore(archive) } : {};
  const { dir, vol } = await freshVolume(SMALL, o, root);
  await churn(vol, new VolumeModel(vol.sizeBytes), new Rng(41), 400);
  await vol.close();
  const ids = fs.readdirSync(path.join(archive, 'segments')).map((n) => parseInt(n, 16)).filter((n) => n > 0).sort((a, b) => a - b);
  assert.ok(ids.length >= 6, `archived segments: ${ids.length}`);
  return { dir, archive, ids };
}

test('scrub: a healthy archive passes, heads only and with every segment read; a sample reads its share, the same one for the same seed', async () => {
  const { archive, ids } = await archivedVolume();
  const store = new LocalDirStore(archive);
  const heads = await scrubArchive(store);
  assert.deepEqual(heads.problems, []);
  assert.equal(heads.checked.segmentHeads, ids.length);
  assert.equal(heads.checked.segmentsRead, 0);
  assert.ok(heads.checked.objects >= ids.length + 2, 'segments, superblock and head listed');
  const all = await scrubArchive(store, { readDataFraction: 1 });
  assert.ok(all.ok);
  assert.equal(all.checked.segmentsRead, ids.length);
  const half = await scrubArchive(store, { readDataFraction: 0.5, seed: 7 });
  assert.equal(half.checked.segmentsRead, Math.round(ids.length / 2));
  assert.deepEqual(sampleIds(ids, 0.5, 7), sampleIds(ids, 0.5, 7));
  assert.notDeepEqual(sampleIds(ids, 0.5, 7), sampleIds(ids, 0.5, 8), 'another seed, another sample');
  assert.equal(sampleIds(ids, 0.01, 3).length, 1, 'a small fraction still reads one');
});

test('scrub: a missing object is reported as archive-missing, naming it (heads only)', async () => {
  const { archive, ids } = await archivedVolume();
  const gone = ids[Math.floor(ids.length / 2)];
  fs.rmSync(path.join(archive, archiveKey(gone)));
  const r = await scrubArchive(new LocalDirStore(archive));
  assert.equal(r.ok, false);
  const p = r.problems.find((x) => x.kind === 'archive-missing');
  assert.ok(p, JSON.stringify(r.problems));
  assert.equal(p.segment, gone);
  assert.equal(p.code, 'ARCHIVE_MISSING');
});

test('scrub: a truncated object is reported from its head alone, without reading data', async () => {
  const { archive, ids } = await archivedVolume();
  const victim = ids[1];
  const file = path.join(archive, archiveKey(victim));
  fs.truncateSync(file, fs.statSync(file).size - 100);
  const r = await scrubArchive(new LocalDirStore(archive));
  assert.equal(r.ok, false);
  assert.equal(r.checked.bytesRead, 0);
  const p = r.problems.find((x) => x.segment === victim);
  assert.equal(p?.kind, 'archived-segment', JSON.stringify(r.problems));
  assert.ok(['BAD_MAGIC', 'BAD_LENGTH'].includes(p.code!), p.code);
});

// A built object carries an object CRC, checked first (BAD_CHECKSUM); a linked one is the sealed
// segment, whose record and block CRCs find the flip while its records are scanned (CORRUPT_LOG).
for (const [form, code] of [['built', 'BAD_CHECKSUM'], ['linked', 'CORRUPT_LOG']] as const) {
  test(`scrub: a flipped byte in a ${form} object's data passes the head check and is found by --read-data (${code})`, async () => {
    const { archive, ids } = await archivedVolume(form);
    const victim = ids[ids.length - 1];
    const file = path.join(archive, archiveKey(victim));
    const b = fs.readFileSync(file);
    const store = new LocalDirStore(archive);
    assert.equal((await readObjectEnd(store, archiveKey(victim), b.length, {})).linked, form === 'linked', `the archive holds ${form} objects`);
    b[Math.floor(b.length / 2)] ^= 0x10;
    fs.writeFileSync(file, b);
    assert.equal((await scrubArchive(store)).ok, true, 'heads cannot see a flip in the data');
    const r = await scrubArchive(store, { readDataFraction: 1 });
    assert.equal(r.ok, false);
    const p = r.problems.find((x) => x.segment === victim);
    assert.equal(p?.kind, 'archived-segment', JSON.stringify(r.problems));
    assert.equal(p.code, code, p.message);
  });
}

test('verify --archive (CLI): exit 0 healthy, 1 with damage and the damage printed; --read-data without --archive is bad usage (2)', async () => {
  const { dir, archive, ids } = await archivedVolume();
  const ok = cli(['verify', dir, '--archive', '--read-data']);
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, new RegExp(`${ids.length} segment heads checked, ${ids.length} segments read whole`));
  const sampled = cli(['verify', dir, '--archive', '--read-data=0.5', '--seed', '9']);
  assert.match(sampled.stdout, /a 0\.5 sample, seed 9/);
  fs.rmSync(path.join(archive, archiveKey(ids[2])));
  const bad = cli(['verify', dir, '--archive', '--json']);
  assert.equal(bad.status, 1);
  assert.equal(JSON.parse(bad.stdout).problems[0].segment, ids[2]);
  assert.equal(cli(['verify', dir, '--read-data']).status, 2);
  assert.equal(cli(['verify', dir, '--archive', '--read-data=2']).status, 2);
});
