import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BenchResult, freePort, scratch, seconds, settle } from './lib';

const CLI = path.resolve(__dirname, '../src/cli/main.js');

/**
 * nbdTlsConvertRatio: qemu-img convert of a 1 GiB image into a fresh volume's live export over
 * TCP with TLS-PSK against the same over plain TCP (--insecure), in pairs whose order alternates
 * (so neither side always runs on the warmer machine); the median of the per-pair ratios.
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
  /** Bytes/s of one convert into a fresh volume served plain or with TLS. */
  const convert = async (tls: boolean): Promise<number> => {
    const dir = path.join(root, `vol-${round++}`);
    spawnSync(process.execPath, [CLI, 'init', dir, '--size', String(sizeBytes)]);
    const port = await freePort();
    const how = tls ? ['--tls-psk', keys] : ['--insecure'];
    const d: ChildProcess = spawn(process.execPath, [CLI, 'serve', dir, '--listen', `127.0.0.1:${port}`, ...how], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, CHRONOVOL_LOG: 'warn' } });
    await new Promise<void>((resolve) => d.stdout!.on('data', (c: Buffer) => c.toString().includes('serving') && resolve()));
    const target = tls
      ? ['--object', `tls-creds-psk,id=tls0,endpoint=client,dir=${pskDir},username=bench`, '--target-image-opts', src, `driver=nbd,host=127.0.0.1,port=${port},export=live,tls-creds=tls0`]
      : ['-O', 'raw', src, `nbd://127.0.0.1:${port}/live`];
    try {
      settle();
      const t = process.hrtime.bigint();
      const r = spawnSync('qemu-img', ['convert', '-n', '-f', 'raw', ...target], { encoding: 'utf8', timeout: 900_000 });
      if (r.status !== 0) throw new Error(`qemu-img convert (${tls ? 'TLS' : 'plain'}): ${r.stderr}`);
      return sizeBytes / seconds(t);
    } finally {
      const exited = new Promise((r) => d.once('exit', r));
      d.kill('SIGTERM');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
  const rows: Array<{ plain: number; tls: number; r: number }> = [];
  for (let i = 0; i < pairs; i++) {
    const first = i % 2 === 0 ? 'plain' : 'tls';
    const a = await convert(first === 'tls');
    const b = await convert(first !== 'tls');
    const [plain, tls] = first === 'plain' ? [a, b] : [b, a];
    rows.push({ plain, tls, r: tls / plain });
  }
  const sorted = [...rows].sort((x, y) => x.r - y.r);
  const mid = sorted[Math.floor(sorted.length / 2)];
  const mbs = (x: number) => `${(x / 1e6).toFixed(0)} MB/s`;
  return {
    lines: [`NBD qemu-img convert 1 GiB into live over TLS-PSK: ${mbs(mid.tls)} vs plain TCP ${mbs(mid.plain)}  ratio ${mid.r.toFixed(3)} (median of ${sorted.map((x) => x.r.toFixed(2)).join(', ')}; target >= 0.8)`],
    figures: { nbdTlsConvertRatio: mid.r, nbdTlsConvertMBps: mid.tls / 1e6, nbdPlainConvertMBps: mid.plain / 1e6 },
  };
}
