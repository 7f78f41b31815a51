import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { ChronoError } from '../errors';

/** A client's TLS credentials: one PSK identity and its key, or an X.509 client certificate. */
export type ControlTlsCreds = { kind: 'psk'; identity: string; key: Buffer } | { kind: 'x509'; ca: Buffer; cert: Buffer; key: Buffer; identity?: string };

/** Where a control channel is: a Unix socket path, or TCP (TLS unless --insecure). */
export type ControlEndpoint = string | { host: string; port: number; tls?: ControlTlsCreds };

/** The file names qemu's tls-creds-x509 (endpoint=client) reads from its directory. */
export const X509_CLIENT_FILES = { ca: 'ca-cert.pem', cert: 'client-cert.pem', key: 'client-key.pem' } as const;

export function describeEndpoint(e: ControlEndpoint): string {
  return typeof e === 'string' ? e : `${e.tls ? 'tls' : 'tcp'}://${e.host}:${e.port}`;
}

/** `tls://HOST:PORT` (or tcp:// for --insecure) as given to --target-control. */
export function parseControlUrl(text: string): { host: string; port: number; tls: boolean } | undefined {
  const m = /^(tls|tcp):\/\/(?:\[([^\]]+)\]|([^:/]+)):(\d+)\/?$/.exec(text);
  if (!m) return undefined;
  return { host: m[2] ?? m[3], port: Number(m[4]), tls: m[1] === 'tls' };
}

/**
 * A client's credentials from `--tls-psk FILE [--tls-identity NAME]` (the file's line for that
 * identity; the first line without one) or `--tls-certs DIR` (ca-cert.pem, client-cert.pem,
 * client-key.pem, as qemu's tls-creds-x509 endpoint=client wants them).
 */
export function clientCreds(o: { tlsPsk?: string; tlsCerts?: string; tlsIdentity?: string }): ControlTlsCreds | undefined {
  if (o.tlsPsk && o.tlsCerts) throw new ChronoError('BAD_USAGE', 'give --tls-psk or --tls-certs, not both');
  if (o.tlsPsk) {
    // Loaded here: every CLI command that asks a daemon goes through this file and needs no TLS.
    const { readPskFile } = require('../nbd/nbd-tls') as typeof import('../nbd/nbd-tls');
    const keys = readPskFile(o.tlsPsk);
    const identity = o.tlsIdentity ?? [...keys.keys()][0];
    const key = keys.get(identity);
    if (!key) throw new ChronoError('BAD_ARGUMENT', `${o.tlsPsk} has no key for identity '${identity}'`, { file: o.tlsPsk, identity });
    return { kind: 'psk', identity, key };
  }
  if (o.tlsCerts) {
    if (o.tlsIdentity) throw new ChronoError('BAD_USAGE', '--tls-identity is for --tls-psk; with --tls-certs the identity is the client certificate\'s CN');
    const read = (name: string): Buffer => {
      try {
        return fs.readFileSync(path.join(o.tlsCerts!, name));
      } catch (err) {
        throw new ChronoError('BAD_ARGUMENT', `--tls-certs ${o.tlsCerts}: cannot read ${name}: ${(err as Error).message}`, { dir: o.tlsCerts }, err);
      }
    };
    return { kind: 'x509', ca: read(X509_CLIENT_FILES.ca), cert: read(X509_CLIENT_FILES.cert), key: read(X509_CLIENT_FILES.key) };
  }
  if (o.tlsIdentity) throw new ChronoError('BAD_USAGE', '--tls-identity needs --tls-psk');
  return undefined;
}

/** The PSK suites the server offers (nbd-tls.ts), TLS 1.3 first. */
const PSK_CLIENT_CIPHERS = 'TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:ECDHE-PSK-CHACHA20-POLY1305:DHE-PSK-AES128-GCM-SHA256:DHE-PSK-AES256-GCM-SHA384:DHE-PSK-CHACHA20-POLY1305';

/**
 * Connects; `ready` is the event after which requests may be written ('connect' for a Unix
 * socket or plain TCP, 'secureConnect' once TLS is up). `handshaking()` tells a TLS failure (the
 * TCP connection was made, the server refused our key, identity or certificate) from a network one;
 * `certificateVerdictPending()` says a close before any answer may be the server refusing our certificate.
 */
export function connectControl(e: ControlEndpoint): { sock: net.Socket; ready: 'connect' | 'secureConnect'; handshaking: () => boolean; certificateVerdictPending: () => boolean } {
  const no = () => false;
  if (typeof e === 'string') return { sock: net.createConnection(e), ready: 'connect', handshaking: no, certificateVerdictPending: no };
  if (!e.tls) return { sock: net.createConnection({ host: e.host, port: e.port }), ready: 'connect', handshaking: no, certificateVerdictPending: no };
  const raw = net.createConnection({ host: e.host, port: e.port });
  let tcpUp = false;
  let secure = false;
  raw.once('connect', () => (tcpUp = true));
  const c = e.tls;
  const options: tls.ConnectionOptions = c.kind === 'psk'
    ? { socket: raw, minVersion: 'TLSv1.2', ciphers: PSK_CLIENT_CIPHERS, pskCallback: () => ({ psk: c.key, identity: c.identity }), checkServerIdentity: () => undefined }
    : { socket: raw, minVersion: 'TLSv1.2', ca: c.ca, cert: c.cert, key: c.key, servername: net.isIP(e.host) ? undefined : e.host, checkServerIdentity: (_h, cert) => tls.checkServerIdentity(e.host, cert) };
  const sock = tls.connect(options);
  let protocol: string | null = null;
  sock.once('secureConnect', () => {
    secure = true;
    protocol = sock.getProtocol();
  });
  raw.on('error', (err) => sock.destroy(err));
  // TLS 1.3 lets a client finish its handshake before the server has checked its certificate: a
  // certificate the server refuses shows as the connection closed right after, without an alert.
  const x509v13 = () => c.kind === 'x509' && secure && protocol === 'TLSv1.3';
  return { sock, ready: 'secureConnect', handshaking: () => tcpUp && !secure, certificateVerdictPending: x509v13 };
}
