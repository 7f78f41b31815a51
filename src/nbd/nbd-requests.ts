import * as net from 'node:net';
import type { Logger } from 'pino';
import { MAX_REQUEST_BYTES, NBD, REQUEST_HEADER_BYTES } from './nbd-protocol';
import { SocketReader } from './socket-reader';

export interface NbdRequest {
  flags: number;
  type: number;
  handle: Buffer;
  offset: number;
  length: number;
}

/** The next request's header; undefined (logged) when the connection must close: bad magic, oversized. */
export async function nextRequest(reader: SocketReader, log: Logger): Promise<NbdRequest | undefined> {
  const req = await reader.read(REQUEST_HEADER_BYTES);
  if (req.readUInt32BE(0) !== NBD.REQUEST_MAGIC) {
    log.warn({ magic: req.readUInt32BE(0) }, 'nbd: bad request magic; closing the connection');
    return undefined;
  }
  const length = req.readUInt32BE(24);
  if (length > MAX_REQUEST_BYTES) {
    log.warn({ length }, 'nbd: oversized request; closing the connection');
    return undefined;
  }
  return { flags: req.readUInt16BE(4), type: req.readUInt16BE(6), handle: req.subarray(8, 16), offset: Number(req.readBigUInt64BE(16)), length };
}

/** Sends simple replies on `sock` (data only with success), nothing once it is gone. */
export function replierFor(sock: net.Socket): (handle: Buffer, error: number, data?: Buffer) => void {
  // Replies that complete together (a hand-off's writes land at once) leave in one system call:
  // the socket is corked until the current batch of callbacks has run. A read's data goes out
  // beside its header, not copied after it.
  let corked = false;
  return (handle, error, data) => {
    if (sock.destroyed) return;
    const h = Buffer.alloc(16);
    h.writeUInt32BE(NBD.SIMPLE_REPLY_MAGIC, 0);
    h.writeUInt32BE(error, 4);
    handle.copy(h, 8);
    if (!corked) {
      corked = true;
      sock.cork();
      process.nextTick(() => {
        corked = false;
        sock.uncork();
      });
    }
    sock.write(h);
    if (data && error === 0) sock.write(data);
  };
}
