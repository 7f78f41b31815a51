import { ChronoError } from '../errors';
import { RecordType, SEAL_PAYLOAD, SEGMENT_HEADER } from '../format/constants';
import { crc32c } from '../format/crc';
import { HEADER_BYTES, RecordHeader, encodeSealPayload, unitBytes, writeRecordHeader } from '../format/record';
import { FileHandle } from '../storage/file-system';

/** Room always kept for the SEAL record, so a full segment can still be sealed. */
export const SEAL_RESERVE_BYTES = HEADER_BYTES + SEAL_PAYLOAD.lengthBytes;

export interface SegmentWriterState {
  id: number;
  end: number;
  recordCount: number;
  bodyCrc: number;
  lastSeq: number;
}

/**
 * Appends records to the current segment. Small records are coalesced in a buffer; nothing is
 * durable before `sync()`. After an I/O error the writer refuses all further use: what reached
 * the disk is unknown, and guessing could acknowledge lost data.
 */
export class SegmentWriter {
  private buf: Buffer;
  private bufStart: number;
  private bufLen = 0;
  private failure?: ChronoError;

  constructor(
    private readonly handle: FileHandle,
    private readonly segmentSizeBytes: number,
    bufferBytes: number,
    private state: SegmentWriterState,
  ) {
    this.buf = Buffer.allocUnsafe(bufferBytes);
    this.bufStart = state.end;
  }

  /** Starts a new segment file: writes and syncs its header. */
  static start(handle: FileHandle, header: Buffer, id: number, firstSeq: number, segmentSizeBytes: number, bufferBytes: number): SegmentWriter {
    handle.write(header, 0, header.length, 0);
    handle.sync();
    return new SegmentWriter(handle, segmentSizeBytes, bufferBytes, { id, end: SEGMENT_HEADER.lengthBytes, recordCount: 0, bodyCrc: 0, lastSeq: firstSeq - 1 });
  }

  get id(): number {
    return this.state.id;
  }
  get end(): number {
    return this.state.end;
  }
  get snapshot(): SegmentWriterState {
    return { ...this.state };
  }

  /** Bytes still free for records before the segment must be sealed. */
  remaining(): number {
    return this.segmentSizeBytes - this.state.end - SEAL_RESERVE_BYTES;
  }

  /**
   * Appends a record whose payload `fill` writes at buf[at..at+payloadLength). Returns the
   * record's offset in the segment.
   */
  append(h: RecordHeader, fill?: (buf: Buffer, at: number) => void): number {
    this.usable();
    const len = HEADER_BYTES + h.payloadLength;
    if (len > this.remaining() + (h.type === RecordType.SEAL ? SEAL_RESERVE_BYTES : 0)) {
      throw new ChronoError('BAD_ARGUMENT', `record of ${len} bytes does not fit in segment ${this.state.id}`);
    }
    if (this.bufLen + len > this.buf.length) {
      this.flush();
      if (len > this.buf.length) this.buf = Buffer.allocUnsafe(len);
    }
    const at = this.bufLen;
    fill?.(this.buf, at + HEADER_BYTES);
    writeRecordHeader(this.buf, at, h);
    // Block data has its own CRCs: the seal chains headers only, so data is checksummed once.
    if (h.type !== RecordType.SEAL) this.state.bodyCrc = crc32c(this.buf.subarray(at, at + HEADER_BYTES), this.state.bodyCrc);
    this.bufLen += len;
    const offset = this.state.end;
    this.state.end += len;
    this.state.recordCount++;
    if (h.type !== RecordType.SEAL) this.state.lastSeq = Math.max(this.state.lastSeq, h.seq);
    return offset;
  }

  /** Appends block data as per-block (crc32c, data) units. */
  appendBlocks(h: Omit<RecordHeader, 'payloadLength'>, data: Buffer, dataOffset: number, blockSizeBytes: number): number {
    const unit = unitBytes(blockSizeBytes);
    return this.append({ ...h, payloadLength: h.blockCount * unit }, (buf, at) => {
      for (let i = 0; i < h.blockCount; i++) {
        const src = data.subarray(dataOffset + i * blockSizeBytes, dataOffset + (i + 1) * blockSizeBytes);
        buf.writeUInt32LE(crc32c(src), at + i * unit);
        src.copy(buf, at + i * unit + 4);
      }
    });
  }

  /** Reads bytes written so far, including ones still in the buffer. */
  read(out: Buffer, outOffset: number, length: number, position: number): number {
    this.usable();
    if (position + length > this.bufStart) this.flush();
    return this.handle.read(out, outOffset, length, position);
  }

  flush(): void {
    this.usable();
    if (this.bufLen === 0) return;
    this.guard(() => this.handle.write(this.buf, 0, this.bufLen, this.bufStart));
    this.bufStart += this.bufLen;
    this.bufLen = 0;
  }

  sync(): void {
    this.flush();
    this.guard(() => this.handle.sync());
  }

  /** Appends the SEAL record and syncs; the writer is done afterwards. */
  seal(): void {
    const payload = encodeSealPayload({ recordCount: this.state.recordCount, lastSeq: this.state.lastSeq, bodyCrc: this.state.bodyCrc });
    this.append(
      { type: RecordType.SEAL, blockCount: 0, seq: this.state.lastSeq, timeMs: 0, firstBlock: 0, payloadLength: payload.length, originSegment: 0, originOffset: 0 },
      (buf, at) => payload.copy(buf, at),
    );
    this.sync();
    this.failure = new ChronoError('CLOSED', `segment ${this.state.id} is sealed`);
  }

  close(): void {
    if (!this.failure) this.flush();
    this.handle.close();
    this.failure ??= new ChronoError('CLOSED', `segment ${this.state.id} is closed`);
  }

  private usable(): void {
    if (this.failure) throw this.failure;
  }

  private guard(op: () => void): void {
    try {
      op();
    } catch (err) {
      this.failure = new ChronoError('WRITER_FAILED', `segment ${this.state.id}: an earlier I/O error stopped this writer; reopen the volume`, {}, err);
      throw err;
    }
  }
}
