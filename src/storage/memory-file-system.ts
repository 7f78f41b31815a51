import { ChronoError } from '../errors';
import { FileHandle, FileSystem, OpenMode, dirname } from './file-system';

interface MemFile {
  data: Buffer;
  size: number;
  /** Content as of the last sync: what survives `crash()`. */
  durable: Buffer;
}

function enoent(path: string): ChronoError {
  return new ChronoError('IO', `no such file: ${path}`, { path, errno: 'ENOENT' });
}

/**
 * A file system in memory that knows what is durable: `crash()` throws away every byte not
 * fsync'd and every directory change not followed by a directory fsync, as a power cut would.
 */
export class MemoryFileSystem implements FileSystem {
  private files = new Map<string, MemFile>();
  private dirs = new Set<string>(['/', '.']);
  /** Per directory, the entries (name → file) as of its last syncDir. */
  private durableEntries = new Map<string, Map<string, MemFile>>();

  open(path: string, mode: OpenMode): FileHandle {
    let f = this.files.get(path);
    if (mode === 'createNew' || mode === 'createNewDirect') {
      if (f) throw new ChronoError('IO', `exists: ${path}`, { path, errno: 'EEXIST' });
      if (!this.dirs.has(dirname(path))) throw enoent(dirname(path));
      f = { data: Buffer.alloc(0), size: 0, durable: Buffer.alloc(0) };
      this.files.set(path, f);
    }
    if (!f) throw enoent(path);
    const file = f;
    const writable = mode !== 'read';
    const handle: FileHandle = {
      read: (buf, bufOffset, length, position) => {
        const n = Math.max(0, Math.min(length, file.size - position));
        file.data.copy(buf, bufOffset, position, position + n);
        return n;
      },
      write: (buf, bufOffset, length, position) => {
        if (!writable) throw new ChronoError('IO', `read-only handle: ${path}`, { errno: 'EBADF' });
        const end = position + length;
        if (end > file.data.length) {
          const grown = Buffer.alloc(Math.max(end, file.data.length * 2));
          file.data.copy(grown, 0, 0, file.size);
          file.data = grown;
        }
        buf.copy(file.data, position, bufOffset, bufOffset + length);
        file.size = Math.max(file.size, end);
      },
      sync: () => {
        file.durable = Buffer.from(file.data.subarray(0, file.size));
      },
      size: () => file.size,
      truncate: (length) => {
        if (length < file.size) file.data.fill(0, length, file.size);
        else if (length > file.data.length) {
          const grown = Buffer.alloc(length);
          file.data.copy(grown, 0, 0, file.size);
          file.data = grown;
        }
        file.size = length;
      },
      close: () => undefined,
      // Deferred to a later microtask, so tests see the interleavings a threadpool allows.
      writeAsync: (buf, bufOffset, length, position) => Promise.resolve().then(() => handle.write(buf, bufOffset, length, position)),
      syncAsync: () => Promise.resolve().then(() => handle.sync()),
      readAsync: (buf, bufOffset, length, position) => Promise.resolve().then(() => handle.read(buf, bufOffset, length, position)),
    };
    return handle;
  }
  exists(path: string): boolean {
    return this.files.has(path) || this.dirs.has(path);
  }
  readFile(path: string): Buffer {
    const f = this.files.get(path);
    if (!f) throw enoent(path);
    return Buffer.from(f.data.subarray(0, f.size));
  }
  async readFileAsync(path: string): Promise<Buffer> {
    return this.readFile(path);
  }
  list(dir: string): string[] {
    const prefix = dir.endsWith('/') ? dir : `${dir}/`;
    const names = new Set<string>();
    for (const p of [...this.files.keys(), ...this.dirs]) {
      if (p.startsWith(prefix) && p.length > prefix.length) names.add(p.slice(prefix.length).split('/')[0]);
    }
    return [...names].sort();
  }
  mkdirp(dir: string): void {
    for (let d = dir; d !== '/' && d !== '.' && !this.dirs.has(d); d = dirname(d)) this.dirs.add(d);
  }
  remove(path: string): void {
    this.files.delete(path);
  }
  rename(from: string, to: string): void {
    const f = this.files.get(from);
    if (!f) throw enoent(from);
    this.files.delete(from);
    this.files.set(to, f);
  }
  syncDirAsync(dir: string): Promise<void> {
    return Promise.resolve().then(() => this.syncDir(dir));
  }
  syncDir(dir: string): void {
    const entries = new Map<string, MemFile>();
    for (const [p, f] of this.files) if (dirname(p) === dir) entries.set(p, f);
    this.durableEntries.set(dir, entries);
  }

  /**
   * Simulates power loss in place: only fsync'd bytes in directory entries that were fsync'd
   * remain. With `reorder`, some of the unsynced pages appended after the synced end survive
   * too, each one independently, as write-back in any order leaves them: holes, then data again.
   */
  crash(opts: { reorder?: () => number } = {}): void {
    const after = this.afterPowerCut(opts);
    this.files = after.files;
    this.durableEntries = after.durableEntries;
  }

  /**
   * Power loss for a process that is still running: the machine after the cut, as a new file
   * system, while this one stays as the dead process left it. Background work of the old
   * process (a checkpoint still in flight, say) then lands here and not on the rebooted disk.
   */
  afterPowerCut(opts: { reorder?: () => number } = {}): MemoryFileSystem {
    const survivors = new Map<string, MemFile>();
    const after = (f: MemFile): MemFile => {
      const data = opts.reorder ? lostPages(f, opts.reorder) : Buffer.from(f.durable);
      return { data, size: data.length, durable: data };
    };
    for (const [p, f] of this.files) {
      const durableDir = this.durableEntries.get(dirname(p));
      // A file whose directory was never synced since it appeared is lost; so is one renamed away.
      const kept = durableDir ? durableDir.get(p) : undefined;
      if (kept === f) survivors.set(p, after(f));
    }
    for (const entries of this.durableEntries.values()) {
      for (const [p, f] of entries) {
        if (!survivors.has(p)) survivors.set(p, after(f));
      }
    }
    const next = new MemoryFileSystem();
    next.files = survivors;
    next.dirs = new Set(this.dirs);
    // What survived is, by definition, durable in its directory.
    for (const dir of new Set([...survivors.keys()].map(dirname))) next.syncDir(dir);
    return next;
  }
}

const PAGE_BYTES = 4096;

/** The synced content, plus each later page with probability one half; lost pages read as zeros. */
function lostPages(f: MemFile, random: () => number): Buffer {
  const out = Buffer.alloc(f.size);
  f.durable.copy(out);
  let end = f.durable.length;
  for (let at = f.durable.length; at < f.size; at = (Math.floor(at / PAGE_BYTES) + 1) * PAGE_BYTES) {
    const pageEnd = Math.min(f.size, (Math.floor(at / PAGE_BYTES) + 1) * PAGE_BYTES);
    if (random() < 0.5) {
      f.data.copy(out, at, at, pageEnd);
      end = pageEnd;
    }
  }
  return out.subarray(0, end);
}
