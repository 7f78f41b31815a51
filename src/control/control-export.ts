import type * as net from 'node:net';
import type { Logger } from 'pino';
import { DEFAULTS } from '../options';
import { imageRange, pinPoint, resolveImage, streamImage } from '../service/images';
import type { Volume } from '../volume/volume';
import { dataFrameHeader, errorFrame } from './control-frames';
import type { ControlReply } from './control-protocol';


/**
 * Streams an image over the control socket (DESIGN rule 26). The point is fixed when the request
 * is resolved (`live` as the seq it stands at) and held until the last byte is written, so writes
 * meanwhile cannot make a mix and a forget or prune meanwhile cannot fail it half way. The hold
 * is in memory: an export writes nothing (it is how data leaves a sick disk) and its hold dies
 * with the process. A client that asks for frames (`frames: true`, every client since frames
 * exist) gets the bytes in frames and a mid-stream error in an error frame; an older client gets
 * raw bytes, and on an error a cut connection, never bytes that are not the image's.
 */
export async function serveExport(v: Volume, sock: net.Socket, p: Record<string, unknown>, log: Logger, stallMs: number = DEFAULTS.exportStallMs): Promise<void> {
  const framed = p.frames === true;
  const point = pinPoint(v, resolveImage(v, String(p.at ?? 'live')));
  const { offset, length } = imageRange(v, Number(p.offset ?? 0), p.length === undefined ? undefined : Number(p.length));
  const release = v.holdPoint(point); // in the tick that resolved it: no forget falls between
  try {
    sock.write(JSON.stringify({ ok: true, result: { point: point.name }, length, ...(framed ? { framed: true } : {}) } satisfies ControlReply) + '\n');
    try {
      for await (const data of streamImage(v, point, offset, length)) {
        if (sock.destroyed) return; // the client went away
        if (framed) sock.write(dataFrameHeader(data.length));
        if (!sock.write(data)) await drainOrClose(sock, stallMs);
      }
    } catch (err) {
      log.warn({ err, at: point.name }, 'export failed mid-stream');
      if (framed) sock.end(errorFrame(err));
      else sock.destroy();
      return;
    }
    sock.end();
  } finally {
    release();
  }
}

/**
 * Until the socket drains or closes, listeners removed; a client that takes in nothing for
 * `stallMs` is cut off, so its export cannot hold a point for good. (Not the socket's idle
 * timeout: bytes the client sends would reset that while it reads nothing.)
 */
function drainOrClose(sock: net.Socket, stallMs: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      sock.off('drain', done);
      sock.off('close', done);
      resolve();
    };
    const timer = setTimeout(() => {
      sock.destroy();
      done();
    }, stallMs);
    sock.on('drain', done);
    sock.on('close', done);
  });
}
