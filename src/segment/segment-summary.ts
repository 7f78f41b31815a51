import { RecordType } from '../format/constants';
import { RecordHeader } from '../format/record';
import { ScannedRecord } from './segment-scanner';

/** Fields kept per record: offset, type, blockCount, seq, timeMs, firstBlock. */
const FIELDS = 6;
const BYTES_PER_RECORD = FIELDS * 8;

/** The record types turnover's copy-forward looks at: the ones that put versions in a segment. */
const SUMMARISED = new Set<number>([RecordType.WRITE, RecordType.ZERO, RecordType.TRIM, RecordType.COPY, RecordType.COPY_ZERO]);

interface Summary {
  rows: Float64Array;
  count: number;
  /** Every record noted, of any type: checked against the segment's own count at its seal. */
  total: number;
  sealed: boolean;
}

/**
 * What each segment written by this process holds, record by record, kept in memory as it is
 * written (a segment summary, as in LFS), so that turnover's copy-forward need not read every
 * record header back from the disk: a segment is written with O_DIRECT, so its headers are not
 * in the page cache, and reading them one synchronous pread at a time held the event loop for
 * 60-100 ms per 64 MiB segment of 128 KiB FUSE writes (2.9 s of an 11 s steady-turnover run).
 *
 * Only a summary that saw every record of its segment, from its header to its SEAL, is handed
 * out: a segment resumed after an open, or one whose summary outgrew the budget, is scanned as
 * before. Bounded by `maxBytes` over all segments: past it, new segments go without one (the
 * oldest segments, which turnover takes next, keep theirs). Block data is never read from a
 * summary: copy-forward still reads each live block's units (with their CRCs) from the file.
 */
export class SegmentSummaries {
  private readonly bySegment = new Map<number, Summary>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  /** A new segment starts (its header only so far): summarised if the budget allows. */
  start(id: number): void {
    this.drop(id);
    if (this.bytes + 64 * BYTES_PER_RECORD > this.maxBytes) return;
    this.bySegment.set(id, { rows: new Float64Array(64 * FIELDS), count: 0, total: 0, sealed: false });
    this.bytes += 64 * BYTES_PER_RECORD;
  }

  /** A record was appended to `id` at `offset`. */
  note(id: number, offset: number, h: RecordHeader): void {
    const s = this.bySegment.get(id);
    if (!s) return;
    s.total++;
    if (!SUMMARISED.has(h.type)) return;
    if (s.count * FIELDS === s.rows.length) {
      const grownBytes = s.rows.length * 8;
      if (this.bytes + grownBytes > this.maxBytes) return this.drop(id); // incomplete from here: never handed out
      const rows = new Float64Array(s.rows.length * 2);
      rows.set(s.rows);
      s.rows = rows;
      this.bytes += grownBytes;
    }
    const at = s.count++ * FIELDS;
    s.rows[at] = offset;
    s.rows[at + 1] = h.type;
    s.rows[at + 2] = h.blockCount;
    s.rows[at + 3] = h.seq;
    s.rows[at + 4] = h.timeMs;
    s.rows[at + 5] = h.firstBlock;
  }

  /**
   * Its SEAL is appended: the summary is whole, if it heard of as many records as the segment
   * counts (the SEAL's own recordCount, the SEAL included); otherwise it is dropped.
   */
  seal(id: number, recordCount: number): void {
    const s = this.bySegment.get(id);
    if (!s) return;
    if (s.total === recordCount) s.sealed = true;
    else this.drop(id);
  }

  /** The records of a sealed segment whose summary saw all of them; undefined: scan it. */
  records(id: number, unitBytes: number): ScannedRecord[] | undefined {
    const s = this.bySegment.get(id);
    if (!s?.sealed) return undefined;
    const out: ScannedRecord[] = new Array(s.count);
    for (let i = 0; i < s.count; i++) {
      const at = i * FIELDS;
      const type = s.rows[at + 1];
      const blockCount = s.rows[at + 2];
      const data = type === RecordType.WRITE || type === RecordType.COPY;
      out[i] = {
        offset: s.rows[at],
        header: { type: type as RecordHeader['type'], blockCount, seq: s.rows[at + 3], timeMs: s.rows[at + 4], firstBlock: s.rows[at + 5], payloadLength: data ? blockCount * unitBytes : 0, originSegment: 0, originOffset: 0 },
      };
    }
    return out;
  }

  drop(id: number): void {
    const s = this.bySegment.get(id);
    if (!s) return;
    this.bytes -= s.rows.length * 8;
    this.bySegment.delete(id);
  }

  /** Memory held (for tests and status). */
  get heldBytes(): number {
    return this.bytes;
  }
}
