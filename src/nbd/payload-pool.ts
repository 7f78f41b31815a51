/**
 * Reusable buffers for write payloads. A bulk writer (qemu-img convert, a mirror job) sends
 * megabytes per request; a fresh buffer for each one costs page faults and garbage collection
 * on every request. Buffers come back once the write has been appended to the log.
 */
export class PayloadPool {
  private readonly free = new Map<number, Buffer[]>();
  private pooledBytes = 0;

  /** Keeps at most maxPooledBytes of idle buffers; sizes are powers of two from 64 KiB. */
  constructor(private readonly maxPooledBytes: number) {}

  get(length: number): Buffer {
    const cap = capacity(length);
    const b = this.free.get(cap)?.pop();
    if (b) this.pooledBytes -= cap;
    return (b ?? Buffer.allocUnsafeSlow(cap)).subarray(0, length);
  }

  release(b: Buffer): void {
    // Only whole buffers this pool made: they start their memory and have a size class's length.
    const cap = b.buffer.byteLength;
    if (b.byteOffset !== 0 || cap !== capacity(cap) || this.pooledBytes + cap > this.maxPooledBytes) return;
    let list = this.free.get(cap);
    if (!list) this.free.set(cap, (list = []));
    list.push(Buffer.from(b.buffer, 0, cap));
    this.pooledBytes += cap;
  }
}

function capacity(length: number): number {
  let c = 64 * 1024;
  while (c < length) c *= 2;
  return c;
}
