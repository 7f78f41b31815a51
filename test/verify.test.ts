import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { FILE_NAMES, SUPERBLOCK } from '../src/format/constants';
import { crc32c } from '../src/format/crc';
import { decodeIndexRun, encodeIndexRun } from '../src/format/index-run-file';
import { encodeSuperblock, newVolumeId } from '../src/format/superblock';
import { Volume } from '../src/volume/volume';
import { cli } from './helpers/cli';
import { freshVolume } from './helpers/volumes';
import { whiteBox } from '../src/volume/white-box';

/** Issue 10, defect 3: verify checks the archive's superblock and the index against the log. */

const BS = 4096;

async function volumeWithData(): Promise<{ dir: string; archive: string }> {
  const { dir, vol, archive } = await freshVolume();
  for (let b = 0; b < 8; b++) await vol.write(b * BS, Buffer.alloc(BS, b + 1));
  await vol.sync({ label: 'one' });
  await vol.close();
  return { dir, archive };
}

/** What the house order says a damaged byte at `offset` of a prelude header fails on. */
function expectedCode(offset: number): string {
  if (offset < 8) return 'BAD_MAGIC';
  if (offset < 10) return 'BAD_VERSION';
  if (offset < 12) return 'BAD_LENGTH';
  return 'BAD_CHECKSUM';
}

test('verify: every single-byte flip of the archive superblock (volume.cvsb) is reported, with the code its rule gives', async () => {
  const { dir, archive } = await volumeWithData();
  const file = path.join(archive, FILE_NAMES.archiveSuperblock);
  const good = fs.readFileSync(file);
  assert.equal(good.length, SUPERBLOCK.lengthBytes);
  const vol = await Volume.open(dir);
  try {
    assert.equal((await vol.verify()).ok, true, 'healthy first');
    for (let i = 0; i < good.length; i++) {
      const b = Buffer.from(good);
      b[i] ^= 0x01;
      fs.writeFileSync(file, b);
      const r = await vol.verify();
      const p = r.problems.find((x) => x.kind === 'archive-superblock');
      assert.ok(p, `flip at byte ${i} went unreported`);
      assert.equal(p.code, expectedCode(i), `flip at byte ${i}: ${p.message}`);
    }
  } finally {
    fs.writeFileSync(file, good);
    await vol.close();
  }
});

test('verify: the archive superblock rules each report their own code (version, length, flags, missing, another volume)', async () => {
  const { dir, archive } = await volumeWithData();
  const file = path.join(archive, FILE_NAMES.archiveSuperblock);
  const good = fs.readFileSync(file);
  const fixCrc = (b: Buffer) => (b.writeUInt32LE(crc32c(b.subarray(0, SUPERBLOCK.off.crc)), SUPERBLOCK.off.crc), b);
  const cases: Array<[string, () => void, string]> = [
    ['newer version', () => fs.writeFileSync(file, fixCrc(Buffer.from(good).fill(0, 8, 10).fill(2, 8, 9))), 'BAD_VERSION'],
    ['bytes after the header', () => fs.writeFileSync(file, Buffer.concat([good, Buffer.alloc(1)])), 'BAD_LENGTH'],
    ['cut short', () => fs.writeFileSync(file, good.subarray(0, 100)), 'BAD_LENGTH'],
    ['reserved flag (checksum fixed up)', () => { const b = Buffer.from(good); b.writeUInt32LE(4, SUPERBLOCK.off.flags); fs.writeFileSync(file, fixCrc(b)); }, 'BAD_FLAGS'],
    ['missing', () => fs.rmSync(file), 'ARCHIVE_MISSING'],
    ['another volume\'s', () => fs.writeFileSync(file, encodeSuperblock({ volumeId: newVolumeId(), volumeSizeBytes: 1 << 20, blockSizeBytes: BS, segmentSizeBytes: 1 << 16, workingSetSegments: 8, createdMs: 1 })), 'FOREIGN_SEGMENT'],
  ];
  const vol = await Volume.open(dir);
  try {
    for (const [name, damage, want] of cases) {
      damage();
      const p = (await vol.verify()).problems.find((x) => x.kind === 'archive-superblock');
      assert.equal(p?.code, want, `${name}: ${p?.message ?? 'unreported'}`);
      fs.writeFileSync(file, good);
    }
  } finally {
    await vol.close();
  }
});

test('verify: an index entry that disagrees with the log (checksums intact) is reported as index-mismatch', async () => {
  const { dir } = await volumeWithData();
  const indexDir = path.join(dir, 'index');
  const runName = fs.readdirSync(indexDir).find((f) => f.startsWith('run-'))!;
  const run = decodeIndexRun(fs.readFileSync(path.join(indexDir, runName)), {});
  // Block 3's version now claims block 4's bytes: a well-formed run that lies.
  const i3 = run.blocks.indexOf(3);
  const i4 = run.blocks.indexOf(4);
  assert.ok(i3 >= 0 && i4 >= 0 && run.offs[i3] !== run.offs[i4]);
  run.offs[i3] = run.offs[i4];
  fs.writeFileSync(path.join(indexDir, runName), Buffer.concat(encodeIndexRun(run)));
  const vol = await Volume.open(dir);
  try {
    const r = await vol.verify();
    assert.ok(r.problems.some((p) => p.kind === 'index-mismatch' && /block 3\b/.test(p.message)), JSON.stringify(r.problems));
  } finally {
    await vol.close();
  }
});

test('verify: an index version the log does not hold is reported as index-mismatch', async () => {
  const { dir } = await volumeWithData();
  const vol = await Volume.open(dir);
  try {
    assert.equal((await vol.verify()).ok, true);
    // A version at a seq no record has (a stale or foreign run would bring such versions in).
    whiteBox(vol).index.add(5, vol.lastSeq + 100, 1, 64 + 64 + 4);
    const r = await vol.verify();
    assert.ok(r.problems.some((p) => p.kind === 'index-mismatch' && /index holds \d+ block versions, the log \d+/.test(p.message)), JSON.stringify(r.problems));
  } finally {
    await vol.close();
  }
});

test('verify (CLI): damage that stops the volume opening is reported, exit 1; a damaged archive superblock is reported with its code', async () => {
  const { dir, archive } = await volumeWithData();
  const sbFile = path.join(archive, FILE_NAMES.archiveSuperblock);
  const good = fs.readFileSync(sbFile);
  const b = Buffer.from(good);
  b[40] ^= 0x10;
  fs.writeFileSync(sbFile, b);
  const r1 = cli(['verify', dir]);
  assert.equal(r1.status, 1, r1.stderr);
  assert.match(r1.stdout, /DAMAGE archive-superblock \[BAD_CHECKSUM\]/);
  fs.writeFileSync(sbFile, good);
  assert.equal(cli(['verify', dir]).status, 0);
  const manifest = path.join(dir, 'index', 'MANIFEST');
  const m = fs.readFileSync(manifest);
  m[m.length - 3] ^= 0x01;
  fs.writeFileSync(manifest, m);
  const r2 = cli(['verify', dir, '--json']);
  assert.equal(r2.status, 1, r2.stderr);
  const report = JSON.parse(r2.stdout) as { ok: boolean; problems: Array<{ kind: string; code: string }> };
  assert.deepEqual(report.problems.map((p) => [p.kind, p.code]), [['open', 'BAD_CHECKSUM']]);
});
