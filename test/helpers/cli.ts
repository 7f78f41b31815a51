import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

export const CLI = path.resolve(__dirname, '../../src/cli/main.js');

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

/** Runs the real CLI in a child process (never in-process: daemons must not touch their own mount). */
export function cli(args: string[], input?: Buffer | string, env: Record<string, string> = {}): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], { input, env: { ...process.env, CHRONOVOL_NO_PROGRESS: '1', ...env }, maxBuffer: 1 << 30, timeout: 120_000 });
  return { status: r.status ?? -1, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8'), stdoutBytes: r.stdout };
}

export function cliJson<T = unknown>(args: string[], input?: Buffer | string): T {
  const r = cli([...args, '--json'], input);
  if (r.status !== 0) throw new Error(`chronovol ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}
