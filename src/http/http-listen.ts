import * as path from 'node:path';
import { ChronoError } from '../errors';
import { DEFAULTS } from '../options';

/** Where `mount --http` listens: a Unix socket (owner only), or a loopback TCP address with a token. */
export type HttpListen = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/**
 * `--http` alone: 127.0.0.1 on a free port. `unix:PATH`: a 0600 Unix socket. `[HOST:]PORT`:
 * loopback only. The page has no TLS, so docs/SECURITY.md's rule for TCP (TLS or nothing) is met
 * by never leaving the machine, and the random token stands in for the socket's mode.
 */
export function parseHttpListen(text: string | true, volumeDir: string): HttpListen {
  if (text === true || text === '') return { kind: 'tcp', host: '127.0.0.1', port: 0 };
  if (text.startsWith('unix:')) {
    const p = text.slice(5);
    return { kind: 'unix', path: path.resolve(p || path.join(volumeDir, DEFAULTS.httpSocketName)) };
  }
  const m = /^(?:\[?([^\]]*?)\]?:)?(\d{1,5})$/.exec(text);
  if (!m) throw new ChronoError('BAD_ARGUMENT', `--http takes unix:PATH, PORT or HOST:PORT, got '${text}'`);
  const host = m[1] || '127.0.0.1';
  if (!LOOPBACK.has(host)) throw new ChronoError('BAD_ARGUMENT', `--http serves loopback only (127.0.0.1, ::1, localhost), not ${host}: the page has no TLS; put a TLS proxy in front to reach it from elsewhere`);
  const port = Number(m[2]);
  if (port > 65535) throw new ChronoError('BAD_ARGUMENT', `bad port ${port}`);
  return { kind: 'tcp', host, port };
}
