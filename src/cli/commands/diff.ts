import { Command } from 'commander';
import * as fs from 'node:fs';
import type { Changes } from '../../service/images';
import { formatBytes, printJson, printTable } from '../output';
import { openForCli, volumeDirOf } from '../target';

/** Blocks read and written per call when --out copies an extent. */
const COPY_BLOCKS = 256;

export function register(program: Command): void {
  program
    .command('diff')
    .description('the block extents that changed between two points, from the index (no image is read)')
    .argument('<target>', 'volume directory (a volume held by a running daemon is refused: LOCKED)')
    .argument('<from>', "'live', an event id or label, seq:<n>, or an ISO-8601 time")
    .argument('<to>', 'the other point')
    .option('--out <file>', "write a sparse file of the volume's size holding only the changed blocks, as of <to>")
    .option('--json', 'print as JSON')
    .addHelpText('after', `
The diff is by version: a block is listed when a version of it (a write, zero or trim) was
written between the two points, so a block rewritten with the bytes it already had is listed
too; a block that differs is never missed. The order of <from> and <to> does not matter for the
extents; --out takes its bytes from <to>.

Examples:
  chronovol diff /srv/vol1 before-upgrade live
  chronovol diff /srv/vol1 3 4 --json
  chronovol diff /srv/vol1 before-upgrade after-upgrade --out changed.img   # then: filefrag -v changed.img
`)
    .action(async (target: string, fromText: string, toText: string, o) => {
      const { changesBetween, resolveImage } = await import('../../service/images');
      const vol = await openForCli(volumeDirOf(target), 'diff', 0, true);
      try {
        const from = resolveImage(vol, fromText);
        const to = resolveImage(vol, toText);
        const bs = vol.blockSizeBytes;
        const c = changesBetween(vol, from, to);
        if (o.out) await writeSparse(o.out, c.changes, bs, vol.sizeBytes, (buf, off) => vol.readInto(buf, off, buf.length, to));
        if (o.json) return printJson({ ...c, ...(o.out ? { out: o.out } : {}) });
        process.stdout.write(`${from.name} -> ${to.name}: ${c.extents} extents, ${c.blocks} blocks, ${formatBytes(c.bytes)} changed${o.out ? `; changed blocks of ${to.name} written to ${o.out}` : ''}\n`);
        if (c.extents) printTable([['FIRST BLOCK', 'BLOCKS', 'OFFSET', 'LENGTH'], ...c.changes.map((e) => [String(e.firstBlock), String(e.blockCount), String(e.offset), String(e.length)])]);
      } finally {
        await vol.close();
      }
    });
}

/** A file of `sizeBytes` with only the extents written: everything else stays a hole. */
async function writeSparse(file: string, extents: Changes['changes'], bs: number, sizeBytes: number, read: (buf: Buffer, offset: number) => Promise<void>): Promise<void> {
  const fd = fs.openSync(file, 'w');
  try {
    fs.ftruncateSync(fd, sizeBytes);
    const buf = Buffer.allocUnsafe(COPY_BLOCKS * bs);
    for (const e of extents) {
      for (let b = e.firstBlock; b < e.firstBlock + e.blockCount; b += COPY_BLOCKS) {
        const n = Math.min(COPY_BLOCKS, e.firstBlock + e.blockCount - b);
        const chunk = buf.subarray(0, n * bs);
        await read(chunk, b * bs);
        for (let done = 0; done < chunk.length; ) done += fs.writeSync(fd, chunk, done, chunk.length - done, b * bs + done);
      }
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
