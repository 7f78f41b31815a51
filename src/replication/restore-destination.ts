import * as fs from 'node:fs';
import * as net from 'node:net';
import { ChronoError } from '../errors';
import { NBD } from '../nbd/nbd-protocol';
import { SocketReader } from '../nbd/socket-reader';

/** Where `restore` writes: a file, a block device, or an NBD export. */
export interface Destination {
  sizeBytes: number;
  read(into: Buffer, length: number, offset: number): Promise<void>;
  write(data: Buffer, offset: number): Promise<void>;
  /** Everything written is durable (fsync, or NBD FLUSH). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export async function openDestination(to: string): Promise<Destination> {
  return /^nbd(\+unix)?:\/\//.test(to) ? NbdDestination.open(to) : fileDestination(to);
}

function fileDestination(p: string): Destination {
  const fd = fs.openSync(p, 'r+');
  return {
    sizeBytes: sizeOf(fd),
    // Every byte or an error: restore compares what it read with the point, and bytes left over
    // from the chunk before would make a differing block look equal (never written).
    read: async (into, length, offset) => {
      for (let done = 0; done < length; ) {
        const n = fs.readSync(fd, into, done, length - done, offset + done);
        if (n === 0) throw new ChronoError('IO', `${p} ended at ${offset + done} bytes while restore read it (was it truncated?)`, { offset: offset + done });
        done += n;
      }
    },
    write: async (data, offset) => {
      for (let done = 0; done < data.length; ) done += fs.writeSync(fd, data, done, data.length - done, offset + done);
    },
    flush: async () => fs.fsyncSync(fd),
    close: async () => fs.closeSync(fd),
  };
}

function sizeOf(fd: number): number {
  const st = fs.fstatSync(fd);
  if (st.isFile()) return st.size;
  // A block device: its size is where reading ends (a binary search over 512-byte sectors).
  const probe = Buffer.alloc(1);
  let lo = 0;
  let hi = 1;
  while (fs.readSync(fd, probe, 0, 1, hi * 512 - 1) === 1) (lo = hi), (hi *= 2);
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (fs.readSync(fd, probe, 0, 1, mid * 512 - 1) === 1) lo = mid;
    else hi = mid;
  }
  return lo * 512;
}

/**
 * A small NBD client, one request at a time: nbd+unix:///EXPORT?socket=PATH, or
 * nbd://HOST[:PORT]/EXPORT (plain TCP: use it on a trusted network or through a tunnel).
 */
class NbdDestination implements Destination {
  private handle = 0n;
  private constructor(private readonly sock: net.Socket, private readonly reader: SocketReader, readonly sizeBytes: number, private readonly url: string) {}

  static async open(url: string): Promise<NbdDestination> {
    const unix = /^nbd\+unix:\/\/\/([^?]*)\?socket=(.+)$/.exec(url);
    const tcp = /^nbd:\/\/([^/:]+)(?::(\d+))?\/?(.*)$/.exec(url);
    if (!unix && !tcp) throw new ChronoError('BAD_ARGUMENT', `not an NBD URL: ${url} (nbd+unix:///EXPORT?socket=PATH or nbd://HOST:PORT/EXPORT)`);
    const name = unix ? unix[1] : tcp![3];
    const sock = net.createConnection(unix ? { path: unix[2] } : { host: tcp![1], port: Number(tcp![2] ?? 10809) });
    await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', (err) => reject(new ChronoError('IO', `cannot reach ${url}: ${err.message}`))));
    const reader = new SocketReader(sock);
    const hello = await reader.read(18);
    if (hello.readBigUInt64BE(0) !== NBD.INIT_MAGIC || hello.readBigUInt64BE(8) !== NBD.OPTS_MAGIC) throw new ChronoError('IO', `${url} is not an NBD server (fixed newstyle)`);
    const flags = Buffer.alloc(4);
    flags.writeUInt32BE(NBD.FLAG_C_FIXED_NEWSTYLE | NBD.FLAG_C_NO_ZEROES);
    sock.write(flags);
    const n = Buffer.from(name);
    const opt = Buffer.alloc(16 + 4 + n.length + 2);
    opt.writeBigUInt64BE(NBD.OPTS_MAGIC, 0);
    opt.writeUInt32BE(NBD.OPT_GO, 8);
    opt.writeUInt32BE(4 + n.length + 2, 12);
    opt.writeUInt32BE(n.length, 16);
    n.copy(opt, 20);
    sock.write(opt);
    let size: number | undefined;
    let readOnly = false;
    for (;;) {
      const h = await reader.read(20);
      const type = h.readUInt32BE(12);
      const data = await reader.read(h.readUInt32BE(16));
      if (type === NBD.REP_INFO && data.readUInt16BE(0) === NBD.INFO_EXPORT) {
        size = Number(data.readBigUInt64BE(2));
        readOnly = (data.readUInt16BE(10) & NBD.FLAG_READ_ONLY) !== 0;
      } else if (type === NBD.REP_ACK) break;
      else if (type >= 2 ** 31) throw new ChronoError('IO', `${url}: the server refused export '${name}' (${type - 2 ** 31}): ${data.toString('utf8')}`);
    }
    if (readOnly) throw new ChronoError('READ_ONLY', `${url} is read-only`);
    return new NbdDestination(sock, reader, size ?? 0, url);
  }

  private async request(type: number, offset: number, length: number, data?: Buffer, into?: Buffer): Promise<void> {
    const h = Buffer.alloc(28);
    h.writeUInt32BE(NBD.REQUEST_MAGIC, 0);
    h.writeUInt16BE(type, 6);
    h.writeBigUInt64BE(++this.handle, 8);
    h.writeBigUInt64BE(BigInt(offset), 16);
    h.writeUInt32BE(length, 24);
    this.sock.write(data ? Buffer.concat([h, data]) : h);
    const r = await this.reader.read(16);
    if (r.readUInt32BE(0) !== NBD.SIMPLE_REPLY_MAGIC || r.readBigUInt64BE(8) !== this.handle) throw new ChronoError('IO', `${this.url}: unexpected reply`);
    const error = r.readUInt32BE(4);
    if (error) throw new ChronoError('IO', `${this.url}: NBD error ${error} at offset ${offset}`);
    if (into) (await this.reader.read(length)).copy(into);
  }

  read(into: Buffer, length: number, offset: number): Promise<void> {
    return this.request(NBD.CMD_READ, offset, length, undefined, into);
  }

  async write(data: Buffer, offset: number): Promise<void> {
    for (let at = 0; at < data.length; at += 4 << 20) {
      const part = data.subarray(at, Math.min(data.length, at + (4 << 20)));
      await this.request(NBD.CMD_WRITE, offset + at, part.length, part);
    }
  }

  flush(): Promise<void> {
    return this.request(NBD.CMD_FLUSH, 0, 0);
  }

  async close(): Promise<void> {
    const h = Buffer.alloc(28);
    h.writeUInt32BE(NBD.REQUEST_MAGIC, 0);
    h.writeUInt16BE(NBD.CMD_DISC, 6);
    this.sock.end(h);
  }
}
