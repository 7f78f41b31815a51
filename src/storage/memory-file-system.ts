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

export interface MemoryFileSystemOptions {
  /**
   * Offer direct writes ('createNewDirect') with this alignment, as O_DIRECT on a real disk
   * does: writes must then be whole aligned blocks, and the segment writer rewrites its carried
   * partial page, which is what a power cut can tear (see `afterPowerCut`).
   */
  directAlignBytes?: number;
}

/**
 * What write-back did before the power went. Without `reorder`, only fsync'd bytes survive.
 * With it, each choice below is a call to `reorder()` (< 0.5: the newer state survives):
 * - a sector (512 bytes) rewritten since the last fsync holds its old or its new content: disks
 *   write sectors atomically, nothing larger, so a rewritten page can come back as a mix;
 * - each page (4 KiB) appended past the synced end survives whole or not at all, independently:
 *   holes read as zeros, and the file ends after the last page that made it;
 * - an unsynced truncation happened or did not.
 */
export interface PowerCutOptions {
  reorder?: () => number;
}

/** The calls that change the disk or make something durable: the possible cut points. */
export type CountedCall = 'create' | 'write' | 'sync' | 'truncate' | 'remove' | 'rename' | 'syncDir' | 'link';

/** An fsync (of a file or a directory) held back until the test releases it. */
export interface HeldSync {
  readonly path: string;
  readonly kind: 'file' | 'dir';
}

interface PendingSync extends HeldSync {
  apply(): void;
  resolve(): void;
}

/**
 * A file system in memory that knows what is durable: `crash()` throws away every byte not
 * fsync'd and every directory change not followed by a directory fsync, as a power cut would.
 *
 * For ordering tests it also
 * - holds the threadpool fsyncs (`holdSyncs`): `syncAsync` and `syncDirAsync` then complete
 *   only when the test calls `releaseSync`, in whatever order it likes, so a caller that does
 *   not wait for an fsync it depends on is seen acknowledging before it;
 * - counts every call that changes the disk or makes something durable (`callCount`), and can
 *   cut the power just before the Nth one (`armPowerCut`), wherever in an operation that falls.
 */
export class MemoryFileSystem implements FileSystem {
  private files = new Map<string, MemFile>();
  private dirs = new Set<string>(['/', '.']);
  /** Per directory, the entries (name → file) as of its last syncDir. */
  private durableEntries = new Map<string, Map<string, MemFile>>();

  /** Hold every threadpool fsync until `releaseSync`. The synchronous ones complete at once. */
  holdSyncs = false;
  private readonly pending: PendingSync[] = [];
  private calls = 0;
  private armed?: { at: number; opts: PowerCutOptions };
  /** The disk as the armed power cut left it, once it has happened. */
  cutImage?: MemoryFileSystem;

  constructor(private readonly options: MemoryFileSystemOptions = {}) {}

  /** Calls so far that changed the disk or made something durable (each a possible cut point). */
  get callCount(): number {
    return this.calls;
  }

  /** Held fsyncs, in the order they were issued (the same object while one stays held). */
  get heldSyncs(): readonly HeldSync[] {
    return this.pending.slice();
  }

  /** Completes a held fsync (one of `heldSyncs`, or its index there): it takes effect now, then resolves. */
  releaseSync(which: number | HeldSync): void {
    const index = typeof which === 'number' ? which : this.pending.indexOf(which as PendingSync);
    const [p] = index >= 0 ? this.pending.splice(index, 1) : [];
    if (!p) throw new Error(`no such held fsync: ${typeof which === 'number' ? which : which.path}`);
    p.apply(); // counted (and possibly cut) as it takes effect

    p.resolve();
  }

  releaseAllSyncs(): void {
    while (this.pending.length) this.releaseSync(0);
  }

  /**
   * Cuts the power just before the call `callsFromNow` calls from now (0: the next one) takes
   * effect; `cutImage` is then the disk after the reboot. This file system carries on as the dead
   * process's view, so its remaining work cannot reach the rebooted disk.
   */
  armPowerCut(callsFromNow: number, opts: PowerCutOptions = {}): void {
    this.armed = { at: this.calls + callsFromNow + 1, opts };
  }

  /** Cuts the power now (records `cutImage`, as an armed cut does). */
  cutNow(opts: PowerCutOptions = {}): MemoryFileSystem {
    this.armed = undefined;
    this.cutImage = this.afterPowerCut(opts);
    return this.cutImage;
  }

  /**
   * Called just before each counted call takes effect (after the count): a test may arm a cut
   * here, e.g. right after a segment file is removed.
   */
  onCall?: (op: CountedCall, path: string) => void;

  private tick(op: CountedCall, path: string): void {
    this.calls++;
    this.onCall?.(op, path);
    if (this.armed && this.calls >= this.armed.at) this.cutNow(this.armed.opts);
  }

  private hold(path: string, kind: 'file' | 'dir', apply: () => void): Promise<void> {
    if (!this.holdSyncs) return Promise.resolve().then(apply);
    return new Promise((resolve) => this.pending.push({ path, kind, apply, resolve }));
  }

  open(path: string, mode: OpenMode): FileHandle {
    let f = this.files.get(path);
    if (mode === 'createNew' || mode === 'createNewDirect') {
      if (f) throw new ChronoError('IO', `exists: ${path}`, { path, errno: 'EEXIST' });
      if (!this.dirs.has(dirname(path))) throw enoent(dirname(path));
      this.tick('create', path);
      f = { data: Buffer.alloc(0), size: 0, durable: Buffer.alloc(0) };
      this.files.set(path, f);
    }
    if (!f) throw enoent(path);
    const file = f;
    const writable = mode !== 'read';
    const align = mode === 'createNewDirect' ? this.options.directAlignBytes : undefined;
    const handle: FileHandle = {
      read: (buf, bufOffset, length, position) => {
        const n = Math.max(0, Math.min(length, file.size - position));
        file.data.copy(buf, bufOffset, position, position + n);
        return n;
      },
      write: (buf, bufOffset, length, position) => {
        if (!writable) throw new ChronoError('IO', `read-only handle: ${path}`, { errno: 'EBADF' });
        if (align && (position % align !== 0 || length % align !== 0)) {
          throw new ChronoError('IO', `unaligned direct write ${position}+${length}: ${path}`, { path, errno: 'EINVAL' });
        }
        this.tick('write', path);
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
        this.tick('sync', path);
        file.durable = Buffer.from(file.data.subarray(0, file.size));
      },
      size: () => file.size,
      truncate: (length) => {
        this.tick('truncate', path);
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
      // The fsync's effect is counted (and may be cut) when it completes, not when it is asked.
      syncAsync: () => this.hold(path, 'file', () => handle.sync()),
      readAsync: (buf, bufOffset, length, position) => Promise.resolve().then(() => handle.read(buf, bufOffset, length, position)),
    };
    if (align) handle.directWrites = { alignBytes: align, alloc: (n) => Buffer.alloc(n) };
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
  /** Directories themselves are not subject to power loss here (they are made once, at setup). */
  mkdirp(dir: string): void {
    for (let d = dir; d !== '/' && d !== '.' && !this.dirs.has(d); d = dirname(d)) this.dirs.add(d);
  }
  remove(path: string): void {
    this.tick('remove', path);
    this.files.delete(path);
  }
  async removeAsync(path: string): Promise<void> {
    this.remove(path);
  }
  /** A second name for the same file: both see every byte (a power cut copies each survivor). */
  link(existing: string, newPath: string): void {
    const f = this.files.get(existing);
    if (!f) throw enoent(existing);
    if (this.files.has(newPath)) throw new ChronoError('IO', `exists: ${newPath}`, { path: newPath, errno: 'EEXIST' });
    this.tick('link', newPath);
    this.files.set(newPath, f);
  }
  sameFile(a: string, b: string): boolean {
    const f = this.files.get(a);
    return f !== undefined && f === this.files.get(b);
  }
  rename(from: string, to: string): void {
    const f = this.files.get(from);
    if (!f) throw enoent(from);
    this.tick('rename', from);
    this.files.delete(from);
    this.files.set(to, f);
  }
  syncDirAsync(dir: string): Promise<void> {
    return this.hold(dir, 'dir', () => this.syncDir(dir));
  }
  syncDir(dir: string): void {
    this.tick('syncDir', dir);
    const entries = new Map<string, MemFile>();
    for (const [p, f] of this.files) if (dirname(p) === dir) entries.set(p, f);
    this.durableEntries.set(dir, entries);
  }

  /** Simulates power loss in place (see PowerCutOptions for what survives). */
  crash(opts: PowerCutOptions = {}): void {
    const after = this.afterPowerCut(opts);
    this.files = after.files;
    this.durableEntries = after.durableEntries;
  }

  /**
   * Power loss for a process that is still running: the machine after the cut, as a new file
   * system, while this one stays as the dead process left it. Background work of the old
   * process (a checkpoint still in flight, say) then lands here and not on the rebooted disk.
   * Only fsync'd bytes in directory entries that were fsync'd remain, plus what `reorder` keeps.
   */
  afterPowerCut(opts: PowerCutOptions = {}): MemoryFileSystem {
    const survivors = new Map<string, MemFile>();
    const after = (f: MemFile): MemFile => {
      const data = opts.reorder ? writtenBack(f, opts.reorder) : Buffer.from(f.durable);
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
    const next = new MemoryFileSystem(this.options);
    next.files = survivors;
    next.dirs = new Set(this.dirs);
    // What survived is, by definition, durable in its directory.
    for (const dir of new Set([...survivors.keys()].map(dirname))) next.syncDir(dir);
    next.calls = 0;
    return next;
  }
}

const PAGE_BYTES = 4096;
const SECTOR_BYTES = 512;

/** The file after a power cut with write-back in any order (see PowerCutOptions). */
function writtenBack(f: MemFile, random: () => number): Buffer {
  let base = f.durable;
  // An unsynced truncation (closing a segment cuts its padding) may or may not have happened.
  if (f.size < base.length && random() < 0.5) base = base.subarray(0, f.size);
  const out = Buffer.alloc(Math.max(base.length, f.size));
  base.copy(out);
  // Sectors rewritten since the last fsync: old or new, each on its own.
  const common = Math.min(base.length, f.size);
  for (let s = 0; s < common; s += SECTOR_BYTES) {
    const e = Math.min(common, s + SECTOR_BYTES);
    if (f.data.compare(base, s, e, s, e) !== 0 && random() < 0.5) f.data.copy(out, s, s, e);
  }
  // Pages appended past the synced end: each whole or not at all.
  let end = base.length;
  for (let at = base.length; at < f.size; at = (Math.floor(at / PAGE_BYTES) + 1) * PAGE_BYTES) {
    const pageEnd = Math.min(f.size, (Math.floor(at / PAGE_BYTES) + 1) * PAGE_BYTES);
    if (random() < 0.5) {
      f.data.copy(out, at, at, pageEnd);
      end = pageEnd;
    }
  }
  return out.subarray(0, end);
}
