/**
 * The FUSE mount options fuse-native has no keys for: its `-o` string comes from a fixed list, so
 * these are appended to it (fuse-mount.ts). The bench's bare server mounts with the same ones.
 */

/** libfuse 2 caps writes at 4 KiB without big_writes, and fuse-native has no key for it. */
export const MAX_WRITE_BYTES = 128 * 1024;
/** A readahead window of several requests lets the kernel keep reads in flight while we serve one. */
export const MAX_READAHEAD_BYTES = 1024 * 1024;
/**
 * Read-ahead requests the kernel keeps in flight to us at once (its default is 12). Kept below
 * libfuse 2's idle-worker limit: it starts a worker whenever none is free and ends one whenever
 * more than 10 are, so a scan with 12 requests in flight churned threads, and fuse-native gives
 * every new thread an event-loop handle it never frees, which each later wakeup of the loop walks.
 * Measured on a fresh daemon, 60 warm scans of 1 GiB: at 12, 45,892 threads started and scans
 * fell from 1.2 GB/s to 0.31; at 7, 15 threads, and 1.8 GB/s throughout. See docs/DESIGN.md.
 */
export const MAX_BACKGROUND_REQUESTS = 7;
/**
 * Above MAX_BACKGROUND_REQUESTS, so the connection never counts as congested (read-ahead.ts):
 * cold scans ran at 0.80 of the bare baseline with the two equal, 0.93 with this. libfuse 2
 * clamps the mount option to max_background, so the daemon raises it after mounting; the option
 * still keeps it there, not at the kernel's 3/4 of max_background, where that fails.
 */
export const CONGESTION_THRESHOLD_REQUESTS = 9;

/** The mount options fuse-native has no keys for (the bench's bare server uses the same). */
export const EXTRA_MOUNT_OPTIONS = `big_writes,max_write=${MAX_WRITE_BYTES},max_readahead=${MAX_READAHEAD_BYTES},max_background=${MAX_BACKGROUND_REQUESTS},congestion_threshold=${CONGESTION_THRESHOLD_REQUESTS}`;
