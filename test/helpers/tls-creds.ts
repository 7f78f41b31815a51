import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ok } from './fuse-harness';

/**
 * Test credentials made at run time with openssl: a PSK file for the server and one qemu
 * tls-creds-psk directory per identity; an X.509 CA, the server's directory as `serve
 * --tls-certs` and qemu's tls-creds-x509 (endpoint=server) name its files, and one client
 * directory per CN (ca-cert.pem, client-cert.pem, client-key.pem, as qemu's endpoint=client wants).
 */
export interface PskCreds {
  /** The server's `--tls-psk` file. */
  serverFile: string;
  /** identity -> qemu `dir=` holding keys.psk with that identity's line. */
  clientDirs: Record<string, string>;
  keys: Record<string, Buffer>;
}

export function makePsk(root: string, identities: string[]): PskCreds {
  const keys: Record<string, Buffer> = {};
  const clientDirs: Record<string, string> = {};
  for (const id of identities) {
    keys[id] = randomBytes(32);
    clientDirs[id] = pskClientDir(root, id, keys[id]);
  }
  const serverFile = path.join(root, 'server.psk');
  fs.writeFileSync(serverFile, identities.map((id) => `${id}:${keys[id].toString('hex')}\n`).join(''), { mode: 0o600 });
  return { serverFile, clientDirs, keys };
}

/** A qemu tls-creds-psk directory for `identity` with `key` (which may be wrong on purpose). */
export function pskClientDir(root: string, identity: string, key: Buffer): string {
  const dir = path.join(root, `psk-${identity}-${key.subarray(0, 4).toString('hex')}`);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'keys.psk'), `${identity}:${key.toString('hex')}\n`, { mode: 0o600 });
  return dir;
}

function openssl(args: string[]): void {
  ok('openssl', args, 60_000);
}

export interface X509Creds {
  /** The server's `--tls-certs` directory. */
  serverDir: string;
  /** CN -> qemu tls-creds-x509 client `dir=`. */
  clientDirs: Record<string, string>;
}

/** A CA, a server certificate for 127.0.0.1, and client certificates for `cns`, signed by `ca` (default: a fresh one). */
export function makeX509(root: string, cns: string[], o: { caDir?: string } = {}): X509Creds & { caDir: string } {
  const caDir = o.caDir ?? path.join(root, `ca-${randomBytes(3).toString('hex')}`);
  const caKey = path.join(caDir, 'ca-key.pem');
  const caCert = path.join(caDir, 'ca-cert.pem');
  if (!fs.existsSync(caCert)) {
    fs.mkdirSync(caDir, { recursive: true });
    openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', caKey, '-out', caCert, '-days', '2', '-subj', '/CN=chronovol test CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  }
  const issue = (dir: string, name: 'server' | 'client', cn: string) => {
    fs.mkdirSync(dir, { recursive: true });
    const key = path.join(dir, `${name}-key.pem`);
    const csr = path.join(dir, `${name}.csr`);
    const ext = path.join(dir, `${name}.ext`);
    fs.writeFileSync(ext, name === 'server'
      ? 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n'
      : 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n');
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${cn}`]);
    openssl(['x509', '-req', '-in', csr, '-CA', caCert, '-CAkey', caKey, '-CAcreateserial', '-out', path.join(dir, `${name}-cert.pem`), '-days', '2', '-extfile', ext]);
    fs.copyFileSync(caCert, path.join(dir, 'ca-cert.pem'));
  };
  const serverDir = path.join(caDir, 'server');
  if (!fs.existsSync(serverDir)) issue(serverDir, 'server', 'localhost');
  const clientDirs: Record<string, string> = {};
  for (const cn of cns) issue((clientDirs[cn] = path.join(caDir, `client-${cn}`)), 'client', cn);
  return { serverDir, clientDirs, caDir };
}

/** qemu's `--object` and `--image-opts` arguments for an NBD export over TLS. */
export function qemuTlsArgs(creds: { psk?: { dir: string; identity: string }; x509?: string }, port: number, exportName: string): string[] {
  const object = creds.psk
    ? `tls-creds-psk,id=tls0,endpoint=client,dir=${creds.psk.dir},username=${creds.psk.identity}`
    : `tls-creds-x509,id=tls0,endpoint=client,dir=${creds.x509}`;
  return ['--object', object, '--image-opts', `driver=nbd,host=127.0.0.1,port=${port},export=${exportName},tls-creds=tls0`];
}
