import * as net from 'node:net';
import { CloneOverlay } from '../clone/clone-overlay';
import type { ConnectionOptions } from './nbd-connection';
import { Negotiated } from './nbd-handshake';
import { NBD } from './nbd-protocol';
import { nbdErrno } from '../service/edge-errors';
import { nextRequest, replierFor } from './nbd-requests';
import { SocketReader } from './socket-reader';

/** ZERO and TRIM of a clone are written as zeros, this many bytes at a time. */
const CLONE_ZERO_CHUNK_BYTES = 1 << 20;

/**
 * A clone/<name> export: reads and writes go to the clone's overlay, never to the log. A write is
 * in the kernel when the overlay's write returns (acknowledged writes survive our process); FUA
 * and FLUSH make the data durable before the map bits that point at it (CloneOverlay.sync).
 * Requests run one at a time, in order: the overlay queues unaligned writes anyway.
 */
export async function serveClone(sock: net.Socket, reader: SocketReader, clone: CloneOverlay, n: Negotiated, o: ConnectionOptions): Promise<void> {
  const size = clone.sizeBytes;
  const reply = replierFor(sock);
  const settle = async (p: Promise<void> | undefined) => {
    if (p) await p;
  };
  for (;;) {
    const req = await nextRequest(reader, o.log);
    if (!req) return;
    const { flags, type, handle, offset, length } = req;
    if (type === NBD.CMD_DISC) return;
    const payload = type === NBD.CMD_WRITE ? await reader.read(length) : undefined;
    const inRange = offset + length <= size;
    try {
      switch (type) {
        case NBD.CMD_READ: {
          if (!inRange) {
            reply(handle, NBD.EINVAL);
            break;
          }
          const data = Buffer.allocUnsafe(length);
          await settle(clone.readInto(data, offset, length));
          reply(handle, 0, data);
          break;
        }
        case NBD.CMD_WRITE:
        case NBD.CMD_TRIM:
        case NBD.CMD_WRITE_ZEROES:
          if (n.export.readOnly) {
            reply(handle, NBD.EPERM);
            break;
          }
          if (!inRange) {
            reply(handle, NBD.EINVAL);
            break;
          }
          if (type === NBD.CMD_WRITE) await settle(clone.write(offset, payload!));
          else for (let at = 0; at < length; at += CLONE_ZERO_CHUNK_BYTES) await settle(clone.write(offset + at, Buffer.alloc(Math.min(CLONE_ZERO_CHUNK_BYTES, length - at))));
          if (flags & NBD.CMD_FLAG_FUA) await clone.sync();
          reply(handle, 0);
          break;
        case NBD.CMD_FLUSH:
          await clone.sync();
          reply(handle, 0);
          break;
        default:
          reply(handle, NBD.EINVAL);
      }
    } catch (err) {
      o.log.warn({ type, offset, length, clone: n.export.clone, err: (err as Error).message }, 'nbd clone request failed');
      reply(handle, nbdErrno(err, type === NBD.CMD_READ ? 'read' : 'write'));
    }
  }
}
