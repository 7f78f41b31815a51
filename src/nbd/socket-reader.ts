import * as net from 'node:net';

/** Pull-style reads of exact byte counts from a socket; rejects when the peer goes away. */
export class SocketReader {
  private chunks: Buffer[] = [];
  private available = 0;
  private waiting?: { n: number; into?: Buffer; resolve: (b: Buffer) => void; reject: (e: Error) => void };
  private ended?: Error;

  constructor(sock: net.Socket) {
    sock.on('data', (c: Buffer) => {
      this.chunks.push(c);
      this.available += c.length;
      this.pump();
    });
    const end = () => {
      this.ended ??= new Error('connection closed by peer');
      this.pump();
    };
    sock.on('end', end);
    sock.on('close', end);
    sock.on('error', (err) => {
      this.ended ??= err;
      this.pump();
    });
  }

  read(n: number): Promise<Buffer> {
    return this.readInto(n);
  }

  /** Reads exactly n bytes, into `into` when given (it must hold n) instead of a new buffer. */
  readInto(n: number, into?: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.waiting = { n, into, resolve, reject };
      this.pump();
    });
  }

  private pump(): void {
    const w = this.waiting;
    if (!w) return;
    if (this.available >= w.n) {
      this.waiting = undefined;
      w.resolve(this.take(w.n, w.into));
    } else if (this.ended) {
      this.waiting = undefined;
      w.reject(this.ended);
    }
  }

  private take(n: number, into?: Buffer): Buffer {
    if (n === 0) return Buffer.alloc(0);
    if (!into && this.chunks[0].length === n) {
      this.available -= n;
      return this.chunks.shift()!;
    }
    const out = into ? into.subarray(0, n) : Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const c = this.chunks[0];
      const k = Math.min(c.length, n - at);
      c.copy(out, at, 0, k);
      at += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.available -= n;
    return out;
  }
}
