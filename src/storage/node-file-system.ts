import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { ioError } from '../errors';
import { DEFAULTS } from '../options';
import { nativeAddon, nativeEnabled } from '../util/native-addon';
import { DirectReads, FileHandle, FileSystem, OpenMode } from './file-system';

class NodeFileHandle implements FileHandle {
  /** Reads go through the page cache: a direct-write handle reads through a second descriptor. */
  private readonly readFd: number;
  readonly directWrites?: { alignBytes: number; alloc(sizeBytes: number): Buffer };

  readonly directReads?: DirectReads;
  /** A third descriptor, opened with O_DIRECT on the first direct read; -1 if the OS refused it. */
  private directReadFd?: number;

  constructor(private readonly fd: number, private readonly path: string, direct?: { readFd: number }) {
    this.readFd = direct?.readFd ?? fd;
    const alloc = (n: number) => alignedBuffer!(Math.ceil(n / DIRECT_ALIGN_BYTES) * DIRECT_ALIGN_BYTES, n >= HUGE_PAGE_BYTES ? HUGE_PAGE_BYTES : DIRECT_ALIGN_BYTES);
    if (direct) this.directWrites = { alignBytes: DIRECT_ALIGN_BYTES, alloc };
    if (alignedBuffer && process.env.CHRONOVOL_DIRECT_IO !== '0') this.directReads = { alignBytes: DIRECT_ALIGN_BYTES, alloc, read: (b, l, p) => this.readDirect(b, l, p) };
  }
  read(buf: Buffer, bufOffset: number, length: number, position: number): number {
    let done = 0;
    try {
      while (done < length) {
        const n = fs.readSync(this.readFd, buf, bufOffset + done, length - done, position + done);
        if (n === 0) break;
        done += n;
      }
    } catch (err) {
      throw ioError('read', this.path, err);
    }
    return done;
  }
  write(buf: Buffer, bufOffset: number, length: number, position: number): void {
    let done = 0;
    try {
      while (done < length) done += fs.writeSync(this.fd, buf, bufOffset + done, length - done, position + done);
    } catch (err) {
      throw ioError('write', this.path, err);
    }
  }
  sync(): void {
    try {
      fs.fdatasyncSync(this.fd);
    } catch (err) {
      throw ioError('fdatasync', this.path, err);
    }
  }
  writeAsync(buf: Buffer, bufOffset: number, length: number, position: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const step = (done: number) => {
        if (done === length) return resolve();
        fs.write(this.fd, buf, bufOffset + done, length - done, position + done, (err, n) => (err ? reject(ioError('write', this.path, err)) : step(done + n)));
      };
      step(0);
    });
  }
  readNoWait(buf: Buffer, bufOffset: number, length: number, position: number): number {
    if (!preadNoWait || noWaitUnsupported) return this.read(buf, bufOffset, length, position);
    const n = preadNoWait(this.readFd, buf, bufOffset, length, position);
    if (n >= 0) return n;
    if (n === -EOPNOTSUPP || n === -EINVAL) {
      noWaitUnsupported = true; // an old kernel, or a file system without RWF_NOWAIT: wait, as before
      return this.read(buf, bufOffset, length, position);
    }
    throw ioError('read', this.path, Object.assign(new Error(`read failed (errno ${-n})`), { code: `errno ${-n}` }));
  }
  readAsync(buf: Buffer, bufOffset: number, length: number, position: number): Promise<number> {
    // Its descriptors already closed: the numbers may belong to other files by now.
    if (this.fdsClosed) return Promise.reject(ioError('read', this.path, Object.assign(new Error('the file handle is closed'), { code: 'EBADF' })));
    // Counted as background work: a close meanwhile keeps the descriptor open until it ends, so
    // a recycled segment's number cannot be reused under this read.
    this.background++;
    return this.readAsyncSteps(this.readFd, buf, bufOffset, length, position).finally(this.backgroundDone);
  }
  /** Reads on the threadpool until `length` bytes or the end of the file (direct reads end short only there). */
  private readAsyncSteps(fd: number, buf: Buffer, bufOffset: number, length: number, position: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const step = (done: number) => {
        if (done === length) return resolve(done);
        fs.read(fd, buf, bufOffset + done, length - done, position + done, (err, n) => (err ? reject(ioError('read', this.path, err)) : n === 0 ? resolve(done) : step(done + n)));
      };
      step(0);
    });
  }
  hold(): () => void {
    if (this.fdsClosed) throw ioError('read', this.path, Object.assign(new Error('the file handle is closed'), { code: 'EBADF' }));
    this.background++;
    let done = false;
    return () => {
      if (!done) (done = true), this.backgroundDone();
    };
  }
  private readDirect(buf: Buffer, length: number, position: number): Promise<number> | undefined {
    if (this.closed) return undefined;
    if (this.directReadFd === undefined) {
      try {
        this.directReadFd = fs.openSync(this.path, fs.constants.O_RDONLY | fs.constants.O_DIRECT);
      } catch {
        this.directReadFd = -1; // tmpfs and the like: the caller prefetches through the cache
      }
    }
    if (this.directReadFd < 0) return undefined;
    this.background++;
    return this.readAsyncSteps(this.directReadFd, buf, 0, length, position).finally(this.backgroundDone);
  }
  syncAsync(): Promise<void> {
    return new Promise((resolve, reject) => fs.fdatasync(this.fd, (err) => (err ? reject(ioError('fdatasync', this.path, err)) : resolve())));
  }
  size(): number {
    return fs.fstatSync(this.fd).size;
  }
  truncate(length: number): void {
    try {
      fs.ftruncateSync(this.fd, length);
    } catch (err) {
      throw ioError('truncate', this.path, err);
    }
  }
  close(): void {
    // Idempotent: a second close could otherwise close an unrelated file that reused the number.
    if (this.closed) return;
    this.closed = true;
    if (this.background === 0) this.closeFds();
  }
  startWriteback = writeBack
    ? (position: number, length: number): void => {
      if (this.closed) return;
      this.background++;
      writeBack(this.fd, position, length, this.backgroundDone);
    }
    : undefined;
  private closed = false;
  /** Read-ahead and write-back hints still running on the threadpool: the descriptor stays open. */
  private background = 0;
  private readonly backgroundDone = () => {
    if (--this.background === 0 && this.closed) this.closeFds();
  };
  /** Set once the descriptors are closed: nothing may use their numbers after that. */
  private fdsClosed = false;
  private closeFds(): void {
    this.fdsClosed = true;
    fs.closeSync(this.fd);
    if (this.readFd !== this.fd) fs.closeSync(this.readFd);
    if (this.directReadFd !== undefined && this.directReadFd >= 0) fs.closeSync(this.directReadFd);
  }
  private static sink = Buffer.allocUnsafe(4 * 1024 * 1024);
  prefetch(position: number, length: number): void {
    if (this.closed) return;
    if (willNeed) {
      this.background++;
      return willNeed(this.readFd, position, length, this.backgroundDone);
    }
    // Async reads on the threadpool pull the range into the page cache; the bytes are dropped.
    const sink = NodeFileHandle.sink;
    for (let at = position; at < position + length; at += sink.length) {
      this.background++;
      fs.read(this.readFd, sink, 0, Math.min(sink.length, position + length - at), at, this.backgroundDone);
    }
  }
}

const willNeed = nativeEnabled ? nativeAddon.willNeed : undefined;
const preadNoWait = nativeEnabled ? nativeAddon.preadNoWait : undefined;
let noWaitUnsupported = false;
const EOPNOTSUPP = 95;
const EINVAL = 22;
const writeBack = nativeEnabled ? nativeAddon.writeBack : undefined;

const alignedBuffer = nativeEnabled ? nativeAddon.alignedBuffer : undefined;
/** Alignment of direct writes: a page, which every device's logical block size divides. */
const DIRECT_ALIGN_BYTES = 4096;
/**
 * Direct-I/O buffers this large or larger are aligned to a huge page, which the addon asks the
 * kernel to back with huge pages: a device takes a bounded number of memory segments per request,
 * so over 4 KiB pages a 4 MiB direct read went out as ~560 KiB requests (1.2-1.6 GB/s here) and
 * over huge pages as ~3 MiB ones (2.8-3.2 GB/s, same disk, same minute).
 */
const HUGE_PAGE_BYTES = 2 * 1024 * 1024;

const FLAGS: Record<OpenMode, string> = { read: 'r', readWrite: 'r+', createNew: 'wx+', createNewDirect: 'wx+' };

/**
 * A whole file read with O_DIRECT into an aligned buffer (one read request: the kernel splits it
 * and keeps the pieces in flight); undefined where O_DIRECT is refused or the addon is missing.
 */
async function readFileDirect(path: string): Promise<Buffer | undefined> {
  if (!alignedBuffer || process.env.CHRONOVOL_DIRECT_IO === '0') return undefined;
  let h: fs.promises.FileHandle;
  try {
    h = await fs.promises.open(path, fs.constants.O_RDONLY | fs.constants.O_DIRECT);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EINVAL') return undefined;
    throw err;
  }
  try {
    const size = (await h.stat()).size;
    const buf = alignedBuffer(Math.max(DIRECT_ALIGN_BYTES, Math.ceil(size / DIRECT_ALIGN_BYTES) * DIRECT_ALIGN_BYTES), DIRECT_ALIGN_BYTES);
    let done = 0;
    while (done < size) {
      // Direct reads end short only at the end of the file, so `done` stays aligned.
      const { bytesRead } = await h.read(buf, done, buf.length - done, done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return buf.subarray(0, done);
  } finally {
    await h.close();
  }
}

/** The modes of what this process creates: private unless group access was asked for. */
export interface CreateModes {
  dirMode: number;
  fileMode: number;
}

let groupAccess = false;

/** `--allow-group-access`: files and directories created from now on are 0640/0750. */
export function setGroupAccess(allowed: boolean): void {
  groupAccess = allowed;
}

export function createModes(allowGroup = groupAccess): CreateModes {
  return allowGroup ? { dirMode: DEFAULTS.groupDirMode, fileMode: DEFAULTS.groupFileMode } : { dirMode: DEFAULTS.privateDirMode, fileMode: DEFAULTS.privateFileMode };
}

export class NodeFileSystem implements FileSystem {
  constructor(readonly modes: CreateModes = createModes()) {}

  open(path: string, mode: OpenMode): FileHandle {
    try {
      if (mode === 'createNewDirect' && alignedBuffer && process.env.CHRONOVOL_DIRECT_IO !== '0') {
        const direct = this.openDirect(path);
        if (direct) return direct;
      }
      const fd = fs.openSync(path, FLAGS[mode], this.modes.fileMode);
      if (mode !== 'read' && mode !== 'readWrite') this.setMode(fd);
      return new NodeFileHandle(fd, path);
    } catch (err) {
      throw ioError('open', path, err);
    }
  }
  /** The umask only takes bits away: fchmod makes a new file's mode exactly ours. */
  private setMode(fd: number): void {
    try {
      fs.fchmodSync(fd, this.modes.fileMode);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }
  /** O_DIRECT where the file system takes it (not tmpfs, for one); undefined otherwise. */
  private openDirect(path: string): NodeFileHandle | undefined {
    const c = fs.constants;
    let fd: number;
    try {
      fd = fs.openSync(path, c.O_RDWR | c.O_CREAT | c.O_EXCL | c.O_DIRECT, this.modes.fileMode);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
      // Some file systems (tmpfs) create the file before they refuse O_DIRECT: remove it again.
      if (fs.existsSync(path) && fs.statSync(path).size === 0) fs.unlinkSync(path);
      return undefined;
    }
    this.setMode(fd);
    try {
      return new NodeFileHandle(fd, path, { readFd: fs.openSync(path, 'r') });
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }
  exists(path: string): boolean {
    return fs.existsSync(path);
  }
  readFile(path: string): Buffer {
    try {
      return fs.readFileSync(path);
    } catch (err) {
      throw ioError('read', path, err);
    }
  }
  async readFileAsync(path: string, o: { direct?: boolean } = {}): Promise<Buffer> {
    try {
      return (o.direct && (await readFileDirect(path))) || (await fs.promises.readFile(path));
    } catch (err) {
      throw ioError('read', path, err);
    }
  }
  list(dir: string): string[] {
    try {
      return fs.readdirSync(dir).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw ioError('readdir', dir, err);
    }
  }
  mkdirp(dir: string): void {
    try {
      const first = fs.mkdirSync(dir, { recursive: true, mode: this.modes.dirMode });
      if (first === undefined) return; // it was there already: its mode is its owner's choice
      // Every directory this call created, from the first down to `dir`, exactly our mode.
      for (let d = nodePath.resolve(dir); ; d = nodePath.dirname(d)) {
        fs.chmodSync(d, this.modes.dirMode);
        if (d === nodePath.resolve(first) || d === nodePath.dirname(d)) break;
      }
    } catch (err) {
      throw ioError('mkdir', dir, err);
    }
  }
  remove(path: string): void {
    try {
      fs.rmSync(path, { force: true });
    } catch (err) {
      throw ioError('unlink', path, err);
    }
  }
  async removeAsync(path: string): Promise<void> {
    try {
      await fs.promises.rm(path, { force: true });
    } catch (err) {
      throw ioError('unlink', path, err);
    }
  }
  link(existing: string, newPath: string): void {
    try {
      fs.linkSync(existing, newPath);
    } catch (err) {
      throw ioError('link', newPath, err);
    }
  }
  sameFile(a: string, b: string): boolean {
    try {
      const x = fs.statSync(a, { bigint: true });
      const y = fs.statSync(b, { bigint: true });
      return x.dev === y.dev && x.ino === y.ino;
    } catch {
      return false;
    }
  }
  rename(from: string, to: string): void {
    try {
      fs.renameSync(from, to);
    } catch (err) {
      throw ioError('rename', from, err);
    }
  }
  async syncDirAsync(dir: string): Promise<void> {
    let h: fs.promises.FileHandle | undefined;
    try {
      h = await fs.promises.open(dir, 'r');
      await h.sync();
    } catch (err) {
      throw ioError('fsync', dir, err);
    } finally {
      await h?.close();
    }
  }
  syncDir(dir: string): void {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } catch (err) {
      throw ioError('fsync', dir, err);
    } finally {
      fs.closeSync(fd);
    }
  }
}
