import * as fs from 'node:fs';
import * as net from 'node:net';
import { ChronoError } from '../errors';

/** A group name from /etc/group, or a number as is. */
export function groupId(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  let lines: string[] = [];
  try {
    lines = fs.readFileSync('/etc/group', 'utf8').split('\n');
  } catch {
    // no group file: only numbers work
  }
  for (const line of lines) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined) return Number(gid);
  }
  throw new ChronoError('BAD_ARGUMENT', `no group named '${group}' (see /etc/group, or give a number)`, { group });
}

/** True when something answers on the socket at `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection(path);
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/**
 * Listens on a Unix socket that only its owner (or, with `group`, that group too) may connect to.
 * Connecting needs write permission on the socket file, which is created under a umask that
 * leaves nobody else any, then set to 0600 or 0660 exactly; so there is no moment it is open.
 * A stale socket from a dead process is replaced; a live one is an error.
 */
export async function listenUnix(server: net.Server, path: string, group?: string): Promise<void> {
  const gid = group === undefined ? undefined : groupId(group);
  if (fs.existsSync(path)) {
    if (!fs.lstatSync(path).isSocket()) throw new ChronoError('EXISTS', `${path} exists and is not a socket`, { path });
    if (await answers(path)) throw new ChronoError('EXISTS', `${path} is in use by another server`, { path });
    fs.rmSync(path, { force: true });
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new ChronoError('IO', `cannot listen on ${path}: ${err.message}`, { path }, err)));
    const old = process.umask(0o177);
    try {
      server.listen(path, () => resolve()); // binds synchronously: the umask is ours for the bind
    } finally {
      process.umask(old);
    }
  });
  if (gid !== undefined) fs.chownSync(path, -1, gid);
  fs.chmodSync(path, gid === undefined ? 0o600 : 0o660);
}
