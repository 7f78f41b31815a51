import { Command } from 'commander';
import { controlCall } from '../../control/control-client';
import { ChronoError } from '../../errors';
import type { Changes } from '../../service/images';
import { Destination, openDestination } from '../../replication/restore-destination';
import { ProgressBar, formatBytes, printJson } from '../output';
import { openForCli, resolveTarget } from '../target';

/** Reads a range of the volume at a point: through its daemon when one holds it, else directly. */
interface Source {
  point: string;
  sizeBytes: number;
  blockSizeBytes: number;
  read(offset: number, length: number): Promise<Buffer>;
  /** The blocks that may differ between the point and live (from the index). */
  changed(): Promise<Changes['changes']>;
  close(): Promise<void>;
}

async function openSource(target: string, at: string): Promise<Source> {
  const t = resolveTarget(target);
  if (t.daemonSocket) {
    const socket = t.daemonSocket;
    const info = (await controlCall(socket, { method: 'changed-extents', params: { at } })) as { point: string; blockSizeBytes: number; sizeBytes: number; extents: Changes['changes'] };
    return {
      point: info.point, sizeBytes: info.sizeBytes, blockSizeBytes: info.blockSizeBytes,
      read: async (offset, length) => {
        const parts: Buffer[] = [];
        // info.point, not `at`: `live` was fixed to the seq it stood at, so every chunk reads one state.
        await controlCall(socket, { method: 'export', params: { at: info.point, offset, length } }, (c) => parts.push(Buffer.from(c)));
        return Buffer.concat(parts);
      },
      changed: async () => info.extents,
      close: async () => undefined,
    };
  }
  const vol = await openForCli(t.volumeDir!, 'restore', 0, true);
  try {
    const { LIVE_POINT, changesBetween, resolveFixedImage } = await import('../../service/images');
    const point = resolveFixedImage(vol, at); // `live` as the seq it stands at; refused inside a resync window
    return {
      point: point.name, sizeBytes: vol.sizeBytes, blockSizeBytes: vol.blockSizeBytes,
      read: (offset, length) => vol.read(offset, length, point),
      changed: async () => changesBetween(vol, point, LIVE_POINT).changes,
      close: () => vol.close(),
    };
  } catch (err) {
    await vol.close();
    throw err;
  }
}

export function register(program: Command): void {
  program
    .command('restore')
    .description('failback: write a past state onto a disk (the primary, with protect stopped), only the blocks that differ')
    .argument('<target>', 'volume directory or mountpoint')
    .requiredOption('--at <point>', "an event id or label, seq:<n>, or an ISO-8601 time (inside a resync window: refused)")
    .requiredOption('--to <file|device|url>', 'the disk to write, as large as the volume: an image file, a block device, or nbd+unix:///EXPORT?socket=PATH / nbd://HOST:PORT/EXPORT')
    .option('--changed-only', 'the disk is known to equal live (protect ran until it was stopped): write the blocks the index says changed since the point, without reading the disk')
    .option('--json', 'print a summary as JSON')
    .addHelpText('after', `
Examples (stop the application and protect first):
  chronovol restore /srv/vol --at before-upgrade --to /var/lib/app/disk.img
  chronovol restore /srv/vol --at nightly --to /dev/vg0/app --changed-only
  chronovol restore /srv/vol --at nightly --to 'nbd+unix:///prim?socket=/run/app/prim.sock'`)
    .action(async (target: string, o) => {
      const src = await openSource(target, o.at);
      let dest: Destination | undefined;
      try {
        dest = await openDestination(o.to);
        const size = dest.sizeBytes;
        if (size < src.sizeBytes) throw new ChronoError('BAD_ARGUMENT', `${o.to} holds ${size} bytes, less than the ${src.sizeBytes}-byte volume`);
        const bs = src.blockSizeBytes;
        let compared = 0;
        let written = 0;
        if (o.changedOnly) {
          for (const e of await src.changed()) {
            const data = await src.read(e.firstBlock * bs, e.blockCount * bs);
            await dest.write(data, e.firstBlock * bs);
            written += data.length;
          }
        } else {
          const bar = new ProgressBar(`restore ${src.point}`, src.sizeBytes);
          const chunk = 1 << 20;
          const have = Buffer.alloc(chunk);
          for (let at = 0; at < src.sizeBytes; at += chunk) {
            const want = await src.read(at, Math.min(chunk, src.sizeBytes - at));
            await dest.read(have, want.length, at);
            // Runs of differing blocks, each written once.
            for (let b = 0; b < want.length; ) {
              if (want.compare(have, b, b + bs, b, b + bs) === 0) {
                b += bs;
                continue;
              }
              let e = b + bs;
              while (e < want.length && want.compare(have, e, e + bs, e, e + bs) !== 0) e += bs;
              await dest.write(want.subarray(b, e), at + b);
              written += e - b;
              b = e;
            }
            compared += want.length;
            bar.update(compared);
          }
          bar.done();
        }
        await dest.flush();
        const summary = { point: src.point, to: o.to, mode: o.changedOnly ? 'changed-only' : 'compare', bytesCompared: compared, bytesWritten: written, blocksWritten: written / bs };
        if (o.json) printJson(summary);
        else process.stdout.write(`restored ${src.point} onto ${o.to}: ${formatBytes(written)} written (${summary.blocksWritten} blocks)${compared ? `, ${formatBytes(compared)} compared` : ''}\n`);
      } finally {
        await dest?.close();
        await src.close();
      }
    });
}
