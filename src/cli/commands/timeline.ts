import { Command } from 'commander';
import * as fs from 'node:fs';
import { controlCall } from '../../control/control-client';
import { ChronoError } from '../../errors';
import type { TimelineBins, TimelineRequest } from '../../investigate/timeline-bins';
import { formatBytes, printJson } from '../output';
import { viaDaemonOrVolume } from '../target';

export function register(program: Command): void {
  program
    .command('timeline')
    .description('draw where and when the volume was written (SVG or PNG): write density over block address and time, sync events marked')
    .argument('<target>', 'volume directory or mountpoint (a running daemon answers for the volume it holds)')
    .requiredOption('--out <file>', 'picture to write: *.svg or *.png')
    .option('--from <point>', 'start of the window (default: the volume\'s creation)')
    .option('--to <point>', 'end of the window (default: live)')
    .option('--json', 'print a summary as JSON')
    .addHelpText('after', `
The picture is a grid of time (across) by block address (up); a cell's colour is how many
block versions were written there (log scale). Red lines are sync events, labelled with id and
label. Sand-coloured spans hold versions whose data lives only in the archive by now. Versions
are counted into the grid before drawing, so the file stays small whatever the history's length.
A mount also serves the recent window as <mountpoint>/timeline.svg.

Examples:
  chronovol timeline /srv/vol1 --out timeline.svg
  chronovol timeline /mnt/vol1 --from before-upgrade --to live --out upgrade.png
`)
    .action(async (target: string, o) => {
      const png = /\.png$/i.test(o.out);
      if (!png && !/\.svg$/i.test(o.out)) throw new ChronoError('BAD_ARGUMENT', '--out must end in .svg or .png');
      const req: TimelineRequest = { from: o.from, to: o.to };
      const t0 = Date.now();
      const bins = await viaDaemonOrVolume<TimelineBins>(target, 'timeline',
        async (socket) => (await controlCall(socket, { method: 'timeline', params: { ...req } })) as TimelineBins,
        async (vol) => (await import('../../investigate/timeline-bins')).timelineOf(vol, req), true);
      const { timelineSvg, svgToPng } = await import('../../investigate/timeline-chart');
      const svg = await timelineSvg(bins);
      const bytes = png ? await svgToPng(svg) : Buffer.from(svg);
      fs.writeFileSync(o.out, bytes);
      const summary = { out: o.out, format: png ? 'png' : 'svg', bytes: bytes.length, versions: bins.versions, events: bins.events.length, cells: bins.cells.length, from: new Date(bins.fromMs).toISOString(), to: new Date(bins.toMs).toISOString(), fromSeq: bins.fromSeq, toSeq: bins.toSeq, elapsedMs: Date.now() - t0 };
      if (o.json) return printJson(summary);
      process.stdout.write(`${o.out}: ${summary.versions} versions and ${summary.events} events from ${summary.from} to ${summary.to} (${formatBytes(bytes.length)})\n`);
    });
}
