import * as nfs from 'node:fs';
import * as path from 'node:path';
import { ARCHIVE_CACHE, ArchiveCacheKind } from '../format/constants';
import { crc32c } from '../format/crc';
import { DEFAULTS } from '../options';

export type CacheKind = (typeof ArchiveCacheKind)[keyof typeof ArchiveCacheKind];

/** Why a cache file was not served (docs/FORMAT.md "Archive read cache"): one reason per check. */
export type CacheRejection = 'short' | 'magic' | 'version' | 'headerLength' | 'crc' | 'name' | 'length' | 'payloadCrc';

export interface DiskCacheStats {
  hits: number;
  misses: number;
  /** Files that failed a check: deleted, counted as misses too. */
  rejected: number;
  evicted: number;
}

/**
 * The bounded on-disk read cache of archived data: fetched chunks and offset tables of archived
 * segments, one private file each under `<dir>/archive-cache/`, evicted least recently used first
 * by total file size, kept across restarts (the order by file mtime, touched on each hit). Never
 * trusted: every file is checked (magic, version, length, checksums, and that it is the entry its
 * name says) before use, and one that fails is a miss. Files appear by rename, so a reader sees a
 * whole file or none; a crash can still leave a short one, which the checks catch.
 */
export class ArchiveDiskCache {
  /** File name -> file bytes, least recently used first (Map keeps insertion order). */
  private readonly entries = new Map<string, number>();
  private totalBytes = 0;
  private tmpSerial = 0;
  private readonly writing = new Set<Promise<void>>();
  readonly stats: DiskCacheStats = { hits: 0, misses: 0, rejected: 0, evicted: 0 };

  private constructor(readonly dir: string, private readonly volumeId: Buffer, readonly limitBytes: number, private readonly modes: { dirMode: number; fileMode: number }) {}

  /** Opens (creating it) the cache in `volumeDir`; undefined when `limitBytes` is 0 (off). */
  static open(volumeDir: string, volumeId: Buffer, limitBytes: number, modes: { dirMode: number; fileMode: number } = { dirMode: DEFAULTS.privateDirMode, fileMode: DEFAULTS.privateFileMode }): ArchiveDiskCache | undefined {
    if (limitBytes <= 0) return undefined;
    const c = new ArchiveDiskCache(path.join(volumeDir, ARCHIVE_CACHE.dirName), volumeId, limitBytes, modes);
    nfs.mkdirSync(c.dir, { recursive: true, mode: modes.dirMode });
    const found: { name: string; size: number; mtimeMs: number }[] = [];
    for (const name of nfs.readdirSync(c.dir)) {
      const file = path.join(c.dir, name);
      // Temp files are writes a crash cut short; anything else is not ours to keep either.
      if (!name.endsWith(ARCHIVE_CACHE.fileSuffix)) { nfs.rmSync(file, { force: true }); continue; }
      const st = nfs.statSync(file, { throwIfNoEntry: false });
      if (st?.isFile()) found.push({ name, size: st.size, mtimeMs: st.mtimeMs });
    }
    found.sort((a, b) => a.mtimeMs - b.mtimeMs);
    for (const f of found) c.add(f.name, f.size);
    c.evictTo(c.limitBytes); // a smaller --archive-cache than last time
    return c;
  }

  get sizeBytes(): number {
    return this.totalBytes;
  }

  has(kind: CacheKind, segmentId: number, offset: number): boolean {
    return this.entries.has(fileName(kind, segmentId, offset));
  }

  /** The cached payload, or undefined (absent, or a file that failed its checks: then deleted). */
  async get(kind: CacheKind, segmentId: number, offset: number, expectBytes?: number): Promise<Buffer | undefined> {
    const name = fileName(kind, segmentId, offset);
    if (!this.entries.has(name)) return this.miss();
    let bytes: Buffer;
    try {
      bytes = await nfs.promises.readFile(path.join(this.dir, name));
    } catch {
      this.drop(name);
      return this.miss();
    }
    const payload = checkCacheFile(bytes, { kind, segmentId, offset, volumeId: this.volumeId, expectBytes });
    if (typeof payload === 'string') {
      this.stats.rejected++;
      this.drop(name);
      return this.miss();
    }
    this.stats.hits++;
    this.add(name, bytes.length); // most recently used now
    const now = new Date();
    nfs.promises.utimes(path.join(this.dir, name), now, now).catch(() => undefined);
    return payload;
  }

  /** Stores a payload (best effort: a cache that cannot write is just a smaller cache). */
  put(kind: CacheKind, segmentId: number, offset: number, payload: Buffer): Promise<void> {
    const p = this.write(kind, segmentId, offset, payload);
    this.writing.add(p);
    void p.finally(() => this.writing.delete(p));
    return p;
  }

  /** Drops one file whose payload the caller found unusable (a table failing its checks). */
  discard(kind: CacheKind, segmentId: number, offset: number): void {
    this.stats.rejected++;
    this.drop(fileName(kind, segmentId, offset));
  }

  /** Drops every file of a segment (its table and chunks), puts in flight included: after a failed check of its data. */
  async discardSegment(segmentId: number): Promise<void> {
    await this.settled();
    const mark = `-${segmentId.toString(16).padStart(8, '0')}-`;
    for (const name of [...this.entries.keys()]) if (name.includes(mark)) this.drop(name);
  }

  /** Resolves once every put begun so far is on disk (or given up): close waits for it. */
  async settled(): Promise<void> {
    while (this.writing.size) await Promise.all([...this.writing]);
  }

  private async write(kind: CacheKind, segmentId: number, offset: number, payload: Buffer): Promise<void> {
    const name = fileName(kind, segmentId, offset);
    const fileBytes = ARCHIVE_CACHE.lengthBytes + payload.length;
    if (fileBytes > this.limitBytes || this.entries.has(name)) return;
    this.evictTo(this.limitBytes - fileBytes);
    // Counted before the write so concurrent puts respect the bound together.
    this.add(name, fileBytes);
    const tmp = path.join(this.dir, `.${name}.${process.pid}.${this.tmpSerial++}.tmp`);
    try {
      const header = encodeCacheHeader(kind, this.volumeId, segmentId, offset, payload);
      await nfs.promises.writeFile(tmp, Buffer.concat([header, payload]), { mode: this.modes.fileMode });
      await nfs.promises.rename(tmp, path.join(this.dir, name));
    } catch {
      await nfs.promises.rm(tmp, { force: true }).catch(() => undefined);
      this.drop(name);
    }
  }

  private miss(): undefined {
    this.stats.misses++;
    return undefined;
  }

  private add(name: string, size: number): void {
    const old = this.entries.get(name);
    if (old !== undefined) { this.entries.delete(name); this.totalBytes -= old; }
    this.entries.set(name, size);
    this.totalBytes += size;
  }

  private drop(name: string): void {
    const size = this.entries.get(name);
    if (size === undefined) return;
    this.entries.delete(name);
    this.totalBytes -= size;
    nfs.rmSync(path.join(this.dir, name), { force: true });
  }

  private evictTo(bytes: number): void {
    for (const name of this.entries.keys()) {
      if (this.totalBytes <= bytes) break;
      this.drop(name);
      this.stats.evicted++;
    }
  }
}

export function fileName(kind: CacheKind, segmentId: number, offset: number): string {
  const what = kind === ArchiveCacheKind.TABLE ? 'table' : 'chunk';
  return `${what}-${segmentId.toString(16).padStart(8, '0')}-${offset.toString(16).padStart(12, '0')}${ARCHIVE_CACHE.fileSuffix}`;
}

export function encodeCacheHeader(kind: CacheKind, volumeId: Buffer, segmentId: number, offset: number, payload: Buffer): Buffer {
  const o = ARCHIVE_CACHE.off;
  const h = Buffer.alloc(ARCHIVE_CACHE.lengthBytes);
  ARCHIVE_CACHE.magic.copy(h, o.magic);
  h.writeUInt16LE(1, o.version);
  h.writeUInt16LE(ARCHIVE_CACHE.lengthBytes, o.headerLength);
  h.writeUInt16LE(kind, o.kind);
  volumeId.copy(h, o.volumeId, 0, 16);
  h.writeBigUInt64LE(BigInt(segmentId), o.segmentId);
  h.writeBigUInt64LE(BigInt(offset), o.offset);
  h.writeUInt32LE(payload.length, o.payloadLength);
  h.writeUInt32LE(crc32c(payload), o.payloadCrc);
  h.writeUInt32LE(crc32c(h.subarray(0, o.crc)), o.crc);
  return h;
}

/** The payload of a whole, right cache file, or why it is not one (magic → version → length → checksums). */
export function checkCacheFile(b: Buffer, want: { kind: CacheKind; segmentId: number; offset: number; volumeId: Buffer; expectBytes?: number }): Buffer | CacheRejection {
  const o = ARCHIVE_CACHE.off;
  if (b.length < ARCHIVE_CACHE.lengthBytes) return 'short';
  if (!b.subarray(o.magic, o.magic + ARCHIVE_CACHE.magic.length).equals(ARCHIVE_CACHE.magic)) return 'magic';
  if (b.readUInt16LE(o.version) !== 1) return 'version';
  if (b.readUInt16LE(o.headerLength) !== ARCHIVE_CACHE.lengthBytes) return 'headerLength';
  if (crc32c(b.subarray(0, o.crc)) !== b.readUInt32LE(o.crc)) return 'crc';
  if (b.readUInt16LE(o.kind) !== want.kind || !b.subarray(o.volumeId, o.volumeId + 16).equals(want.volumeId.subarray(0, 16))
    || b.readBigUInt64LE(o.segmentId) !== BigInt(want.segmentId) || b.readBigUInt64LE(o.offset) !== BigInt(want.offset)) return 'name';
  const payloadLength = b.readUInt32LE(o.payloadLength);
  if (b.length - ARCHIVE_CACHE.lengthBytes !== payloadLength || (want.expectBytes !== undefined && payloadLength !== want.expectBytes)) return 'length';
  const payload = b.subarray(ARCHIVE_CACHE.lengthBytes);
  if (crc32c(payload) !== b.readUInt32LE(o.payloadCrc)) return 'payloadCrc';
  return payload;
}
