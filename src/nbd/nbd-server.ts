import * as fs from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Logger } from 'pino';
import { ChronoError } from '../errors';
import { DEFAULTS } from '../options';
import { liveUsersOf } from '../service/live-users';
import { Volume } from '../volume/volume';
import { NbdAccess } from './nbd-access';
import { clonesOf } from '../clone/clone-service';
import { serveTransmission } from './nbd-connection';
import { NbdClient, handshake } from './nbd-handshake';
import { NbdTls } from './nbd-tls';
import { listenUnix } from './unix-listener';
import { SocketReader } from './socket-reader';

export interface NbdServerOptions {
  /** host:port for TCP; TCP requires `tls` unless `insecure`. */
  listen?: string;
  /** The Unix socket (mode 0600, or 0660 for `socketGroup`): always served. */
  socket: string;
  socketGroup?: string;
  /** TLS through NBD_OPT_STARTTLS, required on TCP. */
  tls?: NbdTls;
  /** Plain TCP, explicitly asked for: anyone who can reach the port may read and write. */
  insecure?: boolean;
  /** Per-identity rights (TLS clients); everyone authenticated may do everything without it. */
  access?: NbdAccess;
  syncOnFlush: boolean;
  log: Logger;
  handshakeTimeoutMs?: number;
  maxConnections?: number;
}

export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(text) ?? /^()()(\d+)$/.exec(text);
  if (!m) throw new ChronoError('BAD_ARGUMENT', `--listen wants host:port, got '${text}'`);
  return { host: m[1] || m[2] || '127.0.0.1', port: Number(m[3]) };
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/**
 * NBD (fixed newstyle) on a Unix socket, and on TCP with TLS when asked; many clients at once.
 * Local access is the socket file's mode; network access is TLS plus the access rules.
 */
export class NbdServer {
  private readonly servers: net.Server[] = [];
  private readonly clients = new Set<NbdClient>();
  private readonly dirty = { writes: 0 };
  private readonly access: NbdAccess;
  readonly addresses: string[] = [];

  constructor(private readonly volume: Volume, private readonly o: NbdServerOptions) {
    if (o.listen && !o.tls && !o.insecure) {
      throw new ChronoError('BAD_ARGUMENT', 'NBD over TCP needs TLS: give --tls-psk FILE or --tls-certs DIR (or --insecure for plain TCP that anyone who reaches the port may write)');
    }
    this.access = o.access ?? NbdAccess.open();
  }

  async start(): Promise<void> {
    await listenUnix(this.newServer(false), this.o.socket, this.o.socketGroup);
    this.addresses.push(`nbd+unix:///?socket=${this.o.socket}`);
    if (this.o.listen) {
      const { host, port } = parseListen(this.o.listen);
      if (!this.o.tls) this.o.log.warn({ listen: this.o.listen }, 'NBD over plain TCP (--insecure): anyone who can reach this port can read the volume\'s history and write to it');
      else if (!isLoopback(host)) this.o.log.info({ host, tls: this.o.tls.kind }, 'NBD listening beyond loopback, TLS required');
      const s = this.newServer(true);
      const a = await new Promise<net.AddressInfo>((resolve, reject) => {
        s.once('error', (err) => reject(new ChronoError('IO', `NBD listen on ${this.o.listen} failed: ${err.message}`, {}, err)));
        s.listen(port, host, () => resolve(s.address() as net.AddressInfo));
      });
      const scheme = this.o.tls ? 'nbds' : 'nbd';
      this.addresses.push(`${scheme}://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`);
    }
  }

  private newServer(tcp: boolean): net.Server {
    const server = net.createServer((sock) => void this.serve(sock, tcp));
    this.servers.push(server);
    return server;
  }

  private async serve(raw: net.Socket, tcp: boolean): Promise<void> {
    const peer = tcp ? `${raw.remoteAddress}:${raw.remotePort}` : 'unix';
    const max = this.o.maxConnections ?? DEFAULTS.nbdMaxConnections;
    if (this.clients.size >= max) {
      this.o.log.warn({ peer, max }, 'nbd: too many connections; closing the new one');
      raw.destroy();
      return;
    }
    raw.setNoDelay(true);
    raw.on('error', () => undefined); // seen through the reader
    const c: NbdClient = { sock: raw, reader: new SocketReader(raw) };
    this.clients.add(c);
    const timeoutMs = this.o.handshakeTimeoutMs ?? DEFAULTS.nbdHandshakeTimeoutMs;
    const timer = setTimeout(() => {
      this.o.log.warn({ peer, timeoutMs }, 'nbd: handshake not finished in time; closing');
      c.sock.destroy();
      raw.destroy();
    }, timeoutMs);
    try {
      const n = await handshake(c, this.volume, { tls: tcp ? this.o.tls : undefined, access: this.access });
      clearTimeout(timer);
      if (n) {
        const t = c.sock instanceof tls.TLSSocket ? { tls: c.sock.getProtocol(), cipher: c.sock.getCipher()?.name } : {};
        this.o.log.info({ peer, export: n.export.name, identity: c.identity, readOnly: n.export.readOnly, ...t }, 'nbd client attached');
        // A writer of live holds it: rollback refuses while it is attached.
        const detach = n.export.name === 'live' && !n.export.readOnly ? liveUsersOf(this.volume).attachedNbd() : undefined;
        // A clone's export holds it, as a FUSE handle does: its delete is refused (CLONE_IN_USE)
        // until the client leaves, never done under the client's requests.
        const release = n.export.clone !== undefined ? clonesOf(this.volume).hold(n.export.clone) : undefined;
        try {
          await serveTransmission(c.sock, c.reader, this.volume, n, { syncOnFlush: this.o.syncOnFlush, log: this.o.log, dirty: this.dirty });
        } finally {
          release?.();
          detach?.();
        }
      }
    } catch (err) {
      this.o.log.debug({ peer, identity: c.identity, err: (err as Error).message }, 'nbd connection ended');
    } finally {
      clearTimeout(timer);
      c.sock.end();
      if (c.sock !== raw) raw.end();
      this.clients.delete(c);
    }
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.sock.destroy();
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    fs.rmSync(this.o.socket, { force: true });
  }
}
