import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { isChronoError } from '../src/errors';
import { RESYNC_PAYLOAD } from '../src/format/constants';
import { resolveExport } from '../src/nbd/nbd-exports';
import { Volume } from '../src/volume/volume';
import { cliJson } from './helpers/cli';
import { freshVolume } from './helpers/volumes';

const BS = 4096;
const inResync = (e: unknown) => isChronoError(e, 'POINT_IN_RESYNC');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// A resync window (RESYNC_BEGIN..RESYNC_END) marks where the replica was a torn mix: no point
// inside it may be served, before or after a reopen, a checkpoint and a turnover into the archive.
test('resync windows: points inside a window are refused (events, seq, time), points around it are exact, across reopen and turnover', async () => {
  const { dir, vol: v0 } = await freshVolume();
  let vol: Volume = v0;
  await vol.write(0, Buffer.alloc(BS, 0x61));
  const before = await vol.sync({ label: 'before' });
  await sleep(5);
  const lostMs = Date.now();
  await sleep(5);
  const w = await vol.beginResync({ reason: 'resync', lostMs });
  assert.equal((await vol.beginResync({ reason: 'resync' })).id, w.id, 'a second begin while open is the same window');
  await vol.write(0, Buffer.alloc(BS, 0x62));
  await sleep(5);
  const midMs = Date.now();
  await vol.write(BS, Buffer.alloc(BS, 0x63));
  await assert.rejects(vol.sync({ label: 'torn' }), inResync, 'no event while a window is open');
  assert.throws(() => vol.resolvePoint(`seq:${vol.lastSeq}`), inResync, 'open window: a seq after its begin');
  assert.equal(vol.resolvePoint('live').name, 'live', 'live is never refused');
  await vol.endResync({ bytesCopied: 2 * BS });
  const after = await vol.sync({ label: 'after' });
  const check = (v: Volume) => {
    assert.throws(() => v.resolvePoint(`seq:${w.beginSeq + 1}`), inResync);
    assert.throws(() => v.resolvePoint(new Date(midMs).toISOString()), inResync, 'a time inside the window');
    assert.throws(() => v.resolvePoint(new Date(lostMs + 1).toISOString()), inResync, 'a time after the target was lost, before the begin');
    // The target was lost before the begin: the window starts after the last seq written before the loss.
    assert.throws(() => v.resolvePoint(`seq:${w.beginSeq}`), inResync, 'the begin was appended after the loss');
    assert.equal(v.resolvePoint(`seq:${before.seq}`).seqLimit, before.seq, 'the last seq before the loss is the state before the window');
    assert.equal(v.resolvePoint('before').seqLimit, before.seq);
    assert.equal(v.resolvePoint('after').seqLimit, after.seq);
    const win = v.resyncWindows[0];
    assert.deepEqual({ id: win.id, reason: win.reason, lostMs: win.lostMs, bytesCopied: win.bytesCopied, closed: win.endSeq !== undefined }, { id: 1, reason: 'resync', lostMs, bytesCopied: 2 * BS, closed: true });
  };
  check(vol);
  assert.equal(resolveExport(vol, `seq:${w.beginSeq + 1}`), undefined, 'no NBD export of a point inside the window');
  assert.equal(resolveExport(vol, 'after')?.point.seqLimit, after.seq);
  assert.equal((await vol.read(0, BS, vol.resolvePoint('before')))[0], 0x61);
  assert.equal((await vol.read(BS, BS, vol.resolvePoint('after')))[0], 0x63);
  await vol.close();
  // Reopened: the window comes back from the checkpoint's manifest.
  vol = await Volume.open(dir);
  check(vol);
  // Push the window's records out of the working set into the archive: the manifest keeps it.
  for (let i = 0; i < 400; i++) await vol.write((i % 60) * BS, Buffer.alloc(BS, i));
  await vol.sync({ label: 'later' });
  assert.ok(Math.min(...fs.readdirSync(path.join(dir, 'segments')).map((f) => parseInt(f, 16))) > 1, 'the segment of the window was turned over');
  await vol.close();
  vol = await Volume.open(dir);
  check(vol);
  await vol.close();
  const listed = cliJson<Array<{ kind: string; id?: number; state?: string; seq: number }>>(['events', dir]);
  assert.deepEqual(listed.map((e) => e.kind === 'resync' ? `w:${e.state}` : e.kind), ['app', 'w:closed', 'app', 'app']);
});

test('resync windows: a RESYNC record whose payload is damaged is damage (its own CRC), not a window', async () => {
  const { dir, vol } = await freshVolume();
  await vol.write(0, Buffer.alloc(BS, 1));
  await vol.beginResync({ reason: 'initial' });
  await vol.write(0, Buffer.alloc(BS, 2));
  await vol.endResync({ bytesCopied: BS });
  await vol.write(BS, Buffer.alloc(BS, 3));
  await vol.sync();
  // Crash-like: no checkpoint, so open replays the log and reads the RESYNC records.
  const manifest = path.join(dir, 'index', 'MANIFEST');
  await vol.close();
  fs.rmSync(manifest);
  for (const f of fs.readdirSync(path.join(dir, 'index'))) fs.rmSync(path.join(dir, 'index', f));
  const seg = path.join(dir, 'segments', fs.readdirSync(path.join(dir, 'segments')).sort()[0]);
  const bytes = fs.readFileSync(seg);
  const reopened = await Volume.open(dir);
  assert.equal(reopened.resyncWindows.length, 1, 'replayed from the log alone');
  await reopened.close();
  for (const f of fs.readdirSync(path.join(dir, 'index'))) fs.rmSync(path.join(dir, 'index', f));
  // Find the RESYNC_BEGIN's payload: the record header's type byte is 9.
  let at = -1;
  for (let i = 0; i + 64 < bytes.length; i++) if (bytes.readUInt32LE(i) === 0x43525643 && bytes[i + 5] === 9) { at = i; break; }
  assert.ok(at > 0);
  bytes[at + 64 + RESYNC_PAYLOAD.off.lostMs] ^= 0xff;
  fs.writeFileSync(seg, bytes);
  await assert.rejects(Volume.open(dir), (e: unknown) => isChronoError(e, 'CORRUPT_LOG'), 'acknowledged damage under a later sync point');
});
