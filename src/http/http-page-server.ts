import { randomBytes, timingSafeEqual } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { ChronoError } from '../errors';
import { historyOf } from '../investigate/queries';
import { timelineOf } from '../investigate/timeline-bins';
import { timelineSvg } from '../investigate/timeline-chart';
import { listenUnix } from '../nbd/unix-listener';
import { DEFAULTS, parseSize } from '../options';
import { eventJson } from '../fuse/tree';
import { changesOfEvent } from '../service/images';
import type { Volume } from '../volume/volume';
import type { HttpListen } from './http-listen';
import { pageHtml } from './page-html';

/**
 * `mount --http`: one read-only page for the volume's owner (status, events, the timeline, each
 * event's changes, block history) and the JSON it polls. Nothing here writes to the volume.
 * Over TCP every request must carry the token printed at start, else 403 (docs/SECURITY.md);
 * the Host header must name the loopback address, so a rebound DNS name gets nowhere either.
 */
export class HttpPageServer {
  private server?: http.Server;
  private readonly token = randomBytes(24).toString('hex');
  private svg?: { state: string; body: Buffer };
  url = '';

  constructor(private readonly volume: Volume, private readonly listen: HttpListen, private readonly log: Logger, private readonly statusJson: () => Buffer) {}

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: Error) => {
        const e = err instanceof ChronoError ? err : new ChronoError('DAEMON', err.message);
        send(res, e.code === 'BAD_ARGUMENT' || e.code === 'BAD_USAGE' || e.code === 'UNKNOWN_POINT' || e.code === 'OUT_OF_RANGE' ? 400 : 500, 'application/json', JSON.stringify({ error: { code: e.code, message: e.message } }));
      });
    });
    const l = this.listen;
    if (l.kind === 'unix') {
      await listenUnix(this.server, l.path);
      this.url = `unix:${l.path}`;
    } else {
      await new Promise<void>((resolve, reject) => {
        this.server!.once('error', (err) => reject(new ChronoError('IO', `cannot listen on ${l.host}:${l.port}: ${err.message}`)));
        this.server!.listen(l.port, l.host, () => resolve());
      });
      const a = this.server.address() as AddressInfo;
      const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
      this.url = `http://${host}:${a.port}/?token=${this.token}`;
      this.hosts = new Set([`${host}:${a.port}`, `localhost:${a.port}`]);
    }
    this.log.info({ http: this.listen.kind === 'unix' ? this.url : this.url.replace(/token=.*/, 'token=…') }, 'web page served');
  }

  private hosts?: Set<string>;

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    if (this.listen.kind === 'unix') (await import('node:fs')).rmSync(this.listen.path, { force: true });
  }

  private allowed(req: http.IncomingMessage, url: URL): boolean {
    if (this.listen.kind === 'unix') return true; // the socket's 0600 mode is the guard
    if (!this.hosts?.has(req.headers.host ?? '')) return false;
    const given = Buffer.from(url.searchParams.get('token') ?? '');
    const want = Buffer.from(this.token);
    return given.length === want.length && timingSafeEqual(given, want);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://page');
    if (!this.allowed(req, url)) return send(res, 403, 'text/plain', 'forbidden: open the URL the mount printed, token included\n');
    if (req.method !== 'GET') return send(res, 405, 'text/plain', 'read-only\n');
    const v = this.volume;
    const q = url.searchParams;
    switch (url.pathname) {
      case '/':
        return send(res, 200, 'text/html; charset=utf-8', pageHtml(DEFAULTS.httpPollMs));
      case '/api/status':
        return send(res, 200, 'application/json', this.statusJson());
      case '/api/events':
        return send(res, 200, 'application/json', JSON.stringify({ lastSeq: v.lastSeq, events: v.events.map((e) => JSON.parse(eventJson(e).toString())) }));
      case '/api/changes': {
        const e = v.events.find((x) => x.id === Number(q.get('event')));
        if (!e) return send(res, 404, 'application/json', JSON.stringify({ error: { code: 'UNKNOWN_POINT', message: `no event ${q.get('event')}` } }));
        return send(res, 200, 'application/json', JSON.stringify(changesOfEvent(v, e)));
      }
      case '/api/history':
        // Sizes as the CLI takes them (4096, 16K, 1M).
        return send(res, 200, 'application/json', JSON.stringify(await historyOf(v, parseSize(q.get('offset') ?? ''), parseSize(q.get('length') ?? '1'), q.get('hash') === '1')));
      case '/timeline.svg':
        return send(res, 200, 'image/svg+xml', await this.timeline());
      default:
        return send(res, 404, 'text/plain', 'not found\n');
    }
  }

  /** The recent window's picture, drawn again only when something was written or recorded. */
  private async timeline(): Promise<Buffer> {
    const state = `${this.volume.lastSeq}/${this.volume.events.length}`;
    if (this.svg?.state !== state) {
      const bins = timelineOf(this.volume, { lastMs: DEFAULTS.timelineTreeWindowMs });
      this.svg = { state, body: Buffer.from(await timelineSvg(bins, 'chronovol timeline (recent)')) };
    }
    return this.svg.body;
  }
}

function send(res: http.ServerResponse, status: number, type: string, body: string | Buffer): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer', 'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'" });
  res.end(body);
}
