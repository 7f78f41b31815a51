import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BenchResult, dropCaches, percentile, scratch, uniform } from './lib';

const CLI = path.resolve(__dirname, '../src/cli/main.js');
const MiB = 1 << 20;

async function startUntil(cmd: string, args: string[], marker: string): Promise<ChildProcess> {
  const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, CHRONOVOL_LOG: 'warn' } });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${args.join(' ')} did not start`)), 30_000);
    p.stdout!.on('data', (c: Buffer) => c.toString().includes(marker) && (clearTimeout(t), resolve()));
    p.once('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}`)));
  });
  return p;
}

async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const done = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await done;
}

/** dd's own figure, in bytes per second. */
function dd(args: string[]): number {
  const r = spawnSync('dd', [...args, 'status=progress'], { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) throw new Error(`dd ${args.join(' ')}: ${r.stderr}`);
  const m = /(\d+) bytes .* copied, ([\d.]+) s/.exec(r.stderr);
  if (!m) throw new Error(`dd output not understood: ${r.stderr}`);
  return Number(m[1]) / Number(m[2]);
}

/** Random 4 KiB preads from a separate process (the daemon must never read its own mount). */
function randomReads(file: string, sizeBytes: number, count: number): { iops: number; p50Us: number; p99Us: number } {
  const script = `
    const fs = require('fs'); const fd = fs.openSync(${JSON.stringify(file)}, 'r'); const b = Buffer.alloc(4096);
    let s = 1; const rnd = () => { s = (s * 1103515245 + 12345) >>> 0; return (s >>> 8) % ${sizeBytes / 4096}; };
    const lat = []; const t0 = process.hrtime.bigint();
    for (let i = 0; i < ${count}; i++) { const t = process.hrtime.bigint(); fs.readSync(fd, b, 0, 4096, rnd() * 4096); lat.push(Number(process.hrtime.bigint() - t) / 1000); }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9; lat.sort((a, b) => a - b);
    console.log(JSON.stringify({ iops: ${count} / secs, p50Us: lat[Math.floor(lat.length / 2)], p99Us: lat[Math.floor(lat.length * 0.99)] }));`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as { iops: number; p50Us: number; p99Us: number };
}

/**
 * FUSE ratios, side by side in one run: a past image read with dd bs=1M (cold: page cache
 * dropped, daemon freshly started) vs bare fuse-native reading an in-memory file; the live image
 * written with dd bs=1M conv=fsync vs bare fuse-native's no-op sink; and random 4 KiB reads of a
 * past image with our block cache warm.
 */
export async function benchFuse(sizeBytes = 1024 * MiB): Promise<BenchResult> {
  const root = scratch('fuse');
  const bareMnt = path.join(root, 'bare');
  fs.mkdirSync(bareMnt);
  const bare = await startUntil(process.execPath, [path.join(__dirname, 'bare-fuse-server.js'), bareMnt, String(sizeBytes)], 'ready');
  const dir = path.join(root, 'vol');
  const mnt = path.join(root, 'mnt');
  let daemon: ChildProcess | undefined;
  try {
    spawnSync(process.execPath, [CLI, 'init', dir, '--size', String(sizeBytes)], { stdio: 'inherit' });
    // History: the image is written once, an event taken, then half of it overwritten.
    const img = path.join(root, 'img');
    spawnSync('dd', ['if=/dev/urandom', `of=${img}`, 'bs=1M', `count=${sizeBytes / MiB}`, 'status=none']);
    spawnSync(process.execPath, [CLI, 'import', dir, img, '--label', 'past'], { stdio: 'inherit' });
    fs.rmSync(img);
    const best = (f: () => number) => Math.max(f(), f());
    // Live writes: ours vs the sink, alternating, best of two each.
    daemon = await startUntil(process.execPath, [CLI, 'mount', dir, mnt, '--cache', '64M'], 'mounted');
    const live = path.join(mnt, 'live/volume.img');
    let bareWrite = 0;
    let ourWrite = 0;
    for (let i = 0; i < 2; i++) {
      bareWrite = Math.max(bareWrite, dd(['if=/dev/zero', `of=${path.join(bareMnt, 'sink')}`, 'bs=1M', `count=${sizeBytes / MiB}`, 'conv=notrunc,fsync']));
      // Non-zero data: all-zero blocks would take the cheap ZERO-record path.
      ourWrite = Math.max(ourWrite, dd(['if=' + path.join(bareMnt, 'file'), `of=${live}`, 'bs=1M', `count=${sizeBytes / MiB}`, 'conv=notrunc,fsync']));
    }
    await stop(daemon);
    // Cold sequential reads of the past image: fresh daemon (empty block cache), page cache dropped.
    let ourRead = 0;
    let bareRead = 0;
    for (let i = 0; i < 2; i++) {
      daemon = await startUntil(process.execPath, [CLI, 'mount', dir, mnt, '--cache', '64M'], 'mounted');
      const ev = fs.readdirSync(path.join(mnt, 'events'))[0];
      const pastImg = path.join(mnt, 'events', ev, 'volume.img');
      dropCaches();
      ourRead = Math.max(ourRead, dd([`if=${pastImg}`, 'of=/dev/null', 'bs=1M']));
      dropCaches();
      bareRead = Math.max(bareRead, dd([`if=${path.join(bareMnt, 'file')}`, 'of=/dev/null', 'bs=1M']));
      if (i === 0) await stop(daemon);
    }
    // Random 4 KiB reads of a 64 MiB window of the past image, cache warm (second pass measured).
    const ev = fs.readdirSync(path.join(mnt, 'events'))[0];
    const pastImg = path.join(mnt, 'events', ev, 'volume.img');
    randomReads(pastImg, 64 * MiB, 20_000);
    const rr = randomReads(pastImg, 64 * MiB, 20_000);
    const status = JSON.parse(fs.readFileSync(path.join(mnt, 'status.json'), 'utf8')) as { cache: { hits: number; misses: number }; fuseRequests: { maxWriteBytes: number; maxReadBytes: number } };
    await stop(daemon);
    void best;
    void percentile;
    void uniform;
    const mbs = (x: number) => `${(x / 1e6).toFixed(0)} MB/s`;
    const fuseReadRatio = ourRead / bareRead;
    const fuseWriteRatio = ourWrite / bareWrite;
    return {
      lines: [
        `FUSE past-image sequential read (dd bs=1M, cold): ${mbs(ourRead)} vs bare fuse-native in-memory ${mbs(bareRead)}  ratio ${fuseReadRatio.toFixed(3)} (target >= 0.85)`,
        `FUSE live-image sequential write (dd bs=1M conv=fsync): ${mbs(ourWrite)} vs bare no-op sink ${mbs(bareWrite)}  ratio ${fuseWriteRatio.toFixed(3)} (target >= 0.8); kernel write requests up to ${status.fuseRequests.maxWriteBytes} B`,
        `FUSE past-image random 4 KiB reads, warm cache: ${rr.iops.toFixed(0)} IOPS, p50 ${rr.p50Us.toFixed(0)} us, p99 ${rr.p99Us.toFixed(0)} us (block cache ${status.cache.hits} hits / ${status.cache.misses} misses)`,
      ],
      figures: { fuseReadRatio, fuseWriteRatio, fuseReadMBps: ourRead / 1e6, bareReadMBps: bareRead / 1e6, fuseWriteMBps: ourWrite / 1e6, bareWriteMBps: bareWrite / 1e6, fuseRandRead4kIops: rr.iops },
    };
  } finally {
    if (daemon) await stop(daemon);
    await stop(bare);
  }
}
