import type * as net from 'node:net';
import type { Logger } from 'pino';
import { pinAt, unpinAt } from '../retention/pins';
import { imageRange, pinPoint, resolveImage, streamImage } from '../service/images';
import type { Volume } from '../volume/volume';
import { dataFrameHeader, errorFrame } from './control-frames';
import type { ControlReply } from './control-protocol';

let exportsServed = 0;

/**
 * Streams an image over the control socket (DESIGN rule 26). The point is fixed when the request
 * is resolved (`live` as the seq it stands at) and pinned until the last byte is written, so
 * writes meanwhile cannot make a mix and a forget or prune meanwhile cannot fail it half way
 * (rule 25: readers that must not fail hold a pin). A client that asks for frames (`frames:
 * true`, every client since frames exist) gets the bytes in frames and a mid-stream error in an
 * error frame; an older client gets raw bytes, and on an error a cut connection, which it
 * reports as one, never bytes that are not the image's.
 */
export async function serveExport(v: Volume, sock: net.Socket, p: Record<string, unknown>, log: Logger): Promise<void> {
  const framed = p.frames === true;
  const point = pinPoint(v, resolveImage(v, String(p.at ?? 'live')));
  const { offset, length } = imageRange(v, Number(p.offset ?? 0), p.length === undefined ? undefined : Number(p.length));
  // Pinned in the tick that resolved it: no forget can fall between. Released at open if we die.
  const holder = `export:${process.pid}:${++exportsServed}`;
  pinAt(v, { seq: point.seqLimit, point: point.name, eventId: point.event?.id ?? null }, 'an export in progress', holder);
  try {
    sock.write(JSON.stringify({ ok: true, result: { point: point.name }, length, ...(framed ? { framed: true } : {}) } satisfies ControlReply) + '\n');
    try {
      for await (const data of streamImage(v, point, offset, length)) {
        if (sock.destroyed) return; // the client went away
        if (framed) sock.write(dataFrameHeader(data.length));
        if (!sock.write(data)) await new Promise((r) => (sock.once('drain', r), sock.once('close', r)));
      }
    } catch (err) {
      log.warn({ err, at: point.name }, 'export failed mid-stream');
      if (framed) sock.end(errorFrame(err));
      else sock.destroy();
      return;
    }
    sock.end();
  } finally {
    unpinAt(v, point.seqLimit, holder);
  }
}
