import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { CLI } from './helpers/cli';
import { MountedVolume, chronovol, eventDir, fuseSkipReason, ok, run, sha256 } from './helpers/fuse-harness';
import { Rng } from './helpers/rng';
import { tmpDir } from './helpers/tmp';

const skip = fuseSkipReason();
const WATCHDOG_MS = 240_000;

function newVolume(size: string): { root: string; dir: string; mnt: string } {
  const root = tmpDir('chronovol-clone-');
  const dir = path.join(root, 'vol');
  const r = chronovol(['init', dir, '--size', size, '--segment-size', '8M']);
  assert.equal(r.status, 0, r.stderr);
  return { root, dir, mnt: path.join(root, 'mnt') };
}

function writeFiles(rng: Rng, dataDir: string, names: string[], root: string, hashes: Map<string, string>): void {
  for (const n of names) {
    const tmp = path.join(root, 'stage');
    fs.writeFileSync(tmp, rng.bytes(1 + rng.int(256 << 10)));
    ok('cp', [tmp, path.join(dataDir, n)]);
    hashes.set(n, sha256(tmp));
  }
}

/** clone.json as getattr last sized it: stat first, as the tree's generated files want (see fuse-ops.ts lastContent). */
function cloneJson<T>(mnt: string, name: string): T {
  const file = path.join(mnt, 'clones', name, 'clone.json');
  ok('stat', [file]);
  return JSON.parse(ok('cat', [file]).stdout) as T;
}

function filesIn(dir: string): string[] {
  return ok('ls', [dir]).stdout.split('\n').filter((n) => n && n !== 'lost+found').sort();
}

const FILESYSTEMS = [
  { fs: 'ext4', size: '64M', mkfs: ['mkfs.ext4', '-q', '-F'], cloneOpts: 'loop', check: (img: string) => ok('e2fsck', ['-fn', img]) },
  // XFS wants 300 MB at least; a clone of an XFS image shares the live one's UUID.
  { fs: 'xfs', size: '304M', mkfs: ['mkfs.xfs', '-q', '-f'], cloneOpts: 'loop,nouuid', check: (img: string) => ok('xfs_repair', ['-n', '-f', img]) },
];

describe('clones through the FUSE tree', { skip }, () => {
  for (const f of FILESYSTEMS) {
    test(`${f.fs}: frozen and crash-consistent events mount through clones with the journal replayed; checker clean; events unchanged`, { timeout: WATCHDOG_MS }, async () => {
      const rng = Rng.fromEnv();
      console.log(`seed ${rng.seed}`);
      const { root, dir, mnt } = newVolume(f.size);
      const m = await MountedVolume.start(dir, mnt);
      try {
        const loop = m.losetup(path.join(mnt, 'live/volume.img'));
        ok(f.mkfs[0], [...f.mkfs.slice(1), loop]);
        const data = path.join(root, 'data');
        m.mount(loop, data);
        const frozen = new Map<string, string>();
        writeFiles(rng, data, ['a', 'b', 'c'], root, frozen);
        ok(process.execPath, [CLI, 'sync', mnt, '--label', 'frozen', '--freeze', data]);
        writeFiles(rng, data, ['d', 'e'], root, new Map());
        ok('sync', ['-f', path.join(data, 'd')]);
        ok(process.execPath, [CLI, 'sync', mnt, '--label', 'crash', '--kind', 'crash']);
        writeFiles(rng, data, ['f'], root, new Map()); // live moves on, with the filesystem still mounted

        for (const label of ['frozen', 'crash']) {
          const eventImg = path.join(eventDir(mnt, label), 'volume.img');
          const before = sha256(eventImg);
          // One clone by mkdir in the tree, one by the CLI through the running daemon.
          if (label === 'frozen') ok('mkdir', [path.join(mnt, 'clones', `${label}@${label}`)]);
          else ok(process.execPath, [CLI, 'clone', mnt, label, '--at', label]);
          const info = cloneJson<{ point: string; event: { label: string }; overlayBytes: number }>(mnt, label);
          assert.equal(info.event.label, label);
          assert.equal(info.overlayBytes, 0);
          const img = path.join(mnt, 'clones', label, 'volume.img');
          const at = path.join(root, `clone-${label}`);
          m.mount(img, at, ['-o', f.cloneOpts]); // read-write: the journal replays into the clone
          if (label === 'frozen') {
            assert.deepEqual(filesIn(at), [...frozen.keys()].sort(), 'the frozen event holds exactly its files');
            for (const [n, h] of frozen) assert.equal(sha256(path.join(at, n)), h, n);
          } else {
            assert.ok(filesIn(at).includes('d'), 'the crash event holds what was synced before it');
          }
          fs.writeFileSync(path.join(at, 'written-in-clone'), 'scratch');
          m.umount(at);
          f.check(img);
          const after = cloneJson<{ overlayBytes: number }>(mnt, label);
          assert.ok(after.overlayBytes > 0, 'the replay and the write went into the overlay');
          assert.equal(sha256(eventImg), before, `${label}: clone writes never change the event's image`);
        }
        const listed = JSON.parse(ok(process.execPath, [CLI, 'clone', mnt, '--list', '--json']).stdout) as Array<{ name: string }>;
        assert.deepEqual(listed.map((c) => c.name), ['crash', 'frozen']);
        ok('rm', ['-r', path.join(mnt, 'clones', 'frozen')]);
        ok('rmdir', [path.join(mnt, 'clones', 'crash')]);
        assert.deepEqual(filesIn(path.join(mnt, 'clones')), []);
        assert.deepEqual(fs.readdirSync(path.join(dir, 'clones')), [], 'discarded clones leave nothing in the volume directory');
      } finally {
        await m.cleanup();
        fs.rmSync(root, { recursive: true, force: true });
      }
    });
  }

  test('a clone made on the stopped volume holds every fsync-acknowledged write across a daemon SIGKILL; its event never changes', { timeout: WATCHDOG_MS }, async () => {
    const rng = Rng.fromEnv();
    console.log(`seed ${rng.seed}`);
    const { root, dir, mnt } = newVolume('16M');
    const base = rng.bytes(16 << 20);
    const baseFile = path.join(root, 'base');
    fs.writeFileSync(baseFile, base);
    ok(process.execPath, [CLI, 'write', dir, '--offset', '0', '--input', baseFile]);
    ok(process.execPath, [CLI, 'sync', dir, '--label', 'base']);
    ok(process.execPath, [CLI, 'clone', dir, 'work', '--at', 'base']);
    const bad = run(process.execPath, [CLI, 'clone', dir, 'work', '--at', 'base']);
    assert.equal(bad.status, 2, 'a duplicate name is a usage error');
    let m = await MountedVolume.start(dir, mnt);
    const expected = Buffer.from(base);
    try {
      const img = path.join(mnt, 'clones', 'work', 'volume.img');
      const eventBefore = sha256(path.join(eventDir(mnt, 'base'), 'volume.img'));
      for (let i = 0; i < 12; i++) {
        const off = rng.int(16 << 20);
        const len = Math.min((16 << 20) - off, 1 + rng.int(100_000));
        const chunk = rng.bytes(len);
        const tmp = path.join(root, 'chunk');
        fs.writeFileSync(tmp, chunk);
        // dd with conv=fsync: each write is acknowledged by an fsync of the clone's image.
        ok('dd', [`if=${tmp}`, `of=${img}`, 'bs=1', `seek=${off}`, 'conv=notrunc,fsync', 'status=none', `count=${len}`, 'iflag=count_bytes', 'oflag=seek_bytes', `bs=${1 << 20}`]);
        chunk.copy(expected, off);
      }
      assert.equal(await m.stop('SIGKILL'), null);
      await m.cleanup({ keepStaleMount: true });
      m = await MountedVolume.start(dir, mnt);
      const got = ok('cat', [img]).out;
      assert.equal(got.length, expected.length);
      assert.ok(got.equals(expected), 'the clone after SIGKILL holds every acknowledged write');
      assert.equal(sha256(path.join(eventDir(mnt, 'base'), 'volume.img')), eventBefore);
      assert.ok(ok('cat', [path.join(eventDir(mnt, 'base'), 'volume.img')]).out.equals(base), 'the event is the bytes written before it');
    } finally {
      await m.cleanup();
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
