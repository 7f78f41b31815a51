/**
 * A power-cut view of files written through node:fs: import this first (before the modules that
 * capture `promisify(fs.write)`), then `track(paths)`. For each tracked file it keeps the bytes
 * a power cut could not lose (the file as it was at `track`, plus every write followed by an
 * fdatasync or fsync of that file) and calls `onWrite` before each write reaches the file, so a
 * test can check what is durable at that moment (the write itself may reach the disk at once).
 * Only the (fd, buffer, offset, length, position) forms are traced: the ones src/clone uses.
 */
import fs = require('node:fs'); // the module object itself, not a namespace copy of it

type WriteFn = (...args: unknown[]) => unknown;

const paths = new Map<number, string>();
const durable = new Map<string, Buffer>();
const pending = new Map<string, Array<{ at: number; bytes: Buffer }>>();
export const log: Array<{ op: 'write' | 'sync'; file: string; at?: number; bytes?: Buffer }> = [];
let onWrite: ((file: string, at: number, bytes: Buffer) => void) | undefined;

/** Starts tracking these files (read now: they must be durable), clearing the log. */
export function track(files: string[], check?: (file: string, at: number, bytes: Buffer) => void): void {
  durable.clear();
  pending.clear();
  log.length = 0;
  for (const f of files) {
    durable.set(f, fs.readFileSync(f));
    pending.set(f, []);
  }
  onWrite = check;
}

export function stopTracking(): void {
  durable.clear();
  pending.clear();
  onWrite = undefined;
}

/** What a power cut now would leave of `file`, at least (bytes never synced read as before). */
export function durableBytes(file: string): Buffer {
  const d = durable.get(file);
  if (!d) throw new Error(`${file} is not tracked`);
  return d;
}

function wrote(fd: number, buf: Uint8Array, offset: number, length: number, position: number): void {
  const file = paths.get(fd);
  if (!file || !durable.has(file) || typeof position !== 'number') return;
  const bytes = Buffer.from(buf.subarray(offset, offset + length));
  onWrite?.(file, position, bytes);
  pending.get(file)!.push({ at: position, bytes });
  log.push({ op: 'write', file, at: position, bytes });
}

/** The writes a sync begun now covers. */
function begun(fd: number): Array<{ at: number; bytes: Buffer }> {
  const file = paths.get(fd);
  return file && pending.has(file) ? [...pending.get(file)!] : [];
}

function synced(fd: number, covered: Array<{ at: number; bytes: Buffer }>): void {
  const file = paths.get(fd);
  if (!file || !durable.has(file)) return;
  let d = durable.get(file)!;
  for (const w of covered) {
    if (d.length < w.at + w.bytes.length) d = Buffer.concat([d, Buffer.alloc(w.at + w.bytes.length - d.length)]);
    w.bytes.copy(d, w.at);
  }
  durable.set(file, d);
  pending.set(file, pending.get(file)!.filter((w) => !covered.includes(w)));
  log.push({ op: 'sync', file });
}

const f = fs as unknown as Record<string, WriteFn>;
const openSync = f.openSync;
f.openSync = (...a: unknown[]) => {
  const fd = openSync(...a) as number;
  paths.set(fd, String(a[0]));
  return fd;
};
const writeSync = f.writeSync;
f.writeSync = (...a: unknown[]) => {
  if (typeof a[2] === 'number') wrote(a[0] as number, a[1] as Uint8Array, a[2] as number, a[3] as number, a[4] as number);
  return writeSync(...a);
};
const write = f.write;
f.write = (...a: unknown[]) => {
  if (typeof a[2] === 'number') wrote(a[0] as number, a[1] as Uint8Array, a[2] as number, a[3] as number, a[4] as number);
  return write(...a);
};
// The sync is counted when it returns (a power cut before then may lose the writes).
for (const name of ['fdatasyncSync', 'fsyncSync']) {
  const orig = f[name];
  f[name] = (...a: unknown[]) => {
    const covered = begun(a[0] as number);
    const r = orig(...a);
    synced(a[0] as number, covered);
    return r;
  };
}
for (const name of ['fdatasync', 'fsync']) {
  const orig = f[name];
  f[name] = (fd: unknown, cb: unknown) => {
    const covered = begun(fd as number);
    return orig(fd, (err: unknown) => {
      if (!err) synced(fd as number, covered);
      (cb as (e: unknown) => void)(err);
    });
  };
}
