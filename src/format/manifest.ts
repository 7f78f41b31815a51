import { ChronoError } from '../errors';
import { FORMAT_VERSION, MANIFEST } from './constants';
import { crc32c } from './crc';
import { checkHeader } from './header-check';

/** What the index checkpoint covers; the JSON body sits inside a checksummed binary header. */
export interface ManifestBody {
  runs: string[];
  /** Log position up to which the runs hold every version: replay starts here. */
  covered: { segment: number; offset: number };
  nextSeq: number;
  nextEventId: number;
  lastTimeMs: number;
  events: Array<{ id: number; seq: number; timeMs: number; label: string; kind: 'app' | 'crash'; changedBlocks: number }>;
  /** Versions since the newest event (for the next event's changedBlocks). */
  changedSinceEvent: number;
  stats: { bytesWritten: number; copyForwardBytes: number; versions: number };
}

const O = MANIFEST.off;

export function encodeManifest(m: ManifestBody): Buffer {
  const body = Buffer.from(JSON.stringify(m), 'utf8');
  const h = Buffer.alloc(MANIFEST.lengthBytes);
  MANIFEST.magic.copy(h, O.magic);
  h.writeUInt16LE(FORMAT_VERSION, O.version);
  h.writeUInt16LE(MANIFEST.lengthBytes, O.headerLength);
  h.writeUInt32LE(body.length, O.bodyLength);
  h.writeUInt32LE(crc32c(body), O.bodyCrc);
  h.writeUInt32LE(crc32c(h.subarray(0, O.crc)), O.crc);
  return Buffer.concat([h, body]);
}

export function decodeManifest(b: Buffer, context: Record<string, unknown>): ManifestBody {
  if (b.length < MANIFEST.lengthBytes) throw new ChronoError('BAD_LENGTH', 'manifest: truncated header', context);
  checkHeader({
    what: 'manifest',
    magicOk: b.subarray(0, 8).equals(MANIFEST.magic),
    version: b.readUInt16LE(O.version),
    headerLength: b.readUInt16LE(O.headerLength),
    expectedLength: MANIFEST.lengthBytes,
    flags: b.readUInt32LE(O.flags),
    covered: b.subarray(0, O.crc),
    storedCrc: b.readUInt32LE(O.crc),
  }, context);
  const body = b.subarray(MANIFEST.lengthBytes);
  if (body.length !== b.readUInt32LE(O.bodyLength)) throw new ChronoError('BAD_LENGTH', 'manifest: body length mismatch', context);
  if (crc32c(body) !== b.readUInt32LE(O.bodyCrc)) throw new ChronoError('BAD_CHECKSUM', 'manifest: body checksum mismatch', context);
  return JSON.parse(body.toString('utf8')) as ManifestBody;
}
