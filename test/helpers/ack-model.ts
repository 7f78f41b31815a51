/**
 * What a volume may hold after a crash, kept from the client's side: one ordered writer (one NBD
 * connection: the server applies its writes in arrival order) whose every write has a unique id
 * and whose blocks say which write and which block they are. After a restart a block must hold
 * its last acknowledged write or a later one that was sent; never an older one, another block's
 * bytes or anything undecodable. Sync events are checked against images the model kept itself.
 */
export class AckModel {
  /** Per block: the last acknowledged write covering it (0: none). */
  readonly acked: Int32Array;
  /** Per block: the last write sent covering it. */
  private readonly sent: Int32Array;
  /** Per block: the last zero write (WRITE_ZEROES or TRIM) sent covering it. */
  private readonly zeroSent: Int32Array;
  private readonly zeroIds = new Set<number>();
  private nextId = 1;
  /** Acknowledgments counted (one per write). */
  writesAcked = 0;

  constructor(readonly blockCount: number, readonly blockSizeBytes: number) {
    this.acked = new Int32Array(blockCount);
    this.sent = new Int32Array(blockCount);
    this.zeroSent = new Int32Array(blockCount);
  }

  /** Registers a write about to be sent; returns its id. Its bytes come from data(). */
  begin(firstBlock: number, count: number, zero = false): number {
    const id = this.nextId++;
    if (zero) this.zeroIds.add(id);
    for (let b = firstBlock; b < firstBlock + count; b++) {
      this.sent[b] = id;
      if (zero) this.zeroSent[b] = id;
    }
    return id;
  }

  /** The write's bytes: each block starts with (id, block) and goes on with a stream seeded by both. */
  data(id: number, firstBlock: number, count: number): Buffer {
    const bs = this.blockSizeBytes;
    const out = Buffer.allocUnsafe(count * bs);
    for (let i = 0; i < count; i++) this.fillBlock(out, i * bs, id, firstBlock + i);
    return out;
  }

  private fillBlock(out: Buffer, at: number, id: number, block: number): void {
    out.writeUInt32LE(id, at);
    out.writeUInt32LE(block, at + 4);
    let x = (Math.imul(id, 0x9e3779b1) ^ Math.imul(block + 1, 0x85ebca6b)) >>> 0 || 1;
    for (let o = at + 8; o < at + this.blockSizeBytes; o += 4) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      out.writeUInt32LE(x >>> 0, o);
    }
  }

  ack(id: number, firstBlock: number, count: number): void {
    this.writesAcked++;
    for (let b = firstBlock; b < firstBlock + count; b++) if (this.acked[b] < id) this.acked[b] = id;
  }

  /** The exact image the model expects for per-block write ids (a snapshot of `acked`). */
  expectedBlock(ids: Int32Array, block: number): Buffer {
    return this.blockBytes(ids[block], block);
  }

  /** Block `block` as write `id` left it (zeros for none or a zero write). */
  blockBytes(id: number, block: number): Buffer {
    if (id === 0 || this.zeroIds.has(id)) return Buffer.alloc(this.blockSizeBytes);
    const b = Buffer.allocUnsafe(this.blockSizeBytes);
    this.fillBlock(b, 0, id, block);
    return b;
  }

  /**
   * Whether block `b` of `image` (at `at`) holds zeros or exactly what some write sent to that
   * block left there: for reads while several clients write at once, where no order is known.
   */
  isSomeWrite(image: Buffer, at: number, b: number): boolean {
    const bs = this.blockSizeBytes;
    if (isZero(image, at, bs)) return true;
    const id = image.readUInt32LE(at);
    return image.readUInt32LE(at + 4) === b && id > 0 && id < this.nextId && !this.zeroIds.has(id) && this.blockBytes(id, b).equals(image.subarray(at, at + bs));
  }

  /**
   * Checks blocks [firstBlock, firstBlock + n) of a live image read after a restart; returns one
   * line per problem. Afterwards the model takes what is there as acknowledged (a block found
   * holding a later write keeps it: it is on disk now, and the writer's order goes on from there).
   */
  checkLive(image: Buffer, firstBlock: number, problems: string[]): void {
    const bs = this.blockSizeBytes;
    for (let i = 0; i < image.length / bs; i++) {
      const b = firstBlock + i;
      const at = i * bs;
      const want = this.acked[b];
      const id = image.readUInt32LE(at);
      const block = image.readUInt32LE(at + 4);
      if (isZero(image, at, bs)) {
        if (want === 0 || this.zeroIds.has(want) || this.zeroSent[b] > want) {
          if (this.zeroSent[b] > want) this.acked[b] = this.zeroSent[b];
          continue;
        }
        problems.push(`block ${b}: zeros, but write ${want} was acknowledged`);
        continue;
      }
      if (block !== b || id === 0 || id > this.sent[b] || this.zeroIds.has(id) || !this.blockBytes(id, b).equals(image.subarray(at, at + bs))) {
        problems.push(`block ${b}: bytes that no write sent to it (claims write ${id} block ${block}); acknowledged ${want}`);
        continue;
      }
      if (id < want) {
        problems.push(`block ${b}: holds write ${id}, but write ${want} was acknowledged (lost)`);
        continue;
      }
      this.acked[b] = id;
    }
  }
}

function isZero(b: Buffer, at: number, n: number): boolean {
  for (let i = at; i < at + n; i += 8) if (b.readBigUInt64LE(i) !== 0n) return false;
  return true;
}
