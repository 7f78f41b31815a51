import { LRUCache } from 'lru-cache';

export interface CacheStats {
  hits: number;
  misses: number;
  entries: number;
  bytes: number;
  maxBytes: number;
}

/**
 * An LRU of reconstructed blocks in one preallocated slab: the LRU holds slot numbers, and a
 * slot returns to the free list when its entry is evicted. No allocation per cached block (the
 * garbage collector stays out of the read path) and an exact bound in bytes.
 */
export class BlockCache {
  private readonly slab: Buffer;
  private readonly free: number[] = [];
  private readonly lru: LRUCache<number, number>;
  hits = 0;
  misses = 0;

  constructor(private readonly blockSizeBytes: number, readonly maxBytes: number) {
    const slots = Math.floor(maxBytes / blockSizeBytes);
    this.slab = Buffer.allocUnsafe(slots * blockSizeBytes);
    for (let i = slots - 1; i >= 0; i--) this.free.push(i);
    this.lru = new LRUCache<number, number>({ max: Math.max(1, slots), dispose: (slot) => this.free.push(slot) });
  }

  /** Copies a cached block into out; false on a miss. */
  get(key: number, out: Buffer, outOffset: number): boolean {
    const slot = this.lru.get(key);
    if (slot === undefined) {
      this.misses++;
      return false;
    }
    this.hits++;
    const bs = this.blockSizeBytes;
    this.slab.copy(out, outOffset, slot * bs, (slot + 1) * bs);
    return true;
  }

  set(key: number, data: Buffer): void {
    if (this.lru.has(key)) return;
    if (this.free.length === 0) {
      this.lru.pop(); // evicts the least recently used; dispose frees its slot
    }
    const slot = this.free.pop();
    if (slot === undefined) return;
    data.copy(this.slab, slot * this.blockSizeBytes, 0, this.blockSizeBytes);
    this.lru.set(key, slot);
  }

  stats(): CacheStats {
    return { hits: this.hits, misses: this.misses, entries: this.lru.size, bytes: this.lru.size * this.blockSizeBytes, maxBytes: this.maxBytes };
  }
}
