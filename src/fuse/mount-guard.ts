import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { ChronoError } from '../errors';

export interface MountEntry {
  source: string;
  fstype: string;
}

/** The /proc/mounts entry for a mountpoint, if any (paths there escape spaces as \040). */
export function mountEntry(mountpoint: string): MountEntry | undefined {
  const want = path.resolve(mountpoint);
  const text = fs.readFileSync('/proc/mounts', 'utf8');
  let found: MountEntry | undefined;
  for (const line of text.split('\n')) {
    const [source, target, fstype] = line.split(' ');
    if (target && target.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))) === want) found = { source, fstype };
  }
  return found;
}

/**
 * Is this FUSE mount's daemon gone? Asked of a child process with a timeout: a stat in this
 * process could hang on a mount whose daemon is alive but stuck.
 */
export function isStale(mountpoint: string): boolean {
  const r = spawnSync('stat', ['-c', '%i', mountpoint], { encoding: 'utf8', timeout: 5000 });
  return /Transport endpoint is not connected|Software caused connection abort/.test(r.stderr ?? '');
}

export function lazyUnmount(mountpoint: string): boolean {
  const r = spawnSync('fusermount', ['-uz', mountpoint], { encoding: 'utf8', timeout: 10_000 });
  if (r.status === 0) return true;
  return spawnSync('umount', ['-l', mountpoint], { timeout: 10_000 }).status === 0;
}

/**
 * Makes sure `mountpoint` can be mounted: creates it if missing, clears a stale FUSE mount left
 * by a killed daemon (with a message saying so), and refuses anything still mounted there.
 */
export function prepareMountpoint(mountpoint: string, log: Logger): void {
  const entry = mountEntry(mountpoint);
  if (entry) {
    if (entry.fstype.startsWith('fuse') && isStale(mountpoint)) {
      log.warn({ mountpoint, source: entry.source }, 'found a stale mount ("Transport endpoint is not connected") left by a daemon that died; clearing it');
      if (!lazyUnmount(mountpoint)) throw new ChronoError('IO', `could not clear the stale mount at ${mountpoint}; try: fusermount -uz ${mountpoint}`);
    } else {
      throw new ChronoError('EXISTS', `${mountpoint} is already mounted (${entry.fstype} from ${entry.source}); unmount it first`);
    }
  }
  fs.mkdirSync(mountpoint, { recursive: true });
  if (fs.readdirSync(mountpoint).length > 0) log.warn({ mountpoint }, 'mountpoint is not empty; its files are hidden while mounted');
}
