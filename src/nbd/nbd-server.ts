import * as fs from 'node:fs';
import * as net from 'node:net';
import type { Logger } from 'pino';
import { ChronoError } from '../errors';
import { Volume } from '../volume/volume';
import { serveTransmission } from './nbd-connection';
import { handshake } from './nbd-handshake';
import { SocketReader } from './socket-reader';

export interface NbdServerOptions {
  /** host:port; loopback unless a non-loopback host is given explicitly. */
  listen?: string;
  /** A Unix socket path instead of (or as well as) TCP. */
  socket?: string;
  syncOnFlush: boolean;
  log: Logger;
}

export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text) ?? /^()()(\d+)$/.exec(text);
  if (!m) throw new ChronoError('BAD_ARGUMENT', `--listen wants host:port, got '${text}'`);
  return { host: m[1] || m[2] || '127.0.0.1', port: Number(m[3]) };
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** NBD (fixed newstyle) over TCP and/or a Unix socket; many clients at once. */
export class NbdServer {
  private readonly servers: net.Server[] = [];
  private readonly sockets = new Set<net.Socket>();
  private readonly dirty = { writes: 0 };
  readonly addresses: string[] = [];

  constructor(private readonly volume: Volume, private readonly o: NbdServerOptions) {}

  async start(): Promise<void> {
    if (this.o.listen) {
      const { host, port } = parseListen(this.o.listen);
      if (!isLoopback(host)) this.o.log.warn({ host }, 'NBD is listening beyond loopback, as asked: NBD has no authentication');
      const addr = await this.listenOn((s) => s.listen(port, host));
      const a = addr as net.AddressInfo;
      this.addresses.push(`nbd://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`);
    }
    if (this.o.socket) {
      if (fs.existsSync(this.o.socket)) fs.rmSync(this.o.socket);
      await this.listenOn((s) => s.listen(this.o.socket));
      this.addresses.push(`nbd+unix:///?socket=${this.o.socket}`);
    }
  }

  private listenOn(start: (s: net.Server) => void): Promise<net.AddressInfo | string | null> {
    const server = net.createServer((sock) => void this.serve(sock));
    this.servers.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', (err) => reject(new ChronoError('IO', `NBD listen failed: ${err.message}`, {}, err)));
      server.once('listening', () => resolve(server.address()));
      start(server);
    });
  }

  private async serve(sock: net.Socket): Promise<void> {
    this.sockets.add(sock);
    sock.setNoDelay(true);
    const reader = new SocketReader(sock);
    const peer = `${sock.remoteAddress ?? 'unix'}:${sock.remotePort ?? ''}`;
    try {
      const n = await handshake(sock, reader, this.volume);
      if (n) {
        this.o.log.info({ peer, export: n.export.name }, 'nbd client attached');
        await serveTransmission(sock, reader, this.volume, n, { syncOnFlush: this.o.syncOnFlush, log: this.o.log, dirty: this.dirty });
      }
    } catch (err) {
      this.o.log.debug({ peer, err: (err as Error).message }, 'nbd connection ended');
    } finally {
      sock.end();
      this.sockets.delete(sock);
    }
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    if (this.o.socket) fs.rmSync(this.o.socket, { force: true });
  }
}
