import { DirectReads } from '../storage/file-system';

/** One aligned piece of a sealed segment, read ahead of a scan straight from the disk. */
interface Chunk {
  buf: Buffer;
  /** Bytes valid from the chunk's start (short at the file's end); -1 while the read runs. */
  length: number;
  loading?: Promise<boolean>;
  /** When it was last read from (or loaded, until read from), for eviction. */
  usedTick: number;
  /** Read from at least once: a scan has reached it. */
  reached: boolean;
}

/** Chunk keys: segment ids stay below 2^21 and a segment holds fewer than 2^20 chunks. */
const CHUNKS_PER_SEGMENT = 2 ** 20;
/** Buffers are handed back to the allocator after this long without a scan. */
const IDLE_RELEASE_MS = 30_000;

/**
 * Scan read-ahead into memory of our own. A cold scan that prefetched through the page cache
 * (posix_fadvise) cost the kernel a page-cache fill per page and a copy out of it per read
 * (RWF_NOWAIT preads), about a third more CPU than the same scan with the segments already
 * cached, on a machine with two cores to share with the reader and the FUSE threads. Here the
 * disk's DMA lands in a few fixed, aligned buffers (O_DIRECT), read once, unpacked and checked
 * from there. Segments are sealed and never change, so a chunk stays true until its segment is
 * recycled (drop); every block is still checked against its CRC as it is unpacked.
 */
export class ScanChunks {
  private readonly chunks = new Map<number, Chunk>();
  private readonly spare: Buffer[] = [];
  private buffers = 0;
  private tick = 0;
  private idleTimer?: NodeJS.Timeout;
  private lastUseMs = 0;
  /** Dropped chunks whose read is still landing in their buffer. */
  private landing = 0;

  constructor(readonly chunkBytes: number, private readonly maxChunks: number) {}

  /**
   * Starts direct reads of the chunks covering [position, position + length) of segment `id`
   * that are not held yet. False when the file cannot be read directly or no buffer is free, so
   * the caller falls back to its page-cache prefetch.
   */
  load(id: number, reads: DirectReads | undefined, position: number, length: number): boolean {
    if (!reads || this.maxChunks < 1 || this.chunkBytes % reads.alignBytes !== 0) return false;
    const [first, last] = this.span(position, length);
    for (let i = first; i <= last; i++) {
      const key = id * CHUNKS_PER_SEGMENT + i;
      const held = this.chunks.get(key);
      if (held) {
        held.usedTick = ++this.tick;
        continue;
      }
      const buf = this.takeBuffer(reads);
      if (!buf) return false;
      const pending = reads.read(buf, this.chunkBytes, i * this.chunkBytes);
      if (!pending) {
        this.buffers--; // this file takes no direct reads: its buffer goes back to the allocator
        return false;
      }
      const chunk: Chunk = { buf, length: -1, usedTick: ++this.tick, reached: false };
      chunk.loading = pending.then(
        (n) => {
          chunk.length = n;
          chunk.loading = undefined;
          return true;
        },
        () => {
          // A failed read is only a missed hint: the request reads the usual way and reports it.
          // (A chunk dropped meanwhile is handed back by drop.)
          if (this.chunks.get(key) === chunk) {
            this.chunks.delete(key);
            this.spare.push(buf);
          }
          return false;
        },
      );
      this.chunks.set(key, chunk);
    }
    this.noteUse();
    return true;
  }

  /**
   * The range's bytes if held: the chunk's buffer and offset when one chunk holds it all, else
   * gathered into `scratch`. undefined when a piece is missing or still loading.
   */
  view(id: number, position: number, length: number, scratch: Buffer): { buf: Buffer; offset: number } | undefined {
    if (!this.chunks.size) return undefined;
    const [first, last] = this.span(position, length);
    if (first === last) {
      const c = this.within(id, first, position, position + length);
      if (!c) return undefined;
      c.usedTick = ++this.tick;
      c.reached = true;
      return { buf: c.buf, offset: position - first * this.chunkBytes };
    }
    if (scratch.length < length) return undefined;
    for (let i = first; i <= last; i++) {
      const from = Math.max(position, i * this.chunkBytes);
      const to = Math.min(position + length, (i + 1) * this.chunkBytes);
      if (!this.within(id, i, from, to)) return undefined;
    }
    for (let i = first; i <= last; i++) {
      const c = this.chunks.get(id * CHUNKS_PER_SEGMENT + i)!;
      const from = Math.max(position, i * this.chunkBytes);
      const to = Math.min(position + length, (i + 1) * this.chunkBytes);
      c.buf.copy(scratch, from - position, from - i * this.chunkBytes, to - i * this.chunkBytes);
      c.usedTick = ++this.tick;
      c.reached = true;
    }
    return { buf: scratch, offset: 0 };
  }

  /** Resolves once no chunk covering the range is loading; undefined if none is. */
  loading(id: number, position: number, length: number): Promise<unknown> | undefined {
    if (!this.chunks.size) return undefined;
    const [first, last] = this.span(position, length);
    const waits: Promise<boolean>[] = [];
    for (let i = first; i <= last; i++) {
      const c = this.chunks.get(id * CHUNKS_PER_SEGMENT + i);
      if (c?.loading) waits.push(c.loading);
    }
    return waits.length ? Promise.all(waits) : undefined;
  }

  /** Forgets a recycled segment's chunks (their buffers return once any read into them ends). */
  drop(id: number): void {
    for (const [key, c] of this.chunks) {
      if (Math.floor(key / CHUNKS_PER_SEGMENT) !== id) continue;
      this.chunks.delete(key);
      this.giveBack(c);
    }
  }

  /** Forgets every chunk and buffer (the segment set is closing); reads still landing finish unheeded. */
  close(): void {
    if (this.idleTimer) clearInterval(this.idleTimer);
    this.idleTimer = undefined;
    this.chunks.clear();
    this.spare.length = 0;
    this.buffers = 0;
  }

  /** Buffers in use or kept (each chunkBytes long). */
  get bufferCount(): number {
    return this.buffers;
  }

  /** Chunk i of segment id, if it holds [from, to) (loaded, and not short of `to`). */
  private within(id: number, i: number, from: number, to: number): Chunk | undefined {
    const c = this.chunks.get(id * CHUNKS_PER_SEGMENT + i);
    return c && c.length >= to - i * this.chunkBytes && from >= i * this.chunkBytes ? c : undefined;
  }

  private span(position: number, length: number): [number, number] {
    return [Math.floor(position / this.chunkBytes), Math.floor((position + Math.max(1, length) - 1) / this.chunkBytes)];
  }

  /**
   * A free buffer: a spare, a new one under the cap, or a loaded chunk's: the one a scan left
   * longest ago. Chunks no scan has reached yet go last: plain LRU evicted them first (loaded
   * ahead, they are older than the chunks the scan is reading), and the scan then found a hole.
   */
  private takeBuffer(reads: DirectReads): Buffer | undefined {
    const spare = this.spare.pop();
    if (spare) return spare;
    if (this.buffers < this.maxChunks) {
      this.buffers++;
      return reads.alloc(this.chunkBytes);
    }
    let oldestKey = -1;
    let oldest: Chunk | undefined;
    for (const [key, c] of this.chunks) {
      if (!c.loading && (!oldest || (c.reached && !oldest.reached) || (c.reached === oldest.reached && c.usedTick < oldest.usedTick))) {
        oldest = c;
        oldestKey = key;
      }
    }
    if (!oldest) return undefined;
    this.chunks.delete(oldestKey);
    return oldest.buf;
  }

  private giveBack(c: Chunk): void {
    if (!c.loading) return void this.spare.push(c.buf);
    this.landing++;
    void c.loading.then(() => {
      this.landing--;
      this.spare.push(c.buf);
    });
  }

  /** Scans come and go: after a quiet spell every buffer goes back to the allocator. */
  private noteUse(): void {
    this.lastUseMs = Date.now();
    if (this.idleTimer) return;
    this.idleTimer = setInterval(() => {
      if (Date.now() - this.lastUseMs < IDLE_RELEASE_MS) return;
      // A read still landing in a buffer: try again later.
      if (this.landing || [...this.chunks.values()].some((c) => c.loading)) return;
      this.chunks.clear();
      this.spare.length = 0;
      this.buffers = 0;
      clearInterval(this.idleTimer);
      this.idleTimer = undefined;
    }, IDLE_RELEASE_MS);
    this.idleTimer.unref();
  }
}
