import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { CLI } from './cli';

/**
 * A child process that keeps file handles on a FUSE mount open across steps, for tests of what
 * an open handle is served while names in the tree move (the test's own process never touches
 * the mount). argv[2] is a JSON list of steps; stdout gets one JSON list: a result per step.
 */
export type Step = (
  | { open: string; path: string }
  | { read: string; offset: number; length: number; text?: boolean }
  | { close: string }
  | { write: string; byte: number; length: number }
  | { mkdir: string }
  | { rmdir: string }
  | { readlink: string }
  | { cli: string[] }
) & { /** The step is expected to fail (the test checks its error). */ mayFail?: boolean };

/** What a read saw: the distinct byte values, in hex, in the order first met ("11", "11,22"), or its text. */
export type StepResult = { ok: true; bytes?: string; text?: string; link?: string; stdout?: string } | { ok: false; error: string };

function distinct(b: Buffer): string {
  const seen: number[] = [];
  for (const x of b) if (!seen.includes(x)) seen.push(x);
  return seen.map((x) => x.toString(16).padStart(2, '0')).join(',');
}

function runStep(s: Step, fds: Map<string, number>): StepResult {
  if ('open' in s) {
    fds.set(s.open, fs.openSync(s.path, 'r'));
    return { ok: true };
  }
  if ('read' in s) {
    const b = Buffer.alloc(s.length);
    const n = fs.readSync(fds.get(s.read)!, b, 0, s.length, s.offset);
    return s.text ? { ok: true, text: b.subarray(0, n).toString() } : { ok: true, bytes: distinct(b.subarray(0, n)) };
  }
  if ('close' in s) {
    fs.closeSync(fds.get(s.close)!);
    fds.delete(s.close);
    return { ok: true };
  }
  if ('write' in s) {
    const fd = fs.openSync(s.write, 'r+');
    try {
      fs.writeSync(fd, Buffer.alloc(s.length, s.byte), 0, s.length, 0);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    return { ok: true };
  }
  if ('mkdir' in s) {
    fs.mkdirSync(s.mkdir);
    return { ok: true };
  }
  if ('rmdir' in s) {
    fs.rmdirSync(s.rmdir);
    return { ok: true };
  }
  if ('readlink' in s) return { ok: true, link: fs.readlinkSync(s.readlink) };
  return { ok: true, stdout: execFileSync(process.execPath, [CLI, ...s.cli], { timeout: 60_000, env: { ...process.env, CHRONOVOL_NO_PROGRESS: '1' } }).toString() };
}

if (require.main === module) {
  const steps = JSON.parse(process.argv[2]) as Step[];
  const fds = new Map<string, number>();
  const results: StepResult[] = [];
  for (const s of steps) {
    try {
      results.push(runStep(s, fds));
    } catch (err) {
      results.push({ ok: false, error: (err as Error).message });
    }
  }
  for (const fd of fds.values()) fs.closeSync(fd);
  process.stdout.write(JSON.stringify(results) + '\n');
}
