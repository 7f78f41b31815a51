import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { clonesOf } from '../src/clone/clone-service';
import { crcFileBytes, encodeCloneCrcHeader } from '../src/clone/clone-checksums';
import { CLONE_CRC, CLONE_MAP, CloneCrcFlags } from '../src/format/constants';
import { crc32c } from '../src/format/crc';
import { Volume } from '../src/volume/volume';
import { tmpDir } from './helpers/tmp';

/**
 * Review finding 4: a clone's overlay had no checksums. One flipped map bit turned an
 * acknowledged clone write into the base's bytes, another served zeros, a flipped data bit was
 * served as is. Now each block has a CRC32C in overlay.crc and each map page a CRC.
 */

const BS = 4096;
const fill = (s: string) => Buffer.from(s.padEnd(BS, '.'));
const text = (b: Buffer) => b.toString('latin1').replace(/\.+$/, '');

/** A volume with blocks base-0..base-7 at event e1, and clone c of e1 holding clone-0 and clone-2 (synced, closed cleanly). */
async function cloned(): Promise<{ dir: string; cdir: string }> {
  const dir = path.join(tmpDir('crc-clone-'), 'v');
  await Volume.create(dir, { sizeBytes: 1 << 20, blockSizeBytes: BS, segmentSizeBytes: 256 << 10 });
  const v = await Volume.open(dir);
  try {
    await v.write(0, Buffer.concat(Array.from({ length: 8 }, (_, i) => fill(`base-${i}`))));
    await v.sync({ label: 'e1' });
    await clonesOf(v).create('c', 'e1');
    const o = clonesOf(v).overlay('c');
    o.write(0, fill('clone-0'));
    o.write(2 * BS, fill('clone-2'));
    await o.sync();
  } finally {
    await v.close();
  }
  return { dir, cdir: path.join(dir, 'clones', 'c') };
}

function flip(file: string, at: number, mask: number): void {
  const b = fs.readFileSync(file);
  b[at] ^= mask;
  fs.writeFileSync(file, b);
}

/** Block `block` of clone c: its text, or the error code. */
async function readClone(dir: string, block: number): Promise<string> {
  const v = await Volume.open(dir);
  try {
    return await readOpen(v, block);
  } finally {
    await v.close();
  }
}

/** Several blocks of clone c, from one open. */
async function readClones(dir: string, blocks: number[]): Promise<string[]> {
  const v = await Volume.open(dir);
  try {
    const out: string[] = [];
    for (const b of blocks) out.push(await readOpen(v, b));
    return out;
  } finally {
    await v.close();
  }
}

async function readOpen(v: Volume, block: number): Promise<string> {
  const out = Buffer.alloc(BS);
  try {
    const p = clonesOf(v).overlay('c').readInto(out, block * BS, BS);
    if (p) await p;
    return text(out);
  } catch (err) {
    return (err as { code: string }).code;
  }
}

test('clone checksums: undamaged, a clone reads its writes and the base; its CRC entries reach the disk at sync, before the map bits', async () => {
  const { dir, cdir } = await cloned();
  assert.deepEqual(await readClones(dir, [0, 1, 2, 3]), ['clone-0', 'base-1', 'clone-2', 'base-3']);
  const crcs = fs.readFileSync(path.join(cdir, 'overlay.crc'));
  assert.equal(crcs.readUInt32LE(CLONE_CRC.lengthBytes), crc32c(fill('clone-0')));
  assert.equal(crcs.readUInt32LE(CLONE_CRC.lengthBytes + 4), 0, 'block 1 was never written');
  const v = await Volume.open(dir);
  try {
    const o = clonesOf(v).overlay('c');
    o.write(5 * BS, fill('clone-5'));
    const at = CLONE_CRC.lengthBytes + 5 * 4;
    assert.equal(fs.readFileSync(path.join(cdir, 'overlay.crc')).readUInt32LE(at), 0, 'no entry on disk before sync');
    await o.sync();
    assert.equal(fs.readFileSync(path.join(cdir, 'overlay.crc')).readUInt32LE(at), crc32c(fill('clone-5')));
  } finally {
    await v.close();
  }
});

test('clone checksums: a map bit flipped 1 -> 0 is refused (CORRUPT_BLOCK), never the base\'s bytes in place of an acknowledged write', async () => {
  const { dir, cdir } = await cloned();
  flip(path.join(cdir, 'overlay.map'), CLONE_MAP.lengthBytes, 0b001);
  assert.equal(await readClone(dir, 0), 'CORRUPT_BLOCK');
});

test('clone checksums: a map bit flipped 0 -> 1 is refused (CORRUPT_BLOCK), never zeros', async () => {
  const { dir, cdir } = await cloned();
  flip(path.join(cdir, 'overlay.map'), CLONE_MAP.lengthBytes, 0b010);
  assert.equal(await readClone(dir, 1), 'CORRUPT_BLOCK');
});

test('clone checksums: a flipped bit in overlay.data is refused (CORRUPT_BLOCK)', async () => {
  const { dir, cdir } = await cloned();
  flip(path.join(cdir, 'overlay.data'), 2 * BS, 0x20);
  assert.equal(await readClone(dir, 2), 'CORRUPT_BLOCK');
});

test('clone checksums: map and data damaged together (the review\'s three bits): every damaged block refused, the rest served; a write rebuilds the page from the checksums', async () => {
  const { dir, cdir } = await cloned();
  flip(path.join(cdir, 'overlay.map'), CLONE_MAP.lengthBytes, 0b011);
  flip(path.join(cdir, 'overlay.data'), 2 * BS, 0x20);
  const v = await Volume.open(dir);
  try {
    assert.deepEqual(await Promise.all([0, 1, 2, 3].map((b) => readOpen(v, b))), ['CORRUPT_BLOCK', 'CORRUPT_BLOCK', 'CORRUPT_BLOCK', 'base-3']);
    const o = clonesOf(v).overlay('c');
    o.write(4 * BS, fill('clone-4'));
    await o.sync();
    assert.deepEqual(await Promise.all([0, 1, 3, 4].map((b) => readOpen(v, b))), ['clone-0', 'base-1', 'base-3', 'clone-4'], 'the page rebuilt from overlay.crc');
  } finally {
    await v.close();
  }
  assert.deepEqual(await readClones(dir, [0, 1, 2, 4]), ['clone-0', 'base-1', 'CORRUPT_BLOCK', 'clone-4'], 'and so it stays');
});

test('clone checksums: after a crash (not closed), an overwrite not yet synced is served as found and a torn map page is rebuilt, not refused', async () => {
  const { dir } = await cloned();
  const crashed = path.join(tmpDir('crc-crash-'), 'v');
  const v = await Volume.open(dir);
  try {
    const o = clonesOf(v).overlay('c');
    const w = o.write(0, fill('clone-0-again')); // in place, not synced: its CRC entry on disk is the old one
    if (w) await w; // (its region is marked first: an fdatasync)
    // A crash image: the files as they are now (the page cache holds the new data).
    fs.cpSync(dir, crashed, { recursive: true });
  } finally {
    await v.close();
  }
  fs.rmSync(path.join(crashed, 'LOCK'), { force: true });
  // A map write torn by the crash: block 3's bit set without its page CRC.
  flip(path.join(crashed, 'clones', 'c', 'overlay.map'), CLONE_MAP.lengthBytes, 0b1000);
  const got = await readClones(crashed, [0, 2, 3]);
  assert.ok(['clone-0', 'clone-0-again'].includes(got[0]), `block 0 after the crash: ${got[0]}`);
  assert.deepEqual(got.slice(1), ['clone-2', 'base-3']);
});

test('clone checksums: a clone made before overlay.crc is adopted (its blocks checksummed as found), then checked like any other', async () => {
  const { dir, cdir } = await cloned();
  fs.rmSync(path.join(cdir, 'overlay.crc'));
  fs.truncateSync(path.join(cdir, 'overlay.map'), CLONE_MAP.lengthBytes + (1 << 20) / BS / 8); // the old map: no page CRCs
  assert.deepEqual(await readClones(dir, [0, 1, 2]), ['clone-0', 'base-1', 'clone-2']);
  assert.ok(fs.existsSync(path.join(cdir, 'overlay.crc')));
  flip(path.join(cdir, 'overlay.map'), CLONE_MAP.lengthBytes, 0b001);
  flip(path.join(cdir, 'overlay.data'), 2 * BS, 0x20);
  assert.deepEqual(await readClones(dir, [0, 2]), ['CORRUPT_BLOCK', 'CORRUPT_BLOCK']);
});

test('clone checksums: after a crash, a synced block damaged on disk is refused (CORRUPT_BLOCK), not re-checksummed as an unsynced overwrite (issue 10)', async () => {
  // 8 MiB: blocks 0 and 2 (synced long ago) lie far from block 1536, overwritten in place at the crash.
  const dir = path.join(tmpDir('crc-rot-'), 'v');
  await Volume.create(dir, { sizeBytes: 8 << 20, blockSizeBytes: BS, segmentSizeBytes: 256 << 10 });
  const v = await Volume.open(dir);
  try {
    await v.write(0, Buffer.concat(Array.from({ length: 8 }, (_, i) => fill(`base-${i}`))));
    await v.sync({ label: 'e1' });
    await clonesOf(v).create('c', 'e1');
    const o = clonesOf(v).overlay('c');
    o.write(0, fill('clone-0'));
    o.write(2 * BS, fill('clone-2'));
    o.write(1536 * BS, fill('clone-1536'));
    await o.sync();
  } finally {
    await v.close();
  }
  const r = spawnSync(process.execPath, [path.join(__dirname, 'helpers', 'clone-overwrite-child.js'), dir], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.signal, 'SIGKILL', r.stderr);
  assert.equal(r.stdout, 'written\n');
  // Rot under block 2, synced before the crash and not written since.
  flip(path.join(dir, 'clones', 'c', 'overlay.data'), 2 * BS + 1, 0x01);
  const got = await readClones(dir, [0, 2, 1536, 1700]);
  assert.equal(got[0], 'clone-0');
  assert.equal(got[1], 'CORRUPT_BLOCK', 'the damaged synced block is never served as data');
  assert.ok(['clone-1536', 'clone-1536-again'].includes(got[2]), `block 1536 after the crash: ${got[2]}`);
  assert.ok(got[3] === 'clone-1700' || /^\0+$/.test(got[3]), 'block 1700: written or lost (never synced), nothing else');
  // And it stays refused: the crash's recovery wrote no new checksum for it.
  assert.deepEqual(await readClones(dir, [2]), ['CORRUPT_BLOCK']);
});

/** Rewrites overlay.crc as a clone made before the region marks has it: no marks, flags as given. */
function asBeforeMarks(cdir: string, flags: number): void {
  const file = path.join(cdir, 'overlay.crc');
  const b = fs.readFileSync(file);
  const head = encodeCloneCrcHeader({ volumeId: b.subarray(16, 32), blockSizeBytes: b.readUInt32LE(32), blockCount: Number(b.readBigUInt64LE(40)), flags, markRegionBlocks: 0 });
  head.copy(b, 0);
  fs.writeFileSync(file, b.subarray(0, crcFileBytes(Number(b.readBigUInt64LE(40)))));
}

test('clone checksums: a clone from before the region marks is adopted; left open by its last process, its overwrites are taken as found (as then), and from then on damage is refused', async () => {
  const { dir, cdir } = await cloned();
  // Its last process died after overwriting block 0 in place, unsynced (new bytes, old entry).
  asBeforeMarks(cdir, CloneCrcFlags.open);
  const data = path.join(cdir, 'overlay.data');
  const fd = fs.openSync(data, 'r+');
  fs.writeSync(fd, fill('clone-0-unsynced'), 0, BS, 0);
  fs.closeSync(fd);
  assert.deepEqual(await readClones(dir, [0, 2]), ['clone-0-unsynced', 'clone-2']);
  const crc = fs.readFileSync(path.join(cdir, 'overlay.crc'));
  assert.equal(crc.readUInt32LE(CLONE_CRC.off.flags), CloneCrcFlags.marks, 'closed, and keeping marks');
  assert.equal(crc.readUInt32LE(CLONE_CRC.off.markRegionBlocks), CLONE_CRC.markRegionBlocks);
  // Closed cleanly before the marks: nothing is taken as found, damage is refused.
  asBeforeMarks(cdir, 0);
  flip(data, 2 * BS, 0x20);
  assert.deepEqual(await readClones(dir, [0, 2]), ['clone-0-unsynced', 'CORRUPT_BLOCK']);
});
