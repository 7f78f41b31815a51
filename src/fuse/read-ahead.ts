import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * The kernel reads a FUSE file ahead by the smaller of the max_readahead mount option and the
 * mount's backing-device read_ahead_kb, which starts at 128 KiB: a sequential reader then has one
 * 128 KiB request in flight at a time, and pays our whole round trip per request. Raising it lets
 * the kernel queue several requests, which is most of the difference for scans of past images.
 *
 * Only the mount table is read to find the device: never the mount itself (see docs/DESIGN.md).
 */
export function setReadAhead(mountpoint: string, bytes: number): { device: string; kib: number } {
  const device = mountDevice(mountpoint);
  if (!device) throw new Error(`${mountpoint} is not in /proc/self/mountinfo`);
  const kib = Math.max(4, Math.round(bytes / 1024));
  fs.writeFileSync(`/sys/class/bdi/${device}/read_ahead_kb`, `${kib}\n`);
  return { device, kib };
}

/** "major:minor" of the file system mounted at mountpoint, from /proc/self/mountinfo. */
export function mountDevice(mountpoint: string): string | undefined {
  const want = path.resolve(mountpoint);
  let found: string | undefined;
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    // id parent major:minor root mountpoint ...; octal escapes for spaces and the like.
    const f = line.split(' ');
    if (f.length > 4 && unescape(f[4]) === want) found = f[2];
  }
  return found;
}

function unescape(s: string): string {
  return s.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}
