import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BenchResult, freePort, scratch, seconds, settle } from './lib';

const CLI = path.resolve(__dirname, '../src/cli/main.js');

/** What serves the convert's target: chronovol `serve`, or qemu-nbd on a plain file (the reference). */
type Server = 'chronovol' | 'qemu-nbd';

/**
 * nbdTlsConvertRatio: qemu-img convert of a 1 GiB image into a fresh volume's live export over
 * TCP with TLS-PSK against the same over plain TCP (--insecure), in pairs whose order alternates
 * (so neither side always runs on the warmer machine); the median of the per-pair ratios.
 *
 * Two more pairs say where the limit is. With its default flags qemu-img writes in order, one
 * request at a time, so every request pays the client's encryption, the transfer and our
 * decryption in series: `qemuNbdTlsConvertRatio` is the same pair against qemu's own server
 * (qemu-nbd, a plain file), the ratio that client allows. `nbdTlsConvertParallelRatio` is our
 * pair with `-W -m 16` (out of order, 16 requests in flight), the way the mirror job writes.
 */
export async function benchNbdTls(sizeBytes = 1 << 30, pairs = 5): Promise<BenchResult> {
  const root = scratch('nbd-tls');
  const src = path.join(root, 'src.img');
  spawnSync('dd', ['if=/dev/urandom', `of=${src}`, 'bs=1M', `count=${sizeBytes >> 20}`, 'status=none']);
  const pskDir = path.join(root, 'psk');
  fs.mkdirSync(pskDir);
  const keys = path.join(pskDir, 'keys.psk');
  fs.writeFileSync(keys, `bench:${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
  let round = 0;

  const startServer = async (server: Server, target: string, port: number, tls: boolean): Promise<ChildProcess> => {
    if (server === 'chronovol') {
      spawnSync(process.execPath, [CLI, 'init', target, '--size', String(sizeBytes)]);
      const how = tls ? ['--tls-psk', keys] : ['--insecure'];
      const d = spawn(process.execPath, [CLI, 'serve', target, '--listen', `127.0.0.1:${port}`, ...how], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, CHRONOVOL_LOG: 'warn' } });
      await new Promise<void>((resolve) => d.stdout!.on('data', (c: Buffer) => c.toString().includes('serving') && resolve()));
      return d;
    }
    fs.writeFileSync(target, '');
    fs.truncateSync(target, sizeBytes);
    const how = tls ? ['--object', `tls-creds-psk,id=tls0,endpoint=server,dir=${pskDir}`, '--tls-creds', 'tls0'] : [];
    const d = spawn('qemu-nbd', ['-f', 'raw', '-x', 'live', '-p', String(port), '-b', '127.0.0.1', '-t', ...how, target], { stdio: ['ignore', 'ignore', 'inherit'] });
    const end = Date.now() + 10_000;
    // qemu-nbd says nothing when it is ready: wait until the port answers.
    const probe = [...(tls ? ['--object', `tls-creds-psk,id=tls0,endpoint=client,dir=${pskDir},username=bench`] : []), '--image-opts', `driver=nbd,host=127.0.0.1,port=${port},export=live${tls ? ',tls-creds=tls0' : ''}`];
    while (spawnSync('qemu-img', ['info', ...probe]).status !== 0) {
      if (Date.now() > end) throw new Error('qemu-nbd did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
    return d;
  };

  /** Bytes/s of one convert into a fresh target served plain or with TLS. */
  const convert = async (server: Server, tls: boolean, flags: string[]): Promise<number> => {
    const target = path.join(root, `target-${round++}`);
    const port = await freePort();
    const d = await startServer(server, target, port, tls);
    const dest = tls
      ? ['--object', `tls-creds-psk,id=tls0,endpoint=client,dir=${pskDir},username=bench`, '--target-image-opts', src, `driver=nbd,host=127.0.0.1,port=${port},export=live,tls-creds=tls0`]
      : ['-O', 'raw', src, `nbd://127.0.0.1:${port}/live`];
    try {
      settle();
      const t = process.hrtime.bigint();
      const r = spawnSync('qemu-img', ['convert', '-n', '-f', 'raw', ...flags, ...dest], { encoding: 'utf8', timeout: 900_000 });
      if (r.status !== 0) throw new Error(`qemu-img convert (${server}, ${tls ? 'TLS' : 'plain'}): ${r.stderr}`);
      return sizeBytes / seconds(t);
    } finally {
      const exited = new Promise((r) => d.once('exit', r));
      d.kill('SIGTERM');
      await exited;
      fs.rmSync(target, { recursive: true, force: true });
    }
  };

  /** The median pair of `n` alternating TLS/plain pairs. */
  const pairOf = async (server: Server, flags: string[], n: number) => {
    const rows: Array<{ plain: number; tls: number; r: number }> = [];
    for (let i = 0; i < n; i++) {
      const tlsFirst = i % 2 === 1;
      const a = await convert(server, tlsFirst, flags);
      const b = await convert(server, !tlsFirst, flags);
      const [plain, tls] = tlsFirst ? [b, a] : [a, b];
      rows.push({ plain, tls, r: tls / plain });
    }
    const sorted = [...rows].sort((x, y) => x.r - y.r);
    return { mid: sorted[Math.floor(sorted.length / 2)], all: sorted.map((x) => x.r.toFixed(2)).join(', ') };
  };

  const ours = await pairOf('chronovol', [], pairs);
  const parallel = await pairOf('chronovol', ['-W', '-m', '16'], pairs);
  const qemu = await pairOf('qemu-nbd', [], 3);
  const mbs = (x: number) => `${(x / 1e6).toFixed(0)} MB/s`;
  const line = (what: string, p: typeof ours, target: string) =>
    `${what}: ${mbs(p.mid.tls)} vs plain TCP ${mbs(p.mid.plain)}  ratio ${p.mid.r.toFixed(3)} (median of ${p.all}${target})`;
  return {
    lines: [
      line(`NBD qemu-img convert ${sizeBytes >> 20} MiB into live over TLS-PSK`, ours, '; target >= 0.8'),
      line('  the same with -W -m 16 (out of order, as the mirror job writes)', parallel, ''),
      line('  reference: qemu-nbd on a plain file, default flags', qemu, ''),
    ],
    figures: {
      nbdTlsConvertRatio: ours.mid.r,
      nbdTlsConvertMBps: ours.mid.tls / 1e6,
      nbdPlainConvertMBps: ours.mid.plain / 1e6,
      nbdTlsConvertParallelRatio: parallel.mid.r,
      qemuNbdTlsConvertRatio: qemu.mid.r,
    },
  };
}
