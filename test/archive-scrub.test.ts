import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { sampleIds, scrubArchive } from '../src/archive/archive-scrub';
import { LocalDirStore } from '../src/archive/local-dir-store';
import { archiveKey } from '../src/archive/archive-object';
import { OBJECT_TAIL_BYTES, decodeObjectEnd } from '../src/archive/object-end';
import { cli } from './helpers/cli';
import { Rng } from './helpers/rng';
import { VolumeModel } from './helpers/volume-model';
import { churn, freshVolume } from './helpers/volumes';

/** `verify --archive`: the archive scrubbed in place, heads always, data all or sampled. */
async function archivedVolume(): Promise<{ dir: string; archive: string; ids: number[] }> {
  const { dir, vol, archive } = await freshVolume();
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

test('scrub: a flipped byte in an object\'s data passes the head check and is found by --read-data (BAD_CHECKSUM in a built object, CORRUPT_LOG in a linked one)', async () => {
  const { archive, ids } = await archivedVolume();
  const victim = ids[ids.length - 1];
  const file = path.join(archive, archiveKey(victim));
  const b = fs.readFileSync(file);
  // A built object's checksum covers it whole; a linked one (the sealed segment itself) is
  // checked record by record, so the flip is a damaged record.
  const linked = decodeObjectEnd(b.subarray(b.length - OBJECT_TAIL_BYTES), b.length, {}).linked;
  b[Math.floor(b.length / 2)] ^= 0x10;
  fs.writeFileSync(file, b);
  const store = new LocalDirStore(archive);
  assert.equal((await scrubArchive(store)).ok, true, 'heads cannot see a flip in the data');
  const r = await scrubArchive(store, { readDataFraction: 1 });
  assert.equal(r.ok, false);
  const p = r.problems.find((x) => x.segment === victim);
  assert.equal(p?.kind, 'archived-segment', JSON.stringify(r.problems));
  assert.equal(p.code, linked ? 'CORRUPT_LOG' : 'BAD_CHECKSUM');
});

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
