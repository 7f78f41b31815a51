import * as fs from 'node:fs';
import * as net from 'node:net';
import { listenUnix } from '../nbd/unix-listener';

export interface RelayStats {
  /** Bytes sent to the target (NBD requests: mostly write payloads). */
  bytesToTarget: number;
  /** When the target last answered (a byte came back), Unix ms; 0: never. */
  lastReplyMs: number;
  /** Connections cut because the target stopped answering. */
  hangsCut: number;
}

/**
 * A byte relay between qemu's NBD client and our NBD server, on a Unix socket of its own. It does
 * not parse NBD; it is there so a hung target can be cut off: qemu 7.2's NBD client has no
 * request timeout, so a target that stops answering would stall the mirror, and with it (the
 * mirror is write-blocking) the application. When bytes went to the target and nothing has come
 * back for `timeoutMs`, both sides are closed: qemu's client then fails its requests at once, the
 * mirror stops on the target error, and the application carries on.
 */
export class TargetRelay {
  readonly stats: RelayStats = { bytesToTarget: 0, lastReplyMs: 0, hangsCut: 0 };
  private server?: net.Server;
  private readonly pairs = new Set<{ a: net.Socket; b: net.Socket; waitingSince: number }>();
  private timer?: NodeJS.Timeout;

  /**
   * `onHung` hears of a target cut off here. A target that closes its end is not reported: a
   * server also closes after qemu's disconnect request, before qemu closes its own end, so the
   * order of the two closes cannot tell a death from a goodbye. (protect pings the daemon.)
   */
  constructor(readonly socketPath: string, private readonly connectTarget: () => net.Socket, private readonly timeoutMs: number, private readonly onHung: () => void) {}

  async listen(): Promise<void> {
    fs.rmSync(this.socketPath, { force: true });
    this.server = net.createServer((a) => this.relay(a));
    await listenUnix(this.server, this.socketPath);
    this.timer = setInterval(() => this.watch(), this.checkEveryMs);
  }

  private relay(a: net.Socket): void {
    const b = this.connectTarget();
    const pair = { a, b, waitingSince: 0 };
    this.pairs.add(pair);
    a.setNoDelay(true);
    if (b instanceof net.Socket) b.setNoDelay?.(true);
    a.on('data', (chunk: Buffer) => {
      this.stats.bytesToTarget += chunk.length;
      if (pair.waitingSince === 0) pair.waitingSince = Date.now();
      if (!b.write(chunk)) a.pause();
    });
    b.on('drain', () => a.resume());
    b.on('data', (chunk: Buffer) => {
      pair.waitingSince = 0;
      this.stats.lastReplyMs = Date.now();
      if (!a.write(chunk)) b.pause();
    });
    a.on('drain', () => b.resume());
    const end = () => {
      this.pairs.delete(pair);
      a.destroy();
      b.destroy();
    };
    a.on('close', end);
    b.on('close', end);
    a.on('error', end);
    b.on('error', end);
  }

  private get checkEveryMs(): number {
    return Math.max(20, Math.min(500, this.timeoutMs / 10));
  }

  /**
   * Cuts every connection whose target has owed an answer for about the timeout: a check early
   * by up to its own interval, so that the application's longest wait stays within the timeout.
   */
  private watch(): void {
    const now = Date.now();
    for (const p of this.pairs) {
      if (p.waitingSince > 0 && now - p.waitingSince >= this.timeoutMs - 2 * this.checkEveryMs) {
        this.stats.hangsCut++;
        p.a.destroy();
        p.b.destroy();
        this.pairs.delete(p);
        this.onHung();
      }
    }
  }

  /** Drops every connection now (the target is known to be gone, or protect is stopping). */
  cutAll(): void {
    for (const p of this.pairs) {
      p.a.destroy();
      p.b.destroy();
    }
    this.pairs.clear();
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.cutAll();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    fs.rmSync(this.socketPath, { force: true });
  }
}
