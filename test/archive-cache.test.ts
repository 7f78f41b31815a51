import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { openStore } from '../src/archive/open-store';
import { ARCHIVE_CACHE } from '../src/format/constants';
import { resolveImage, streamImage } from '../src/service/images';
import { Volume } from '../src/volume/volume';
import { cli, cliJson } from './helpers/cli';
import { CountingStore } from './helpers/counting-store';
import { ServeDaemon } from './helpers/daemon';
import { MountedVolume, eventDir, fuseSkipReason } from './helpers/fuse-harness';
import { openExport } from './helpers/nbd-client';
import { Rng } from './helpers/rng';
import { S3Server, startS3Server } from './helpers/s3-server';
import { tmpDir } from './helpers/tmp';

const IMAGE_BYTES = 1 << 20;
let s3: S3Server;
let root: string;
let rec: string;
const images = new Map<string, Buffer>();

/**
 * A volume whose past lives only in S3: events e0..e4 written (each a whole new image, so every
 * older block is overwritten), the volume directory deleted, then recovered from s3rver: the
 * working set holds the live image only, and e0..e3 are read out of the archive.
 */
before(async () => {
  s3 = await startS3Server();
  root = tmpDir('s3cache-');
  const dir = path.join(root, 'vol');
  const url = `s3://${s3.bucket}/cache`;
  const init = cli(['init', dir, '--size', '1M', '--segment-size', '64K', '--archive', url, '--archive-endpoint', s3.endpoint]);
  assert.equal(init.status, 0, init.stderr);
  const rng = new Rng(14);
  for (let i = 0; i < 5; i++) {
    const img = rng.bytes(IMAGE_BYTES);
    images.set(`e${i}`, img);
    fs.writeFileSync(path.join(root, 'img'), img);
    cliJson(['import', dir, path.join(root, 'img'), '--label', `e${i}`]);
  }
  cliJson(['sync', dir]);
  fs.rmSync(dir, { recursive: true, force: true });
  rec = path.join(root, 'rec');
  cliJson(['recover', rec, '--archive', url, '--archive-endpoint', s3.endpoint]);
});
after(async () => {
  await s3?.stop();
});

function cacheDir(): string {
  return path.join(rec, ARCHIVE_CACHE.dirName);
}

/** Reads event `label` whole through a fresh open of the volume; the requests that reached S3. */
async function readEvent(label: string, archiveCacheBytes: number, offset = 0, length = IMAGE_BYTES): Promise<{ data: Buffer; gets: number; keys: string[]; vol: Volume }> {
  const config = JSON.parse(fs.readFileSync(path.join(rec, 'config.json'), 'utf8'));
  const store = new CountingStore(openStore(config));
  const vol = await Volume.open(rec, { store, archiveCacheBytes, readOnly: true });
  try {
    const parts: Buffer[] = [];
    for await (const b of streamImage(vol, resolveImage(vol, label), offset, length, 128 * 1024)) parts.push(Buffer.from(b));
    return { data: Buffer.concat(parts), gets: store.gets, keys: store.keys, vol };
  } finally {
    await vol.close();
  }
}

function cacheFiles(): string[] {
  return fs.readdirSync(cacheDir()).filter((n) => n.endsWith(ARCHIVE_CACHE.fileSuffix)).sort();
}

test('archive cache: a past image out of S3 is bit-exact; read again after a restart it costs no GET', async () => {
  fs.rmSync(cacheDir(), { recursive: true, force: true });
  const cold = await readEvent('e1', 64 << 20);
  assert.ok(cold.data.equals(images.get('e1')!), 'e1 bit-exact out of S3');
  assert.ok(cold.gets > 0, 'the cold read went to S3');
  assert.equal(fs.statSync(cacheDir()).mode & 0o777, 0o700);
  const files = cacheFiles();
  assert.ok(files.some((n) => n.startsWith('table-')) && files.some((n) => n.startsWith('chunk-')), files.join(' '));
  for (const n of files) assert.equal(fs.statSync(path.join(cacheDir(), n)).mode & 0o777, 0o600, n);
  // A new open (a restart): tables and chunks come from disk.
  const warm = await readEvent('e1', 64 << 20);
  assert.ok(warm.data.equals(images.get('e1')!), 'e1 bit-exact out of the cache');
  assert.equal(warm.gets, 0, `GETs on the warm read (cold: ${cold.gets}): ${warm.keys.join(', ')}; cache ${JSON.stringify(warm.vol.archiveCache)}`);
  // Only the tables left: the first 4 KiB read after a restart is one ranged GET, its data (no tail read).
  for (const n of cacheFiles()) if (n.startsWith('chunk-')) fs.rmSync(path.join(cacheDir(), n));
  const first = await readEvent('e1', 64 << 20, 200 * 4096, 4096);
  assert.ok(first.data.equals(images.get('e1')!.subarray(200 * 4096, 201 * 4096)));
  assert.deepEqual(first.keys.map((k) => k.split(' ')[0]), ['getRange'], first.keys.join(', '));
});

test('archive cache: a flipped or truncated cache file is a miss, fetched again, and the image still bit-exact', async () => {
  fs.rmSync(cacheDir(), { recursive: true, force: true });
  await readEvent('e2', 64 << 20);
  const files = cacheFiles();
  const chunks = files.filter((n) => n.startsWith('chunk-'));
  const tables = files.filter((n) => n.startsWith('table-'));
  assert.ok(chunks.length >= 3 && tables.length >= 2, files.join(' '));
  const flip = (n: string, at: (size: number) => number) => {
    const f = path.join(cacheDir(), n);
    const b = fs.readFileSync(f);
    b[at(b.length)] ^= 0x40;
    fs.writeFileSync(f, b);
  };
  flip(chunks[0], (size) => size - 1); // payload: its CRC
  flip(chunks[1], () => ARCHIVE_CACHE.off.segmentId); // header: its CRC
  fs.truncateSync(path.join(cacheDir(), chunks[2]), 100); // torn
  flip(tables[0], (size) => size - 3); // a table's entry
  fs.truncateSync(path.join(cacheDir(), tables[1]), 0);
  const again = await readEvent('e2', 64 << 20);
  assert.ok(again.data.equals(images.get('e2')!), 'e2 bit-exact despite damaged cache files');
  const stats = again.vol.archiveCache!.stats;
  assert.equal(stats.rejected, 5, JSON.stringify(stats));
  assert.ok(again.gets >= 5, `refetched: ${again.gets} GETs`);
  // Refetched and cached again: a third read costs nothing.
  const third = await readEvent('e2', 64 << 20);
  assert.equal(third.gets, 0, third.keys.join(', '));
});

test('archive cache: the size bound holds (least recently used evicted), also after a restart with a smaller bound; 0 is off', async () => {
  fs.rmSync(cacheDir(), { recursive: true, force: true });
  const limit = 3 * (1 << 20) / 2; // 1.5 MiB: less than one image's chunks
  const total = () => cacheFiles().reduce((n, f) => n + fs.statSync(path.join(cacheDir(), f)).size, 0);
  for (const label of ['e0', 'e1', 'e2']) {
    const r = await readEvent(label, limit);
    assert.ok(r.data.equals(images.get(label)!), `${label} bit-exact`);
    assert.ok(total() <= limit, `${total()} bytes cached, bound ${limit}`);
    assert.ok(r.vol.archiveCache!.sizeBytes <= limit);
  }
  assert.ok(total() > limit / 2, `the cache is used: ${total()} bytes`);
  const smaller = 256 * 1024;
  await readEvent('e3', smaller);
  assert.ok(total() <= smaller, `${total()} bytes cached, bound ${smaller}`);
  fs.rmSync(cacheDir(), { recursive: true, force: true });
  const off = await readEvent('e3', 0);
  assert.ok(off.data.equals(images.get('e3')!));
  assert.ok(!fs.existsSync(cacheDir()), '--archive-cache 0 writes no cache');
});

test('archive cache: export, NBD and the mount (events/, at/) serve S3-only past images bit-exact, the second time from the cache', async (t) => {
  fs.rmSync(cacheDir(), { recursive: true, force: true });
  for (let pass = 0; pass < 2; pass++) {
    const out = cli(['export', rec, '--at', 'e0']);
    assert.equal(out.status, 0, out.stderr);
    assert.ok(out.stdoutBytes.equals(images.get('e0')!), `export e0 bit-exact (pass ${pass})`);
  }
  assert.ok(cacheFiles().length > 0, 'export filled the cache');

  const d = await ServeDaemon.start(rec, ['--archive-cache', '8M']);
  try {
    const nbd = await openExport(d, 'e3');
    const got = await nbd.read(0, IMAGE_BYTES);
    nbd.close();
    assert.ok(got.equals(images.get('e3')!), 'NBD export e3 bit-exact');
  } finally {
    await d.stop();
  }
  assert.ok(cacheFiles().some((n) => n.startsWith('table-')));

  const skip = fuseSkipReason();
  if (skip) return t.skip(skip);
  const mnt = tmpDir('s3cache-mnt-');
  const m = await MountedVolume.start(rec, mnt, ['--archive-cache', '8M']);
  try {
    assert.ok(fs.readFileSync(path.join(eventDir(mnt, 'e2'), 'volume.img')).equals(images.get('e2')!), 'events/…-e2/volume.img bit-exact');
    const e1 = cliJson<Array<{ label: string; timeMs?: number; time?: string }>>(['events', rec]).find((e) => e.label === 'e1')!;
    const when = e1.time ?? new Date(e1.timeMs!).toISOString();
    const at = fs.readFileSync(path.join(mnt, 'at', when, 'volume.img'));
    assert.ok(at.equals(images.get('e1')!), `at/${when}/volume.img bit-exact`);
  } finally {
    await m.cleanup();
  }
});
