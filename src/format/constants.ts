/**
 * On-disk format constants. This file mirrors docs/FORMAT.md table for table (test/format-spec
 * checks every `off` and value group against the tables there): change one, change the other,
 * and never change the meaning of a value that has been written to disk. All integers are
 * little-endian.
 */

export const FORMAT_VERSION = 1;

// Superblock: `<dir>/superblock`, and `volume.cvsb` in the archive.
export const SUPERBLOCK = {
  magic: Buffer.from('CHRVOLSB', 'ascii'),
  lengthBytes: 128,
  off: {
    magic: 0, version: 8, headerLength: 10, flags: 12, volumeId: 16, volumeSizeBytes: 32,
    blockSizeBytes: 40, segmentSizeBytes: 44, workingSetSegments: 48, createdMs: 56, crc: 124,
  },
} as const;

// Segment header: first 64 bytes of every segment file and archived segment object.
export const SEGMENT_HEADER = {
  magic: Buffer.from('CHRVOLSG', 'ascii'),
  lengthBytes: 64,
  off: { magic: 0, version: 8, headerLength: 10, flags: 12, volumeId: 16, segmentId: 32, firstSeq: 40, createdMs: 48, crc: 60 },
} as const;

/** Segment header flags. Written to disk: never reuse a bit. */
export const SegmentFlags = {
  /** The segment carries SYNC records: replay may cut damage after the last one as a torn tail. */
  syncPoints: 0x1,
} as const;

// Record header: 64 bytes, followed by payloadLength bytes.
export const RECORD_HEADER = {
  magic: 0x43525643, // "CVRC" read as a little-endian u32
  lengthBytes: 64,
  off: {
    magic: 0, version: 4, type: 5, headerLength: 6, flags: 8, blockCount: 12, seq: 16, timeMs: 24,
    firstBlock: 32, payloadLength: 40, originSegment: 44, originOffset: 48, reserved: 52, crc: 60,
  },
} as const;

/**
 * Record types. Values are written to disk: never renumber, only add. A reader refuses a type it
 * does not know (UNKNOWN_RECORD_TYPE), so a type added later must not need the reader's help to
 * check its header: its CRC covers the header only.
 */
export const RecordType = {
  WRITE: 1, // blockCount × (crc32c u32, data)
  ZERO: 2, // blockCount blocks of zeros, no payload
  TRIM: 3, // discarded blocks: read as zeros, no payload
  EVENT: 4, // sync event: eventId u32, kind u8, reserved u8, labelLength u16, label utf-8
  COPY: 5, // copy-forward of live WRITE data; seq is the original version's (timeMs too, or 0: unused)
  COPY_ZERO: 6, // copy-forward of a live ZERO/TRIM
  SEAL: 7, // last record of a sealed segment: recordCount u32, reserved u32, lastSeq u64, bodyCrc u32 (over the record headers)
  SYNC: 8, // sync point: durableThrough u64 (at or before its own offset), appended after the fdatasync that made it durable
  RESYNC_BEGIN: 9, // a resync window opens: the replica is a torn mix until its RESYNC_END (RESYNC_PAYLOAD)
  RESYNC_END: 10, // the window closes: the replica equals the primary again (RESYNC_PAYLOAD)
  LOST: 11, // first record after a recovery: times from fromMs up to its own were not archived (LOST_PAYLOAD)
} as const;
/** The highest record type this build knows. */
export const LAST_RECORD_TYPE = RecordType.LOST;
export type RecordTypeValue = (typeof RecordType)[keyof typeof RecordType];

/** Per-block unit inside WRITE/COPY payloads: crc32c of the data, then the data. */
export const BLOCK_CRC_BYTES = 4;

export const EVENT_PAYLOAD = { off: { eventId: 0, kind: 4, reserved: 5, labelLength: 6, label: 8 }, maxLabelBytes: 255 } as const;
/** Consistency kinds of sync events. Written to disk. */
export const EventKind = { app: 1, crash: 2 } as const;
export type EventKindName = keyof typeof EventKind;

/**
 * RESYNC_BEGIN / RESYNC_END payload. Types added after SYNC are not covered by the header CRC
 * (a reader must check a header whose type it does not know), so the payload carries its own.
 */
export const RESYNC_PAYLOAD = { lengthBytes: 32, off: { windowId: 0, reason: 4, lostMs: 8, bytesCopied: 16, crc: 28 } } as const;
/** Why a resync window opened. Written to disk. */
export const ResyncReason = { initial: 1, resync: 2 } as const;
export type ResyncReasonName = keyof typeof ResyncReason;

/** LOST payload: like RESYNC_PAYLOAD, not covered by the header CRC, so it carries its own. */
export const LOST_PAYLOAD = { lengthBytes: 24, off: { fromMs: 0, lastSeq: 8, crc: 20 } } as const;

export const SEAL_PAYLOAD = { lengthBytes: 20, off: { recordCount: 0, lastSeq: 8, bodyCrc: 16 } } as const;
export const SYNC_PAYLOAD = { lengthBytes: 8, off: { durableThrough: 0 } } as const;

// Archive footer trailer: last 32 bytes of an archived segment object.
export const ARCHIVE_TRAILER = {
  magic: 0x46415643, // "CVAF"
  lengthBytes: 32,
  off: { magic: 0, version: 4, headerLength: 6, flags: 8, entryCount: 12, tableOffset: 16, objectCrc: 24, crc: 28 },
  /** Offset-table entry: primaryOffset u32, archiveOffset u32. */
  entryBytes: 8,
} as const;

// Archive head: `volume.cvhd` in the archive, rewritten after each archived segment.
export const ARCHIVE_HEAD = {
  magic: Buffer.from('CHRVOLAH', 'ascii'),
  lengthBytes: 64,
  off: { magic: 0, version: 8, headerLength: 10, flags: 12, volumeId: 16, lastSegment: 32, nextSeq: 40, writer: 48, sealCrc: 56, crc: 60 },
} as const;

// Archive catalog: `catalog.cvct` in the archive, replaced (put, then read back) by each prune.
// This header, then a UTF-8 JSON body of bodyLength bytes (docs/FORMAT.md, "Archive catalog").
export const ARCHIVE_CATALOG = {
  magic: Buffer.from('CHRVOLCT', 'ascii'),
  lengthBytes: 64,
  off: { magic: 0, version: 8, headerLength: 10, flags: 12, volumeId: 16, generation: 32, bodyLength: 40, bodyCrc: 44, crc: 60 },
} as const;

/** The first segment of every volume, and the first sequence number of its log. */
export const FIRST_SEGMENT_ID = 1;
export const FIRST_SEQ = 1;

// Encrypted archive object (any key of an archive created with --encrypt): a header, then the
// plaintext in chunks of chunkPlainBytes (the last one shorter, possibly empty), each sealed with
// AES-256-GCM and followed by its 16-byte tag. See docs/FORMAT.md "Encrypted archive objects".
export const ENCRYPTED_OBJECT = {
  magic: Buffer.from('CHRVOLEN', 'ascii'),
  lengthBytes: 64,
  off: { magic: 0, version: 8, headerLength: 10, flags: 12, chunkPlainBytes: 16, plainLength: 24, keyId: 32, salt: 40, crc: 60 },
  cipher: 'aes-256-gcm',
  /** Plaintext per chunk: a ranged read fetches and opens only the chunks it touches. */
  chunkPlainBytes: 64 * 1024,
  tagBytes: 16,
  nonceBytes: 12,
  keyIdBytes: 8,
  /** HKDF salt, random per object (per put): the object key, and so every nonce, is never reused. */
  saltBytes: 20,
  /** HKDF-SHA256 info strings: per-object key, and the key file's fingerprint (keyId). */
  objectKeyInfo: 'chronovol archive object key v1',
  keyIdInfo: 'chronovol archive key id v1',
  /** First bytes of every chunk's associated data. */
  aadLabel: 'chronovol-enc-v1',
} as const;

/** The archive key file: one line, the secret as 64 hex digits (32 bytes). Mode 0600. */
export const ARCHIVE_KEY_FILE = { secretBytes: 32, mode: 0o600 } as const;

// Index run file: `<dir>/index/run-<first>-<last>.cvidx`.
export const INDEX_RUN = {
  magic: Buffer.from('CHRVOLIX', 'ascii'),
  lengthBytes: 64,
  off: { magic: 0, version: 8, headerLength: 10, flags: 12, entryCount: 16, timeCount: 24, firstSeq: 32, lastSeq: 40, bodyCrc: 48, crc: 60 },
  /** Bytes per version: block f64, seq f64, segment u32, offset u32. */
  entryBytes: 24,
  /** Bytes per time-table entry: timeMs f64, seq f64. */
  timeEntryBytes: 16,
} as const;

// Manifest: `<dir>/index/MANIFEST`, replaced durably.
export const MANIFEST = {
  magic: Buffer.from('CHRVOLMF', 'ascii'),
  lengthBytes: 32,
  off: { magic: 0, version: 8, headerLength: 10, flags: 12, bodyLength: 16, bodyCrc: 20, crc: 28 },
} as const;

/** Location segment value for versions with no data (ZERO/TRIM). */
export const ZERO_SEGMENT = 0xffffffff;

export const FILE_NAMES = {
  superblock: 'superblock',
  lock: 'LOCK',
  config: 'config.json',
  segmentsDir: 'segments',
  indexDir: 'index',
  manifest: 'MANIFEST',
  controlSocket: 'control.sock',
  archiveSuperblock: 'volume.cvsb',
  archiveHead: 'volume.cvhd',
  /** Where a partial recovery moves the archived objects it could not use (see docs/FORMAT.md). */
  archiveUnrecoveredPrefix: 'unrecovered/',
  archiveSegmentsPrefix: 'segments/',
  /** What prune compacted or deleted, and the retention state that justified it (docs/FORMAT.md). */
  archiveCatalog: 'catalog.cvct',
  clonesDir: 'clones',
  cloneMeta: 'clone.json',
  cloneData: 'overlay.data',
  cloneMap: 'overlay.map',
  /** Per-block CRC32Cs of overlay.data (docs/FORMAT.md, "Clone checksums"). */
  cloneCrc: 'overlay.crc',
  /** Present only while a rollback runs (or was cut short): docs/FORMAT.md, "Rollback intent". */
  rollbackIntent: 'rollback.json',
  /** Pins, forgotten events and the continuous span's start (docs/FORMAT.md, retention). */
  retention: 'retention.json',
} as const;

// Clone overlay map: `<dir>/clones/<name>/overlay.map`. The header, then one bit per block
// (bit i%8 of byte i/8 set = block i is in overlay.data at i*blockSizeBytes). Bits only go 0 -> 1.
// Then one CRC32C (u32) per bitmap page of `pageBytes` (0: a page never written, all zero).
export const CLONE_MAP = {
  magic: Buffer.from('CHRVOLCM', 'ascii'),
  lengthBytes: 64,
  pageBytes: 4096,
  off: { magic: 0, version: 8, headerLength: 10, flags: 12, volumeId: 16, blockSizeBytes: 32, blockCount: 40, crc: 60 },
} as const;

// Clone checksums: `<dir>/clones/<name>/overlay.crc`. The header, then one CRC32C (u32) per
// block of the data overlay.data holds for it, durable before the map bit that names the block;
// then one bit per region of markRegionBlocks blocks: the region may hold in-place overwrites
// not yet synced (durable before the first such overwrite reaches overlay.data).
export const CLONE_CRC = {
  magic: Buffer.from('CHRVOLCC', 'ascii'),
  lengthBytes: 64,
  entryBytes: 4,
  /** Blocks per region mark in a file made now (the file's own value is in its header). */
  markRegionBlocks: 256,
  off: { magic: 0, version: 8, headerLength: 10, flags: 12, volumeId: 16, blockSizeBytes: 32, blockCount: 40, markRegionBlocks: 48, crc: 60 },
} as const;

/**
 * CLONE_CRC flags: `open` set while a process has the clone open (found set at open, the last one
 * did not close it); `marks`, the file has the region marks (a file from before them is adopted).
 */
export const CloneCrcFlags = {
  open: 1,
  marks: 2,
} as const;

export function segmentFileName(id: number): string {
  return `${id.toString(16).padStart(8, '0')}.cvseg`;
}

/** A rewritten (compacted) archived segment: generation g > 0 lives at `<id>.g<g>.cvseg`, never reused. */
export function generationFileName(id: number, generation: number): string {
  return generation > 0 ? `${id.toString(16).padStart(8, '0')}.g${generation}.cvseg` : segmentFileName(id);
}

/** Segment id and generation of an archived object's name (generation 0: the original `<id>.cvseg`). */
export function parseGenerationFileName(name: string): { id: number; generation: number } | undefined {
  const m = /^([0-9a-f]{8})(?:\.g([1-9][0-9]*))?\.cvseg$/.exec(name);
  return m ? { id: parseInt(m[1], 16), generation: m[2] ? Number(m[2]) : 0 } : undefined;
}

export function parseSegmentFileName(name: string): number | undefined {
  const m = /^([0-9a-f]{8})\.cvseg$/.exec(name);
  return m ? parseInt(m[1], 16) : undefined;
}

// Archive read cache (issue 14): `<dir>/archive-cache/<name>.cvac`, one file per cached offset
// table or fetched chunk of an archived segment. A cache, never a source of truth: a file that
// fails any check is a miss (deleted and fetched again). See docs/FORMAT.md "Archive read cache".
export const ARCHIVE_CACHE = {
  magic: Buffer.from('CHRVOLAC', 'ascii'),
  lengthBytes: 64,
  off: { magic: 0, version: 8, headerLength: 10, kind: 12, flags: 14, volumeId: 16, segmentId: 32, offset: 40, payloadLength: 48, payloadCrc: 52, reserved: 56, crc: 60 },
  dirName: 'archive-cache',
  fileSuffix: '.cvac',
} as const;

// Local offset table (issue 14): `<dir>/archive-tables/<id>[.g<g>].cvat`, the offset table of
// each built archived object, written durably when the object is archived (or a prune rewrites
// it), so a cold read of the archive maps its offset without a round trip: one ranged GET, not
// two. Never trusted alone: the reader still checks the record each read lands in. See
// docs/FORMAT.md "Local offset table".
export const ARCHIVE_TABLE = {
  magic: Buffer.from('CHRVOLAT', 'ascii'),
  lengthBytes: 64,
  off: { magic: 0, version: 8, headerLength: 10, flags: 12, volumeId: 16, segmentId: 32, generation: 40, entryCount: 44, tableOffset: 48, tableCrc: 56, crc: 60 },
  /** One entry: the object's offset-table entry as it is (primaryOffset u32, archiveOffset u32). */
  entryBytes: 8,
  dirName: 'archive-tables',
  fileSuffix: '.cvat',
} as const;

/** The local offset table of object `<id>[.g<g>].cvseg`: the same name, suffix `.cvat`. */
export function tableFileName(id: number, generation: number): string {
  return generationFileName(id, generation).replace(/\.cvseg$/, ARCHIVE_TABLE.fileSuffix);
}

/** Segment id and generation of a local offset table's name. */
export function parseTableFileName(name: string): { id: number; generation: number } | undefined {
  return name.endsWith(ARCHIVE_TABLE.fileSuffix) ? parseGenerationFileName(name.slice(0, -ARCHIVE_TABLE.fileSuffix.length) + '.cvseg') : undefined;
}

/** What an archive cache file holds. */
export const ArchiveCacheKind = {
  TABLE: 1,
  CHUNK: 2,
} as const;
