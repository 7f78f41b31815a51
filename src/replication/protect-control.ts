import * as fs from 'node:fs';
import * as net from 'node:net';
import type { Logger } from 'pino';
import type { ControlReply, ControlRequest } from '../control/control-protocol';
import { onControlRequest } from '../control/control-server';
import { ChronoError } from '../errors';
import { listenUnix } from '../nbd/unix-listener';
import type { Protector } from './protector';
import type { ProtectionStatus } from './protection-status';

/**
 * protect's control socket, in the control protocol (src/control): `agent sync` and `chronovol
 * sync|status|events <state-dir>` reach it. sync goes through the protector (the bitmap turns
 * over with the event); status adds the protection to the volume's; events and windows are
 * passed on to the volume's daemon.
 */
export class ProtectControl {
  private server?: net.Server;

  constructor(private readonly p: Protector, private readonly socketPath: string, private readonly status: () => Promise<ProtectionStatus>, private readonly shutdown: () => void, private readonly log: Logger) {}

  async listen(): Promise<void> {
    this.server = net.createServer((sock) => onControlRequest(sock, async (req) => {
      const result = await this.handle(req);
      sock.end(JSON.stringify({ ok: true, result } satisfies ControlReply) + '\n');
    }));
    await listenUnix(this.server, this.socketPath);
  }

  private async handle(req: ControlRequest): Promise<unknown> {
    const params = req.params ?? {};
    switch (req.method) {
      case 'ping':
        return { pid: process.pid };
      case 'sync':
        this.log.info({ label: params.label }, 'event requested');
        return this.p.sync(params as { label?: string; kind?: string });
      case 'status': {
        const protection = await this.status();
        const volume = await this.p.control('status').catch((err: Error) => ({ unreachable: err.message }));
        return { ...(volume as object), protection };
      }
      case 'events':
      case 'windows':
        return this.p.control(req.method);
      case 'shutdown':
        setImmediate(this.shutdown);
        return { pid: process.pid };
      default:
        throw new ChronoError('UNSUPPORTED', `protect does not answer ${String(req.method)}; ask the volume's daemon`);
    }
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    fs.rmSync(this.socketPath, { force: true });
  }
}
