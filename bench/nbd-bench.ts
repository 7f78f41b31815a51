import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BenchResult, freePort, paired, roundList, scratch, seconds, settle } from './lib';

const CLI = path.resolve(__dirname, '../src/cli/main.js');

function timed(cmd: string, args: string[]): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 900_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return seconds(t);
}

/**
 * qemu-img convert of a 1 GiB image into the live export vs the same convert into a raw file
 * on the same disk, in back-to-back pairs: median of seven for the target (single pairs ranged
 * 0.28-2.96 in one run here), three for the flushed variant. qemu-img convert's default cache
 * mode is 'unsafe': neither side flushes, so the raw file's side writes only into the page cache.
 */
export async function benchNbd(sizeBytes = 1 << 30): Promise<BenchResult> {
  const root = scratch('nbd');
  const src = path.join(root, 'src.img');
  spawnSync('dd', ['if=/dev/urandom', `of=${src}`, 'bs=1M', `count=${sizeBytes >> 20}`, 'status=none']);
  let round = 0;
  // Throughput (bytes/s) of each side; pairs back to back.
  const pair = (cacheArgs: string[], pairs: number) => paired(pairs, () => {
    const raw = path.join(root, `raw-${round}.img`);
    settle();
    const s = timed('qemu-img', ['convert', ...cacheArgs, '-f', 'raw', '-O', 'raw', src, raw]);
    fs.rmSync(raw);
    return sizeBytes / s;
  }, async () => {
    const dir = path.join(root, `vol-${round++}`);
    spawnSync(process.execPath, [CLI, 'init', dir, '--size', String(sizeBytes)]);
    const port = await freePort();
    const d: ChildProcess = spawn(process.execPath, [CLI, 'serve', dir, '--listen', `127.0.0.1:${port}`, '--insecure'], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, CHRONOVOL_LOG: 'warn' } });
    await new Promise<void>((resolve) => d.stdout!.on('data', (c: Buffer) => c.toString().includes('serving') && resolve()));
    try {
      settle();
      return sizeBytes / timed('qemu-img', ['convert', ...cacheArgs, '-n', '-f', 'raw', '-O', 'raw', src, `nbd://127.0.0.1:${port}/live`]);
    } finally {
      const exited = new Promise((r) => d.once('exit', r));
      d.kill('SIGTERM');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  const p = await pair([], 7);
  // With -t writeback, qemu-img ends with a flush: an fsync of the raw file, NBD_CMD_FLUSH to us.
  const durable = await pair(['-t', 'writeback'], 3);
  const nbdConvertRatio = p.ratio;
  const mbs = (x: number) => `${(x / 1e6).toFixed(0)} MB/s`;
  return {
    lines: [
      `NBD qemu-img convert 1 GiB into live: ${mbs(p.ours)} vs into a raw file ${mbs(p.baseline)}  ratio ${nbdConvertRatio.toFixed(3)} (median of ${p.ratios.map((r) => r.toFixed(2)).join(', ')}; target >= 0.7); rounds in order, ours/raw MB/s, * ours first: ${roundList(p)}`,
      `NBD qemu-img convert -t writeback (ends with a flush): ${mbs(durable.ours)} vs ${mbs(durable.baseline)}  ratio ${durable.ratio.toFixed(3)} (median of ${durable.ratios.map((r) => r.toFixed(2)).join(', ')}); rounds: ${roundList(durable)}`,
    ],
    figures: { nbdConvertRatio, nbdConvertMBps: p.ours / 1e6, rawConvertMBps: p.baseline / 1e6, nbdConvertFlushRatio: durable.ratio },
  };
}
