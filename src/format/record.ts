import { ChronoError } from '../errors';
import {
  BLOCK_CRC_BYTES, EVENT_PAYLOAD, LOST_PAYLOAD, EventKind, EventKindName, FORMAT_VERSION, LAST_RECORD_TYPE, RECORD_HEADER, RESYNC_PAYLOAD,
  RecordType, RecordTypeValue, ResyncReason, ResyncReasonName, SEAL_PAYLOAD, SYNC_PAYLOAD,
} from './constants';
import { crc32c } from './crc';
import { checkHeader } from './header-check';

export interface RecordHeader {
  type: RecordTypeValue;
  blockCount: number;
  seq: number;
  timeMs: number;
  firstBlock: number;
  payloadLength: number;
  originSegment: number;
  originOffset: number;
}

const O = RECORD_HEADER.off;
export const HEADER_BYTES = RECORD_HEADER.lengthBytes;

export function hasBlockData(type: number): boolean {
  return type === RecordType.WRITE || type === RecordType.COPY;
}

/** Records with a small fixed payload that scans read whole (not block units). */
export function hasSmallPayload(type: number): boolean {
  return payloadInHeaderCrc(type) || type === RecordType.RESYNC_BEGIN || type === RecordType.RESYNC_END || type === RecordType.LOST;
}

/** Checks the own CRC of a small payload the header CRC does not cover (found while scanning, like any damage). */
export function checkOwnPayload(type: number, payload: Buffer | undefined, context: Record<string, unknown>): void {
  if (type === RecordType.RESYNC_BEGIN || type === RecordType.RESYNC_END) decodeResyncPayload(payload, context);
  else if (type === RecordType.LOST) decodeLostPayload(payload, context);
}

/** Records whose small payload the header CRC covers (the others carry block units, or nothing). */
export function payloadInHeaderCrc(type: number): boolean {
  return type === RecordType.EVENT || type === RecordType.SEAL || type === RecordType.SYNC;
}

export function unitBytes(blockSizeBytes: number): number {
  return BLOCK_CRC_BYTES + blockSizeBytes;
}

export function recordBytes(h: Pick<RecordHeader, 'payloadLength'>): number {
  return HEADER_BYTES + h.payloadLength;
}

/**
 * Writes a record header into `out` at `at`. For EVENT/SEAL records the payload must already sit
 * right after the header, since the header CRC covers it.
 */
export function writeRecordHeader(out: Buffer, at: number, h: RecordHeader): void {
  out.writeUInt32LE(RECORD_HEADER.magic, at + O.magic);
  out.writeUInt8(FORMAT_VERSION, at + O.version);
  out.writeUInt8(h.type, at + O.type);
  out.writeUInt16LE(HEADER_BYTES, at + O.headerLength);
  out.writeUInt32LE(0, at + O.flags);
  out.writeUInt32LE(h.blockCount, at + O.blockCount);
  out.writeBigUInt64LE(BigInt(h.seq), at + O.seq);
  out.writeBigUInt64LE(BigInt(h.timeMs), at + O.timeMs);
  out.writeBigUInt64LE(BigInt(h.firstBlock), at + O.firstBlock);
  out.writeUInt32LE(h.payloadLength, at + O.payloadLength);
  out.writeUInt32LE(h.originSegment, at + O.originSegment);
  out.writeUInt32LE(h.originOffset, at + O.originOffset);
  out.fill(0, at + O.reserved, at + O.crc);
  let crc = crc32c(out.subarray(at, at + O.crc));
  if (payloadInHeaderCrc(h.type)) crc = crc32c(out.subarray(at + HEADER_BYTES, at + HEADER_BYTES + h.payloadLength), crc);
  out.writeUInt32LE(crc, at + O.crc);
}

/** Cheap pre-check used when scanning for torn tails and resynchronising after damage. */
export function looksLikeRecord(b: Buffer, at: number): boolean {
  return at + HEADER_BYTES <= b.length && b.readUInt32LE(at + O.magic) === RECORD_HEADER.magic;
}

/**
 * Decodes and validates a header. `payload` is needed for EVENT/SEAL (CRC covers it); pass the
 * bytes after the header when available.
 */
export function readRecordHeader(b: Buffer, at: number, payload: Buffer | undefined, context: Record<string, unknown>): RecordHeader {
  if (at + HEADER_BYTES > b.length) throw new ChronoError('BAD_LENGTH', 'record header: truncated', context);
  const type = b.readUInt8(at + O.type) as RecordTypeValue;
  const payloadLength = b.readUInt32LE(at + O.payloadLength);
  const covered = payloadInHeaderCrc(type) ? payload?.subarray(0, payloadLength) : undefined;
  if (payloadInHeaderCrc(type) && (!covered || covered.length < payloadLength)) {
    throw new ChronoError('BAD_LENGTH', 'record payload: truncated', context);
  }
  checkHeader({
    what: 'record header',
    magicOk: b.readUInt32LE(at + O.magic) === RECORD_HEADER.magic,
    version: b.readUInt8(at + O.version),
    headerLength: b.readUInt16LE(at + O.headerLength),
    expectedLength: HEADER_BYTES,
    flags: b.readUInt32LE(at + O.flags),
    covered: b.subarray(at, at + O.crc),
    storedCrc: b.readUInt32LE(at + O.crc),
    coveredExtra: covered,
  }, context);
  // A valid header of a type this build does not know: a newer writer's record, not damage. It
  // may change what blocks read as, so it is refused rather than skipped (docs/FORMAT.md).
  if (type < RecordType.WRITE || type > LAST_RECORD_TYPE) {
    throw new ChronoError('UNKNOWN_RECORD_TYPE', `record type ${type} is not one this build knows (written by a newer chronovol?)`, { ...context, type });
  }
  return {
    type,
    blockCount: b.readUInt32LE(at + O.blockCount),
    seq: Number(b.readBigUInt64LE(at + O.seq)),
    timeMs: Number(b.readBigUInt64LE(at + O.timeMs)),
    firstBlock: Number(b.readBigUInt64LE(at + O.firstBlock)),
    payloadLength,
    originSegment: b.readUInt32LE(at + O.originSegment),
    originOffset: b.readUInt32LE(at + O.originOffset),
  };
}

/** The byte offset of the first block unit, relative to the record start. */
export const FIRST_UNIT_OFFSET = HEADER_BYTES;

export interface EventPayload {
  eventId: number;
  kind: EventKindName;
  label: string;
}

export function encodeEventPayload(e: EventPayload): Buffer {
  const label = Buffer.from(e.label, 'utf8');
  if (label.length > EVENT_PAYLOAD.maxLabelBytes) throw new ChronoError('BAD_ARGUMENT', `label longer than ${EVENT_PAYLOAD.maxLabelBytes} bytes`);
  const b = Buffer.alloc(EVENT_PAYLOAD.off.label + label.length);
  b.writeUInt32LE(e.eventId, EVENT_PAYLOAD.off.eventId);
  b.writeUInt8(EventKind[e.kind], EVENT_PAYLOAD.off.kind);
  b.writeUInt16LE(label.length, EVENT_PAYLOAD.off.labelLength);
  label.copy(b, EVENT_PAYLOAD.off.label);
  return b;
}

export function decodeEventPayload(b: Buffer, context: Record<string, unknown>): EventPayload {
  const kindValue = b.readUInt8(EVENT_PAYLOAD.off.kind);
  const kind = (Object.keys(EventKind) as EventKindName[]).find((k) => EventKind[k] === kindValue);
  const len = b.readUInt16LE(EVENT_PAYLOAD.off.labelLength);
  if (!kind || EVENT_PAYLOAD.off.label + len > b.length) throw new ChronoError('CORRUPT_LOG', 'event payload malformed', context);
  return { eventId: b.readUInt32LE(EVENT_PAYLOAD.off.eventId), kind, label: b.toString('utf8', EVENT_PAYLOAD.off.label, EVENT_PAYLOAD.off.label + len) };
}

export interface SealPayload { recordCount: number; lastSeq: number; bodyCrc: number }

export function encodeSealPayload(s: SealPayload): Buffer {
  const b = Buffer.alloc(SEAL_PAYLOAD.lengthBytes);
  b.writeUInt32LE(s.recordCount, SEAL_PAYLOAD.off.recordCount);
  b.writeBigUInt64LE(BigInt(s.lastSeq), SEAL_PAYLOAD.off.lastSeq);
  b.writeUInt32LE(s.bodyCrc, SEAL_PAYLOAD.off.bodyCrc);
  return b;
}

export function decodeSealPayload(b: Buffer): SealPayload {
  return {
    recordCount: b.readUInt32LE(SEAL_PAYLOAD.off.recordCount),
    lastSeq: Number(b.readBigUInt64LE(SEAL_PAYLOAD.off.lastSeq)),
    bodyCrc: b.readUInt32LE(SEAL_PAYLOAD.off.bodyCrc),
  };
}

/** SYNC payload: the offset before which everything was written when this sync point was. */
export function encodeSyncPayload(durableThrough: number): Buffer {
  const b = Buffer.alloc(SYNC_PAYLOAD.lengthBytes);
  b.writeBigUInt64LE(BigInt(durableThrough), SYNC_PAYLOAD.off.durableThrough);
  return b;
}

export function decodeSyncPayload(b: Buffer): number {
  return Number(b.readBigUInt64LE(SYNC_PAYLOAD.off.durableThrough));
}

export interface ResyncPayload {
  windowId: number;
  /** RESYNC_BEGIN only; RESYNC_END carries 0. */
  reason?: ResyncReasonName;
  /** RESYNC_BEGIN: when the protecting host lost the target (0: not lost, an initial copy). */
  lostMs: number;
  /** RESYNC_END: bytes the resync copied. */
  bytesCopied: number;
}

const RO = RESYNC_PAYLOAD.off;

/** A small payload's own CRC (types after SYNC: the header CRC does not cover them), over the bytes before it. */
function sealOwnCrc(b: Buffer, crcOffset: number): Buffer {
  b.writeUInt32LE(crc32c(b.subarray(0, crcOffset)), crcOffset);
  return b;
}

/** Length, then the payload's own CRC, each refused with its own code. */
function checkOwnCrc(b: Buffer | undefined, spec: { lengthBytes: number; off: { crc: number } }, what: string, context: Record<string, unknown>): Buffer {
  if (!b || b.length !== spec.lengthBytes) throw new ChronoError('BAD_LENGTH', `${what} payload: wrong length`, context);
  if (crc32c(b.subarray(0, spec.off.crc)) !== b.readUInt32LE(spec.off.crc)) throw new ChronoError('BAD_CHECKSUM', `${what} payload: checksum mismatch`, context);
  return b;
}

export function encodeResyncPayload(p: ResyncPayload): Buffer {
  const b = Buffer.alloc(RESYNC_PAYLOAD.lengthBytes);
  b.writeUInt32LE(p.windowId, RO.windowId);
  b.writeUInt8(p.reason ? ResyncReason[p.reason] : 0, RO.reason);
  b.writeBigUInt64LE(BigInt(p.lostMs), RO.lostMs);
  b.writeBigUInt64LE(BigInt(p.bytesCopied), RO.bytesCopied);
  return sealOwnCrc(b, RO.crc);
}

/** Validates length, then the payload's own CRC (the header CRC does not cover it), then the fields. */
export function decodeResyncPayload(payload: Buffer | undefined, context: Record<string, unknown>): ResyncPayload {
  const b = checkOwnCrc(payload, RESYNC_PAYLOAD, 'resync', context);
  const value = b.readUInt8(RO.reason);
  const reason = (Object.keys(ResyncReason) as ResyncReasonName[]).find((k) => ResyncReason[k] === value);
  if (value !== 0 && !reason) throw new ChronoError('CORRUPT_LOG', `resync payload: unknown reason ${value}`, context);
  return { windowId: b.readUInt32LE(RO.windowId), reason, lostMs: Number(b.readBigUInt64LE(RO.lostMs)), bytesCopied: Number(b.readBigUInt64LE(RO.bytesCopied)) };
}

/** A LOST record's payload: what a recovery could not know (DESIGN rule 27). */
export interface LostPayload {
  /** The recovered history's last record time: from it up to the LOST record's own time no state is known. */
  fromMs: number;
  /** The recovered history's last seq (for the reader; points up to it are whole). */
  lastSeq: number;
}

const LO = LOST_PAYLOAD.off;

export function encodeLostPayload(p: LostPayload): Buffer {
  const b = Buffer.alloc(LOST_PAYLOAD.lengthBytes);
  b.writeBigUInt64LE(BigInt(p.fromMs), LO.fromMs);
  b.writeBigUInt64LE(BigInt(p.lastSeq), LO.lastSeq);
  return sealOwnCrc(b, LO.crc);
}

/** Validates length, then the payload's own CRC. */
export function decodeLostPayload(payload: Buffer | undefined, context: Record<string, unknown>): LostPayload {
  const b = checkOwnCrc(payload, LOST_PAYLOAD, 'lost', context);
  return { fromMs: Number(b.readBigUInt64LE(LO.fromMs)), lastSeq: Number(b.readBigUInt64LE(LO.lastSeq)) };
}
