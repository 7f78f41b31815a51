import * as net from 'node:net';
import type { Logger } from 'pino';
import { nbdErrno } from '../service/edge-errors';
import type { Volume } from '../volume/volume';
import { Negotiated } from './nbd-handshake';
import { MAX_REQUEST_BYTES, NBD, REQUEST_HEADER_BYTES } from './nbd-protocol';
import { SocketReader } from './socket-reader';
import { PayloadPool } from './payload-pool';

export interface ConnectionOptions {
  /** Record a crash-consistent event at each FLUSH that follows writes. */
  syncOnFlush: boolean;
  log: Logger;
  /** Writes since the last event, shared by all connections. */
  dirty: { writes: number };
}

/** Requests, and request bytes, in flight per connection; more wait, so memory stays bounded. */
const MAX_IN_FLIGHT = 64;
const MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024;

/**
 * The transmission phase: requests are read in order and run concurrently (pipelining); writes
 * and flushes keep their order through the volume's mutation queue, so a FLUSH reply covers
 * every write whose reply went out before it. Replies go out as requests complete; a write's
 * only once its bytes are in the kernel, so a crash of this process loses no acknowledged write.
 */
export async function serveTransmission(sock: net.Socket, reader: SocketReader, volume: Volume, n: Negotiated, o: ConnectionOptions): Promise<void> {
  const size = volume.sizeBytes;
  const inFlight = new Set<Promise<void>>();
  const payloads = new PayloadPool(MAX_IN_FLIGHT_BYTES);
  let inFlightBytes = 0;
  const reply = (handle: Buffer, error: number, data?: Buffer) => {
    const h = Buffer.alloc(16);
    h.writeUInt32BE(NBD.SIMPLE_REPLY_MAGIC, 0);
    h.writeUInt32BE(error, 4);
    handle.copy(h, 8);
    if (!sock.destroyed) sock.write(data && error === 0 ? Buffer.concat([h, data]) : h);
  };
  for (;;) {
    const req = await reader.read(REQUEST_HEADER_BYTES);
    if (req.readUInt32BE(0) !== NBD.REQUEST_MAGIC) {
      o.log.warn({ magic: req.readUInt32BE(0) }, 'nbd: bad request magic; closing the connection');
      return;
    }
    const flags = req.readUInt16BE(4);
    const type = req.readUInt16BE(6);
    const handle = req.subarray(8, 16);
    const offset = Number(req.readBigUInt64BE(16));
    const length = req.readUInt32BE(24);
    if (length > MAX_REQUEST_BYTES) {
      o.log.warn({ length }, 'nbd: oversized request; closing the connection');
      return;
    }
    if (type === NBD.CMD_DISC) {
      await Promise.all(inFlight);
      return;
    }
    while (inFlight.size > 0 && inFlightBytes + length > MAX_IN_FLIGHT_BYTES) await Promise.race(inFlight);
    const payload = type === NBD.CMD_WRITE ? await reader.readInto(length, payloads.get(length)) : undefined;
    const inRange = offset + length <= size;
    const run = async (): Promise<void> => {
      const ro = n.export.readOnly;
      try {
        switch (type) {
          case NBD.CMD_READ: {
            if (!inRange) return reply(handle, NBD.EINVAL);
            const data = Buffer.allocUnsafe(length);
            await volume.readInto(data, offset, length, n.export.point);
            return reply(handle, 0, data);
          }
          case NBD.CMD_WRITE:
          case NBD.CMD_TRIM:
          case NBD.CMD_WRITE_ZEROES:
            if (ro) return reply(handle, NBD.EPERM);
            if (!inRange) return reply(handle, NBD.EINVAL);
            if (type !== NBD.CMD_WRITE) await volume.writeZeroes(offset, length, type === NBD.CMD_TRIM);
            else if (!volume.tryWriteSync(offset, payload!)) await volume.write(offset, payload!);
            o.dirty.writes++;
            // An acknowledged write survives our process: its bytes are in the kernel before the
            // reply (FUA: on disk). Replies of one turn share one write-out (SegmentWriter.handOff).
            if (flags & NBD.CMD_FLAG_FUA) await volume.flush();
            else await volume.handOff();
            return reply(handle, 0);
          case NBD.CMD_FLUSH:
            if (ro) return reply(handle, 0);
            await volume.flush();
            if (o.syncOnFlush && o.dirty.writes > 0) {
              o.dirty.writes = 0;
              await volume.sync({ label: 'flush', kind: 'crash' });
            }
            return reply(handle, 0);
          default:
            return reply(handle, NBD.EINVAL);
        }
      } catch (err) {
        o.log.warn({ type, offset, length, err: (err as Error).message }, 'nbd request failed');
        reply(handle, nbdErrno(err, type === NBD.CMD_READ ? 'read' : 'write'));
      }
    };
    const bytes = type === NBD.CMD_WRITE || type === NBD.CMD_READ ? length : 0;
    inFlightBytes += bytes;
    const p = run().finally(() => {
      inFlight.delete(p);
      inFlightBytes -= bytes;
      if (payload) payloads.release(payload); // appended to the log (or refused): ours again
    });
    inFlight.add(p);
    if (inFlight.size >= MAX_IN_FLIGHT) await Promise.race(inFlight);
  }
}
