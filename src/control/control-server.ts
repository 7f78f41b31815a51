import * as fs from 'node:fs';
import * as net from 'node:net';
import type { Logger } from 'pino';
import { clonesOf } from '../clone/clone-service';
import { ChronoError } from '../errors';
import { bisectPoints, diffOf, historyOf } from '../investigate/queries';
import { timelineOf, timelineRequest } from '../investigate/timeline-bins';
import { listenUnix } from '../nbd/unix-listener';
import { retentionRequest } from '../retention/retention-requests';
import { LIVE_POINT, changesBetween, resolveFixedImage } from '../service/images';
import type { Volume } from '../volume/volume';
import { ControlTcpListener, ControlTcpOptions } from './control-listener';
import { serveExport } from './control-export';
import { ControlReply, ControlRequest, errorReply } from './control-protocol';
import { checkControlRight, controlRights } from './control-rights';

const MAX_REQUEST_LINE_BYTES = 1 << 20;

/** Reads a client's request line and runs `handle`; a failure is answered with its stable code. */
export function onControlRequest(sock: net.Socket, handle: (req: ControlRequest) => Promise<void>): void {
  let buf = '';
  sock.on('error', () => undefined);
  sock.on('data', (chunk) => {
    buf += chunk.toString('utf8');
    const nl = buf.indexOf('\n');
    if (nl < 0) {
      if (buf.length > MAX_REQUEST_LINE_BYTES) sock.destroy(); // a request is one short JSON line
      return;
    }
    const line = buf.slice(0, nl);
    buf = buf.slice(nl + 1);
    Promise.resolve().then(() => handle(JSON.parse(line) as ControlRequest)).catch((err: Error) => sock.end(JSON.stringify(errorReply(err)) + '\n'));
  });
}

export interface ControlHooks {
  /** Replaces the default sync (e.g. to add fsfreeze); receives the request's params. */
  sync?: (params: Record<string, unknown>) => Promise<unknown>;
  /** Asked by `chronovol umount`. */
  shutdown?: () => void;
  /** The daemon's FUSE mountpoint, if it has one (bisect finds clone images under it). */
  mountpoint?: string;
}

/**
 * Serves CLI requests for a volume a daemon holds open. Exports stream in chunks so a large
 * image never sits in memory whole.
 */
export class ControlServer {
  private server?: net.Server;
  private tcp?: ControlTcpListener;

  constructor(private readonly volume: Volume, private readonly socketPath: string, private readonly log: Logger, private readonly hooks: ControlHooks = {}) {}

  /** The Unix socket, its owner's alone (0600): see docs/SECURITY.md. */
  async listen(): Promise<void> {
    this.server = net.createServer((sock) => this.serve(sock));
    await listenUnix(this.server, this.socketPath);
  }

  /**
   * The same protocol over TCP, TLS from the first byte (`--control-listen`): each request is
   * checked against the identity's rights (control-rights.ts). Returns the address it listens on.
   */
  async listenTcp(o: ControlTcpOptions): Promise<string> {
    this.tcp = new ControlTcpListener(o, this.log, (sock, identity) => this.serve(sock, identity));
    await this.tcp.listen();
    return this.tcp.address!;
  }

  async close(): Promise<void> {
    await this.tcp?.close();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    fs.rmSync(this.socketPath, { force: true });
  }

  /** `identity`: the TLS identity of a TCP client; undefined on the Unix socket (and plain --insecure TCP). */
  private serve(sock: net.Socket, identity?: string): void {
    onControlRequest(sock, (req) => {
      if (this.tcp && identity !== undefined) checkControlRight(this.tcp.access, identity, req.method);
      return this.handle(req, sock, identity);
    });
  }

  private async handle(req: ControlRequest, sock: net.Socket, identity?: string): Promise<void> {
    const p = req.params ?? {};
    const v = this.volume;
    const reply = (result: unknown): void => void sock.end(JSON.stringify({ ok: true, result } satisfies ControlReply) + "\n");
    switch (req.method) {
      case 'ping':
        // With the caller's rights: protect refuses to start with credentials that cannot record events.
        return reply({ pid: process.pid, mountpoint: this.hooks.mountpoint ?? null, identity: identity ?? null, rights: this.tcp && identity !== undefined ? controlRights(this.tcp.access, identity) : { read: true, write: true } });
      case 'shutdown':
        if (!this.hooks.shutdown) throw new ChronoError('UNSUPPORTED', 'this daemon cannot be shut down over its control socket');
        reply({ pid: process.pid });
        setImmediate(this.hooks.shutdown);
        return;
      case 'events':
        return reply(v.events);
      case 'status':
        return reply(await v.status());
      case 'sync': {
        this.log.info({ label: p.label }, 'sync requested over the control socket');
        return reply(this.hooks.sync ? await this.hooks.sync(p) : await v.sync({ label: p.label as string | undefined, kind: (p.kind as 'app' | 'crash') ?? 'app' }));
      }
      case 'clone':
        return reply(await clonesOf(v).request(p));
      case 'retention':
        return reply(await retentionRequest(v, p));
      case 'rollback': {
        const { rollback } = await import('../rollback/rollback');
        this.log.info({ to: p.to, force: p.force }, 'rollback requested over the control socket');
        return reply(await rollback(v, { to: String(p.to ?? ''), label: p.label as string | undefined, force: p.force === true }));
      }
      // The investigation queries (issue 17): answered by the daemon that holds the volume, so
      // diff and history work while it runs; the CLI runs the same functions on a stopped volume.
      case 'diff':
        return reply(diffOf(v, String(p.from), String(p.to)));
      case 'history':
        return reply(await historyOf(v, Number(p.offset), Number(p.length ?? 1), p.hash === true));
      case 'timeline':
        return reply(timelineOf(v, timelineRequest(p)));
      case 'bisect-points':
        return reply(bisectPoints(v, String(p.good), String(p.bad), p.writes === true));
      case 'export':
        return serveExport(v, sock, p, this.log);
      // Resync windows: `chronovol protect` opens one before a copy and closes it once the copy is done.
      case 'windows':
        return reply(v.resyncWindows);
      case 'changed-extents': {
        // restore --changed-only: the blocks that may differ between a point and live, from the index.
        // The point kept fixed: `live` as the seq it stands at now (restore then reads that seq).
        const point = resolveFixedImage(v, String(p.at));
        return reply({ point: point.name, blockSizeBytes: v.blockSizeBytes, sizeBytes: v.sizeBytes, extents: changesBetween(v, point, LIVE_POINT).changes });
      }
      case 'begin-resync':
        this.log.info({ reason: p.reason, lostMs: p.lostMs }, 'resync window opened');
        return reply(await v.beginResync({ reason: p.reason === 'initial' ? 'initial' : 'resync', lostMs: Number(p.lostMs ?? 0) }));
      case 'end-resync':
        this.log.info({ bytesCopied: p.bytesCopied }, 'resync window closed');
        return reply(await v.endResync({ bytesCopied: Number(p.bytesCopied ?? 0) }));
      default:
        throw new ChronoError('UNSUPPORTED', `unknown control method ${String(req.method)}`);
    }
  }
}
