import { ChildProcess, spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CLI } from './cli';
import { ok, run } from './fuse-harness';

/** The helpers of the protect tests (test/protect.test.ts, test/protect-remote.test.ts). */
export function qsdSkipReason(): string | false {
  if (run('sh', ['-c', 'command -v qemu-storage-daemon']).status === 0) return false;
  if (process.env.CHRONOVOL_SKIP_QEMU === '1') return 'CHRONOVOL_SKIP_QEMU=1 and qemu-storage-daemon is missing';
  throw new Error('qemu-storage-daemon is missing (apt-get install qemu-system-common; scripts/setup does): set CHRONOVOL_SKIP_QEMU=1 to skip explicitly');
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

export interface Protection { state: string; lagMs: number; dirtyBytes: number | null; lastResync: { reason: string; bytes: number; mbPerSecond: number } | null; disconnectedSince: string | null }

/** Every regular file of an ext4 image, name -> sha256, read with debugfs (no mount needed). */
export function filesOfImage(image: string, scratch: string): Record<string, string> {
  const out = path.join(scratch, `rdump-${crypto.randomBytes(4).toString('hex')}`);
  fs.mkdirSync(out);
  ok('debugfs', ['-R', `rdump / ${out}`, image]);
  return filesIn(out);
}

export function filesIn(dir: string): Record<string, string> {
  const r: Record<string, string> = {};
  for (const n of fs.readdirSync(dir).sort()) {
    const p = path.join(dir, n);
    if (n !== 'lost+found' && fs.statSync(p).isFile()) r[n] = sha(fs.readFileSync(p));
  }
  return r;
}

/**
 * An application on ext4: writes a 64 KiB file with fsync (dd conv=fsync) in a loop, over 40
 * names, logging each write's milliseconds and any error; pauses while `pause` exists.
 */
export function startWriter(mnt: string, dir: string): { proc: ChildProcess; log: string; pause(): Promise<void>; resume(): void; stop(): Promise<void> } {
  const log = path.join(dir, 'writer.log');
  const flag = path.join(dir, 'pause');
  const paused = path.join(dir, 'paused');
  const stopFile = path.join(dir, 'stop');
  const script = `i=0; while [ ! -e ${stopFile} ]; do
    if [ -e ${flag} ]; then touch ${paused}; sleep 0.02; continue; fi; rm -f ${paused}
    s=$(date +%s%N); dd if=/dev/urandom of=${mnt}/w$((i % 40)) bs=64K count=1 conv=fsync status=none || echo ERR $i
    e=$(date +%s%N); echo "$i $(( (e - s) / 1000000 ))"; i=$((i + 1)); sleep 0.01; done >> ${log} 2>&1`;
  const proc = spawn('bash', ['-c', script], { stdio: 'ignore' });
  return {
    proc, log,
    async pause() {
      fs.writeFileSync(flag, '');
      while (!fs.existsSync(paused)) await sleep(10);
    },
    resume() {
      fs.rmSync(flag, { force: true });
      fs.rmSync(paused, { force: true });
    },
    async stop() {
      fs.writeFileSync(stopFile, '');
      this.resume();
      if (proc.exitCode === null) await new Promise((r) => proc.once('exit', r));
    },
  };
}


/**
 * Watches protect's status.json in `state`, and compares the primary with the volume's `live`
 * while the application's file system at `mnt` is frozen (nothing in flight then: every write the
 * primary has, `live` has).
 */
export function protectWatch(state: string, o: { dir: string; vol: string; mnt: string; prim: string }) {
  const status = (): Protection => JSON.parse(fs.readFileSync(path.join(state, 'status.json'), 'utf8')).protection as Protection;
  const waitFor = async (what: string, cond: (p: Protection) => boolean, ms = 30_000) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const p = fs.existsSync(path.join(state, 'status.json')) ? status() : undefined;
      if (p && cond(p)) return p;
      if (Date.now() > deadline) throw new Error(`watchdog: ${what} within ${ms} ms (last: ${JSON.stringify(p)})`);
      await sleep(50);
    }
  };
  const identicalFrozen = (what: string) => {
    const liveImage = path.join(o.dir, 'live.img');
    ok('fsfreeze', ['-f', o.mnt]);
    try {
      ok(process.execPath, [CLI, 'export', o.vol, '--at', 'live', '--out', liveImage]);
      if (!fs.readFileSync(o.prim).equals(fs.readFileSync(liveImage))) throw new Error(`${what}: the primary and live differ`);
    } finally {
      ok('fsfreeze', ['-u', o.mnt]);
    }
  };
  return { status, waitFor, identicalFrozen };
}
