import { Command } from 'commander';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { controlCall } from '../../control/control-client';
import { ChronoError } from '../../errors';
import type { BisectPoints, DiffResult, ProbePoint } from '../../investigate/queries';
import { formatBytes, printJson, printTable } from '../output';
import { resolveTarget } from '../target';

interface Probe {
  point: string;
  seq: number;
  label?: string;
  exitCode: number | null;
  signal: string | null;
  good: boolean;
  elapsedMs: number;
}

export function register(program: Command): void {
  program
    .command('bisect')
    .description('find the first point in history where a command fails, by binary search over the events (or writes) between a good and a bad point')
    .argument('<target>', 'volume directory or the mountpoint of a running `chronovol mount`')
    .argument('<command...>', "after '--': the command to run at each probe; {} becomes the path of a throwaway clone's image of the probed point")
    .requiredOption('--good <point>', 'a point where the command succeeds (event id or label, seq:<n>, ISO-8601 time)')
    .requiredOption('--bad <point>', "a later point where it fails (default meaning as above; 'live' works)")
    .option('--writes', 'search every write between them, not only the sync events')
    .option('--json', 'print the result as JSON (probes are reported on stderr)')
    .addHelpText('after', `
Each probe makes a clone of the point (writable, so a checker or a mount can replay a journal;
its writes never reach history), runs the command with {} replaced by the clone's image path,
and discards the clone. Exit code 0 means good, anything else bad. The search assumes that once
bad, the command stays bad; it takes at most ceil(log2(n)) probes for n candidate points and
never probes --good or --bad themselves. Then it prints the first bad point and the blocks that
changed since the last good one. The command's own output goes to stderr.

A running mount serves the clones (<mnt>/clones/); a stopped volume is mounted by bisect itself
on a private temporary mountpoint for the length of the search (needs FUSE).

Examples:
  chronovol bisect /srv/vol1 --good before-upgrade --bad live -- fsck.ext4 -fn {}
  chronovol bisect /mnt/vol1 --good 3 --bad 40 -- \\
    sh -c 'm=$(mktemp -d) && mount -o loop {} $m && grep -q "listen 443" $m/etc/nginx/nginx.conf; r=$?; umount $m; exit $r'
  chronovol bisect /srv/vol1 --good 12 --bad 13 --writes --json -- fsck.ext4 -fn {}
`)
    .action(async (target: string, command: string[], o) => {
      if (!command.some((a) => a.includes('{}'))) throw new ChronoError('BAD_ARGUMENT', "the command must contain {} (the probed clone's image path), e.g. -- fsck.ext4 -fn {}");
      const started = Date.now();
      const t = resolveTarget(target);
      let own: { stop(): Promise<void> } | undefined;
      let socket = t.daemonSocket;
      let mnt: string | undefined;
      let ownMnt: string | undefined;
      const stopOwn = async () => {
        await own?.stop();
        own = undefined;
        if (ownMnt) fs.rmSync(ownMnt, { recursive: true, force: true });
      };
      const onSignal = () => void stopOwn().finally(() => process.exit(130));
      process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
      try {
        if (socket) {
          mnt = ((await controlCall(socket, { method: 'ping' })) as { mountpoint: string | null }).mountpoint ?? undefined;
          if (!mnt) throw new ChronoError('UNSUPPORTED', 'the daemon holding this volume has no FUSE mount (chronovol serve?); bisect needs one for the clone images: mount the volume instead, or stop the daemon');
        } else {
          // A stopped volume: serve it ourselves, privately, for the length of the search.
          const { DaemonHost } = await import('../../daemon/daemon-host');
          const { createLogger } = await import('../../log');
          ownMnt = fs.mkdtempSync(path.join(os.tmpdir(), 'chronovol-bisect-'));
          const d = await DaemonHost.start({ dir: t.volumeDir!, cacheBytes: 0, log: createLogger(process.env.CHRONOVOL_LOG ?? 'warn'), fuse: { mountpoint: ownMnt, autoSyncMs: 0, readAheadBytes: 0, fuseCpu: 'off' } });
          own = d;
          mnt = ownMnt;
          socket = path.join(d.volume.directory.root, 'control.sock');
        }
        const sock = socket;
        const span = (await controlCall(sock, { method: 'bisect-points', params: { good: o.good, bad: o.bad, writes: !!o.writes } })) as BisectPoints;
        const c = span.points;
        const say = (line: string) => (o.json ? process.stderr : process.stdout).write(line + '\n');
        const maxProbes = Math.ceil(Math.log2(c.length));
        say(`bisecting ${c.length} ${o.writes ? 'writes' : 'points'} after ${describe(span.good)} up to ${describe(span.bad)}: at most ${maxProbes} probes`);
        const probes: Probe[] = [];
        // Invariant: c[lo] is good (lo = -1: --good itself), c[hi] is bad (hi = n-1: --bad itself).
        let lo = -1;
        let hi = c.length - 1;
        while (hi - lo > 1) {
          const mid = (lo + hi) >>> 1;
          const p = await probe(sock, mnt, c[mid], command, probes.length);
          probes.push(p);
          say(`probe ${probes.length}: ${describe(c[mid])}: ${p.good ? 'good' : 'bad'} (${p.signal ? `signal ${p.signal}` : `exit ${p.exitCode}`}, ${(p.elapsedMs / 1000).toFixed(1)} s)`);
          if (p.good) lo = mid;
          else hi = mid;
        }
        const firstBad = c[hi];
        const lastGood = lo >= 0 ? c[lo] : span.good;
        const diff = (await controlCall(sock, { method: 'diff', params: { from: lastGood.name, to: firstBad.name } })) as DiffResult;
        const result = { firstBad, lastGood, firstBadProbed: probes.some((p) => p.seq === firstBad.seq), candidates: c.length, probes, diff, elapsedMs: Date.now() - started };
        if (o.json) return printJson(result);
        say(`first bad: ${describe(firstBad)}${result.firstBadProbed ? '' : ' (--bad itself, not probed)'}; last good: ${describe(lastGood)}`);
        say(`changed between them: ${diff.extents} extents, ${diff.blocks} blocks, ${formatBytes(diff.bytes)}`);
        if (diff.extents) printTable([['FIRST BLOCK', 'BLOCKS', 'OFFSET', 'LENGTH'], ...diff.changes.map((e) => [String(e.firstBlock), String(e.blockCount), String(e.offset), String(e.length)])]);
      } finally {
        process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
        await stopOwn();
      }
    });
}

function describe(p: ProbePoint): string {
  return `${p.name}${p.label ? ` '${p.label}'` : ''} (seq ${p.seq})`;
}

/** One probe: a clone of the point, the command on its image, the clone discarded. */
async function probe(socket: string, mnt: string, point: ProbePoint, command: string[], n: number): Promise<Probe> {
  const name = `bisect-${process.pid}-${n}`;
  await controlCall(socket, { method: 'clone', params: { op: 'create', name, at: point.name } });
  const started = Date.now();
  try {
    const img = path.join(mnt, 'clones', name, 'volume.img');
    const args = command.map((a) => a.split('{}').join(img));
    // Spawned, never spawnSync: when bisect serves the mount itself, its event loop answers
    // the command's reads. The command's output goes to stderr, keeping stdout for the result.
    const { code, signal } = await new Promise<{ code: number | null; signal: string | null }>((resolve, reject) => {
      const child = spawn(args[0], args.slice(1), { stdio: ['ignore', 2, 2] });
      child.once('error', (err) => reject(new ChronoError('BAD_ARGUMENT', `cannot run ${args[0]}: ${err.message}`)));
      child.once('exit', (c, s) => resolve({ code: c, signal: s }));
    });
    return { point: point.name, seq: point.seq, ...(point.label !== undefined ? { label: point.label } : {}), exitCode: code, signal, good: code === 0, elapsedMs: Date.now() - started };
  } finally {
    await controlCall(socket, { method: 'clone', params: { op: 'delete', name } });
  }
}
