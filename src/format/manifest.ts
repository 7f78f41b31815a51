import { ChronoError } from '../errors';
import { MANIFEST } from './constants';
import { crc32c } from './crc';
import { checkPrelude, newPrelude, sealPrelude } from './header-check';

/** From a LOST record: times from fromMs up to toMs (its own time, exclusive) name no known state. */
export interface LostSpan {
  seq: number;
  fromMs: number;
  toMs: number;
  lastSeq: number;
}

/** What the index checkpoint covers; the JSON body sits inside a checksummed binary header. */
export interface ManifestBody {
  runs: string[];
  /** Log position up to which the runs hold every version: replay starts here. */
  covered: { segment: number; offset: number };
  nextSeq: number;
  nextEventId: number;
  lastTimeMs: number;
  events: Array<{ id: number; seq: number; timeMs: number; label: string; kind: 'app' | 'crash'; changedBlocks: number }>;
  /** Resync windows (absent in manifests written before they existed). */
  windows?: Array<{ id: number; reason: 'initial' | 'resync'; beginSeq: number; beginMs: number; lostMs: number; endSeq?: number; endMs?: number; bytesCopied?: number }>;
  /** Spans a recovery could not know, one per LOST record (absent in manifests written before them). */
  lost?: LostSpan[];
  /** Versions since the newest event (for the next event's changedBlocks). */
  changedSinceEvent: number;
  stats: { bytesWritten: number; copyForwardBytes: number; versions: number };
}

const O = MANIFEST.off;
const SPEC = { what: 'manifest', magic: MANIFEST.magic, lengthBytes: MANIFEST.lengthBytes, crcOffset: O.crc };

export function encodeManifest(m: ManifestBody): Buffer {
  const body = Buffer.from(JSON.stringify(m), 'utf8');
  const h = newPrelude(SPEC);
  h.writeUInt32LE(body.length, O.bodyLength);
  h.writeUInt32LE(crc32c(body), O.bodyCrc);
  return Buffer.concat([sealPrelude(h, SPEC), body]);
}

export function decodeManifest(b: Buffer, context: Record<string, unknown>): ManifestBody {
  checkPrelude(b, SPEC, context);
  const body = b.subarray(MANIFEST.lengthBytes);
  if (body.length !== b.readUInt32LE(O.bodyLength)) throw new ChronoError('BAD_LENGTH', 'manifest: body length mismatch', context);
  if (crc32c(body) !== b.readUInt32LE(O.bodyCrc)) throw new ChronoError('BAD_CHECKSUM', 'manifest: body checksum mismatch', context);
  return JSON.parse(body.toString('utf8')) as ManifestBody;
}
