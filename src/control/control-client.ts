import * as net from 'node:net';
import { ChronoError, ErrorCode } from '../errors';
import { ControlReply, ControlRequest } from './control-protocol';

/** Sends one request to a daemon; `sink` receives the raw bytes of an export reply. */
export function controlCall(socketPath: string, req: ControlRequest, sink?: (chunk: Buffer) => void, timeoutMs = 120_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection(socketPath);
    let buf = Buffer.alloc(0);
    let reply: ControlReply | undefined;
    let remaining = 0;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new ChronoError('DAEMON', `daemon at ${socketPath} did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const finish = (err?: Error, value?: unknown) => {
      clearTimeout(timer);
      sock.end();
      if (err) reject(err);
      else resolve(value);
    };
    sock.on('connect', () => sock.write(JSON.stringify(req) + '\n'));
    sock.on('error', (err) => finish(new ChronoError('DAEMON', `cannot reach the daemon at ${socketPath}: ${err.message}`, {}, err)));
    sock.on('data', (chunk: Buffer) => {
      if (!reply) {
        buf = Buffer.concat([buf, chunk]);
        const nl = buf.indexOf(10);
        if (nl < 0) return;
        reply = JSON.parse(buf.subarray(0, nl).toString('utf8')) as ControlReply;
        chunk = buf.subarray(nl + 1);
        if (!reply.ok) return finish(new ChronoError((reply.error?.code ?? 'DAEMON') as ErrorCode, reply.error?.message ?? 'daemon error'));
        remaining = reply.length ?? 0;
        if (remaining === 0) return finish(undefined, reply.result);
      }
      const take = chunk.subarray(0, remaining);
      if (take.length) sink?.(take);
      remaining -= take.length;
      if (remaining === 0) finish(undefined, reply.result);
    });
    sock.on('close', () => {
      if (!reply || remaining > 0) finish(new ChronoError('DAEMON', `daemon at ${socketPath} closed the connection early`));
    });
  });
}
