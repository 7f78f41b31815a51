import Fuse from 'fuse-native';
import { ChronoError, ErrorCode } from '../errors';

/** Stable error codes become errnos here, at the FUSE edge, and nowhere else. */
const ERRNO: Partial<Record<ErrorCode, number>> = {
  OUT_OF_RANGE: Fuse.EFBIG, // writing past the fixed size of the image: "File too large"
  READ_ONLY: Fuse.EROFS,
  UNKNOWN_POINT: Fuse.ENOENT,
  BAD_ARGUMENT: Fuse.EINVAL,
  LOCKED: Fuse.EBUSY,
  NO_SPACE: Fuse.ENOSPC, // a full disk: the write appended nothing and may be retried once space is freed
  ARCHIVE_UNAVAILABLE: Fuse.ENOSPC, // the working set is full and cannot turn over (as at the NBD edge)
  UNKNOWN_CLONE: Fuse.ENOENT,
  EXISTS: Fuse.EEXIST,
  POINT_FORGOTTEN: Fuse.ENOENT, // gone from events/ too; the log line names the nearest kept points
};

export function toErrno(err: unknown): number {
  if (err instanceof ChronoError) return ERRNO[err.code] ?? Fuse.EIO;
  return Fuse.EIO;
}
