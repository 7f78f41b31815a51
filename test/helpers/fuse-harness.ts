import assert from 'node:assert/strict';
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CLI } from './cli';

/**
 * FUSE tests fail, not skip, without /dev/fuse, unless CHRONOVOL_SKIP_FUSE=1 says so: a CI
 * machine that silently skipped them would report green without testing the tree.
 */
export function fuseSkipReason(): string | false {
  if (fs.existsSync('/dev/fuse')) return false;
  if (process.env.CHRONOVOL_SKIP_FUSE === '1') return 'CHRONOVOL_SKIP_FUSE=1 and /dev/fuse is missing';
  throw new Error('/dev/fuse is missing: FUSE tests cannot run (set CHRONOVOL_SKIP_FUSE=1 to skip them explicitly)');
}

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
  out: Buffer;
}

/** Every touch of the mount happens in a child process with a timeout: a hang fails fast. */
export function run(cmd: string, args: string[], timeoutMs = 60_000, input?: Buffer): RunResult {
  const r = spawnSync(cmd, args, { timeout: timeoutMs, maxBuffer: 1 << 30, input, env: { ...process.env, CHRONOVOL_NO_PROGRESS: '1' } });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') throw new Error(`watchdog: ${cmd} ${args.join(' ')} did not finish within ${timeoutMs} ms`);
  return { status: r.status, stdout: r.stdout?.toString() ?? '', stderr: r.stderr?.toString() ?? '', out: r.stdout ?? Buffer.alloc(0) };
}

export function ok(cmd: string, args: string[], timeoutMs?: number, input?: Buffer): RunResult {
  const r = run(cmd, args, timeoutMs, input);
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r;
}

export function chronovol(args: string[], timeoutMs?: number): RunResult {
  return run(process.execPath, [CLI, ...args], timeoutMs);
}

/** A running `chronovol mount` in a child process, plus what the test attached to it. */
export class MountedVolume {
  private loops: string[] = [];
  private mounts: string[] = [];
  readonly log: string[] = [];
  /** What the mount printed on stdout (its first line names the mountpoint and any URLs). */
  readonly out: string[] = [];

  private constructor(readonly dir: string, readonly mnt: string, readonly proc: ChildProcess) {}

  static async start(dir: string, mnt: string, extra: string[] = [], timeoutMs = 20_000): Promise<MountedVolume> {
    const proc = spawn(process.execPath, [CLI, 'mount', dir, mnt, ...extra], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CHRONOVOL_LOG: 'info' } });
    const m = new MountedVolume(dir, mnt, proc);
    proc.stderr!.on('data', (c: Buffer) => m.log.push(c.toString()));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`watchdog: mount did not come up in ${timeoutMs} ms: ${m.log.join('')}`)), timeoutMs);
      proc.stdout!.on('data', (c: Buffer) => {
        m.out.push(c.toString());
        if (c.toString().includes('mounted ')) {
          clearTimeout(t);
          resolve();
        }
      });
      proc.once('exit', (code) => {
        clearTimeout(t);
        reject(new Error(`mount exited with ${code}: ${m.log.join('')}`));
      });
    });
    return m;
  }

  losetup(file: string, readOnly = false): string {
    const dev = ok('losetup', ['-f', '--show', ...(readOnly ? ['-r'] : []), file]).stdout.trim();
    this.loops.push(dev);
    return dev;
  }

  mount(source: string, target: string, opts: string[] = []): void {
    fs.mkdirSync(target, { recursive: true });
    ok('mount', [...opts, source, target]);
    this.mounts.push(target);
  }

  umount(target: string): void {
    ok('umount', [target]);
    this.mounts = this.mounts.filter((m) => m !== target);
  }

  detach(dev: string): void {
    ok('losetup', ['-d', dev]);
    this.loops = this.loops.filter((l) => l !== dev);
  }

  /** Stops the daemon: SIGTERM (clean unmount) and waits, or SIGKILL to simulate a crash. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20_000): Promise<number | null> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return this.proc.exitCode;
    const exited = new Promise<number | null>((resolve) => this.proc.once('exit', (code) => resolve(code)));
    this.proc.kill(signal);
    const t = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    const code = await exited;
    clearTimeout(t);
    return code;
  }

  /**
   * Releases everything, whatever state the test left it in. `keepStaleMount` leaves a dead
   * daemon's FUSE mount in place, for a test of what the next mount does with it.
   */
  async cleanup(o: { keepStaleMount?: boolean } = {}): Promise<void> {
    for (const m of this.mounts.reverse()) run('umount', ['-l', m], 20_000);
    for (const l of this.loops) run('losetup', ['-d', l], 20_000);
    this.mounts = [];
    this.loops = [];
    await this.stop();
    if (!o.keepStaleMount && isMounted(this.mnt)) run('fusermount', ['-uz', this.mnt], 20_000);
    if (!o.keepStaleMount) assert.ok(!isMounted(this.mnt), `${this.mnt} is still mounted after cleanup`);
  }
}

export function isMounted(mnt: string): boolean {
  return fs.readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === mnt);
}

export function sha256(file: string): string {
  return ok('sha256sum', [file]).stdout.split(' ')[0];
}

export function eventDir(mnt: string, label: string): string {
  const name = ok('ls', [path.join(mnt, 'events')]).stdout.split('\n').find((n) => n.endsWith(`-${label}`));
  assert.ok(name, `events/ lists ${label}`);
  return path.join(mnt, 'events', name!);
}
