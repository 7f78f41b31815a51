import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { archiveKeyFromSecret } from '../src/archive/archive-key';
import { archiveSettings, openStore } from '../src/archive/open-store';
import { controlCall } from '../src/control/control-client';
import { FILE_NAMES } from '../src/format/constants';
import { Volume } from '../src/volume/volume';
import { EncryptedStore } from '../src/archive/encrypted-store';
import { S3Store } from '../src/archive/s3-store';
import { CephCluster, startCeph } from './helpers/ceph';
import { CLI, cli } from './helpers/cli';
import { ServeDaemon } from './helpers/daemon';
import { assertPruneRecovers, hotWrites } from './helpers/prune';
import { MountedVolume, chronovol, eventDir, fuseSkipReason, ok, sha256 } from './helpers/fuse-harness';
import { Rng } from './helpers/rng';
import { S3_TEST_TUNING } from './helpers/s3-server';
import { backingStoreContract } from './helpers/store-contract';
import { tmpDir } from './helpers/tmp';
import { SMALL } from './helpers/volumes';
import { VolumeModel } from './helpers/volume-model';

/**
 * The S3 archive against a real Ceph cluster (scripts/ceph: mon, mgr, a bluestore OSD, radosgw),
 * started once for this file and stopped after it. The end-to-end tests mount FUSE and loop
 * devices: skipped, loudly, only where /dev/fuse is missing and CHRONOVOL_SKIP_FUSE=1 says so.
 */
const skipFuse = fuseSkipReason();
let ceph: CephCluster;
let prefixes = 0;
before(() => {
  ceph = startCeph();
  console.log(`ceph ready in ${ceph.readySeconds.toFixed(1)} s at ${ceph.endpoint}`);
});
after(() => ceph?.stop());

const cephStore = () => new S3Store({ ...S3_TEST_TUNING, listPageKeys: 50, bucket: ceph.bucket, prefix: `contract-${++prefixes}`, endpoint: ceph.endpoint });
backingStoreContract('s3 (Ceph radosgw)', cephStore);
backingStoreContract('encrypted s3 (Ceph radosgw)', () => new EncryptedStore(cephStore(), archiveKeyFromSecret(Buffer.alloc(32, 5))));

test('Ceph: a multipart upload stores exactly its bytes (raw GetObject), with the ETag HeadObject gives; the SDK\'s default checksums are refused (411)', async () => {
  const { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } = await import('@aws-sdk/client-s3');
  const { Readable } = await import('node:stream');
  const store = new S3Store({ ...S3_TEST_TUNING, bucket: ceph.bucket, prefix: 'exact', endpoint: ceph.endpoint });
  const rng = new Rng(3);
  const parts = [rng.bytes((6 << 20) + 1), rng.bytes(5 << 20)];
  const whole = Buffer.concat(parts);
  await store.put('obj', parts);
  const raw = await store.client.send(new GetObjectCommand({ Bucket: ceph.bucket, Key: 'exact/obj' }));
  assert.ok(Buffer.from(await raw.Body!.transformToByteArray()).equals(whole), 'radosgw holds exactly the uploaded bytes');
  const head = await store.client.send(new HeadObjectCommand({ Bucket: ceph.bucket, Key: 'exact/obj' }));
  assert.match(head.ETag ?? '', /-3"$/, 'three parts of 5 MiB: a multipart ETag');
  // Why the store sets requestChecksumCalculation WHEN_REQUIRED: radosgw refuses the default's
  // aws-chunked streamed body. If this starts passing, the setting may be relaxed.
  const defaults = new S3Client({ region: 'us-east-1', endpoint: ceph.endpoint, forcePathStyle: true, maxAttempts: 1 });
  try {
    await assert.rejects(
      defaults.send(new PutObjectCommand({ Bucket: ceph.bucket, Key: 'exact/defaults', Body: Readable.from([whole.subarray(0, 1 << 20)]), ContentLength: 1 << 20 })),
      (e: { $metadata?: { httpStatusCode?: number } }) => e.$metadata?.httpStatusCode === 411,
    );
  } finally {
    defaults.destroy();
    store.destroy();
  }
});

/** Writes files with random content into the mounted ext4; returns name → sha256. */
function writeFiles(rng: Rng, data: string, names: string[], stage: string, into: Map<string, string>): void {
  for (const n of names) {
    fs.writeFileSync(stage, rng.bytes(1 + rng.int(512 << 10)));
    ok('cp', [stage, path.join(data, n)]);
    into.set(n, sha256(stage));
  }
}

/**
 * Mount, ext4 on the live image through a loop device, events taken with --freeze, enough churn
 * that their segments leave the working set for Ceph; then the volume directory is deleted,
 * `recover` rebuilds it from Ceph alone, and every event's image (read through the recovered
 * volume's FUSE tree, its blocks out of the archive) loop-mounts with every file exact.
 */
async function cephEndToEnd(name: string, encrypt: boolean): Promise<void> {
  const rng = Rng.fromEnv();
  console.log(`seed ${rng.seed}`);
  const t0 = Date.now();
  const phase = (what: string) => console.log(`${name}: ${what} at ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const root = tmpDir('chronovol-ceph-e2e-');
  const dir = path.join(root, 'vol');
  const url = `s3://${ceph.bucket}/e2e-${name}`;
  const keyArgs = encrypt ? ['--encrypt', '--key-file', path.join(root, 'archive.key')] : [];
  // 16 MiB in 1 MiB segments, the smallest working set allowed (23): 24 MiB written after an event archives it.
  const init = chronovol(['init', dir, '--size', '16M', '--segment-size', '1M', '--working-set', '23', '--archive', url, '--archive-endpoint', ceph.endpoint, ...keyArgs, ...(encrypt ? ['--new-key'] : [])]);
  assert.equal(init.status, 0, init.stderr);
  const mnt = path.join(root, 'mnt');
  const data = path.join(root, 'data');
  const stage = path.join(root, 'stage');
  const expected = new Map<string, Map<string, string>>();
  let m = await MountedVolume.start(dir, mnt);
  try {
    const loop = m.losetup(path.join(mnt, 'live/volume.img'));
    ok('mkfs.ext4', ['-q', '-F', loop]);
    m.mount(loop, data);
    const files = new Map<string, string>();
    writeFiles(rng, data, ['a', 'b', 'c'], stage, files);
    ok(process.execPath, [CLI, 'sync', mnt, '--label', 'one', '--freeze', data]);
    expected.set('one', new Map(files));
    ok('rm', [path.join(data, 'b')]);
    files.delete('b');
    writeFiles(rng, data, ['a', 'd'], stage, files);
    ok(process.execPath, [CLI, 'sync', mnt, '--label', 'two', '--freeze', data]);
    expected.set('two', new Map(files));
    writeFiles(rng, data, ['c', 'e'], stage, files);
    ok(process.execPath, [CLI, 'sync', mnt, '--label', 'three', '--freeze', data]);
    expected.set('three', new Map(files));
    phase('events taken');
    // Churn: 32 MiB of rewrites push all three events' segments out of the working set.
    for (let i = 0; i < 4; i++) ok('dd', ['if=/dev/urandom', `of=${path.join(data, 'churn')}`, 'bs=1M', 'count=8', 'conv=fsync', 'status=none']);
    ok(process.execPath, [CLI, 'sync', mnt, '--label', 'after-churn', '--freeze', data]);
    m.umount(data);
    m.detach(loop);
    phase('churned');
  } finally {
    await m.cleanup();
  }
  phase('unmounted');
  const st = JSON.parse(chronovol(['status', dir, '--json']).stdout) as { archive: { segments: number; location: string } };
  assert.ok(st.archive.segments >= 15, `segments archived: ${st.archive.segments}`);
  assert.match(st.archive.location, encrypt ? /^encrypted s3:\/\// : /^s3:\/\//);

  fs.rmSync(dir, { recursive: true, force: true });
  const rec = path.join(root, 'rec');
  const recovered = chronovol(['recover', rec, '--archive', url, '--archive-endpoint', ceph.endpoint, ...keyArgs.filter((a) => a !== '--encrypt'), '--json'], 120_000);
  assert.equal(recovered.status, 0, recovered.stderr);
  phase('recovered');
  const report = JSON.parse(recovered.stdout) as { segments: number; events: number };
  assert.equal(report.segments, st.archive.segments, 'every archived segment recovered');
  const labels = (JSON.parse(chronovol(['events', rec, '--json']).stdout) as Array<{ label?: string }>).map((e) => e.label);
  for (const label of expected.keys()) assert.ok(labels.includes(label), `event ${label} recovered (events: ${labels.join(', ')})`);
  // The archive scrubbed in place on Ceph: every head, every object read whole.
  const scrub = chronovol(['verify', rec, '--archive', '--read-data'], 120_000);
  assert.equal(scrub.status, 0, scrub.stdout + scrub.stderr);

  m = await MountedVolume.start(rec, mnt);
  phase('mounted the recovered volume');
  try {
    for (const [label, want] of expected) {
      const at = path.join(root, `old-${label}`);
      m.mount(path.join(eventDir(mnt, label), 'volume.img'), at, ['-o', 'ro,loop']);
      const names = ok('ls', [at]).stdout.split('\n').filter((n) => n && n !== 'lost+found').sort();
      assert.deepEqual(names, [...want.keys()].sort(), `files at ${label}`);
      for (const [n, h] of want) assert.equal(sha256(path.join(at, n)), h, `${label}/${n} is exact`);
      m.umount(at);
      phase(`checked ${label}`);
    }
  } finally {
    await m.cleanup();
  }
}

describe('Ceph end to end', { skip: skipFuse }, () => {
  test('ext4 on a FUSE-mounted volume archiving to Ceph; volume directory deleted; recover from Ceph; every event\'s files exact', { timeout: 240_000 }, async () => {
    await cephEndToEnd('plain', false);
  });
  test('the same with the archive encrypted', { timeout: 240_000 }, async () => {
    await cephEndToEnd('sealed', true);
  });
});

/**
 * Issue 15's SIGKILL during prune, against Ceph: the daemon is killed as soon as the first
 * rewritten object (a generation key) is listed in the bucket, as soon as the catalog is, and at
 * once. After each kill the volume verifies, every kept event exports bit-exact, and a second
 * prune finishes with the bucket holding exactly the catalog's keys.
 */
test('Ceph: SIGKILL of a daemon mid-prune; the volume verifies, kept events bit-exact, prune again leaves no leftovers', { timeout: 300_000 }, async () => {
  let cutShort = 0;
  const triggers: Array<[string, (keys: string[]) => boolean]> = [
    ['a rewritten object', (keys) => keys.some((k) => /\.g1\.cvseg$/.test(k))],
    ['the catalog', (keys) => keys.includes(FILE_NAMES.archiveCatalog)],
    ['the request', () => true],
  ];
  for (const [n, [what, ready]] of triggers.entries()) {
    const root = tmpDir('chronovol-ceph-prune-kill-');
    const dir = path.join(root, 'vol');
    const { settings } = archiveSettings({ archive: `s3://${ceph.bucket}/prune-kill-${n}`, endpoint: ceph.endpoint });
    await Volume.create(dir, { ...SMALL, archiveSettings: settings });
    const vol = await Volume.open(dir);
    const model = new VolumeModel(SMALL.sizeBytes);
    const events = await hotWrites(vol, model, new Rng(300 + n), 240, 20);
    await vol.close();
    assert.equal(cli(['forget', dir, '--keep-last', '2']).status, 0);
    const kept = events.slice(-2);
    const store = openStore(settings);
    const d = await ServeDaemon.start(dir);
    const call = controlCall(path.join(dir, 'control.sock'), { method: 'retention', params: { op: 'prune' } }, undefined, 240_000).catch((err: Error) => err);
    let settled = false;
    void call.then(() => (settled = true));
    while (!settled && !ready(await store.list(''))) await new Promise((r) => setTimeout(r, 2));
    d.proc.kill('SIGKILL');
    await new Promise((r) => d.proc.once('exit', r));
    const answer = await call;
    if (answer instanceof Error) cutShort++;
    const ctx = `killed at ${what} (${answer instanceof Error ? 'cut short' : 'it had finished'})`;
    await assertPruneRecovers(ctx, dir, root, kept, model, store);
  }
  console.log(`${cutShort} of ${triggers.length} kills landed before the prune answered`);
  assert.ok(cutShort >= 2, 'the kills at the first rewrite and at the catalog landed mid-prune');
});
