import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Volume } from '../src/volume/volume';
import { BenchResult, patternChunk, scratch, settle, uniform } from './lib';

/**
 * `--only space`: the disk space of keeping versions (issue 11). 30 versions of a 1 GiB image,
 * each changing 1 % (random 64 KiB extents), a sync after each: the whole volume directory
 * (working set, index, and the local archive in it, on the same file system) by `du`, which
 * counts a hard-linked archived segment once, against btrfs with a read-only snapshot per
 * version (the same bytes written into a file on a fresh btrfs, `btrfs filesystem usage`'s
 * used bytes less those of the empty file system).
 */
const MiB = 1024 * 1024;

interface Workload {
  sizeBytes: number;
  versions: number;
  /** Per version, the extents (offset, salt) rewritten; 64 KiB each. */
  changes: Array<Array<{ offset: number; salt: number }>>;
}

const EXTENT_BYTES = 64 * 1024;

function workload(sizeBytes: number, versions: number, changeFraction: number): Workload {
  const rnd = uniform(11);
  const perVersion = Math.round((sizeBytes * changeFraction) / EXTENT_BYTES);
  const changes = Array.from({ length: versions }, (_, v) => Array.from({ length: perVersion }, (_, i) => ({ offset: rnd(sizeBytes / EXTENT_BYTES) * EXTENT_BYTES, salt: 1e6 + v * 1e4 + i })));
  return { sizeBytes, versions, changes };
}

const INITIAL_CHUNK = 4 * MiB;

async function chronovolBytes(w: Workload): Promise<{ du: number; archiveApparent: number }> {
  const dir = path.join(scratch('space'), 'vol');
  await Volume.create(dir, { sizeBytes: w.sizeBytes });
  const vol = await Volume.open(dir);
  for (let at = 0; at < w.sizeBytes; at += INITIAL_CHUNK) await vol.write(at, patternChunk(INITIAL_CHUNK, at / INITIAL_CHUNK + 1));
  await vol.sync({ label: 'v0' });
  for (const [v, extents] of w.changes.entries()) {
    for (const e of extents) await vol.write(e.offset, patternChunk(EXTENT_BYTES, e.salt));
    await vol.sync({ label: `v${v + 1}` });
  }
  await vol.close();
  settle();
  return { du: duBytes(dir), archiveApparent: apparentBytes(path.join(dir, 'archive')) };
}

/** Disk usage in bytes, each inode counted once (hard links too). */
function duBytes(dir: string): number {
  const r = spawnSync('du', ['-s', '-B1', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`du ${dir}: ${r.stderr}`);
  return Number(r.stdout.split(/\s/)[0]);
}

function apparentBytes(dir: string): number {
  const r = spawnSync('du', ['-s', '-B1', '--apparent-size', dir], { encoding: 'utf8' });
  return r.status === 0 ? Number(r.stdout.split(/\s/)[0]) : NaN;
}

/** btrfs used bytes for the same workload, snapshot per version; undefined where btrfs cannot be made here. */
function btrfsBytes(w: Workload): number | undefined {
  if (process.getuid?.() !== 0 || spawnSync('mkfs.btrfs', ['--version']).status !== 0) return undefined;
  const root = scratch('space-btrfs');
  const img = path.join(root, 'btrfs.img');
  const mnt = path.join(root, 'mnt');
  fs.mkdirSync(mnt);
  fs.writeFileSync(img, '');
  fs.truncateSync(img, 4 * w.sizeBytes);
  const run = (cmd: string, args: string[]) => {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  run('mkfs.btrfs', ['-q', img]);
  run('mount', ['-o', 'loop', img, mnt]);
  try {
    const used = () => {
      spawnSync('btrfs', ['filesystem', 'sync', mnt]);
      const m = /Used:\s+(\d+)/.exec(run('btrfs', ['filesystem', 'usage', '-b', mnt]));
      return Number(m![1]);
    };
    run('btrfs', ['subvolume', 'create', path.join(mnt, 'live')]);
    const empty = used();
    const file = path.join(mnt, 'live', 'volume.img');
    const fd = fs.openSync(file, 'w');
    for (let at = 0; at < w.sizeBytes; at += INITIAL_CHUNK) fs.writeSync(fd, patternChunk(INITIAL_CHUNK, at / INITIAL_CHUNK + 1), 0, INITIAL_CHUNK, at);
    fs.fdatasyncSync(fd);
    run('btrfs', ['subvolume', 'snapshot', '-r', path.join(mnt, 'live'), path.join(mnt, 'v0')]);
    for (const [v, extents] of w.changes.entries()) {
      for (const e of extents) fs.writeSync(fd, patternChunk(EXTENT_BYTES, e.salt), 0, EXTENT_BYTES, e.offset);
      fs.fdatasyncSync(fd);
      run('btrfs', ['subvolume', 'snapshot', '-r', path.join(mnt, 'live'), path.join(mnt, `v${v + 1}`)]);
    }
    fs.closeSync(fd);
    return used() - empty;
  } finally {
    spawnSync('umount', [mnt]);
  }
}

export async function benchSpace(): Promise<BenchResult> {
  const w = workload(1024 * MiB, 30, 0.01);
  const ours = await chronovolBytes(w);
  const btrfs = btrfsBytes(w);
  const written = w.sizeBytes + w.changes.flat().length * EXTENT_BYTES;
  const ratio = btrfs ? ours.du / btrfs : undefined;
  const mib = (n: number) => `${(n / MiB).toFixed(0)} MiB`;
  return {
    lines: [
      `space: 30 versions of a 1 GiB image, 1 % changed each (${mib(written)} written): chronovol ${mib(ours.du)} on disk (du; archive ${mib(ours.archiveApparent)} apparent, its segments hard links)` +
        (btrfs ? `, btrfs with a snapshot per version ${mib(btrfs)}: spaceVsBtrfsRatio ${ratio!.toFixed(3)} (target <= 1.2)` : ', btrfs not measured (needs root and btrfs-progs)'),
    ],
    figures: { spaceVersionsBytes: ours.du, spaceBtrfsBytes: btrfs ?? null, spaceVsBtrfsRatio: ratio ?? null },
  };
}
