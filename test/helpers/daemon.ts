import { ChildProcess, spawn } from 'node:child_process';
import * as net from 'node:net';
import * as path from 'node:path';
import { CLI } from './cli';
import { RawNbdClient } from './nbd-client';

/** A free TCP port on loopback (the kernel picks; a race with other tests is harmless here). */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface ServeOptions {
  /** Also `--listen 127.0.0.1:<free port>`; `extra` then says how (--insecure, --tls-psk F, ...). */
  tcp?: boolean;
  timeoutMs?: number;
}

/**
 * `chronovol serve` in a child process, up once it prints its banner. Clients reach it over
 * its Unix socket (the default, `<dir>/nbd.sock`), or over TCP when started with `tcp`.
 */
export class ServeDaemon {
  readonly log: string[] = [];
  private constructor(readonly proc: ChildProcess, readonly socket: string, readonly port?: number) {}

  static async start(dir: string, extra: string[] = [], o: ServeOptions = {}): Promise<ServeDaemon> {
    const timeoutMs = o.timeoutMs ?? 20_000;
    const port = o.tcp ? await freePort() : undefined;
    const at = extra.indexOf('--socket');
    const socket = at >= 0 ? path.resolve(extra[at + 1]) : path.join(dir, 'nbd.sock');
    const args = [CLI, 'serve', dir, ...(port ? ['--listen', `127.0.0.1:${port}`] : []), ...extra];
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CHRONOVOL_LOG: 'info' } });
    const d = new ServeDaemon(proc, socket, port);
    proc.stderr!.on('data', (c: Buffer) => d.log.push(c.toString()));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`watchdog: serve did not start in ${timeoutMs} ms: ${d.log.join('')}`)), timeoutMs);
      proc.stdout!.on('data', (c: Buffer) => c.toString().includes('serving ') && (clearTimeout(t), resolve()));
      proc.once('exit', (code) => (clearTimeout(t), reject(new Error(`serve exited ${code}: ${d.log.join('')}`))));
    });
    return d;
  }

  /** The export over the Unix socket, as qemu names it. */
  url(exportName: string): string {
    return `nbd+unix:///${exportName}?socket=${this.socket}`;
  }

  /** The export over TCP (started with `tcp`). */
  tcpUrl(exportName: string): string {
    if (!this.port) throw new Error('this daemon has no TCP listener');
    return `nbd://127.0.0.1:${this.port}/${exportName}`;
  }

  /** A raw protocol client on the Unix socket, or on TCP when asked. */
  connect(over: 'unix' | 'tcp' = 'unix'): Promise<RawNbdClient> {
    return RawNbdClient.connect(over === 'tcp' ? { port: this.port!, host: '127.0.0.1' } : { path: this.socket });
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
