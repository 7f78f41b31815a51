import { ChildProcess, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { dd, startUntil, stop } from './fuse-bench';
import { BenchResult, Paired, pairList, paired, scratch, settle } from './lib';

const CLI = path.resolve(__dirname, '../src/cli/main.js');
const MiB = 1 << 20;

/**
 * `--only steady`: `fuseWriteSteadyVsDiskRatio` (issue 11). The live image of a volume the size
 * of one copy is written over (dd bs=1M conv=fsync) until it is in steady turnover (every
 * segment filled makes one leave; each sealed segment is archived right away), then, in pairs
 * whose first side alternates, the same dd into the live image vs into a plain file on the disk
 * under the volume. With the local archive in the volume directory (same disk, hard links), and
 * again with the archive on another file system (`otherArchiveDir`, e.g. /dev/shm: tmpfs, which
 * is memory, not a disk, and is reported as such).
 */
export async function benchSteady(sizeBytes = 512 * MiB, otherArchiveDir = process.env.CHRONOVOL_BENCH_OTHER_ARCHIVE ?? '/dev/shm'): Promise<BenchResult> {
  const root = scratch('steady');
  const count = `count=${sizeBytes / MiB}`;
  const src = path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : root, `chronovol-bench-steady-src-${process.pid}`);
  spawnSync('dd', ['if=/dev/urandom', `of=${src}`, 'bs=1M', count, 'status=none']);
  const plain = path.join(root, 'plain');
  const disk = () => {
    settle();
    const r = dd([`if=${src}`, `of=${plain}`, 'bs=1M', count, 'conv=fsync']);
    fs.rmSync(plain);
    return r;
  };
  const running: ChildProcess[] = [];
  const measure = async (name: string, archive?: string) => {
    const dir = path.join(root, `${name}-vol`);
    const mnt = path.join(root, `${name}-mnt`);
    spawnSync(process.execPath, [CLI, 'init', dir, '--size', String(sizeBytes), ...(archive ? ['--archive', archive] : [])], { stdio: 'ignore' });
    const p = await startUntil(process.execPath, [CLI, 'mount', dir, mnt], 'mounted');
    running.push(p);
    const copy = () => {
      settle();
      return dd([`if=${src}`, `of=${path.join(mnt, 'live/volume.img')}`, 'bs=1M', count, 'conv=notrunc,fsync']);
    };
    const fresh = copy();
    for (let i = 0; i < 3; i++) copy(); // past twice the volume: every later segment makes one leave
    const steady = await paired(5, disk, copy);
    const status = JSON.parse(fs.readFileSync(path.join(mnt, 'status.json'), 'utf8')) as { archive?: { lag?: { segments: number } }; log?: { copyForwardWriteAmp: number } };
    await stop(p);
    fs.rmSync(dir, { recursive: true, force: true });
    if (archive) fs.rmSync(archive, { recursive: true, force: true });
    return { fresh, steady, writeAmp: status.log?.copyForwardWriteAmp };
  };
  try {
    const load = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    const same = await measure('same');
    const otherArchive = fs.existsSync(otherArchiveDir) ? fs.mkdtempSync(path.join(otherArchiveDir, 'chronovol-bench-archive-')) : undefined;
    const other = otherArchive ? await measure('other', path.join(otherArchive, 'a')) : undefined;
    if (otherArchive) fs.rmSync(otherArchive, { recursive: true, force: true });
    const mbs = (b: number) => `${(b / 1e6).toFixed(0)} MB/s`;
    const line = (what: string, r: { fresh: number; steady: Paired; writeAmp?: number }) =>
      `FUSE live write in steady turnover, archive ${what}: ${mbs(r.steady.ours)} vs ${mbs(r.steady.baseline)} into a plain file on the same disk  ratio ${r.steady.ratio.toFixed(3)} (median of ${pairList(r.steady)}); before turnover ${mbs(r.fresh)}; copy-forward write amp ${r.writeAmp?.toFixed(2)}`;
    return {
      lines: [
        `steady: load ${load}`,
        line('in the volume directory (same disk, hard links)', same),
        ...(other ? [line(`on ${otherArchiveDir} (another file system: tmpfs is memory, not a disk)`, other)] : []),
      ],
      figures: {
        fuseWriteSteadyVsDiskRatio: same.steady.ratio, fuseWriteSteadyMBps: same.steady.ours / 1e6, fuseWriteSteadyDiskMBps: same.steady.baseline / 1e6,
        fuseWriteSteadyOtherArchiveVsDiskRatio: other?.steady.ratio ?? null,
      },
    };
  } finally {
    for (const p of running) await stop(p);
    fs.rmSync(src, { force: true });
  }
}
