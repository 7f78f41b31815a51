/**
 * The one error class. Codes are stable: scripts and the FUSE/NBD edges map them, and tests
 * assert them. Never reuse a code for a different meaning.
 */
export type ErrorCode =
  | 'BAD_USAGE' // a command line that does not parse: unknown option, missing argument, an option value that is not a size/duration/number
  | 'BAD_ARGUMENT' // a value that parses but is not valid here: size not a multiple of the block size, offset past the end
  | 'OUT_OF_RANGE' // read/write past the end of the volume
  | 'UNKNOWN_POINT' // event id/label/seq/time that does not resolve
  | 'NOT_A_VOLUME' // directory has no superblock
  | 'EXISTS' // init over an existing volume
  | 'LOCKED' // another process owns the volume
  | 'BAD_MAGIC'
  | 'BAD_VERSION'
  | 'BAD_LENGTH'
  | 'BAD_CHECKSUM'
  | 'BAD_FLAGS'
  | 'CORRUPT_LOG' // damage in the middle of the log (not a torn tail)
  | 'UNKNOWN_RECORD_TYPE' // a valid record of a type this build does not know (written by a newer one)
  | 'CORRUPT_BLOCK' // a block's data fails its checksum: never served
  | 'FOREIGN_SEGMENT' // a segment that belongs to another volume
  | 'ARCHIVE_MISSING' // an archived object that should exist does not
  | 'ARCHIVE_UNAVAILABLE' // the backing store cannot be reached
  | 'ARCHIVE_BACKLOG_FULL' // the archive is unreachable, the backlog of unarchived segments in primary is full, and a write waited --archive-stall-timeout for it in vain
  | 'ARCHIVE_MISMATCH' // read-back verification of an upload failed
  | 'ARCHIVE_CONFLICT' // another process with this volume id writes the archive (a copied volume directory): this one archives nothing
  | 'ARCHIVE_WRONG_KEY' // an encrypted archive object was sealed with another key than the key file's
  | 'ARCHIVE_AUTH_FAILED' // an encrypted archive object fails authentication: altered, swapped or truncated
  | 'NO_ARCHIVE' // the volume has no backing store configured
  | 'WRITER_FAILED' // an earlier I/O error poisoned this writer
  | 'READ_ONLY'
  | 'IO' // an I/O error from the file system
  | 'NO_SPACE' // the primary file system cannot hold what the volume needs; nothing was written
  | 'CLOSED'
  | 'DAEMON' // control-socket failure
  | 'UNSUPPORTED'
  | 'UNSAFE_PERMISSIONS' // a volume directory other users (or its group) can reach
  | 'ACCESS_DENIED' // a client's identity may not do what it asked (NBD access rules)
  | 'UNKNOWN_CLONE' // a clone name that does not exist
  | 'FOREIGN_CLONE' // a clone's files belong to another volume or geometry
  | 'POINT_LOST' // a time after a recovered history's last record and before the recovery: that span was never archived
  | 'POINT_IN_RESYNC' // a point (or a new event) inside a resync window: the replica was a torn mix then
  | 'PROTECT_FAILED' // protect could not start or drive qemu-storage-daemon (the splitter)
  | 'CLONE_IN_USE' // clone delete refused: its image is open through the FUSE tree or an NBD clone/<name> export (the name must not name another clone meanwhile)
  | 'LIVE_IN_USE' // rollback refused: live is open for writing through the tree or an NBD client is attached to it (--force overrides)
  | 'ROLLBACK_UNFINISHED' // a rollback to another target was cut short: repeat that one first
  | 'VERSION_PRUNED' // a block version prune removed from the archive (no kept point reads it): never served from other bytes
  | 'POINT_FORGOTTEN'; // a point a forget removed (a forgotten event, a time in a thinned span); names the nearest kept points

export class ChronoError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;
  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'ChronoError';
    this.code = code;
    this.details = details;
  }
}

export function isChronoError(err: unknown, code?: ErrorCode): err is ChronoError {
  return err instanceof ChronoError && (code === undefined || err.code === code);
}

/** Wrap a Node fs error so callers see one error class. */
export function ioError(op: string, path: string, err: unknown): ChronoError {
  if (err instanceof ChronoError) return err;
  const e = err as NodeJS.ErrnoException;
  return new ChronoError('IO', `${op} ${path}: ${e?.message ?? String(err)}`, { op, path, errno: e?.code }, err);
}
