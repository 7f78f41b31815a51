import * as net from 'node:net';
import * as tls from 'node:tls';
import { NBD } from '../../src/nbd/nbd-protocol';
import { SocketReader } from '../../src/nbd/socket-reader';

/**
 * A raw NBD client that does STARTTLS itself, for what qemu cannot show: the server's own
 * EPERM for a read-only identity, a client certificate from a CA the server does not trust.
 */
export class TlsNbdClient {
  private constructor(readonly sock: tls.TLSSocket, readonly reader: SocketReader) {}

  static async connect(port: number, options: tls.ConnectionOptions): Promise<TlsNbdClient> {
    const raw = net.createConnection(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => raw.once('connect', resolve).once('error', reject));
    const plain = new SocketReader(raw);
    await plain.read(18);
    const flags = Buffer.alloc(4);
    flags.writeUInt32BE(NBD.FLAG_C_FIXED_NEWSTYLE | NBD.FLAG_C_NO_ZEROES);
    raw.write(Buffer.concat([flags, option(NBD.OPT_STARTTLS)]));
    const rep = await plain.read(20);
    if (rep.readUInt32BE(12) !== NBD.REP_ACK) throw new Error(`STARTTLS refused: ${rep.readUInt32BE(12)}`);
    const t = tls.connect({ socket: raw, checkServerIdentity: () => undefined, ...options });
    await new Promise<void>((resolve, reject) => {
      t.once('secureConnect', resolve);
      t.once('error', reject);
      t.once('close', () => reject(new Error('closed during the TLS handshake')));
    });
    const c = new TlsNbdClient(t, new SocketReader(t));
    t.on('error', () => undefined);
    return c;
  }

  /** NBD_OPT_GO: the transmission flags, or the error reply type. */
  async go(name: string): Promise<{ flags: number } | { error: number }> {
    const n = Buffer.from(name);
    const d = Buffer.alloc(4 + n.length + 2);
    d.writeUInt32BE(n.length, 0);
    n.copy(d, 4);
    this.sock.write(option(NBD.OPT_GO, d));
    let flags = 0;
    for (;;) {
      const h = await this.reader.read(20);
      const type = h.readUInt32BE(12);
      const data = await this.reader.read(h.readUInt32BE(16));
      if (type === NBD.REP_INFO && data.readUInt16BE(0) === NBD.INFO_EXPORT) flags = data.readUInt16BE(10);
      else if (type === NBD.REP_ACK) return { flags };
      else if (type >= 2 ** 31) return { error: type };
    }
  }

  /** One request; its reply's error (and data for a read). */
  async request(type: number, offset: number, length: number, data?: Buffer): Promise<{ error: number; data: Buffer }> {
    const h = Buffer.alloc(28);
    h.writeUInt32BE(NBD.REQUEST_MAGIC, 0);
    h.writeUInt16BE(type, 6);
    h.writeBigUInt64BE(1n, 8);
    h.writeBigUInt64BE(BigInt(offset), 16);
    h.writeUInt32BE(length, 24);
    this.sock.write(data ? Buffer.concat([h, data]) : h);
    const r = await this.reader.read(16);
    const error = r.readUInt32BE(4);
    return { error, data: error === 0 && type === NBD.CMD_READ ? await this.reader.read(length) : Buffer.alloc(0) };
  }

  close(): void {
    this.sock.destroy();
  }
}

function option(opt: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(16);
  h.writeBigUInt64BE(NBD.OPTS_MAGIC, 0);
  h.writeUInt32BE(opt, 8);
  h.writeUInt32BE(data.length, 12);
  return Buffer.concat([h, data]);
}
