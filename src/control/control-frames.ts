import { ChronoError } from '../errors';
import { ControlReply, errorReply, replyError } from './control-protocol';

/**
 * An export's bytes after its reply line travel in frames: a 4-byte big-endian length, then that
 * many image bytes. A read that fails mid-stream sends the length ERROR_FRAME and then its JSON
 * error line, so an error can never be taken for image bytes (review 4, finding 1).
 */
export const FRAME_HEADER_BYTES = 4;
export const ERROR_FRAME = 0xffffffff;

export function dataFrameHeader(length: number): Buffer {
  const h = Buffer.alloc(FRAME_HEADER_BYTES);
  h.writeUInt32BE(length, 0);
  return h;
}

export function errorFrame(err: unknown): Buffer {
  return Buffer.concat([dataFrameHeader(ERROR_FRAME), Buffer.from(JSON.stringify(errorReply(err)) + '\n')]);
}

/**
 * Reads an export's frames: image bytes go to `sink`; an error frame, or more image bytes than
 * the reply announced, becomes `error` (and nothing more reaches the sink).
 */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  /** Image bytes still to come in the frame being read (0: a header is next). */
  private inFrame = 0;
  private failed = false;
  dataBytes = 0;
  error?: ChronoError;

  constructor(private readonly expectedBytes: number, private readonly sink: (chunk: Buffer) => void) {}

  push(chunk: Buffer): void {
    if (this.error) return;
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length > 0 && !this.error) {
      if (this.failed) {
        const nl = this.buf.indexOf(10);
        if (nl < 0) return;
        this.error = replyError(JSON.parse(this.buf.subarray(0, nl).toString('utf8')) as ControlReply);
        return;
      }
      if (this.inFrame === 0) {
        if (this.buf.length < FRAME_HEADER_BYTES) return;
        const n = this.buf.readUInt32BE(0);
        this.buf = this.buf.subarray(FRAME_HEADER_BYTES);
        if (n === ERROR_FRAME) this.failed = true;
        else if (this.dataBytes + n > this.expectedBytes) this.error = new ChronoError('DAEMON', `the daemon sent more than the ${this.expectedBytes} bytes its export reply announced`);
        else this.inFrame = n;
        continue;
      }
      const take = this.buf.subarray(0, this.inFrame);
      this.buf = this.buf.subarray(take.length);
      this.inFrame -= take.length;
      this.dataBytes += take.length;
      this.sink(take);
    }
  }
}
