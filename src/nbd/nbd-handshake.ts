import * as net from 'node:net';
import { isChronoError } from '../errors';
import { Volume } from '../volume/volume';
import { NbdAccess } from './nbd-access';
import { NbdExport, listExports, resolveExport } from './nbd-exports';
import { NBD } from './nbd-protocol';
import { NbdTls } from './nbd-tls';
import { SocketReader } from './socket-reader';

export interface Negotiated {
  export: NbdExport;
  flags: number;
}

/** A client connection; STARTTLS replaces its socket and reader with the TLS ones. */
export interface NbdClient {
  sock: net.Socket;
  reader: SocketReader;
  /** The TLS identity once authenticated; undefined for a trusted (Unix socket, --insecure) client. */
  identity?: string;
}

export interface HandshakeOptions {
  /** TLS is required: every option but STARTTLS and ABORT is refused until it is done. */
  tls?: NbdTls;
  access: NbdAccess;
}

/** Largest option payload we read; anything bigger is not a client we can talk to. */
const MAX_OPTION_BYTES = 64 * 1024;

export function transmissionFlags(e: NbdExport): number {
  const base = NBD.FLAG_HAS_FLAGS | NBD.FLAG_SEND_FLUSH | NBD.FLAG_CAN_MULTI_CONN;
  return e.readOnly ? base | NBD.FLAG_READ_ONLY : base | NBD.FLAG_SEND_FUA | NBD.FLAG_SEND_TRIM | NBD.FLAG_SEND_WRITE_ZEROES;
}

function optionReply(sock: net.Socket, option: number, type: number, data: Buffer = Buffer.alloc(0)): void {
  const h = Buffer.alloc(20);
  h.writeBigUInt64BE(NBD.REP_MAGIC, 0);
  h.writeUInt32BE(option, 8);
  h.writeUInt32BE(type, 12);
  h.writeUInt32BE(data.length, 16);
  sock.write(Buffer.concat([h, data]));
}

/**
 * Fixed-newstyle option haggling. Returns the export the client chose, or undefined when it
 * aborted or asked for something we close on (an unknown name via EXPORT_NAME). With TLS
 * required, only STARTTLS and ABORT are answered before TLS (NBD_REP_ERR_TLS_REQD otherwise),
 * and every export is then filtered through the access rules for the client's identity.
 */
export async function handshake(c: NbdClient, volume: Volume, o: HandshakeOptions): Promise<Negotiated | undefined> {
  let { sock, reader } = c;
  const mustTls = () => o.tls !== undefined && c.identity === undefined;
  /** The export as this client may use it: undefined when it may not; live read-only without write rights. */
  const permitted = (e: NbdExport | undefined): NbdExport | undefined => {
    if (!e) return undefined;
    const a = o.access.allows(c.identity, { name: e.name, live: e.name === 'live', clone: e.clone !== undefined });
    if (!a) return undefined;
    return a.write || e.readOnly ? e : { ...e, readOnly: true, description: `${e.description}; read-only for ${c.identity}` };
  };
  const hello = Buffer.alloc(18);
  hello.writeBigUInt64BE(NBD.INIT_MAGIC, 0);
  hello.writeBigUInt64BE(NBD.OPTS_MAGIC, 8);
  hello.writeUInt16BE(NBD.FLAG_FIXED_NEWSTYLE | NBD.FLAG_NO_ZEROES, 16);
  sock.write(hello);
  const clientFlags = (await reader.read(4)).readUInt32BE(0);
  const noZeroes = (clientFlags & NBD.FLAG_C_NO_ZEROES) !== 0;
  if ((clientFlags & ~(NBD.FLAG_C_FIXED_NEWSTYLE | NBD.FLAG_C_NO_ZEROES)) !== 0) return undefined; // unknown flags: the spec says close
  if (o.tls && !(clientFlags & NBD.FLAG_C_FIXED_NEWSTYLE)) return undefined; // it cannot ask for STARTTLS
  for (;;) {
    const h = await reader.read(16);
    if (h.readBigUInt64BE(0) !== NBD.OPTS_MAGIC) return undefined;
    const option = h.readUInt32BE(8);
    const length = h.readUInt32BE(12);
    if (length > MAX_OPTION_BYTES) return undefined;
    const data = await reader.read(length);
    if (mustTls() && option !== NBD.OPT_STARTTLS && option !== NBD.OPT_ABORT) {
      if (option === NBD.OPT_EXPORT_NAME) return undefined; // no reply exists for it: close
      optionReply(sock, option, NBD.REP_ERR_TLS_REQD, Buffer.from('TLS is required: use STARTTLS'));
      continue;
    }
    switch (option) {
      case NBD.OPT_STARTTLS: {
        if (!o.tls) {
          optionReply(sock, option, NBD.REP_ERR_UNSUP, Buffer.from('no TLS on this listener'));
          break;
        }
        if (length !== 0 || c.identity !== undefined) {
          optionReply(sock, option, NBD.REP_ERR_INVALID);
          break;
        }
        // The client sends its ClientHello only after this ACK, so nothing of it sits in the
        // plain reader; the TLS socket takes the connection over from here.
        optionReply(sock, option, NBD.REP_ACK);
        const t = await o.tls.upgrade(sock);
        if (!o.access.knows(t.identity)) {
          t.sock.destroy();
          throw new Error(`TLS identity '${t.identity}' has no access rules`);
        }
        sock = c.sock = t.sock;
        reader = c.reader = new SocketReader(t.sock);
        c.identity = t.identity;
        break;
      }
      case NBD.OPT_EXPORT_NAME: {
        const e = permitted(resolveExport(volume, data.toString('utf8')));
        if (!e) return undefined; // the protocol's only answer to an unknown name here is to close
        const r = Buffer.alloc(noZeroes ? 10 : 134);
        r.writeBigUInt64BE(BigInt(volume.sizeBytes), 0);
        r.writeUInt16BE(transmissionFlags(e), 8);
        sock.write(r);
        return { export: e, flags: transmissionFlags(e) };
      }
      case NBD.OPT_ABORT:
        optionReply(sock, option, NBD.REP_ACK);
        return undefined;
      case NBD.OPT_LIST:
        if (length !== 0) {
          optionReply(sock, option, NBD.REP_ERR_INVALID);
          break;
        }
        for (const x of listExports(volume).filter((x) => o.access.allows(c.identity, { name: x.name, live: x.name === 'live' }))) {
          const name = Buffer.from(x.name, 'utf8');
          const d = Buffer.alloc(4 + name.length);
          d.writeUInt32BE(name.length, 0);
          name.copy(d, 4);
          optionReply(sock, option, NBD.REP_SERVER, Buffer.concat([d, Buffer.from(x.description, 'utf8')]));
        }
        optionReply(sock, option, NBD.REP_ACK);
        break;
      case NBD.OPT_INFO:
      case NBD.OPT_GO: {
        if (length < 6) {
          optionReply(sock, option, NBD.REP_ERR_INVALID);
          break;
        }
        const nameLen = data.readUInt32BE(0);
        if (4 + nameLen + 2 > length) {
          optionReply(sock, option, NBD.REP_ERR_INVALID);
          break;
        }
        const name = data.toString('utf8', 4, 4 + nameLen);
        const nInfo = data.readUInt16BE(4 + nameLen);
        const requested = new Set<number>();
        for (let i = 0; i < nInfo && 6 + nameLen + 2 * i + 2 <= length; i++) requested.add(data.readUInt16BE(6 + nameLen + 2 * i));
        let resolved: NbdExport | undefined;
        try {
          resolved = resolveExport(volume, name);
        } catch (err) {
          // A forgotten point: refused by name, the message naming the nearest kept points.
          if (!isChronoError(err, 'POINT_FORGOTTEN')) throw err;
          optionReply(sock, option, NBD.REP_ERR_UNKNOWN, Buffer.from(`${err.message} [POINT_FORGOTTEN]`));
          break;
        }
        const e = permitted(resolved);
        if (!e) {
          if (resolved) optionReply(sock, option, NBD.REP_ERR_POLICY, Buffer.from(`'${c.identity}' may not use export '${name}'`));
          else optionReply(sock, option, NBD.REP_ERR_UNKNOWN, Buffer.from(`no export named '${name}'`));
          break;
        }
        const info = Buffer.alloc(12);
        info.writeUInt16BE(NBD.INFO_EXPORT, 0);
        info.writeBigUInt64BE(BigInt(volume.sizeBytes), 2);
        info.writeUInt16BE(transmissionFlags(e), 10);
        optionReply(sock, option, NBD.REP_INFO, info);
        if (requested.has(NBD.INFO_BLOCK_SIZE)) {
          const bs = Buffer.alloc(14);
          bs.writeUInt16BE(NBD.INFO_BLOCK_SIZE, 0);
          bs.writeUInt32BE(1, 2); // any alignment works: partial blocks are read-modify-written
          bs.writeUInt32BE(volume.blockSizeBytes, 6);
          bs.writeUInt32BE(32 * 1024 * 1024, 10);
          optionReply(sock, option, NBD.REP_INFO, bs);
        }
        if (requested.has(NBD.INFO_DESCRIPTION)) {
          const d = Buffer.from(e.description, 'utf8');
          const b = Buffer.alloc(2 + d.length);
          b.writeUInt16BE(NBD.INFO_DESCRIPTION, 0);
          d.copy(b, 2);
          optionReply(sock, option, NBD.REP_INFO, b);
        }
        optionReply(sock, option, NBD.REP_ACK);
        if (option === NBD.OPT_GO) return { export: e, flags: transmissionFlags(e) };
        break;
      }
      default:
        // STRUCTURED_REPLY, meta contexts, and anything newer: politely unsupported.
        optionReply(sock, option, NBD.REP_ERR_UNSUP);
    }
  }
}
