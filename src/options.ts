import { ChronoError } from './errors';

/** Every default in one place. Units are last in names. */
export const DEFAULTS = {
  blockSizeBytes: 4096,
  segmentSizeBytes: 64 * 1024 * 1024,
  /**
   * Working-set capacity over volume size. FIFO cleaning under uniform random overwrites keeps a
   * fraction u of the oldest segment live, u = exp(-r(1-u)); r = 2 gives u ≈ 0.20 and a
   * copy-forward write amplification 1/(1-u) ≈ 1.25, inside the 1.5 budget (r ≥ 1.65 needed).
   */
  overProvisionRatio: 2,
  /** Extra working-set segments beyond the ratio: the current one and one in turnover. */
  workingSetSlackSegments: 2,
  minSegmentSizeBytes: 64 * 1024,
  maxSegmentSizeBytes: 1024 * 1024 * 1024,
  minBlockSizeBytes: 512,
  maxBlockSizeBytes: 64 * 1024,
  /**
   * Appends gather in a buffer this large before a direct write(2). 4 MiB (two huge pages) moved
   * sequential ingest from about 1.6 to 1.8 GB/s here against 2 MiB: half the requests, each
   * reaching the disk as larger pieces.
   */
  writeBufferBytes: 4 * 1024 * 1024,
  /** Appended bytes still on their way to the OS before appends wait (threadpool writes). */
  writeBehindBytes: 8 * 1024 * 1024,
  /** Block data in one record at most (a quarter segment at most, so copy-forward always fits). */
  maxRecordDataBytes: 1024 * 1024,
  /** Log sealed between index checkpoints: the most a replay after a crash has to read. */
  checkpointIntervalBytes: 512 * 1024 * 1024,
  /** Memtable versions before a checkpoint is forced between seals. */
  memtableMaxVersions: 1 << 20,
  blockCacheBytes: 64 * 1024 * 1024,
  /**
   * Segment summaries (segment/segment-summary.ts) kept in memory at most, over all segments: 48
   * bytes a record, so 64 MiB covers 1.4 million records (about 170 GiB of 128 KiB writes).
   */
  segmentSummaryBytes: 64 * 1024 * 1024,
  /** A scan's read-ahead is read straight from the disk in pieces this large (one request each)... */
  scanChunkBytes: 4 * 1024 * 1024,
  /** ...into at most this much memory, handed back after a quiet spell (segment/scan-chunks.ts). */
  scanReadAheadBufferBytes: 64 * 1024 * 1024,
  archiveFooterCacheSegments: 256,
  importChunkBytes: 1024 * 1024,
  fuseAutoSyncMs: 0,
  /** --seal-after: 0 leaves a quiet current segment unsealed (its writes reach the archive with the next seal). */
  sealAfterMs: 0,
  /** The FUSE mount's kernel read-ahead: several 128 KiB requests in flight for a scan. */
  fuseReadAheadBytes: 1024 * 1024,
  /** The CPU for fuse-native's threads: `auto` is the daemon's own at mount (thread-placement.ts). */
  fuseCpu: 'auto' as 'auto' | 'off' | number,
  /** Least headroom kept free on the primary file system for index checkpoints (space-check.ts). */
  spaceReserveBytes: 4 * 1024 * 1024,
  /** How long a comfortable free-space reading is trusted before the next statfs (space-check.ts). */
  spaceRecheckMs: 100,
  /** NBD's Unix socket, in the volume directory unless --socket moves it. */
  nbdSocketName: 'nbd.sock',
  /** The NBD port when --listen names only a host. */
  nbdPort: 10809,
  /** A client that has not finished the handshake (TLS included) by then is closed. */
  nbdHandshakeTimeoutMs: 5000,
  /** NBD connections open at once (all listeners); more are closed on accept. */
  nbdMaxConnections: 64,
  /** Control connections open at once over TCP (`--control-listen`); the handshake timeout is NBD's. */
  controlMaxConnections: 16,
  /** Volume directory and file modes; --allow-group-access widens them to 0750/0640. */
  privateDirMode: 0o700,
  privateFileMode: 0o600,
  groupDirMode: 0o750,
  groupFileMode: 0o640,
  /** S3 archive: the region when none is given (path-style addressing needs one for signing). */
  s3Region: 'us-east-1',
  /**
   * Objects at least this large go up by multipart upload, in parts of s3PartSizeBytes; smaller
   * ones (a default 64 MiB segment) in one PutObject, as fast as the SDK's own (1.0-1.1x on
   * s3rver). Multipart there ran at 0.3-0.6x: the server re-reads every part to complete.
   */
  s3MultipartThresholdBytes: 128 * 1024 * 1024,
  s3PartSizeBytes: 16 * 1024 * 1024,
  /** An encrypted object is sealed into a buffer the S3 store keeps between puts, handed back after this long without one. */
  gatherBufferIdleReleaseMs: 30_000,
  /** Parts of one object in flight at once. */
  s3PartConcurrency: 4,
  /** Tries per S3 request (retryable failures only), with full-jitter backoff between them. */
  s3MaxAttempts: 8,
  s3RetryBaseDelayMs: 100,
  s3RetryMaxDelayMs: 10_000,
  /** A socket silent this long (a stalled response) is dropped and the request retried. */
  s3IdleTimeoutMs: 30_000,
  s3ConnectTimeoutMs: 5_000,
  // protect (docs/REPLICATION.md)
  /** A target owing an answer this long is cut off, so the application never waits on us longer. */
  protectTargetTimeoutMs: 5_000,
  /** Granularity of the dirty bitmap on the primary: a resync moves whole chunks of this size. */
  protectBitmapGranularityBytes: 64 * 1024,
  /** How often protect looks for a lost target, writes status.json and checks the RPO. */
  protectPollMs: 250,
  /** Where protect keeps its sockets and status.json, and where `agent sync` finds it. */
  protectStateDir: '/run/chronovol/protect',
  /**
   * --archive-backlog: sealed segments that may wait in primary for an unreachable archive
   * beyond the working set (K + 1 + backlog in primary at most); writes wait once it is full.
   * Given as a size, rounded down to whole segments; this default is 4 segments (256 MiB of
   * 64 MiB segments).
   */
  archiveBacklogSegments: 4,
  /** --archive-stall-timeout: how long a write waits for a full backlog to drain before ENOSPC (ARCHIVE_BACKLOG_FULL). */
  archiveStallTimeoutMs: 60_000,
  /** A control-socket export whose client takes in no bytes for this long is cut off (its point's hold released). */
  exportStallMs: 120_000,
  /** The archiver's retries while the archive is unreachable: full-jitter backoff between these. */
  archiveRetryBaseDelayMs: 500,
  archiveRetryMaxDelayMs: 10_000,
  /** ...but at least this often while a write waits for a full backlog, so it goes on soon after the archive is back. */
  archiveRetryWhileWaitingMs: 1_000,
  /** Archive reads kept in flight by scans (recovery's copy into the working set, sequential reads, recover's object fetches). */
  archiveReadsInFlight: 8,
  /**
   * A clone write that must mark a region (an in-place overwrite, DESIGN rule 12a) and begins
   * where the last write ended also marks this many regions past its own, in the same
   * fdatasync: a sequential overwrite pays one per this many + 1 regions, not one per region.
   */
  cloneMarkAheadRegions: 15,
  /** How long a clone's delete waits for the kernel's RELEASE of handles just closed (FUSE sends it after close(2) returns). */
  cloneReleaseWaitMs: 2000,
  /**
   * --archive-cache: bytes of fetched archive chunks and offset tables kept on disk under the
   * volume directory (archive-cache/), LRU by size, across restarts; 0 turns it off.
   */
  archiveCacheBytes: 2 * 1024 * 1024 * 1024,
  // prune (issue 15)
  /** An archived object whose dead share (bytes no kept point reads) is at least this is rewritten with only what is needed. */
  pruneRewriteThreshold: 0.5,
  /** The most bytes one prune writes into rewritten objects (--max-rewrite-bytes); objects past it wait for the next prune. */
  pruneMaxRewriteBytes: 4 * 1024 * 1024 * 1024,
  /**
   * `prune --busy-share`: while reads or writes come, the share of the time a prune's steps
   * (object reads, rewrites, deletes) may take; the rest is left to them (prune-pacer.ts).
   */
  pruneBusyShare: 0.1,
  /** The volume counts as quiet for prune once no read or write has come for this long. */
  pruneQuietMs: 50,
  // Investigation (issue 17): the timeline picture's grid, its tree window, the web page.
  /** Columns (time) and rows (block address) of the timeline's density grid: bounds the SVG's size. */
  timelineTimeBins: 120,
  timelineBlockBins: 48,
  /** The tree's timeline.svg shows this much of the most recent history. */
  timelineTreeWindowMs: 24 * 3600 * 1000,
  /** The tree's timeline.svg is redrawn at most this often (and only when something changed). */
  timelineTreeRefreshMs: 5_000,
  /** How often the web page asks for new events (it polls; see page-html.ts). */
  httpPollMs: 1_000,
  /** `--http unix:` with no path: the page's socket in the volume directory. */
  httpSocketName: 'http.sock',
} as const;

/**
 * Parsers for command-line values. A value that does not parse is a usage error (`BAD_USAGE`,
 * exit 2); whether a parsed value suits the volume is checked where it is used (`BAD_ARGUMENT`).
 */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)?$/i.exec(text.trim());
  if (!m) throw new ChronoError('BAD_USAGE', `not a size: ${text} (try 4096, 512K, 20G)`);
  const mult: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };
  const n = Number(m[1]) * mult[m[2].toLowerCase()];
  if (!Number.isSafeInteger(n)) throw new ChronoError('BAD_USAGE', `not a whole number of bytes: ${text}`);
  return n;
}

/** "500ms", "30s", "5m", "1h"; a bare number is seconds. */
export function parseDurationMs(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/i.exec(text.trim());
  if (!m) throw new ChronoError('BAD_USAGE', `not a duration: ${text} (try 30s, 5m)`);
  const mult: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  return Math.round(Number(m[1]) * mult[(m[2] ?? 's').toLowerCase()]);
}

/** A whole number, 0 or more, in decimal: a count. */
export function parseCount(text: string): number {
  const n = /^\d+$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!Number.isSafeInteger(n)) throw new ChronoError('BAD_USAGE', `not a whole number: ${text}`);
  return n;
}

/** A fraction from 0 to 1 (a share), e.g. 0.5. */
export function parseFraction(text: string): number {
  const n = /^(0(\.\d+)?|1(\.0+)?|\.\d+)$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!Number.isFinite(n)) throw new ChronoError('BAD_USAGE', `not a fraction from 0 to 1: ${text} (try 0.5)`);
  return n;
}

/** A number of seconds, fractions allowed, 0 or more. */
export function parseSeconds(text: string): number {
  const n = /^\d+(\.\d+)?$/.test(text.trim()) ? Number(text.trim()) : NaN;
  if (!Number.isFinite(n)) throw new ChronoError('BAD_USAGE', `not a number of seconds: ${text}`);
  return n;
}
