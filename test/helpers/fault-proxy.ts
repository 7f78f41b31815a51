import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * What the proxy does to one request: pass it on; reset the connection before answering; answer
 * 503 SlowDown; never answer (stall); or pass it on and then reset or stall in the middle of the
 * response body.
 */
export type Fault = 'pass' | 'reset' | 'slowdown' | 'stall' | 'reset-mid-body' | 'stall-mid-body';

export interface FaultProxy {
  endpoint: string;
  /** Requests seen, per fault applied. */
  readonly counts: Record<Fault, number>;
  close(): Promise<void>;
}

const SLOW_DOWN = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>';

/**
 * A small fault-injecting HTTP proxy between an S3 client and a real server on loopback.
 * `choose` decides per request (method, url); headers pass unchanged, so signatures still hold.
 */
export async function startFaultProxy(upstreamPort: number, choose: (method: string, url: string) => Fault): Promise<FaultProxy> {
  const counts: Record<Fault, number> = { pass: 0, reset: 0, slowdown: 0, stall: 0, 'reset-mid-body': 0, 'stall-mid-body': 0 };
  const sockets = new Set<Socket>();
  const upstream = new Set<http.ClientRequest>();
  const server = http.createServer((req, res) => {
    const fault = choose(req.method ?? 'GET', req.url ?? '/');
    counts[fault]++;
    if (fault === 'stall') return; // the socket stays open, silent, until the client gives up
    if (fault === 'reset' || fault === 'slowdown') {
      // Take the whole request first, as a server would before answering.
      req.resume();
      req.on('end', () => {
        if (fault === 'reset') return req.socket.resetAndDestroy();
        res.writeHead(503, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(SLOW_DOWN) });
        res.end(SLOW_DOWN);
      });
      return;
    }
    const up = http.request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      if (fault === 'pass') return ur.pipe(res);
      // Mid-body: the headers and half the body (at least one byte) go out, then the fault.
      const total = Number(ur.headers['content-length'] ?? 0);
      let sent = 0;
      ur.on('data', (d: Buffer) => {
        const room = Math.max(1, Math.floor(total / 2)) - sent;
        if (room > 0) res.write(d.subarray(0, room));
        sent += Math.min(room > 0 ? room : 0, d.length);
        if (sent >= Math.max(1, Math.floor(total / 2))) {
          ur.pause();
          if (fault === 'reset-mid-body') req.socket.resetAndDestroy();
        }
      });
      ur.on('end', () => {
        if (total === 0 && fault === 'reset-mid-body') req.socket.resetAndDestroy();
      });
    });
    upstream.add(up);
    up.on('close', () => upstream.delete(up));
    up.on('error', () => req.socket.destroy());
    req.socket.on('close', () => up.destroy()); // the client gave up: so does the upstream request
    req.pipe(up);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    counts,
    close: async () => {
      for (const s of sockets) s.destroy();
      for (const u of upstream) u.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
