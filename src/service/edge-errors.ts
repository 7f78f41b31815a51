import { ChronoError, ErrorCode } from '../errors';

/**
 * The one table that turns stable error codes into what each edge answers: the FUSE errno, the
 * NBD error and the CLI's exit code. Edges look errors up here and nowhere else, so the same
 * failure reads the same over FUSE, NBD and the CLI. A code not listed is EIO / exit 1.
 */

/** Linux errno numbers (FUSE answers their negatives). */
export const ERRNO = { EPERM: 1, ENOENT: 2, EIO: 5, EBUSY: 16, EEXIST: 17, EINVAL: 22, EFBIG: 27, ENOSPC: 28, EROFS: 30 } as const;
export type Errno = keyof typeof ERRNO;
/** The error values the NBD protocol defines that we use (doc/proto.md, "Error values"). */
export type NbdErrno = 'EPERM' | 'EIO' | 'EINVAL' | 'ENOSPC';

/** Whether the request would change the volume: some failures answer differently for reads and writes. */
export type EdgeOp = 'read' | 'write';

interface EdgeRow {
  fuse: Errno;
  nbd: NbdErrno;
  /** 2: bad usage or input (fix the command line); 1: the command failed. */
  exit: 1 | 2;
  /** Overrides fuse/nbd for a request that writes. */
  onWrite?: Errno & NbdErrno;
}

const DEFAULT_ROW: EdgeRow = { fuse: 'EIO', nbd: 'EIO', exit: 1 };

export const EDGE_ERRORS: Partial<Record<ErrorCode, EdgeRow>> = {
  BAD_USAGE: { fuse: 'EINVAL', nbd: 'EINVAL', exit: 2 },
  BAD_ARGUMENT: { fuse: 'EINVAL', nbd: 'EINVAL', exit: 2 },
  // Past the fixed size of the image: "File too large" to a file, an invalid request to a disk.
  OUT_OF_RANGE: { fuse: 'EFBIG', nbd: 'EINVAL', exit: 2 },
  UNKNOWN_POINT: { fuse: 'ENOENT', nbd: 'EIO', exit: 2 },
  NOT_A_VOLUME: { fuse: 'EIO', nbd: 'EIO', exit: 2 },
  EXISTS: { fuse: 'EEXIST', nbd: 'EIO', exit: 2 },
  LOCKED: { fuse: 'EBUSY', nbd: 'EIO', exit: 1 },
  READ_ONLY: { fuse: 'EROFS', nbd: 'EPERM', exit: 1 },
  // A full disk: the write appended nothing and may be retried once space is freed.
  NO_SPACE: { fuse: 'ENOSPC', nbd: 'ENOSPC', exit: 1 },
  // A write finds the working set full and unable to turn over (no room, as NO_SPACE); a read
  // of history only the archive holds simply failed.
  ARCHIVE_UNAVAILABLE: { fuse: 'EIO', nbd: 'EIO', exit: 1, onWrite: 'ENOSPC' },
  // The archive has been down for longer than the backlog lasts: the write waited
  // --archive-stall-timeout, appended nothing, and may be retried once the archive is back.
  ARCHIVE_BACKLOG_FULL: { fuse: 'ENOSPC', nbd: 'ENOSPC', exit: 1 },
  UNKNOWN_CLONE: { fuse: 'ENOENT', nbd: 'EIO', exit: 1 },
  // rmdir of a clone whose image is still open: busy, as for a mounted directory.
  CLONE_IN_USE: { fuse: 'EBUSY', nbd: 'EIO', exit: 1 },
  // mkdir events/<label> while a resync runs: busy, try again once it is done.
  POINT_IN_RESYNC: { fuse: 'EBUSY', nbd: 'EIO', exit: 1 },
  // A point a forget removed: gone from events/ too (the log line names the nearest kept
  // points). NBD meets it at the handshake, which refuses the export with NBD_REP_ERR_UNKNOWN
  // and the message (nbd-handshake.ts); the EIO is for a request, which never resolves a point.
  POINT_FORGOTTEN: { fuse: 'ENOENT', nbd: 'EIO', exit: 2 },
  POINT_LOST: { fuse: 'ENOENT', nbd: 'EIO', exit: 2 },
};

function rowOf(err: unknown): EdgeRow {
  return (err instanceof ChronoError && EDGE_ERRORS[err.code]) || DEFAULT_ROW;
}

/** The errno FUSE answers (negative, as fuse-native wants it). */
export function fuseErrno(err: unknown, op: EdgeOp): number {
  const row = rowOf(err);
  return -ERRNO[(op === 'write' && row.onWrite) || row.fuse];
}

/** The error field of an NBD reply. */
export function nbdErrno(err: unknown, op: EdgeOp): number {
  const row = rowOf(err);
  return ERRNO[(op === 'write' && row.onWrite) || row.nbd];
}

/** Exit codes: 0 ok, 1 failure or damage found, 2 bad usage or input. */
export function exitCodeFor(err: unknown): number {
  return rowOf(err).exit;
}
