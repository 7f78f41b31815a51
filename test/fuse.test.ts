import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { Rng } from './helpers/rng';
import { CONGESTION_THRESHOLD_REQUESTS, MAX_BACKGROUND_REQUESTS } from '../src/fuse/mount-options';
import { mountDevice } from '../src/fuse/read-ahead';
import { tmpDir } from './helpers/tmp';
import { freePort } from './helpers/daemon';
import { MountedVolume, chronovol, eventDir, fuseSkipReason, isMounted, ok, run, sha256 } from './helpers/fuse-harness';

const skip = fuseSkipReason();
const WATCHDOG_MS = 180_000;

function newVolume(size = '256M'): { root: string; dir: string; mnt: string } {
  const root = tmpDir('chronovol-fuse-');
  const dir = path.join(root, 'vol');
  const r = chronovol(['init', dir, '--size', size, '--segment-size', '8M']);
  assert.equal(r.status, 0, r.stderr);
  return { root, dir, mnt: path.join(root, 'mnt') };
}

/** The CPUs of a list like /proc's Cpus_allowed_list ("0-2,5"). */
function cpusOf(list: string): number[] {
  return list.split(',').flatMap((r) => {
    const [a, b] = r.split('-').map(Number);
    return Array.from({ length: (b ?? a) - a + 1 }, (_, i) => a + i);
  });
}

/** Writes files with random content into a mounted filesystem; returns name → sha256. */
function writeFiles(rng: Rng, dataDir: string, names: string[], root: string): Map<string, string> {
  const hashes = new Map<string, string>();
  for (const n of names) {
    const tmp = path.join(root, 'stage');
    fs.writeFileSync(tmp, rng.bytes(1 + rng.int(3 << 20)));
    ok('cp', [tmp, path.join(dataDir, n)]);
    hashes.set(n, sha256(tmp));
  }
  return hashes;
}

describe('FUSE tree', { skip }, () => {
  test('end to end: ext4 on the live image, frozen events, every event image loop-mounts with every file as it was', { timeout: WATCHDOG_MS }, async () => {
    const rng = Rng.fromEnv();
    const { root, dir, mnt } = newVolume();
    const m = await MountedVolume.start(dir, mnt);
    try {
      const loop = m.losetup(path.join(mnt, 'live/volume.img'));
      ok('mkfs.ext4', ['-q', '-F', loop]);
      const data = path.join(root, 'data');
      m.mount(loop, data);
      const expected = new Map<string, Map<string, string>>();
      let files = writeFiles(rng, data, ['a', 'b', 'c', 'd'], root);
      ok(process.execPath, [require.resolve('../src/cli/main.js'), 'sync', mnt, '--label', 'one', '--freeze', data]);
      expected.set('one', new Map(files));
      ok('rm', [path.join(data, 'b')]);
      files.delete('b');
      files = new Map([...files, ...writeFiles(rng, data, ['a', 'e'], root)]); // overwrite a, add e
      ok(process.execPath, [require.resolve('../src/cli/main.js'), 'sync', mnt, '--label', 'two', '--freeze', data]);
      expected.set('two', new Map(files));
      ok('rm', [path.join(data, 'c'), path.join(data, 'e')]);
      files.delete('c');
      files.delete('e');
      files = new Map([...files, ...writeFiles(rng, data, ['f'], root)]);
      ok(process.execPath, [require.resolve('../src/cli/main.js'), 'sync', mnt, '--label', 'three', '--freeze', data]);
      expected.set('three', new Map(files));
      // Every event image mounts read-only while the live one stays mounted, with every file intact.
      for (const [label, want] of expected) {
        const img = path.join(eventDir(mnt, label), 'volume.img');
        const at = path.join(root, `old-${label}`);
        m.mount(img, at, ['-o', 'ro,loop']);
        const names = ok('ls', [at]).stdout.split('\n').filter((n) => n && n !== 'lost+found').sort();
        assert.deepEqual(names, [...want.keys()].sort(), `files at ${label}`);
        for (const [n, h] of want) assert.equal(sha256(path.join(at, n)), h, `${label}/${n}`);
        m.umount(at);
        const ev = JSON.parse(ok('cat', [path.join(eventDir(mnt, label), 'event.json')]).stdout) as { label: string; kind: string; changedBlocks: number };
        assert.equal(ev.label, label);
        assert.equal(ev.kind, 'app');
        assert.ok(ev.changedBlocks > 0);
      }
      // Single blocks copied out with dd equal `export` of the same point (through the daemon).
      for (let i = 0; i < 8; i++) {
        const label = ['one', 'two', 'three'][i % 3];
        const block = rng.int((256 << 20) / 4096);
        const viaDd = ok('dd', [`if=${path.join(eventDir(mnt, label), 'volume.img')}`, 'bs=4096', `skip=${block}`, 'count=1', 'status=none']).out;
        const viaExport = chronovol(['export', mnt, '--at', label, '--offset', String(block * 4096), '--length', '4096']);
        assert.equal(viaExport.status, 0, viaExport.stderr);
        assert.ok(viaDd.equals(viaExport.out), `block ${block} at ${label}`);
      }
      // The kernel sent 128 KiB writes: big_writes is in effect.
      const status = JSON.parse(ok('cat', [path.join(mnt, 'status.json')]).stdout) as { fuseRequests: { maxWriteBytes: number; writes: number } };
      assert.equal(status.fuseRequests.maxWriteBytes, 128 * 1024);
      m.umount(data);
      m.detach(loop);
    } finally {
      await m.cleanup();
    }
  });

  test('past images are read-only, unknown events and times are ENOENT, at/ resolves seq and time, mkdir records an event', { timeout: WATCHDOG_MS }, async () => {
    const { dir, mnt } = newVolume('64M');
    const m = await MountedVolume.start(dir, mnt);
    try {
      const live = path.join(mnt, 'live/volume.img');
      ok('dd', ['if=/dev/urandom', `of=${live}`, 'bs=1M', 'count=4', 'conv=notrunc,fsync', 'status=none']);
      const events = () => JSON.parse(chronovol(['events', mnt, '--json']).stdout) as Array<{ id: number; seq: number; label: string }>;
      ok('mkdir', [path.join(mnt, 'events', 'by-mkdir')]);
      const e = events().find((x) => x.label === 'by-mkdir');
      assert.ok(e, 'mkdir recorded an event');
      const img = path.join(eventDir(mnt, 'by-mkdir'), 'volume.img');
      const wr = run('dd', ['if=/dev/zero', `of=${img}`, 'bs=4096', 'count=1', 'conv=notrunc', 'status=none']);
      assert.notEqual(wr.status, 0);
      assert.match(wr.stderr, /Read-only file system/);
      assert.match(ok('stat', ['-c', '%A', img]).stdout, /^-r--r--r--/);
      assert.match(run('stat', [path.join(mnt, 'events', '999999-20200101T000000Z-nope')]).stderr, /No such file/);
      assert.match(run('stat', [path.join(mnt, 'at', '1999-01-01T00:00:00Z', 'volume.img')]).stderr, /No such file/);
      assert.match(run('stat', [path.join(mnt, 'at', 'not-a-time', 'volume.img')]).stderr, /No such file/);
      // Writes after the event do not show through it; at/seq-N and at/<time> show the state then.
      const before = ok('dd', [`if=${live}`, 'bs=1M', 'count=1', 'status=none']).out;
      ok('dd', ['if=/dev/urandom', `of=${live}`, 'bs=1M', 'count=1', 'conv=notrunc,fsync', 'status=none']);
      assert.ok(ok('dd', [`if=${img}`, 'bs=1M', 'count=1', 'status=none']).out.equals(before));
      assert.ok(ok('dd', [`if=${path.join(mnt, 'at', `seq-${e!.seq}`, 'volume.img')}`, 'bs=1M', 'count=1', 'status=none']).out.equals(before));
      const t = new Date().toISOString();
      assert.ok(!ok('dd', [`if=${path.join(mnt, 'at', t, 'volume.img')}`, 'bs=1M', 'count=1', 'status=none']).out.equals(before), 'at/<now> sees the newer write');
      // The live image has a fixed size: truncation and writes past the end are refused.
      assert.notEqual(run('truncate', ['-s', '1M', live]).status, 0);
      const past = run('dd', ['if=/dev/zero', `of=${live}`, 'bs=4096', 'seek=16384', 'count=1', 'conv=notrunc', 'status=none']);
      assert.notEqual(past.status, 0);
      assert.match(past.stderr, /File too large/);
      // A second mount of the same volume is refused while this one runs.
      const second = chronovol(['mount', dir, path.join(path.dirname(mnt), 'mnt2')], 20_000);
      assert.notEqual(second.status, 0);
      assert.match(second.stderr, /in use by process/);
    } finally {
      await m.cleanup();
    }
  });

  test('sync over the control socket while a writer is busy', { timeout: WATCHDOG_MS }, async () => {
    const { dir, mnt } = newVolume('256M');
    const m = await MountedVolume.start(dir, mnt);
    try {
      const writer = spawn('dd', ['if=/dev/urandom', `of=${path.join(mnt, 'live/volume.img')}`, 'bs=1M', 'count=200', 'conv=notrunc,fsync', 'status=none']);
      const exited = new Promise<number | null>((r) => writer.once('exit', (code) => r(code)));
      let syncs = 0;
      let running = true;
      void exited.then(() => (running = false));
      while (running || syncs < 3) {
        const r = chronovol(['sync', mnt, '--label', `busy-${syncs}`, '--json'], 60_000);
        assert.equal(r.status, 0, r.stderr);
        syncs++;
        if (syncs > 50) break;
      }
      assert.equal(await exited, 0, 'the writer finished cleanly');
      const events = JSON.parse(chronovol(['events', dir, '--json']).stdout) as unknown[];
      assert.equal(events.length, syncs);
      const st = JSON.parse(chronovol(['status', mnt, '--json']).stdout) as { log: { bytesWritten: number } };
      assert.ok(st.log.bytesWritten >= 200 << 20);
    } finally {
      await m.cleanup();
    }
  });

  test('daemon SIGKILL: the stale mount is cleared on remount and every fsync\'d file on ext4 is intact', { timeout: WATCHDOG_MS }, async () => {
    const rng = Rng.fromEnv();
    const { root, dir, mnt } = newVolume('128M');
    let m = await MountedVolume.start(dir, mnt);
    const data = path.join(root, 'data');
    let hashes: Map<string, string>;
    try {
      const loop = m.losetup(path.join(mnt, 'live/volume.img'));
      ok('mkfs.ext4', ['-q', '-F', loop]);
      m.mount(loop, data);
      hashes = writeFiles(rng, data, ['x', 'y', 'z'], root);
      ok('sync', ['-f', path.join(data, 'x')]); // syncfs: everything on it is fsync'd
      assert.equal(await m.stop('SIGKILL'), null);
      assert.match(run('stat', [mnt]).stderr, /Transport endpoint is not connected/);
    } finally {
      await m.cleanup({ keepStaleMount: true }); // detaches the ext4 mount and loop, which now see I/O errors
    }
    m = await MountedVolume.start(dir, mnt);
    try {
      assert.match(m.log.join(''), /stale mount/, 'remount says it cleared a stale mount');
      const loop = m.losetup(path.join(mnt, 'live/volume.img'));
      m.mount(loop, data); // ext4 replays its journal
      for (const [n, h] of hashes!) assert.equal(sha256(path.join(data, n)), h, n);
    } finally {
      await m.cleanup();
    }
    assert.equal(chronovol(['verify', dir]).status, 0);
  });

  test('one daemon: --auto-sync records crash-consistent events at fsync, NBD over TCP and a Unix socket from the same process, chronovol umount', { timeout: WATCHDOG_MS }, async () => {
    const { root, dir, mnt } = newVolume('64M');
    const port = await freePort();
    const sock = path.join(root, 'nbd.sock');
    const m = await MountedVolume.start(dir, mnt, ['--auto-sync', '200ms', '--listen', `127.0.0.1:${port}`, '--insecure', '--socket', sock]);
    try {
      const live = path.join(mnt, 'live/volume.img');
      ok('dd', ['if=/dev/urandom', `of=${live}`, 'bs=64k', 'count=4', 'conv=notrunc,fsync', 'status=none']);
      await new Promise((r) => setTimeout(r, 300));
      ok('dd', ['if=/dev/urandom', `of=${live}`, 'bs=64k', 'count=4', 'seek=8', 'conv=notrunc,fsync', 'status=none']);
      const events = JSON.parse(chronovol(['events', mnt, '--json']).stdout) as Array<{ kind: string; label: string; id: number }>;
      const auto = events.filter((e) => e.kind === 'crash' && e.label === 'auto');
      assert.ok(auto.length >= 1, `auto-sync events: ${JSON.stringify(events)}`);
      // The same bytes through the mount, NBD over TCP and NBD over the Unix socket.
      const viaFuse = ok('dd', [`if=${live}`, 'bs=64k', 'count=1', 'status=none']).out;
      const viaTcp = ok('qemu-io', ['-r', '-f', 'raw', '-c', 'read -v 0 16', `nbd://127.0.0.1:${port}/live`]).stdout;
      const viaUnix = ok('qemu-io', ['-r', '-f', 'raw', '-c', 'read -v 0 16', `nbd+unix:///live?socket=${sock}`]).stdout;
      const hex = viaFuse.subarray(0, 4).toString('hex').replace(/(..)/g, '$1 ').trim();
      assert.ok(viaTcp.includes(hex) && viaUnix.includes(hex), `${hex} in\n${viaTcp}\n${viaUnix}`);
      assert.equal(chronovol(['umount', mnt]).status, 0);
      assert.equal(await m.stop(), 0, 'the daemon exits cleanly after umount');
      assert.ok(!isMounted(mnt));
    } finally {
      await m.cleanup();
    }
  });

  test('a plain umount of the mountpoint stops the daemon cleanly and releases the volume', { timeout: WATCHDOG_MS }, async () => {
    const { dir, mnt } = newVolume('64M');
    const m = await MountedVolume.start(dir, mnt);
    try {
      ok('dd', ['if=/dev/urandom', `of=${path.join(mnt, 'live/volume.img')}`, 'bs=64k', 'count=4', 'conv=notrunc,fsync', 'status=none']);
      const exited = new Promise<number | null>((r) => m.proc.once('exit', (code) => r(code)));
      ok('umount', [mnt]);
      const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('still running'), 10_000))]);
      assert.equal(code, 0, 'the daemon notices and exits cleanly');
      assert.match(m.log.join(''), /unmounted from outside/);
      assert.equal(chronovol(['status', dir]).status, 0, 'the volume opens again: its lock was released');
    } finally {
      await m.cleanup();
    }
  });

  test('block cache: one version read through two events is cached once (a hit the second time), counted in status.json', { timeout: WATCHDOG_MS }, async () => {
    const { dir, mnt } = newVolume('64M');
    ok(process.execPath, [require.resolve('../src/cli/main.js'), 'write', dir, '--offset', String(4096 * 100), '--input', '-'], 30_000, Buffer.alloc(4096, 0x42));
    assert.equal(chronovol(['sync', dir, '--label', 'a']).status, 0);
    ok(process.execPath, [require.resolve('../src/cli/main.js'), 'write', dir, '--offset', '0', '--input', '-'], 30_000, Buffer.alloc(4096, 1)); // another block changes
    assert.equal(chronovol(['sync', dir, '--label', 'b']).status, 0);
    const m = await MountedVolume.start(dir, mnt, ['--cache', '16M']);
    try {
      const readBlock = (label: string) => ok('dd', [`if=${path.join(eventDir(mnt, label), 'volume.img')}`, 'bs=4096', 'skip=100', 'count=1', 'status=none']).out;
      assert.ok(readBlock('a').equals(Buffer.alloc(4096, 0x42)));
      assert.ok(readBlock('b').equals(Buffer.alloc(4096, 0x42)), 'the same version through the later event');
      await new Promise((r) => setTimeout(r, 1300)); // status.json refreshes once a second
      const st = JSON.parse(ok('cat', [path.join(mnt, 'status.json')]).stdout) as { cache: { hits: number; misses: number; entries: number } };
      assert.equal(st.cache.misses, 1, 'reconstructed once');
      assert.equal(st.cache.hits, 1, 'served from the cache through the second event');
      assert.equal(st.cache.entries, 1);
    } finally {
      await m.cleanup();
    }
  });

  test('kernel read-ahead is set on the mount (--read-ahead), and a past-image scan bypasses the block cache though the kernel\'s requests arrive out of order', { timeout: WATCHDOG_MS }, async () => {
    const { dir, mnt } = newVolume('64M');
    const img = path.join(tmpDir(), 'img');
    ok('dd', ['if=/dev/urandom', `of=${img}`, 'bs=1M', 'count=64', 'status=none']);
    assert.equal(chronovol(['import', dir, img, '--label', 'full']).status, 0);
    const m = await MountedVolume.start(dir, mnt, ['--read-ahead', '2M']);
    try {
      const device = mountDevice(mnt);
      assert.ok(device, 'the mount is in /proc/self/mountinfo');
      assert.equal(fs.readFileSync(`/sys/class/bdi/${device}/read_ahead_kb`, 'utf8').trim(), '2048');
      const scanned = ok('dd', [`if=${path.join(eventDir(mnt, 'full'), 'volume.img')}`, 'bs=1M', 'status=none']).out;
      assert.ok(scanned.equals(fs.readFileSync(img)), 'the scan returns the imported bytes');
      await new Promise((r) => setTimeout(r, 1300)); // status.json refreshes once a second
      const st = JSON.parse(ok('cat', [path.join(mnt, 'status.json')]).stdout) as { fuseReadAheadKiB: number; cache: { misses: number } };
      assert.equal(st.fuseReadAheadKiB, 2048);
      // 16384 blocks were read; only the first request or two, before the scan is recognised, go
      // through the cache.
      assert.ok(st.cache.misses <= 256, `${st.cache.misses} blocks went through the cache`);
    } finally {
      await m.cleanup();
    }
  });

  test('scans keep libfuse\'s worker pool steady: background requests are capped below its idle limit and the connection is never congested', { timeout: WATCHDOG_MS }, async () => {
    // libfuse 2 ends a worker when more than 10 are idle and starts one whenever none is, and
    // fuse-native leaks an event-loop handle per thread it sees (mount-options.ts). With the
    // kernel's default of 12 background requests these scans started about 40 threads each.
    const { dir, mnt } = newVolume('64M');
    const img = path.join(tmpDir(), 'img');
    ok('dd', ['if=/dev/urandom', `of=${img}`, 'bs=1M', 'count=64', 'status=none']);
    assert.equal(chronovol(['import', dir, img, '--label', 'full']).status, 0);
    const m = await MountedVolume.start(dir, mnt);
    try {
      const connection = `/sys/fs/fuse/connections/${mountDevice(mnt)!.split(':')[1]}`;
      assert.equal(fs.readFileSync(`${connection}/max_background`, 'utf8').trim(), String(MAX_BACKGROUND_REQUESTS));
      assert.equal(fs.readFileSync(`${connection}/congestion_threshold`, 'utf8').trim(), String(CONGESTION_THRESHOLD_REQUESTS));
      const image = path.join(eventDir(mnt, 'full'), 'volume.img');
      for (let i = 0; i < 6; i++) {
        if (i % 2 === 0) fs.writeFileSync('/proc/sys/vm/drop_caches', '3'); // cold and warm scans both
        ok('dd', [`if=${image}`, 'of=/dev/null', 'bs=1M', 'status=none']);
      }
      await new Promise((r) => setTimeout(r, 1300)); // status.json refreshes once a second
      const st = JSON.parse(ok('cat', [path.join(mnt, 'status.json')]).stdout) as { fuseThreads: { started: number }; fuseCongestionThreshold: number };
      assert.equal(st.fuseCongestionThreshold, CONGESTION_THRESHOLD_REQUESTS);
      assert.ok(st.fuseThreads.started >= 2 && st.fuseThreads.started <= 16, `${st.fuseThreads.started} libfuse threads were started`);
    } finally {
      await m.cleanup();
    }
  });

  test('FUSE threads and the event loop share one CPU during a write stream and are spread for reads; --fuse-cpu off leaves them alone', { timeout: WATCHDOG_MS, skip: os.cpus().length < 2 ? 'needs two CPUs' : false }, async () => {
    const { dir, mnt } = newVolume('128M');
    /** The CPUs each thread of the daemon may use, by thread name. */
    const placement = (pid: number) => fs.readdirSync(`/proc/${pid}/task`).map((tid) => ({
      tid: Number(tid),
      name: fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim(),
      cpus: /Cpus_allowed_list:\s*(\S+)/.exec(fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'))![1],
    }));
    const status = () => JSON.parse(ok('cat', [path.join(mnt, 'status.json')]).stdout) as { fuseThreads: { cpu: number | null; pinned: boolean } };
    /** Polls the daemon's threads (from /proc, not status.json, which lags) until `want` holds. */
    const until = async (pid: number, what: string, want: (ts: ReturnType<typeof placement>) => boolean) => {
      for (const end = Date.now() + 10_000; !want(placement(pid)); await new Promise((r) => setTimeout(r, 50))) {
        if (Date.now() > end) assert.fail(`${what}: ${JSON.stringify(placement(pid))}`);
      }
    };
    /** A child process streaming through the live image (the daemon's own mount is never touched by it). */
    const stream = (mode: 'write' | 'read') => spawn(process.execPath, ['-e', `
      const fs = require('fs'); const fd = fs.openSync(${JSON.stringify(path.join(mnt, 'live/volume.img'))}, ${mode === 'write' ? "'r+'" : "fs.constants.O_RDONLY | fs.constants.O_DIRECT"});
      const b = Buffer.alloc(1 << 20, 7); const end = Date.now() + 20000;
      for (let i = 0; Date.now() < end; i = (i + 1) % 64) ${mode === 'write' ? 'fs.writeSync' : 'fs.readSync'}(fd, b, 0, b.length, i << 20);`], { stdio: 'ignore' });
    const all = `0-${os.cpus().length - 1}`;
    const fuseOn = (cpus: string) => (ts: ReturnType<typeof placement>) => ts.filter((t) => t.name === 'chronovol-fuse').every((t) => t.cpus === cpus);
    const m = await MountedVolume.start(dir, mnt);
    try {
      const pid = m.proc.pid!;
      const fuse = placement(pid).filter((t) => t.name === 'chronovol-fuse');
      assert.ok(fuse.length >= 1, 'fuse-native\'s threads are found and named');
      assert.ok(fuse.every((t) => t.cpus === all), 'spread until a write stream comes');
      await new Promise((r) => setTimeout(r, 1300)); // status.json refreshes once a second
      const st = status();
      assert.notEqual(st.fuseThreads.cpu, null, 'placed');
      const cpu = String(st.fuseThreads.cpu);
      for (const round of [1, 2]) {
        const writer = stream('write');
        try {
          await until(pid, `round ${round}: a write stream pins them`, (ts) => fuseOn(cpu)(ts) && ts.find((t) => t.tid === pid)!.cpus === cpu);
          const pinned = placement(pid);
          const others = pinned.filter((t) => t.name !== 'chronovol-fuse' && t.tid !== pid);
          assert.ok(others.length > 0 && others.every((t) => !cpusOf(t.cpus).includes(Number(cpu))), `other threads (the threadpool) are kept off CPU ${cpu}: ${JSON.stringify(others)}`);
        } finally {
          writer.kill();
        }
        if (round === 1) {
          const reader = stream('read');
          try {
            await until(pid, 'reads spread them again', (ts) => ts.every((t) => t.cpus === all));
          } finally {
            reader.kill();
          }
        } else {
          await until(pid, 'an idle mount spreads them', (ts) => ts.every((t) => t.cpus === all));
        }
      }
    } finally {
      await m.cleanup();
    }
    const off = await MountedVolume.start(dir, mnt, ['--fuse-cpu', 'off']);
    try {
      ok('dd', ['if=/dev/urandom', `of=${path.join(mnt, 'live/volume.img')}`, 'bs=1M', 'count=16', 'conv=notrunc,fsync', 'status=none']);
      await new Promise((r) => setTimeout(r, 1300)); // status.json refreshes once a second
      assert.equal(status().fuseThreads.cpu, null);
      assert.ok(placement(off.proc.pid!).every((t) => t.cpus === all && t.name !== 'chronovol-fuse'));
    } finally {
      await off.cleanup();
    }
  });
});
