/** NBD fixed-newstyle protocol constants (the NBD project's doc/proto.md). */
export const NBD = {
  INIT_MAGIC: 0x4e42444d41474943n, // "NBDMAGIC"
  OPTS_MAGIC: 0x49484156454f5054n, // "IHAVEOPT"
  REP_MAGIC: 0x3e889045565a9n,
  REQUEST_MAGIC: 0x25609513,
  SIMPLE_REPLY_MAGIC: 0x67446698,

  FLAG_FIXED_NEWSTYLE: 1,
  FLAG_NO_ZEROES: 2,
  FLAG_C_FIXED_NEWSTYLE: 1,
  FLAG_C_NO_ZEROES: 2,

  OPT_EXPORT_NAME: 1,
  OPT_ABORT: 2,
  OPT_LIST: 3,
  OPT_STARTTLS: 5,
  OPT_INFO: 6,
  OPT_GO: 7,

  REP_ACK: 1,
  REP_SERVER: 2,
  REP_INFO: 3,
  REP_ERR_UNSUP: 2 ** 31 + 1,
  REP_ERR_POLICY: 2 ** 31 + 2,
  REP_ERR_INVALID: 2 ** 31 + 3,
  REP_ERR_TLS_REQD: 2 ** 31 + 5,
  REP_ERR_UNKNOWN: 2 ** 31 + 6,

  INFO_EXPORT: 0,
  INFO_NAME: 1,
  INFO_DESCRIPTION: 2,
  INFO_BLOCK_SIZE: 3,

  FLAG_HAS_FLAGS: 1 << 0,
  FLAG_READ_ONLY: 1 << 1,
  FLAG_SEND_FLUSH: 1 << 2,
  FLAG_SEND_FUA: 1 << 3,
  FLAG_SEND_TRIM: 1 << 5,
  FLAG_SEND_WRITE_ZEROES: 1 << 6,
  FLAG_CAN_MULTI_CONN: 1 << 8,

  CMD_READ: 0,
  CMD_WRITE: 1,
  CMD_DISC: 2,
  CMD_FLUSH: 3,
  CMD_TRIM: 4,
  CMD_WRITE_ZEROES: 6,

  CMD_FLAG_FUA: 1 << 0,

  EPERM: 1,
  EIO: 5,
  EINVAL: 22,
  ENOSPC: 28,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
} as const;

/** Largest request we accept; bigger is treated as malformed and closes the connection. */
export const MAX_REQUEST_BYTES = 32 * 1024 * 1024;
export const REQUEST_HEADER_BYTES = 28;
