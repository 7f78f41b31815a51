import { Command } from 'commander';
import * as fs from 'node:fs';
import { ChronoError } from '../../errors';
import { ProgressBar, printJson } from '../output';
import { openForCli, volumeDirOf } from '../target';

export function register(program: Command): void {
  program
    .command('import-log')
    .description('replay a Linux dm-log-writes log: every MARK becomes a sync event, every FLUSH a crash-consistent point')
    .argument('<dir>', 'volume directory')
    .argument('<log>', 'the dm-log-writes log device or file')
    .option('--no-flush-events', 'do not record an event at FLUSH entries (marks only)')
    .option('--json', 'print a summary as JSON')
    .addHelpText('after', '\nRecord one with: dmsetup create lw --table "0 $(blockdev --getsz /dev/sdX) log-writes /dev/sdX /dev/sdY"\nand mark points with: dmsetup message lw 0 mark <label>\n')
    .action(async (dir: string, logPath: string, o) => {
      const { DM_LOG, readDmLog } = await import('../../format/dm-log-writes');
      const fd = fs.openSync(logPath, 'r');
      const size = fs.fstatSync(fd).size;
      const src = { size, read: (p: number, l: number) => {
        const b = Buffer.allocUnsafe(l);
        if (fs.readSync(fd, b, 0, l, p) !== l) throw new ChronoError('BAD_LENGTH', `short read of ${logPath} at ${p}`);
        return b;
      } };
      const vol = await openForCli(volumeDirOf(dir), 'import-log');
      const summary = { entries: 0, writes: 0, discards: 0, marks: 0, flushes: 0, bytes: 0, events: [] as number[] };
      try {
        const bar = new ProgressBar('import-log', size);
        for (const e of readDmLog(src)) {
          summary.entries++;
          if (e.offsetBytes + e.lengthBytes > vol.sizeBytes) throw new ChronoError('OUT_OF_RANGE', `log entry ${e.index} writes past the end of the ${vol.sizeBytes}-byte volume`);
          if (e.flags & DM_LOG.DISCARD) {
            await vol.writeZeroes(e.offsetBytes, e.lengthBytes, true);
            summary.discards++;
          } else if (e.dataAt !== undefined) {
            await vol.write(e.offsetBytes, src.read(e.dataAt, e.lengthBytes));
            summary.writes++;
            summary.bytes += e.lengthBytes;
            bar.update(e.dataAt);
          }
          if (e.mark !== undefined) {
            summary.events.push((await vol.sync({ label: e.mark, kind: 'app' })).id);
            summary.marks++;
          } else if (e.flags & DM_LOG.FLUSH) {
            summary.flushes++;
            if (o.flushEvents) summary.events.push((await vol.sync({ label: `flush-${e.index}`, kind: 'crash' })).id);
            else await vol.flush();
          } else if (e.flags & DM_LOG.FUA) {
            await vol.flush();
          }
        }
        await vol.flush();
        bar.done();
      } finally {
        fs.closeSync(fd);
        await vol.close();
      }
      if (o.json) printJson(summary);
      else process.stdout.write(`replayed ${summary.entries} entries: ${summary.writes} writes (${summary.bytes} bytes), ${summary.discards} discards, ${summary.marks} marks, ${summary.flushes} flushes; ${summary.events.length} events recorded\n`);
    });
}
