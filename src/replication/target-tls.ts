import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ControlTlsCreds } from '../control/control-endpoint';
import type { ProtectTarget } from './protector';

/** qemu's id for the credentials object of its NBD client. */
const QEMU_TLS_ID = 'tgt-tls';

/** A value inside qemu's key=value,... option syntax: a comma is written twice. */
function qemuOpt(value: string): string {
  return value.replace(/,/g, ',,');
}

/**
 * qemu's side of protect's TLS: the `--object` for qemu-storage-daemon's NBD client, the same
 * credentials protect's control client uses. For a PSK, qemu's tls-creds-psk reads `keys.psk`
 * from a directory and takes the identity as `username`: a private directory in the state
 * directory gets that identity's line alone. For X.509, qemu reads the directory as given
 * (ca-cert.pem, client-cert.pem, client-key.pem) and checks the server's certificate.
 */
export function qemuTlsFor(creds: ControlTlsCreds, certsDir: string | undefined, stateDir: string, host: string): NonNullable<ProtectTarget['qemuTls']> {
  if (creds.kind === 'x509') {
    return { id: QEMU_TLS_ID, hostname: host, object: `tls-creds-x509,id=${QEMU_TLS_ID},endpoint=client,verify-peer=on,dir=${qemuOpt(path.resolve(certsDir!))}` };
  }
  const dir = path.join(stateDir, 'tls-psk');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dir, 0o700);
  const file = path.join(dir, 'keys.psk');
  fs.rmSync(file, { force: true });
  fs.writeFileSync(file, `${creds.identity}:${creds.key.toString('hex')}\n`, { mode: 0o600 });
  return { id: QEMU_TLS_ID, hostname: host, object: `tls-creds-psk,id=${QEMU_TLS_ID},endpoint=client,dir=${qemuOpt(dir)},username=${qemuOpt(creds.identity)}` };
}
