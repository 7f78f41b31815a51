import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { isChronoError } from '../src/errors';
import { NBD } from '../src/nbd/nbd-protocol';
import { DEFAULTS } from '../src/options';
import { Volume } from '../src/volume/volume';
import { ServeDaemon } from './helpers/daemon';
import { RawNbdClient } from './helpers/nbd-client';
import { MountedVolume, chronovol, fuseSkipReason, isMounted, ok, run } from './helpers/fuse-harness';
import { Rng } from './helpers/rng';
import { tmpDir } from './helpers/tmp';

// Defect 5 of issue 10: a full disk. Before the fix `init` said nothing about room, a write that
// met the full disk failed with EIO and stopped the writer for good (WRITER_FAILED, "close and
// reopen it"), and read-only commands failed with ENOSPC because opening wrote a checkpoint.

const IMAGE_BYTES = 48 << 20;

function skipReason(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (loop mount)';
  if (run('which', ['mkfs.ext4']).status !== 0) return 'mkfs.ext4 is missing';
  return fuseSkipReason();
}

/** A small ext4 file system on a loop device, mounted for the test and torn down after it. */
function smallFileSystem(): { mnt: string; teardown: () => void } {
  const root = tmpDir('chronovol-fulldisk-');
  const image = path.join(root, 'fs.img');
  const mnt = path.join(root, 'mnt');
  fs.mkdirSync(mnt);
  fs.writeFileSync(image, Buffer.alloc(0));
  fs.truncateSync(image, IMAGE_BYTES);
  // -m 0: no blocks reserved for root, so "full" is full for everyone (the test runs as root).
  ok('mkfs.ext4', ['-q', '-F', '-m', '0', image]);
  ok('mount', ['-o', 'loop', image, mnt]);
  return { mnt, teardown: () => void (isMounted(mnt) && run('umount', ['-l', mnt], 20_000)) };
}

/**
 * Fills the file system to the last block with `file`: fallocate for the bulk, then writes to the
 * end. Then waits out the time a volume trusts a comfortable free-space reading (space-check.ts).
 */
async function fill(file: string): Promise<void> {
  fillNow(file);
  await new Promise((r) => setTimeout(r, DEFAULTS.spaceRecheckMs + 10));
}

function fillNow(file: string): void {
  const s = fs.statfsSync(path.dirname(file));
  const bulk = Math.max(0, s.bfree * s.bsize - (2 << 20));
  if (bulk > 0) ok('fallocate', ['-l', String(bulk), file]);
  const fd = fs.openSync(file, 'a');
  try {
    for (const chunk of [1 << 20, 4096]) {
      const b = Buffer.alloc(chunk, 1);
      for (;;) {
        try {
          fs.writeSync(fd, b);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw err;
        }
      }
      fs.fsyncSync(fd);
    }
  } finally {
    fs.closeSync(fd);
  }
}

async function logged(m: MountedVolume, line: RegExp, watchdogMs = 20_000): Promise<string> {
  const deadline = Date.now() + watchdogMs;
  while (!line.test(m.log.join(''))) {
    if (Date.now() > deadline) throw new Error(`watchdog: the daemon never logged ${line}: ${m.log.join('')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return m.log.join('');
}

function free(file: string, mnt: string): void {
  fs.rmSync(file);
  ok('sync', ['-f', mnt]); // the freed blocks count once the journal commits
}

test('full disk: init refuses a working set the file system cannot hold, with the numbers', { skip: skipReason() }, () => {
  const { mnt, teardown } = smallFileSystem();
  try {
    const r = chronovol(['init', path.join(mnt, 'big'), '--size', '64M']);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /has [\d.]+ MiB free; the volume needs [\d.]+ MiB there \(working set [\d.]+ MiB \+ archive backlog 256\.0 MiB \+ archive \(same file system\) [\d.]+ MiB \+ index [\d.]+ MiB\): [\d.]+ MiB more.*\[NO_SPACE\]/);
    assert.equal(fs.existsSync(path.join(mnt, 'big', 'superblock')), false);
    const forced = chronovol(['init', path.join(mnt, 'big'), '--size', '64M', '--skip-space-check', '--json']);
    assert.equal(forced.status, 0, forced.stderr);
  } finally {
    teardown();
  }
});

test('full disk: the Volume API refuses writes with NO_SPACE, nothing poisoned; they resume once space is freed', { skip: skipReason() }, async () => {
  const { mnt, teardown } = smallFileSystem();
  const filler = path.join(mnt, 'filler');
  try {
    const dir = path.join(mnt, 'vol');
    await Volume.create(dir, { sizeBytes: 4 << 20, segmentSizeBytes: 256 << 10 });
    const vol = await Volume.open(dir);
    const rng = new Rng(51);
    const a = rng.bytes(1 << 20);
    await vol.write(0, a);
    await vol.sync({ label: 'a' });
    await fill(filler);
    const b = rng.bytes(256 << 10);
    await assert.rejects(vol.write(1 << 20, b), (e: unknown) => isChronoError(e, 'NO_SPACE') && /MiB more/.test(e.message));
    assert.equal(vol.tryWriteSync(1 << 20, b), false);
    await vol.flush(); // what was acknowledged is still fine
    free(filler, mnt);
    await vol.write(1 << 20, b); // no reopen
    const e = await vol.sync({ label: 'b' });
    assert.ok((await vol.read(0, 1 << 20)).equals(a));
    assert.ok((await vol.read(1 << 20, 256 << 10)).equals(b));
    assert.equal(e.label, 'b');
    await vol.close();
  } finally {
    if (fs.existsSync(filler)) fs.rmSync(filler);
    teardown();
  }
});

test('full disk: FUSE writes get ENOSPC with one log line of the numbers, resume without a restart; read-only commands work while full', { skip: skipReason() }, async () => {
  const { mnt, teardown } = smallFileSystem();
  const filler = path.join(mnt, 'filler');
  const dir = path.join(mnt, 'vol');
  const fuseMnt = path.join(tmpDir(), 'fuse');
  fs.mkdirSync(fuseMnt);
  const scratch = tmpDir();
  let m: MountedVolume | undefined;
  try {
    assert.equal(chronovol(['init', dir, '--size', '4M', '--segment-size', '256K', '--json']).status, 0);
    m = await MountedVolume.start(dir, fuseMnt);
    const img = path.join(fuseMnt, 'live', 'volume.img');
    const first = path.join(scratch, 'first');
    fs.writeFileSync(first, new Rng(52).bytes(2 << 20));
    ok('dd', [`if=${first}`, `of=${img}`, 'bs=1M', 'conv=fsync,notrunc', 'status=none']);
    ok(process.execPath, [path.join(__dirname, '..', 'src', 'cli', 'main.js'), 'sync', fuseMnt, '--label', 'first']);

    await fill(filler);
    const second = path.join(scratch, 'second');
    fs.writeFileSync(second, new Rng(53).bytes(1 << 20));
    const refused = run('dd', [`if=${second}`, `of=${img}`, 'bs=1M', 'seek=2', 'conv=fsync,notrunc', 'status=none']);
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /No space left on device/);
    // The daemon's stderr arrives through this process's event loop, which spawnSync held.
    const log = await logged(m, /disk full: writes are refused.*MiB more/);
    assert.equal(log.match(/disk full: writes are refused/g)?.length, 1, log);

    free(filler, mnt);
    ok('dd', [`if=${second}`, `of=${img}`, 'bs=1M', 'seek=2', 'conv=fsync,notrunc', 'status=none']); // same daemon
    const back = ok('dd', [`if=${img}`, 'bs=1M', 'count=3', 'status=none']).out;
    assert.ok(back.subarray(0, 2 << 20).equals(fs.readFileSync(first)));
    assert.ok(back.subarray(2 << 20).equals(fs.readFileSync(second)));
    await logged(m, /space available again: writes resume/);
    ok(process.execPath, [path.join(__dirname, '..', 'src', 'cli', 'main.js'), 'sync', fuseMnt, '--label', 'second']);
    assert.equal(await m.stop(), 0);

    // Full again, daemon stopped: the read-only commands open read-only and work.
    await fill(filler);
    const events = JSON.parse(ok(process.execPath, [path.join(__dirname, '..', 'src', 'cli', 'main.js'), 'events', dir, '--json']).stdout) as Array<{ label: string }>;
    assert.deepEqual(events.map((e) => e.label), ['first', 'second']);
    const exported = ok(process.execPath, [path.join(__dirname, '..', 'src', 'cli', 'main.js'), 'export', dir, '--at', 'first', '--length', String(2 << 20)]).out;
    assert.ok(exported.equals(fs.readFileSync(first)));
    ok(process.execPath, [path.join(__dirname, '..', 'src', 'cli', 'main.js'), 'status', dir, '--json']);
    ok(process.execPath, [path.join(__dirname, '..', 'src', 'cli', 'main.js'), 'verify', dir, '--json']);
    // A read-write open is refused with the numbers, not half-done.
    const w = chronovol(['write', dir, '--offset', '0']);
    assert.equal(w.status, 1);
    assert.match(w.stderr, /MiB more.*\[NO_SPACE\]/);
  } finally {
    await m?.cleanup();
    if (fs.existsSync(filler)) fs.rmSync(filler);
    teardown();
  }
});

test('full disk: an NBD write gets ENOSPC, not EIO, and the same connection writes again once space is freed', { skip: skipReason() }, async () => {
  const { mnt, teardown } = smallFileSystem();
  const filler = path.join(mnt, 'filler');
  const dir = path.join(mnt, 'vol');
  let d: ServeDaemon | undefined;
  let c: RawNbdClient | undefined;
  try {
    await Volume.create(dir, { sizeBytes: 4 << 20, segmentSizeBytes: 256 << 10 });
    d = await ServeDaemon.start(dir);
    c = await d.connect();
    assert.ok('size' in (await c.go('live')));
    const data = new Rng(54).bytes(64 << 10);
    c.sendRequest(NBD.CMD_WRITE, 0, data.length, data);
    assert.equal((await c.reply()).error, 0);
    await fill(filler);
    c.sendRequest(NBD.CMD_WRITE, 1 << 20, data.length, data);
    assert.equal((await c.reply()).error, NBD.ENOSPC);
    free(filler, mnt);
    c.sendRequest(NBD.CMD_WRITE, 1 << 20, data.length, data);
    assert.equal((await c.reply()).error, 0);
    c.sendRequest(NBD.CMD_FLUSH, 0, 0);
    assert.equal((await c.reply()).error, 0);
    c.sendRequest(NBD.CMD_READ, 1 << 20, data.length);
    assert.ok((await c.reply(data.length)).data.equals(data));
  } finally {
    c?.sock.destroy();
    await d?.stop();
    if (fs.existsSync(filler)) fs.rmSync(filler);
    teardown();
  }
});
