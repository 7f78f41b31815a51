import { PartStream } from '../storage/durable-file';

/**
 * One buffer, kept between puts, that a store gathers a PartStream into when it needs the
 * object's bytes all at once (S3: the CRC32C goes in the request's metadata, before the body).
 * A fresh 64 MiB buffer per put cost its page faults every time: 16 ms of an encrypted segment's
 * 200 ms upload here. Puts at once beyond the first get buffers of their own; the kept one is
 * handed back to the system after a quiet spell, so an idle daemon does not hold it.
 */
/** Larger objects (segments of up to 1 GiB) gather into buffers of their own, never kept. */
const KEPT_MAX_BYTES = 256 * 1024 * 1024;

export class GatherBuffer {
  private kept?: Buffer;
  private inUse = false;
  private timer?: NodeJS.Timeout;

  constructor(private readonly idleReleaseMs: number) {}

  /**
   * The stream's bytes back to back, in a buffer that is the caller's until give(): sealed
   * straight into it where the stream can (`into`), else copied part by part.
   */
  fill(stream: PartStream): Buffer {
    const total = stream.totalBytes;
    let buf: Buffer;
    if (!this.inUse && this.kept && this.kept.length >= total) {
      buf = this.kept.subarray(0, total);
      this.inUse = true;
    } else {
      buf = Buffer.allocUnsafeSlow(total);
    }
    try {
      if (stream.into) stream.into(buf);
      else {
        let at = 0;
        for (const p of stream.parts) at += p.copy(buf, at);
        if (at !== total) throw new Error(`internal: a part stream of ${total} bytes gave ${at}`);
      }
    } catch (err) {
      this.give(buf, false);
      throw err;
    }
    return buf;
  }

  /**
   * The buffer from fill() is no longer used. `ok`: its put succeeded. A failed one's request
   * may still be sending from it (a body piped on after an early error answer, a part upload
   * after another part failed), so it is never used again: the next put gets fresh memory.
   */
  give(buf: Buffer, ok: boolean): void {
    const isKept = this.kept !== undefined && buf.buffer === this.kept.buffer;
    if (isKept) {
      this.inUse = false;
      if (!ok) this.kept = undefined;
    } else if (ok && !this.inUse && buf.length <= KEPT_MAX_BYTES && (!this.kept || buf.length > this.kept.length)) this.kept = buf;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.release(), this.idleReleaseMs);
    this.timer.unref();
  }

  /** Drops the kept buffer (after the quiet spell, or when the store is destroyed). */
  release(): void {
    clearTimeout(this.timer);
    if (!this.inUse) this.kept = undefined;
  }

  /** Bytes kept between puts (0 once released): for tests. */
  get keptBytes(): number {
    return this.kept?.length ?? 0;
  }
}
