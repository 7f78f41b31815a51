import { ChildProcess, spawn } from 'node:child_process';
import * as net from 'node:net';
import { CLI } from './cli';

/** A free TCP port on loopback (the kernel picks; a race with other tests is harmless here). */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** `chronovol serve` in a child process, up once it prints its banner. */
export class ServeDaemon {
  readonly log: string[] = [];
  private constructor(readonly proc: ChildProcess, readonly port: number) {}

  static async start(dir: string, extra: string[] = [], timeoutMs = 20_000): Promise<ServeDaemon> {
    const port = await freePort();
    const proc = spawn(process.execPath, [CLI, 'serve', dir, '--listen', `127.0.0.1:${port}`, ...extra], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CHRONOVOL_LOG: 'info' } });
    const d = new ServeDaemon(proc, port);
    proc.stderr!.on('data', (c: Buffer) => d.log.push(c.toString()));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`watchdog: serve did not start in ${timeoutMs} ms: ${d.log.join('')}`)), timeoutMs);
      proc.stdout!.on('data', (c: Buffer) => c.toString().includes('serving ') && (clearTimeout(t), resolve()));
      proc.once('exit', (code) => (clearTimeout(t), reject(new Error(`serve exited ${code}: ${d.log.join('')}`))));
    });
    return d;
  }

  url(exportName: string): string {
    return `nbd://127.0.0.1:${this.port}/${exportName}`;
  }

  async stop(): Promise<number | null> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return this.proc.exitCode;
    const exited = new Promise<number | null>((r) => this.proc.once('exit', (code) => r(code)));
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 20_000);
    const code = await exited;
    clearTimeout(t);
    return code;
  }
}
