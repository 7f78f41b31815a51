import { Command } from 'commander';
import * as fs from 'node:fs';
import { ChronoError } from '../../errors';
import type { Volume } from '../../volume/volume';
import { DEFAULTS } from '../../options';
import { ProgressBar, formatBytes, printJson } from '../output';
import { openForCli, volumeDirOf } from '../target';

export function register(program: Command): void {
  program
    .command('import')
    .description('write a raw image (file, block device or stdin) into the volume, then record a sync event')
    .argument('<dir>', 'volume directory')
    .argument('<image>', "raw image or block device; '-' reads stdin")
    .option('--label <label>', 'label of the sync event recorded at the end', 'import')
    .option('--changed-only', 'compare with the live volume block by block and write only blocks that differ (periodic replication from a primary)')
    .option('--json', 'print the event as JSON')
    .action(async (dir: string, image: string, o) => {
      const vol = await openForCli(volumeDirOf(dir), 'import');
      try {
        const fd = image === '-' ? 0 : fs.openSync(image, 'r');
        const total = image === '-' ? vol.sizeBytes : sizeOf(fd);
        if (total > vol.sizeBytes) throw new ChronoError('OUT_OF_RANGE', `${image} is ${total} bytes, larger than the ${vol.sizeBytes}-byte volume`);
        const bar = new ProgressBar('import', total);
        const buf = Buffer.allocUnsafe(DEFAULTS.importChunkBytes);
        const live = Buffer.allocUnsafe(DEFAULTS.importChunkBytes);
        let at = 0;
        let changedBytes = 0;
        for (;;) {
          const n = readFull(fd, buf);
          if (n === 0) break;
          if (at + n > vol.sizeBytes) throw new ChronoError('OUT_OF_RANGE', `input is larger than the ${vol.sizeBytes}-byte volume`);
          if (o.changedOnly) changedBytes += await writeChanged(vol, at, buf.subarray(0, n), live);
          else await vol.write(at, buf.subarray(0, n));
          at += n;
          bar.update(at);
        }
        bar.done();
        const event = await vol.sync({ label: o.label });
        const written = o.changedOnly ? changedBytes : at;
        if (o.json) printJson({ bytes: at, writtenBytes: written, event });
        else process.stdout.write(`imported ${formatBytes(at)}${o.changedOnly ? ` (${formatBytes(written)} changed)` : ''}; event ${event.id} '${event.label}'\n`);
      } finally {
        await vol.close();
      }
    });
}

/**
 * Writes only the blocks of `data` that differ from the live volume, as runs of consecutive
 * changed blocks. Compared byte for byte: exact, where a hash could collide.
 */
async function writeChanged(vol: Volume, offset: number, data: Buffer, scratch: Buffer): Promise<number> {
  const bs = vol.blockSizeBytes;
  const current = scratch.subarray(0, data.length);
  await vol.readInto(current, offset, data.length);
  let written = 0;
  let runStart = -1;
  const blocks = Math.ceil(data.length / bs);
  for (let i = 0; i <= blocks; i++) {
    const changed = i < blocks && data.compare(current, i * bs, Math.min((i + 1) * bs, data.length), i * bs, Math.min((i + 1) * bs, data.length)) !== 0;
    if (changed && runStart < 0) runStart = i;
    if (!changed && runStart >= 0) {
      const from = runStart * bs;
      const to = Math.min(i * bs, data.length);
      await vol.write(offset + from, data.subarray(from, to));
      written += to - from;
      runStart = -1;
    }
  }
  return written;
}

function sizeOf(fd: number): number {
  const st = fs.fstatSync(fd);
  if (st.isBlockDevice()) {
    // fstat reports 0 for block devices: seek to the end instead.
    const probe = Buffer.alloc(1);
    let lo = 0;
    let hi = 2 ** 50;
    while (lo < hi) {
      const mid = Math.floor((lo + hi + 1) / 2);
      if (fs.readSync(fd, probe, 0, 1, mid - 1) === 1) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
  return st.size;
}

/** Reads until the buffer is full or input ends (pipes return short reads). */
export function readFull(fd: number, buf: Buffer): number {
  let n = 0;
  while (n < buf.length) {
    let r: number;
    try {
      r = fs.readSync(fd, buf, n, buf.length - n, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      if ((err as NodeJS.ErrnoException).code === 'EOF') break;
      throw err;
    }
    if (r === 0) break;
    n += r;
  }
  return n;
}
