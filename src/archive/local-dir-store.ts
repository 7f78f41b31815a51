import * as path from 'node:path';
import { ChronoError, isChronoError } from '../errors';
import { writeFileDurableAsync } from '../storage/durable-file';
import { FileSystem } from '../storage/file-system';
import { NodeFileSystem } from '../storage/node-file-system';
import { BackingStore, PutData, putLength } from './backing-store';

/** A backing store in a local directory; keys map to relative paths. Durable puts. */
/** Objects this large are written and read whole with O_DIRECT (segments are; the superblock is not). */
const DIRECT_MIN_BYTES = 1024 * 1024;

/** link(2) failures that mean "copy instead", not an I/O error. */
const CANNOT_LINK = new Set(['EXDEV', 'EPERM', 'EMLINK', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS']);

export class LocalDirStore implements BackingStore {
  readonly description: string;
  constructor(private readonly root: string, private readonly fs: FileSystem = new NodeFileSystem()) {
    this.description = `dir:${root}`;
  }

  private pathOf(key: string): string {
    if (key.includes('..') || key.startsWith('/')) throw new ChronoError('BAD_ARGUMENT', `bad archive key: ${key}`);
    return path.join(this.root, key);
  }

  private reachable(): void {
    if (!this.fs.exists(this.root)) {
      throw new ChronoError('ARCHIVE_UNAVAILABLE', `archive directory ${this.root} is not reachable`, { root: this.root });
    }
  }

  async put(key: string, data: PutData): Promise<void> {
    this.reachable();
    const p = this.pathOf(key);
    this.fs.mkdirp(path.dirname(p));
    // On the threadpool: a 64 MiB object's write and fsync would stall every request for 0.2 s.
    // Direct: buffered, its fsync ran at about a third of the disk's direct write speed here.
    await writeFileDurableAsync(this.fs, p, data, { direct: putLength(data) >= DIRECT_MIN_BYTES });
  }

  async getRange(key: string, offset: number, length: number): Promise<Buffer> {
    this.reachable();
    const p = this.pathOf(key);
    let h;
    try {
      h = this.fs.open(p, 'read');
    } catch (err) {
      if (isChronoError(err, 'IO') && err.details.errno === 'ENOENT') {
        throw new ChronoError('ARCHIVE_MISSING', `archive object missing: ${key}`, { key });
      }
      throw err;
    }
    try {
      // On the threadpool: an archive fetch overlaps whatever the event loop serves meanwhile.
      const buf = Buffer.allocUnsafe(length);
      const n = await h.readAsync(buf, 0, length, offset);
      if (n !== length) throw new ChronoError('ARCHIVE_MISSING', `archive object ${key} is shorter than expected`, { key, offset, length });
      return buf;
    } finally {
      h.close();
    }
  }

  async get(key: string): Promise<Buffer> {
    const size = await this.size(key);
    if (size === undefined) throw new ChronoError('ARCHIVE_MISSING', `archive object missing: ${key}`, { key });
    if (size < DIRECT_MIN_BYTES) return this.getRange(key, 0, size);
    // Whole objects are read once (the read-back after an upload, recovery): directly, so the
    // check is of what the disk holds and the disk streams (120-150 ms for 64 MiB through the
    // page cache here, about 60 direct).
    const data = await this.fs.readFileAsync(this.pathOf(key), { direct: true });
    if (data.length !== size) throw new ChronoError('ARCHIVE_MISMATCH', `archive object ${key} changed size while read: ${data.length} of ${size} bytes`, { key });
    return data;
  }

  async size(key: string): Promise<number | undefined> {
    this.reachable();
    const p = this.pathOf(key);
    if (!this.fs.exists(p)) return undefined;
    const h = this.fs.open(p, 'read');
    try {
      return h.size();
    } finally {
      h.close();
    }
  }

  async list(prefix: string): Promise<string[]> {
    this.reachable();
    const dir = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/') + 1) : '';
    return this.fs
      .list(path.join(this.root, dir))
      .filter((n) => !n.endsWith('.tmp'))
      .map((n) => dir + n)
      .filter((k) => k.startsWith(prefix))
      .sort();
  }

  async linkFrom(key: string, file: string): Promise<boolean> {
    this.reachable();
    if (!this.fs.link) return false;
    const p = this.pathOf(key);
    const dir = path.dirname(p);
    this.fs.mkdirp(dir);
    // An earlier attempt for the same key (a crash before the head named it): the same segment.
    if (this.fs.exists(p)) this.fs.remove(p);
    try {
      this.fs.link(file, p);
    } catch (err) {
      if (isChronoError(err, 'IO') && CANNOT_LINK.has(String(err.details.errno))) return false;
      throw err;
    }
    await this.fs.syncDirAsync(dir); // the name is durable before the head may count it
    // Verified by identity: the archive's name is the very file (its bytes are checked by their
    // CRCs on every read, and by verify); anything else is a mismatch, never a silent copy.
    if (this.fs.sameFile && !this.fs.sameFile(p, file)) throw new ChronoError('ARCHIVE_MISMATCH', `archive object ${key} is not the file linked to it`, { key });
    return true;
  }

  async delete(key: string): Promise<void> {
    this.reachable();
    // On the threadpool: unlinking an object frees its blocks, about 1.5 ms of the event loop's
    // time each on a busy disk (a prune deletes hundreds while reads and writes go on).
    await this.fs.removeAsync(this.pathOf(key));
  }
}
