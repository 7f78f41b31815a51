import * as fs from 'node:fs';
import * as net from 'node:net';
import type { Logger } from 'pino';
import { clonesOf } from '../clone/clone-service';
import { ChronoError } from '../errors';
import { listenUnix } from '../nbd/unix-listener';
import { retentionRequest } from '../retention/retention-requests';
import { imageRange, resolveImage, streamImage } from '../service/images';
import type { Volume } from '../volume/volume';
import { ControlReply, ControlRequest } from './control-protocol';

export interface ControlHooks {
  /** Replaces the default sync (e.g. to add fsfreeze); receives the request's params. */
  sync?: (params: Record<string, unknown>) => Promise<unknown>;
  /** Asked by `chronovol umount`. */
  shutdown?: () => void;
}

/**
 * Serves CLI requests for a volume a daemon holds open. Exports stream in chunks so a large
 * image never sits in memory whole.
 */
export class ControlServer {
  private server?: net.Server;

  constructor(private readonly volume: Volume, private readonly socketPath: string, private readonly log: Logger, private readonly hooks: ControlHooks = {}) {}

  /** Only ever a Unix socket, its owner's alone (0600): see docs/SECURITY.md. */
  async listen(): Promise<void> {
    this.server = net.createServer((sock) => this.serve(sock));
    await listenUnix(this.server, this.socketPath);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    fs.rmSync(this.socketPath, { force: true });
  }

  private serve(sock: net.Socket): void {
    let buf = '';
    sock.on('error', () => undefined);
    sock.on('data', (chunk) => {
      buf += chunk.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      this.handle(line, sock).catch((err: Error) => {
        const e = err instanceof ChronoError ? err : new ChronoError('DAEMON', err.message);
        const reply: ControlReply = { ok: false, error: { code: e.code, message: e.message } };
        sock.end(JSON.stringify(reply) + '\n');
      });
    });
  }

  private async handle(line: string, sock: net.Socket): Promise<void> {
    const req = JSON.parse(line) as ControlRequest;
    const p = req.params ?? {};
    const v = this.volume;
    const reply = (result: unknown): void => void sock.end(JSON.stringify({ ok: true, result } satisfies ControlReply) + "\n");
    switch (req.method) {
      case 'ping':
        return reply({ pid: process.pid });
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
        return reply(retentionRequest(v, p));
      case 'export': {
        const point = resolveImage(v, String(p.at ?? 'live'));
        const { offset, length } = imageRange(v, Number(p.offset ?? 0), p.length === undefined ? undefined : Number(p.length));
        sock.write(JSON.stringify({ ok: true, result: { point: point.name }, length } satisfies ControlReply) + '\n');
        for await (const data of streamImage(v, point, offset, length)) {
          if (!sock.write(data)) await new Promise((r) => sock.once('drain', r));
        }
        sock.end();
        return;
      }
      default:
        throw new ChronoError('UNSUPPORTED', `unknown control method ${String(req.method)}`);
    }
  }
}
