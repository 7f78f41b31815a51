import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { cli, cliJson } from './helpers/cli';
import { ServeDaemon } from './helpers/daemon';
import { MountedVolume, chronovol, fuseSkipReason, ok, run, sha256 } from './helpers/fuse-harness';
import { openExport } from './helpers/nbd-client';
import { Rng } from './helpers/rng';
import { tmpDir } from './helpers/tmp';

const WATCHDOG_MS = 180_000;
const skip = fuseSkipReason();

type Result = { to: string; before: { id: number }; after: { id: number }; writtenBytes: number; resumed: boolean };

/** Files with random content in a mounted file system; name → sha256. */
function writeFiles(rng: Rng, dataDir: string, names: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const n of names) {
    fs.writeFileSync(path.join(dataDir, n), rng.bytes(1 + rng.int(2 << 20)));
    out.set(n, sha256(path.join(dataDir, n)));
  }
  return out;
}

/** A seeded run with a fresh volume of `size` under its own temporary directory. */
function fresh(prefix: string, size: string, segmentSize: string): { rng: Rng; root: string; dir: string } {
  const rng = Rng.fromEnv();
  console.log(`seed ${rng.seed}`);
  const root = tmpDir(prefix);
  const dir = path.join(root, 'vol');
  cliJson(['init', dir, '--size', size, '--segment-size', segmentSize]);
  return { rng, root, dir };
}

/** A file of random bytes to copy into live with qemu-img. */
function randomImage(rng: Rng, root: string, name: string, bytes: number): string {
  const f = path.join(root, name);
  fs.writeFileSync(f, rng.bytes(bytes));
  return f;
}

function filesOf(dataDir: string): Map<string, string> {
  return new Map(fs.readdirSync(dataDir).filter((n) => n !== 'lost+found').sort().map((n) => [n, sha256(path.join(dataDir, n))]));
}

describe('rollback through a running mount', { skip }, () => {
  test('ext4 on live: refused while mounted (LIVE_IN_USE, says which); unmounted, rollback to a frozen event is fsck-clean with every file exact; undo gives back the rest', { timeout: WATCHDOG_MS }, async () => {
    const { rng, root, dir } = fresh('chronovol-rollback-', '64M', '4M');
    const mnt = path.join(root, 'mnt');
    const m = await MountedVolume.start(dir, mnt);
    try {
      const img = path.join(mnt, 'live/volume.img');
      let loop = m.losetup(img);
      ok('mkfs.ext4', ['-q', '-F', loop]);
      const data = path.join(root, 'data');
      m.mount(loop, data);
      const one = writeFiles(rng, data, ['a', 'b', 'c']);
      ok(process.execPath, [require.resolve('../src/cli/main.js'), 'sync', mnt, '--label', 'one', '--freeze', data]);
      fs.rmSync(path.join(data, 'b'));
      writeFiles(rng, data, ['a', 'd']);
      ok('sync', []);
      const later = filesOf(data);

      const refused = chronovol(['rollback', mnt, '--to', 'one']);
      assert.equal(refused.status, 1, refused.stderr);
      assert.match(refused.stderr, /\[LIVE_IN_USE\]/);
      assert.match(refused.stderr, /open for writing through the tree/);

      m.umount(data);
      m.detach(loop);
      const r = JSON.parse(ok(process.execPath, [require.resolve('../src/cli/main.js'), 'rollback', mnt, '--to', 'one', '--json']).stdout) as Result;
      assert.equal(r.to, 'event:1');
      assert.ok(r.writtenBytes > 0 && r.writtenBytes < 16 << 20, `wrote ${r.writtenBytes} bytes: what changed, not the volume`);
      ok('e2fsck', ['-fn', img]);
      loop = m.losetup(img);
      m.mount(loop, data);
      assert.deepEqual(filesOf(data), one, 'every file as it was at the frozen event');
      m.umount(data);
      m.detach(loop);

      const undo = cliJson<Result>(['rollback', mnt, '--to', String(r.before.id)]);
      assert.equal(undo.resumed, false);
      loop = m.losetup(img);
      m.mount(loop, data);
      assert.deepEqual(filesOf(data), later, 'the undo gives back the files as they were before the rollback');
      m.umount(data);
      m.detach(loop);
      const status = cliJson<{ rollbackUnfinished: unknown }>(['status', mnt]);
      assert.equal(status.rollbackUnfinished, null);
    } finally {
      await m.cleanup();
    }
  });
});

test('NBD: clone/<name> is read-write for qemu-io and qemu-img, the event never changes; rollback refused while a client holds live, then promotes the clone', { timeout: WATCHDOG_MS }, async () => {
  const { rng, root, dir } = fresh('chronovol-rollback-nbd-', '16M', '4M');
  const src = randomImage(rng, root, 'src.img', 16 << 20);
  const d = await ServeDaemon.start(dir);
  try {
    ok('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', src, d.url('live')], 120_000);
    cliJson(['sync', dir, '--label', 'base']);
    cliJson(['clone', dir, 'try', '--at', 'base']);
    const eventCopy = path.join(root, 'event.img');
    ok('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', d.url('base'), eventCopy]);
    assert.match(ok('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, d.url('clone/try')]).stdout, /identical/, 'a fresh clone reads as its event');
    // Aligned, unaligned, zeroed and discarded ranges, then a flush.
    ok('qemu-io', ['-f', 'raw', '-t', 'writeback', '-c', 'write -P 0x5a 1M 256k', '-c', 'write -P 0x33 3000 5000', '-c', 'write -z 4M 64k', '-c', 'discard 8M 64k', '-c', 'flush', d.url('clone/try')]);
    ok('qemu-io', ['-r', '-f', 'raw', '-c', 'read -P 0x5a 1M 256k', '-c', 'read -P 0x33 3000 5000', '-c', 'read -P 0 4M 64k', '-c', 'read -P 0 8M 64k', d.url('clone/try')]);
    assert.equal(run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, d.url('clone/try')]).status, 1, 'the clone holds its writes');
    assert.match(ok('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', eventCopy, d.url('base')]).stdout, /identical/, 'the event is untouched');
    assert.match(ok('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, d.url('live')]).stdout, /identical/, 'live is untouched');
    assert.match(ok('qemu-nbd', ['--list', '-k', d.socket]).stdout, /clone\/try/, 'the clone is listed');

    const holder = await openExport(d, 'live');
    try {
      const refused = cli(['rollback', dir, '--to', 'clone:try']);
      assert.equal(refused.status, 1);
      assert.match(refused.stderr, /NBD client is attached to the live export.*\[LIVE_IN_USE\]/);
    } finally {
      holder.close();
    }
    let promoted: Result | undefined;
    for (let i = 0; i < 50 && !promoted; i++) {
      const r = cli(['rollback', dir, '--to', 'clone:try', '--json']); // the server sees the disconnect shortly
      if (r.status === 0) promoted = JSON.parse(r.stdout) as Result;
      else await new Promise((res) => setTimeout(res, 100));
    }
    assert.ok(promoted, 'rollback goes once the client has gone');
    assert.match(ok('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', d.url('clone/try'), d.url('live')]).stdout, /identical/, 'live is the clone');
    assert.ok(promoted.writtenBytes <= 256 * 1024 + 3 * 4096 + 2 * 64 * 1024, `wrote ${promoted.writtenBytes} bytes: the clone's blocks`);
  } finally {
    await d.stop();
  }
});

test('SIGKILL of the daemon mid-rollback: live is as it was, the target, or flagged by status; the repeated rollback on the stopped volume finishes it', { timeout: WATCHDOG_MS }, async () => {
  const { rng, root, dir } = fresh('chronovol-rollback-kill-', '16M', '4M');
  const targetImg = randomImage(rng, root, 'target.img', 16 << 20);
  const laterImg = randomImage(rng, root, 'later.img', 16 << 20);
  const outcomes: string[] = [];
  // The daemon dies once the rollback's intent file is there (or that long after): mid-rollback.
  for (const delayMs of [0, 80]) {
    let targetId = 0;
    const d = await ServeDaemon.start(dir);
    let killed = false;
    try {
      ok('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', targetImg, d.url('live')], 120_000);
      targetId = cliJson<{ id: number }>(['sync', dir, '--label', 'target']).id;
      ok('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', laterImg, d.url('live')], 120_000);
      cliJson(['sync', dir, '--label', 'later']);
      const { spawn } = await import('node:child_process');
      const child = spawn(process.execPath, [require.resolve('../src/cli/main.js'), 'rollback', dir, '--to', 'target'], { stdio: 'ignore' });
      const intent = path.join(dir, 'rollback.json');
      for (let i = 0; i < 6000 && !fs.existsSync(intent) && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, delayMs));
      d.proc.kill('SIGKILL');
      killed = true;
      await new Promise((r) => child.once('exit', r));
    } finally {
      if (!killed) await d.stop();
      await new Promise((r) => (d.proc.exitCode !== null || d.proc.signalCode !== null ? r(undefined) : d.proc.once('exit', r)));
    }
    // The stopped volume: what status says, what live holds.
    const status = cliJson<{ rollbackUnfinished: { to: string; beforeEvent: { id: number } } | null }>(['status', dir]);
    const live = path.join(root, 'live.img');
    ok(process.execPath, [require.resolve('../src/cli/main.js'), 'export', dir, '--at', 'live', '--out', live], 120_000);
    const same = (a: string, b: string) => sha256(a) === sha256(b);
    if (status.rollbackUnfinished) {
      outcomes.push('flagged');
      assert.equal(status.rollbackUnfinished.to, `event:${targetId}`);
      const human = cli(['status', dir]);
      assert.match(human.stdout, /ROLLBACK\s+UNFINISHED/);
    } else if (same(live, laterImg)) outcomes.push('as-was');
    else {
      assert.ok(same(live, targetImg), `after SIGKILL ${delayMs} ms into the rollback live is as it was, the target, or flagged`);
      outcomes.push('target');
    }
    const r = cliJson<Result>(['rollback', dir, '--to', 'target']);
    assert.equal(r.resumed, Boolean(status.rollbackUnfinished));
    ok(process.execPath, [require.resolve('../src/cli/main.js'), 'export', dir, '--at', 'live', '--out', live], 120_000);
    assert.ok(same(live, targetImg), 'the repeated rollback leaves live the target');
    assert.equal(cliJson<{ rollbackUnfinished: unknown }>(['status', dir]).rollbackUnfinished, null);
  }
  console.log(`outcomes by kill delay: ${outcomes.join(', ')}`);
});
