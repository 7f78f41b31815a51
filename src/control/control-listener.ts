import * as net from 'node:net';
import type { Logger } from 'pino';
import { ChronoError } from '../errors';
import { DEFAULTS } from '../options';
import { NbdAccess } from '../nbd/nbd-access';
import { isLoopback, parseListen } from '../nbd/nbd-server';
import type { NbdTls } from '../nbd/nbd-tls';

export interface ControlTcpOptions {
  /** host:port (`--control-listen`). */
  listen: string;
  /** TLS from the first byte (no STARTTLS: the control protocol is ours); required unless `insecure`. */
  tls?: NbdTls;
  insecure?: boolean;
  /** Per-identity rights, the `--nbd-access` rules (control-rights.ts maps them). */
  access?: NbdAccess;
  handshakeTimeoutMs?: number;
  maxConnections?: number;
}

/**
 * The control channel over TCP: every connection is TLS (PSK identities or X.509 CNs, the NBD
 * listener's credentials) before a single request is read; an identity the access rules do not
 * name is refused at the handshake. A handshake that does not finish in time is closed, and
 * connections beyond the cap are closed on accept. `serve` gets the authenticated socket and
 * its identity (undefined on plain TCP with --insecure, which has no identities).
 */
export class ControlTcpListener {
  private server?: net.Server;
  private readonly open = new Set<net.Socket>();
  readonly access: NbdAccess;
  address?: string;

  constructor(private readonly o: ControlTcpOptions, private readonly log: Logger, private readonly serve: (sock: net.Socket, identity: string | undefined) => void) {
    if (!o.tls && !o.insecure) throw new ChronoError('BAD_ARGUMENT', 'the control channel over TCP needs TLS: give --tls-psk FILE or --tls-certs DIR (or --insecure for plain TCP that anyone who reaches the port may drive)');
    this.access = o.access ?? NbdAccess.open();
  }

  async listen(): Promise<void> {
    const { host, port } = parseListen(this.o.listen);
    if (!this.o.tls) this.log.warn({ listen: this.o.listen }, 'control over plain TCP (--insecure): anyone who can reach this port can record events, roll back and read the volume');
    else if (!isLoopback(host)) this.log.info({ host, tls: this.o.tls.kind }, 'control listening beyond loopback, TLS required');
    const s = (this.server = net.createServer((sock) => void this.accept(sock)));
    const a = await new Promise<net.AddressInfo>((resolve, reject) => {
      s.once('error', (err) => reject(new ChronoError('IO', `control listen on ${this.o.listen} failed: ${err.message}`, {}, err)));
      s.listen(port, host, () => resolve(s.address() as net.AddressInfo));
    });
    this.address = `${this.o.tls ? 'tls' : 'tcp'}://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  private async accept(raw: net.Socket): Promise<void> {
    const peer = `${raw.remoteAddress}:${raw.remotePort}`;
    raw.on('error', () => undefined);
    const max = this.o.maxConnections ?? DEFAULTS.controlMaxConnections;
    if (this.open.size >= max) {
      this.log.warn({ peer, max }, 'control: too many connections; closing the new one');
      raw.destroy();
      return;
    }
    this.open.add(raw);
    raw.once('close', () => this.open.delete(raw));
    if (!this.o.tls) return this.serve(raw, undefined);
    const timeoutMs = this.o.handshakeTimeoutMs ?? DEFAULTS.nbdHandshakeTimeoutMs;
    const timer = setTimeout(() => {
      this.log.warn({ peer, timeoutMs }, 'control: TLS handshake not finished in time; closing');
      raw.destroy();
    }, timeoutMs);
    try {
      const t = await this.o.tls.upgrade(raw);
      if (!this.access.knows(t.identity)) {
        t.sock.destroy();
        throw new ChronoError('ACCESS_DENIED', `identity '${t.identity}' is not in the access rules`);
      }
      this.log.info({ peer, identity: t.identity }, 'control client authenticated');
      this.serve(t.sock, t.identity);
    } catch (err) {
      this.log.warn({ peer, err: (err as Error).message }, 'control: connection refused');
      raw.destroy();
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    for (const s of this.open) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
