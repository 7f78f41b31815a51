import { Command } from 'commander';
import * as fs from 'node:fs';
import { ChronoError } from '../../errors';
import { controlCall } from '../../control/control-client';
import { parseSize } from '../../options';
import { ProgressBar, printJson } from '../output';
import { openForCli, resolveTarget } from '../target';

export function register(program: Command): void {
  program
    .command('export')
    .description('write the volume as it was at a point in time to a file or stdout')
    .argument('<target>', 'volume directory or mountpoint')
    .requiredOption('--at <point>', "'live', an event id or label, seq:<n>, or an ISO-8601 time")
    .option('--out <file>', "output file; '-' for stdout", '-')
    .option('--offset <bytes>', 'start of the range to export', parseSize, 0)
    .option('--length <bytes>', 'length of the range (default: to the end)', parseSize)
    .option('--json', 'print a summary as JSON (requires --out <file>)')
    .addHelpText('after', '\nExamples:\n  chronovol export /srv/vol1 --at before-upgrade --out old.img\n  chronovol export /srv/vol1 --at 2026-11-27T08:00:00Z --offset 4096 --length 4096 | xxd\n')
    .action(async (target: string, o) => {
      const t = resolveTarget(target);
      const toStdout = o.out === '-';
      if (o.json && toStdout) throw new ChronoError('BAD_ARGUMENT', '--json needs --out <file>: stdout carries the image');
      const fd = toStdout ? 1 : fs.openSync(o.out, 'w');
      const writeAll = (b: Buffer) => {
        for (let done = 0; done < b.length; ) {
          try {
            done += fs.writeSync(fd, b, done, b.length - done);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
          }
        }
      };
      let written = 0;
      let pointName: string;
      if (t.daemonSocket) {
        const r = (await controlCall(t.daemonSocket, { method: 'export', params: { at: o.at, offset: o.offset, length: o.length } }, (chunk) => {
          writeAll(chunk);
          written += chunk.length;
        })) as { point: string };
        pointName = r.point;
      } else {
        const vol = await openForCli(t.volumeDir!, 'export', 0, true);
        try {
          const { imageRange, resolveImage, streamImage } = await import('../../service/images');
          const point = resolveImage(vol, o.at);
          pointName = point.name;
          const { offset, length } = imageRange(vol, o.offset, o.length);
          const bar = new ProgressBar(`export ${point.name}`, length);
          for await (const data of streamImage(vol, point, offset, length)) {
            writeAll(data);
            written += data.length;
            if (!toStdout) bar.update(written);
          }
          bar.done();
        } finally {
          await vol.close();
        }
      }
      if (!toStdout) {
        fs.fsyncSync(fd);
        fs.closeSync(fd);
        if (o.json) printJson({ point: pointName, out: o.out, bytes: written });
        else process.stderr.write(`exported ${written} bytes at ${pointName} to ${o.out}\n`);
      }
    });
}
