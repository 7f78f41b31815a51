import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import { ChronoError } from '../errors';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

/**
 * A QMP connection (qemu's JSON monitor protocol) to a qemu-storage-daemon: one JSON object per
 * line; commands carry an id and get a `return` or an `error`; events arrive in between and are
 * emitted as 'event'. 'close' when the daemon goes away.
 */
export class QmpClient extends EventEmitter {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; command: string }>();
  private buf = '';
  private closed = false;

  private constructor(private readonly sock: net.Socket) {
    super();
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => this.onData(chunk));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      this.closed = true;
      for (const p of this.pending.values()) p.reject(new ChronoError('PROTECT_FAILED', `QMP connection closed during ${p.command}`));
      this.pending.clear();
      this.emit('close');
    });
  }

  /** Connects, reads the greeting and negotiates capabilities; retries until the socket exists. */
  static async connect(socketPath: string, timeoutMs = 10_000): Promise<QmpClient> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const sock = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.createConnection(socketPath);
          s.once('connect', () => resolve(s));
          s.once('error', reject);
        });
        const c = new QmpClient(sock);
        await c.greeting();
        await c.execute('qmp_capabilities');
        return c;
      } catch (err) {
        if (Date.now() > deadline) throw new ChronoError('PROTECT_FAILED', `cannot reach QMP at ${socketPath}: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  private greeting(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.once('greeting', resolve);
      this.once('close', () => reject(new Error('closed before the greeting')));
    });
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closed) return Promise.reject(new ChronoError('PROTECT_FAILED', `QMP connection is closed (${command})`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, command });
      this.sock.write(JSON.stringify(args ? { execute: command, arguments: args, id } : { execute: command, id }) + '\n');
    });
  }

  /** Resolves with the first event named `name` whose data `match` accepts. */
  waitEvent(name: string, match: (data: Record<string, unknown>) => boolean = () => true, timeoutMs = 0): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      const timer = timeoutMs > 0 ? setTimeout(() => done(new ChronoError('PROTECT_FAILED', `no ${name} within ${timeoutMs} ms`)), timeoutMs) : undefined;
      const on = (e: QmpEvent) => {
        if (e.event === name && match(e.data ?? {})) done(undefined, e);
      };
      const onClose = () => done(new ChronoError('PROTECT_FAILED', `QMP connection closed while waiting for ${name}`));
      const done = (err?: Error, e?: QmpEvent) => {
        if (timer) clearTimeout(timer);
        this.off('event', on);
        this.off('close', onClose);
        if (err) reject(err);
        else resolve(e!);
      };
      this.on('event', on);
      this.once('close', onClose);
    });
  }

  close(): void {
    this.sock.destroy();
  }

  private onData(chunk: string): void {
    this.buf += chunk;
    for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      const msg = JSON.parse(line) as { QMP?: unknown; id?: number; return?: unknown; error?: { class: string; desc: string }; event?: string };
      if (msg.QMP) this.emit('greeting');
      else if (msg.event) this.emit('event', msg as QmpEvent);
      else if (msg.id !== undefined) {
        const p = this.pending.get(msg.id);
        if (!p) continue;
        this.pending.delete(msg.id);
        if (msg.error) p.reject(new ChronoError('PROTECT_FAILED', `qemu refused ${p.command}: ${msg.error.desc}`, { qmpClass: msg.error.class }));
        else p.resolve(msg.return);
      }
    }
  }
}
