import { ChronoError } from '../errors';
import { FileHandle, FileSystem, OpenMode } from './file-system';

export type FsOp = 'read' | 'readDirect' | 'write' | 'sync' | 'open' | 'rename' | 'remove' | 'syncDir';

/**
 * Wraps a file system and fails chosen operations with EIO: `failWhen` decides per call, so a
 * test can fail the Nth write, every sync of one file, or everything after a moment.
 */
export class FaultyFileSystem implements FileSystem {
  failWhen: (op: FsOp, path: string) => boolean = () => false;
  /** readNoWait finds nothing cached: every such read must be finished another way. */
  coldCache = false;
  readonly counts: Record<FsOp, number> = { read: 0, readDirect: 0, write: 0, sync: 0, open: 0, rename: 0, remove: 0, syncDir: 0 };

  constructor(private readonly inner: FileSystem) {}

  private check(op: FsOp, path: string): void {
    this.counts[op]++;
    if (this.failWhen(op, path)) throw new ChronoError('IO', `injected EIO on ${op} ${path}`, { op, path, errno: 'EIO' });
  }

  open(path: string, mode: OpenMode): FileHandle {
    this.check('open', path);
    const h = this.inner.open(path, mode);
    let closed = false;
    return {
      read: (b, o, l, p) => (this.check('read', path), h.read(b, o, l, p)),
      write: (b, o, l, p) => (this.check('write', path), h.write(b, o, l, p)),
      sync: () => (this.check('sync', path), h.sync()),
      size: () => h.size(),
      truncate: (l) => h.truncate(l),
      // A second close is a bug that real file systems can hide: the number may belong to
      // another file by then. Refuse it loudly here.
      close: () => {
        if (closed) throw new ChronoError('IO', `handle closed twice: ${path}`, { path, errno: 'EBADF' });
        closed = true;
        h.close();
      },
      writeAsync: async (b, o, l, p) => (this.check('write', path), h.writeAsync(b, o, l, p)),
      syncAsync: async () => (this.check('sync', path), h.syncAsync()),
      readAsync: async (b, o, l, p) => (this.check('read', path), h.readAsync(b, o, l, p)),
      readNoWait: (b, o, l, p) => (this.check('read', path), this.coldCache ? 0 : h.readNoWait ? h.readNoWait(b, o, l, p) : h.read(b, o, l, p)),
      prefetch: h.prefetch && ((p, l) => h.prefetch!(p, l)),
      hold: h.hold && (() => h.hold!()),
      startWriteback: h.startWriteback && ((p, l) => h.startWriteback!(p, l)),
      // Writes go to the inner handle, so its alignment rules hold here too.
      directWrites: h.directWrites,
      directReads: h.directReads && {
        alignBytes: h.directReads.alignBytes,
        alloc: (n) => h.directReads!.alloc(n),
        // An injected failure rejects the read's promise, as an EIO from the disk would.
        read: (b, l, p) => {
          try {
            this.check('readDirect', path);
          } catch (err) {
            return Promise.reject(err);
          }
          const started = h.directReads!.read(b, l, p);
          if (!started) this.counts.readDirect--; // refused (no O_DIRECT here): not a read
          return started;
        },
      },
    };
  }
  exists(path: string): boolean {
    return this.inner.exists(path);
  }
  readFile(path: string): Buffer {
    this.check('read', path);
    return this.inner.readFile(path);
  }
  async readFileAsync(path: string, o?: { direct?: boolean }): Promise<Buffer> {
    this.check('read', path);
    return this.inner.readFileAsync(path, o);
  }
  list(dir: string): string[] {
    return this.inner.list(dir);
  }
  mkdirp(dir: string): void {
    this.inner.mkdirp(dir);
  }
  remove(path: string): void {
    this.check('remove', path);
    this.inner.remove(path);
  }
  async removeAsync(path: string): Promise<void> {
    this.check('remove', path);
    return this.inner.removeAsync(path);
  }
  rename(from: string, to: string): void {
    this.check('rename', from);
    this.inner.rename(from, to);
  }
  syncDir(dir: string): void {
    this.check('syncDir', dir);
    this.inner.syncDir(dir);
  }
  async syncDirAsync(dir: string): Promise<void> {
    this.check('syncDir', dir);
    return this.inner.syncDirAsync(dir);
  }
}
