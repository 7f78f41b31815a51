import { ChronoError } from '../errors';
import { RecordType } from '../format/constants';
import { HEADER_BYTES, readRecordHeader } from '../format/record';
import { lastAtOrBelow } from '../util/sorted-search';
import { OffsetTable } from './archive-object';

/**
 * Reads of a built archive object, checked against the record its offset table points at.
 *
 * A unit's CRC covers its data alone, not which block or version it is: a damaged table entry
 * that lands on another record's unit passes it. So before serving, the record the covering
 * entry names must have a valid header (CRC), be a WRITE of the version the index expects (same
 * seq), hold the blocks read, and the read must start exactly at their units. Anything else is
 * refused with CORRUPT_LOG, never served.
 *
 * Headers cost no extra request where they can be helped: a header close before the bytes read
 * comes in the same ranged read (a scan reads whole records anyway), and a checked header is
 * remembered with its table, so later reads of the same record check against it in memory.
 */

/** What the index knows about the blocks a read of an archived segment is for. */
export interface ExpectedRecord {
  /** The first block read; the read covers length / unitBytes consecutive blocks. */
  block: number;
  /** The version's seq: every block of one read belongs to one WRITE record. */
  seq: number;
  unitBytes: number;
}

/** Reads `length` bytes at an archive offset of the object the table belongs to. */
export type ReadAt = (archiveOffset: number, length: number) => Promise<Buffer>;

/** A header at most this far before the bytes asked for is fetched in the same ranged read. */
const SAME_READ_GAP_BYTES = 256 * 1024;

/** Checked headers, per table entry (blockCount 0: not read yet). Dropped with their table. */
interface Checked {
  seq: Float64Array;
  firstBlock: Float64Array;
  blockCount: Uint32Array;
}

const checkedByTable = new WeakMap<OffsetTable, Checked>();

function checkedOf(table: OffsetTable): Checked {
  let c = checkedByTable.get(table);
  if (!c) {
    const n = table.primary.length;
    c = { seq: new Float64Array(n), firstBlock: new Float64Array(n), blockCount: new Uint32Array(n) };
    checkedByTable.set(table, c);
  }
  return c;
}

/**
 * Reads `length` bytes at `primaryOffset` through a built object's table, checking the record it
 * lands in first. The caller has checked that the offset maps into the object.
 */
export async function readChecked(table: OffsetTable, segmentId: number, primaryOffset: number, length: number, expect: ExpectedRecord, readAt: ReadAt): Promise<Buffer> {
  const i = lastAtOrBelow(table.primary, primaryOffset);
  const recordAt = table.archive[i];
  const at = recordAt + (primaryOffset - table.primary[i]);
  const c = checkedOf(table);
  const ctx = { segmentId, entry: i, recordAt, primaryOffset, length, expect };
  if (c.blockCount[i] !== 0) {
    match(c, i, at, ctx);
    return readAt(at, length);
  }
  if (at - recordAt <= SAME_READ_GAP_BYTES) {
    const bytes = await readAt(recordAt, at + length - recordAt);
    accept(c, i, bytes, ctx);
    match(c, i, at, ctx);
    return bytes.subarray(at - recordAt);
  }
  const [bytes, header] = await Promise.all([readAt(at, length), readAt(recordAt, HEADER_BYTES)]);
  accept(c, i, header, ctx);
  match(c, i, at, ctx);
  return bytes;
}

interface Ctx {
  segmentId: number;
  entry: number;
  recordAt: number;
  primaryOffset: number;
  length: number;
  expect: ExpectedRecord;
}

/** Validates the header at the start of `b` and remembers it for its table entry. */
function accept(c: Checked, i: number, b: Buffer, ctx: Ctx): void {
  let h;
  try {
    h = readRecordHeader(b, 0, undefined, { segment: ctx.segmentId, archive: true, offset: ctx.recordAt });
  } catch (err) {
    throw refused(ctx, `no valid record header there (${(err as Error).message})`, err);
  }
  if (h.type !== RecordType.WRITE) throw refused(ctx, `the record there is of type ${h.type}, not a WRITE`);
  if (h.blockCount < 1 || h.payloadLength !== h.blockCount * ctx.expect.unitBytes) throw refused(ctx, `the WRITE there holds ${h.payloadLength} bytes for ${h.blockCount} blocks`);
  c.seq[i] = h.seq;
  c.firstBlock[i] = h.firstBlock;
  c.blockCount[i] = h.blockCount;
}

/** Does the checked record of entry i hold exactly the blocks this read is for, at `at`? */
function match(c: Checked, i: number, at: number, ctx: Ctx): void {
  const { block, seq, unitBytes } = ctx.expect;
  const count = ctx.length / unitBytes;
  const first = c.firstBlock[i];
  if (c.seq[i] !== seq) throw refused(ctx, `the record there is seq ${c.seq[i]}, the version read is seq ${seq}`);
  if (!Number.isInteger(count) || block < first || block + count > first + c.blockCount[i]) {
    throw refused(ctx, `the record there holds blocks ${first}..${first + c.blockCount[i] - 1}, the read is for ${block}..${block + count - 1}`);
  }
  const want = ctx.recordAt + HEADER_BYTES + (block - first) * unitBytes;
  if (at !== want) throw refused(ctx, `block ${block}'s unit is at archive offset ${want}, the table maps the read to ${at}`);
}

function refused(ctx: Ctx, why: string, cause?: unknown): ChronoError {
  return new ChronoError(
    'CORRUPT_LOG',
    `archived segment ${ctx.segmentId}: offset-table entry ${ctx.entry} (primary offset ${ctx.primaryOffset} -> record at archive offset ${ctx.recordAt}) does not lead to block ${ctx.expect.block} of seq ${ctx.expect.seq}: ${why}; refusing to serve these bytes`,
    { segment: ctx.segmentId, archive: true, entry: ctx.entry, offset: ctx.primaryOffset, block: ctx.expect.block, seq: ctx.expect.seq },
    cause,
  );
}
