import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { BenchResult, paired, pairList, scratch, settle } from './lib';

const CLI = path.resolve(__dirname, '../src/cli/main.js');
const MiB = 1 << 20;
const SIZE = 512 * MiB;
const DD_MIB = 64;
const ROUNDS = 5;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function must(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Starts a CLI daemon and waits for its banner. */
async function daemon(args: string[], banner: string): Promise<ChildProcess> {
  const p = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CHRONOVOL_LOG: 'warn' } });
  let err = '';
  p.stderr!.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-2000)));
  await new Promise<void>((resolve, reject) => {
    p.stdout!.on('data', (c: Buffer) => c.toString().includes(banner) && resolve());
    p.once('exit', (code) => reject(new Error(`${args[0]} exited ${code}: ${err}`)));
  });
  return p;
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function stopProcess(p: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  p.kill(signal);
  await exited;
}

/**
 * The application's cost of protection (issue 13): `dd conv=fsync` of 64 MiB into ext4 on a loop
 * device over protect's FUSE export, with the mirror running into our volume (on) and with our
 * daemon away (off: the same splitter path, no mirror), in back-to-back pairs, order alternating.
 * Each "off" leaves 64 MiB dirty, so the next "on" first resyncs it: its MB/s is the resync figure.
 * Then the same 'on' over TCP+TLS-PSK on loopback (the two-machine layout, docs/REPLICATION.md).
 * Bare: the same dd on a loop device over the primary file itself, with no splitter at all.
 */
export async function benchProtect(): Promise<BenchResult> {
  if (spawnSync('sh', ['-c', 'command -v qemu-storage-daemon']).status !== 0) return { lines: ['protect: skipped (no qemu-storage-daemon)'], figures: {} };
  const dir = scratch('protect');
  const vol = path.join(dir, 'vol');
  const prim = path.join(dir, 'prim.img');
  const mnt = path.join(dir, 'mnt');
  const state = path.join(dir, 'state');
  must(process.execPath, [CLI, 'init', vol, '--size', String(SIZE)]);
  fs.writeFileSync(prim, '');
  fs.truncateSync(prim, SIZE);
  must('mkfs.ext4', ['-q', '-F', prim]);
  fs.mkdirSync(mnt);
  const status = () => JSON.parse(fs.readFileSync(path.join(state, 'status.json'), 'utf8')).protection as { state: string; lastResync: { reason: string; bytes: number; mbPerSecond: number; atMs: number } | null };
  const waitMirroring = async (after: number) => {
    for (let i = 0; i < 1200; i++) {
      const s = fs.existsSync(path.join(state, 'status.json')) ? status() : undefined;
      if (s?.state === 'mirroring' && (s.lastResync?.atMs ?? 0) > after) return s;
      await sleep(50);
    }
    throw new Error('protect did not reach mirroring');
  };
  let n = 0;
  const dd = (): number => {
    settle();
    const file = path.join(mnt, `dd${n++ % 2}`);
    const t = process.hrtime.bigint();
    must('dd', ['if=/dev/zero', `of=${file}`, 'bs=1M', `count=${DD_MIB}`, 'conv=fsync', 'status=none']);
    return DD_MIB / (Number(process.hrtime.bigint() - t) / 1e9);
  };
  let serve: ChildProcess | undefined;
  let protect: ChildProcess | undefined;
  let loop: string | undefined;
  const resyncs: number[] = [];
  try {
    serve = await daemon(['serve', vol], 'serving ');
    const t0 = Date.now();
    protect = await daemon(['protect', vol, '--primary', prim, '--app-export', `fuse:${path.join(dir, 'app.img')}`, '--state-dir', state], 'protecting ');
    await waitMirroring(t0 - 1);
    loop = must('losetup', ['-f', '--show', path.join(dir, 'app.img')]).trim();
    must('mount', [loop, mnt]);
    const p = await paired(ROUNDS,
      async () => {
        await stopProcess(serve, 'SIGKILL');
        serve = undefined;
        for (let i = 0; i < 200 && status().state !== 'disconnected'; i++) await sleep(25);
        return dd();
      },
      async () => {
        if (!serve) {
          const t = Date.now();
          serve = await daemon(['serve', vol], 'serving ');
          const s = await waitMirroring(t);
          if (s.lastResync!.reason === 'resync') resyncs.push(s.lastResync!.mbPerSecond);
        }
        const mbps = dd();
        // An event clears the bitmap, as a schedule of agent syncs would: the next resync moves what 'off' wrote.
        must(process.execPath, [CLI, 'sync', state]);
        return mbps;
      });
    const resyncBytes = status().lastResync?.bytes ?? 0;
    must('umount', [mnt]);
    must('losetup', ['-d', loop]);
    loop = undefined;
    await stopProcess(protect);
    protect = undefined;
    // The volume "on another host": NBD and control over TCP on loopback with TLS-PSK. live equals
    // the primary now (the last round mirrored), so protect starts with --initial assume-same.
    await stopProcess(serve);
    const psk = path.join(dir, 'keys.psk');
    fs.writeFileSync(psk, `replica:${crypto.randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    const [nbdPort, controlPort] = [await freePort(), await freePort()];
    serve = await daemon(['serve', vol, '--listen', `127.0.0.1:${nbdPort}`, '--control-listen', `127.0.0.1:${controlPort}`, '--tls-psk', psk], 'serving ');
    const t1 = Date.now();
    protect = await daemon(['protect', `nbd://127.0.0.1:${nbdPort}/live`, '--target-control', `tls://127.0.0.1:${controlPort}`, '--tls-psk', psk, '--primary', prim, '--initial', 'assume-same',
      '--app-export', `fuse:${path.join(dir, 'app.img')}`, '--state-dir', state], 'protecting ');
    for (let i = 0; i < 1200 && !(status().state === 'mirroring' && Date.parse((status() as unknown as { since: string }).since) >= t1); i++) await sleep(50);
    if (status().state !== 'mirroring') throw new Error('protect over TLS did not reach mirroring');
    loop = must('losetup', ['-f', '--show', path.join(dir, 'app.img')]).trim();
    must('mount', [loop, mnt]);
    const tlsOn = [dd(), dd(), dd()].sort((a, b) => a - b)[1];
    must('umount', [mnt]);
    must('losetup', ['-d', loop]);
    loop = undefined;
    await stopProcess(protect);
    protect = undefined;
    // Bare: no splitter; the application on the primary itself.
    loop = must('losetup', ['-f', '--show', prim]).trim();
    must('mount', [loop, mnt]);
    const bare = [dd(), dd(), dd()].sort((a, b) => a - b)[1];
    resyncs.sort((a, b) => a - b);
    const resyncMBps = resyncs[Math.floor(resyncs.length / 2)] ?? NaN;
    const load = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    return {
      lines: [
        `protect: app dd ${DD_MIB} MiB conv=fsync on ext4 over the FUSE export: protection on ${p.ours.toFixed(0)} MB/s vs off (same splitter, no mirror) ${p.baseline.toFixed(0)} MB/s: ratio ${p.ratio.toFixed(2)} (pairs ${pairList(p)}; target >= 0.5)`,
        `protect: over TCP+TLS-PSK on loopback (--control-listen, nbd://, median of 3): ${tlsOn.toFixed(0)} MB/s, vs over Unix sockets (the 'on' median) ${(tlsOn / p.ours).toFixed(2)}`,
        `protect: bare loop device on the primary ${bare.toFixed(0)} MB/s: protected/bare ${(p.ours / bare).toFixed(2)}`,
        `protect: resync by bitmap after each 'off' (~${(resyncBytes / MiB).toFixed(0)} MiB dirty): median ${resyncMBps.toFixed(0)} MB/s (runs ${resyncs.map((x) => x.toFixed(0)).join(', ')}); load ${load}`,
      ],
      figures: { protectOnOffRatio: p.ratio, protectOnMBps: p.ours, protectOffMBps: p.baseline, protectBareMBps: bare, protectResyncMBps: resyncMBps, protectResyncBytes: resyncBytes, protectTlsOnMBps: tlsOn, protectTlsVsUnixRatio: tlsOn / p.ours },
    };
  } finally {
    if (fs.readFileSync('/proc/mounts', 'utf8').includes(` ${mnt} `)) spawnSync('umount', ['-l', mnt]);
    if (loop) spawnSync('losetup', ['-d', loop]);
    await stopProcess(protect);
    await stopProcess(serve);
  }
}
