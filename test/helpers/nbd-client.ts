import * as net from 'node:net';
import { NBD } from '../../src/nbd/nbd-protocol';
import { SocketReader } from '../../src/nbd/socket-reader';

/**
 * A deliberately small NBD client for protocol tests qemu cannot express: raw options, raw
 * requests, half-sent requests, bad magic.
 */
export class RawNbdClient {
  private handle = 0n;
  private constructor(readonly sock: net.Socket, readonly reader: SocketReader) {}

  /** Connects and reads the server's hello (to a Unix socket `path`, or TCP `port`). */
  static async connect(to: net.NetConnectOpts): Promise<RawNbdClient> {
    const sock = net.createConnection(to);
    await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
    const c = new RawNbdClient(sock, new SocketReader(sock));
    const hello = await c.reader.read(18);
    if (hello.readBigUInt64BE(0) !== NBD.INIT_MAGIC || hello.readBigUInt64BE(8) !== NBD.OPTS_MAGIC) throw new Error('bad server hello');
    const flags = Buffer.alloc(4);
    flags.writeUInt32BE(NBD.FLAG_C_FIXED_NEWSTYLE | NBD.FLAG_C_NO_ZEROES);
    sock.write(flags);
    return c;
  }

  sendOption(option: number, data: Buffer = Buffer.alloc(0)): void {
    const h = Buffer.alloc(16);
    h.writeBigUInt64BE(NBD.OPTS_MAGIC, 0);
    h.writeUInt32BE(option, 8);
    h.writeUInt32BE(data.length, 12);
    this.sock.write(Buffer.concat([h, data]));
  }

  async optionReply(): Promise<{ option: number; type: number; data: Buffer }> {
    const h = await this.reader.read(20);
    if (h.readBigUInt64BE(0) !== NBD.REP_MAGIC) throw new Error('bad option reply magic');
    return { option: h.readUInt32BE(8), type: h.readUInt32BE(12), data: await this.reader.read(h.readUInt32BE(16)) };
  }

  /** NBD_OPT_GO; returns size and transmission flags, or the error reply type. */
  async go(name: string): Promise<{ size: number; flags: number } | { error: number }> {
    const n = Buffer.from(name);
    const d = Buffer.alloc(4 + n.length + 2);
    d.writeUInt32BE(n.length, 0);
    n.copy(d, 4);
    this.sendOption(NBD.OPT_GO, d);
    let info: { size: number; flags: number } | undefined;
    for (;;) {
      const r = await this.optionReply();
      if (r.type === NBD.REP_INFO && r.data.readUInt16BE(0) === NBD.INFO_EXPORT) info = { size: Number(r.data.readBigUInt64BE(2)), flags: r.data.readUInt16BE(10) };
      else if (r.type === NBD.REP_ACK) return info!;
      else if (r.type >= 2 ** 31) return { error: r.type };
    }
  }

  sendRequest(type: number, offset: number, length: number, data?: Buffer, flags = 0, magic: number = NBD.REQUEST_MAGIC): bigint {
    const h = Buffer.alloc(28);
    h.writeUInt32BE(magic, 0);
    h.writeUInt16BE(flags, 4);
    h.writeUInt16BE(type, 6);
    const handle = ++this.handle;
    h.writeBigUInt64BE(handle, 8);
    h.writeBigUInt64BE(BigInt(offset), 16);
    h.writeUInt32BE(length, 24);
    this.sock.write(data ? Buffer.concat([h, data]) : h);
    return handle;
  }

  async reply(readLength = 0): Promise<{ error: number; handle: bigint; data: Buffer }> {
    const h = await this.reader.read(16);
    if (h.readUInt32BE(0) !== NBD.SIMPLE_REPLY_MAGIC) throw new Error('bad reply magic');
    const error = h.readUInt32BE(4);
    return { error, handle: h.readBigUInt64BE(8), data: error === 0 && readLength ? await this.reader.read(readLength) : Buffer.alloc(0) };
  }

  /** True once the server has closed the connection. */
  closed(timeoutMs = 5000): Promise<boolean> {
    return new Promise((resolve) => {
      if (this.sock.destroyed || this.sock.readableEnded) return resolve(true);
      const t = setTimeout(() => resolve(false), timeoutMs);
      this.sock.once('close', () => (clearTimeout(t), resolve(true)));
      this.sock.resume();
    });
  }

  close(): void {
    this.sock.destroy();
  }
}

/**
 * A pipelined client over RawNbdClient: any number of requests in flight, replies matched to
 * their requests by handle (the server answers in completion order). Every method resolves with
 * the reply's NBD error (0: acknowledged); a closed connection rejects everything still waiting.
 */
export class PipelinedNbdClient {
  private readonly waiting = new Map<bigint, { readLength: number; resolve: (r: { error: number; data: Buffer }) => void; reject: (e: Error) => void }>();
  private failed?: Error;

  constructor(readonly raw: RawNbdClient, readonly sizeBytes: number) {
    void this.pump();
  }

  get inFlight(): number {
    return this.waiting.size;
  }

  private async pump(): Promise<void> {
    try {
      for (;;) {
        const h = await this.raw.reader.read(16);
        if (h.readUInt32BE(0) !== NBD.SIMPLE_REPLY_MAGIC) throw new Error('bad reply magic');
        const error = h.readUInt32BE(4);
        const handle = h.readBigUInt64BE(8);
        const w = this.waiting.get(handle);
        if (!w) throw new Error(`reply for unknown handle ${handle}`);
        // Still waiting while its data arrives: if the connection dies meanwhile, it is rejected too.
        const data = error === 0 && w.readLength ? await this.raw.reader.read(w.readLength) : Buffer.alloc(0);
        this.waiting.delete(handle);
        w.resolve({ error, data });
      }
    } catch (err) {
      this.failed = err as Error;
      for (const w of this.waiting.values()) w.reject(this.failed);
      this.waiting.clear();
    }
  }

  private request(type: number, offset: number, length: number, data?: Buffer, flags = 0): Promise<{ error: number; data: Buffer }> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      const handle = this.raw.sendRequest(type, offset, length, data, flags);
      this.waiting.set(handle, { readLength: type === NBD.CMD_READ ? length : 0, resolve, reject });
    });
  }

  async write(offset: number, data: Buffer, fua = false): Promise<number> {
    return (await this.request(NBD.CMD_WRITE, offset, data.length, data, fua ? NBD.CMD_FLAG_FUA : 0)).error;
  }
  async zero(offset: number, length: number, trim = false): Promise<number> {
    return (await this.request(trim ? NBD.CMD_TRIM : NBD.CMD_WRITE_ZEROES, offset, length)).error;
  }
  async flush(): Promise<number> {
    return (await this.request(NBD.CMD_FLUSH, 0, 0)).error;
  }
  async read(offset: number, length: number): Promise<Buffer> {
    const r = await this.request(NBD.CMD_READ, offset, length);
    if (r.error) throw new Error(`NBD read ${offset}+${length}: error ${r.error}`);
    return r.data;
  }

  close(): void {
    this.raw.close();
  }
}

/**
 * The one place tests connect to a daemon's NBD export: how a daemon listens may change, and
 * then only this changes.
 */
export async function openExport(d: { connect(): Promise<RawNbdClient> }, name = 'live'): Promise<PipelinedNbdClient> {
  const raw = await d.connect();
  const info = await raw.go(name);
  if ('error' in info) throw new Error(`NBD export ${name}: option error ${info.error}`);
  return new PipelinedNbdClient(raw, info.size);
}
