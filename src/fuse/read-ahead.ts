import { spawnSync } from 'node:child_process';
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

/** Where the fusectl file system shows each FUSE connection's settings. */
const FUSECTL = '/sys/fs/fuse/connections';

/**
 * Raises the FUSE connection's congestion threshold through its control file (fusectl, named by
 * the mount's device minor). libfuse 2 clamps the `congestion_threshold` mount option to
 * `max_background`, and at that value the connection counts as congested whenever its background
 * requests are all in flight: the kernel then drops the asynchronous part of a read-ahead window
 * instead of queueing it, and a scan falls back to waiting on synchronous reads.
 */
export function setCongestionThreshold(mountpoint: string, requests: number): number {
  const device = mountDevice(mountpoint);
  if (!device) throw new Error(`${mountpoint} is not in /proc/self/mountinfo`);
  const file = `${FUSECTL}/${device.split(':')[1]}/congestion_threshold`;
  // Most systems mount fusectl at boot; a bare container may not have.
  if (!fs.existsSync(file) && !mountDevice(FUSECTL)) spawnSync('mount', ['-t', 'fusectl', 'fusectl', FUSECTL], { timeout: 10_000 });
  if (!fs.existsSync(file)) throw new Error(`${file} is missing (is fusectl mounted on ${FUSECTL}?)`);
  fs.writeFileSync(file, `${requests}\n`);
  return Number(fs.readFileSync(file, 'utf8'));
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
