import Fuse from 'fuse-native';
import type { Logger } from 'pino';
import { ChronoError } from '../errors';
import type { Volume } from '../volume/volume';
import { makeOps } from './fuse-ops';
import { lazyUnmount, mountEntry } from './mount-guard';
import { CONGESTION_THRESHOLD_REQUESTS, EXTRA_MOUNT_OPTIONS, MAX_WRITE_BYTES } from './mount-options';
import { setCongestionThreshold, setReadAhead } from './read-ahead';
import { FuseCpu, FuseThreads, PlacementPolicy } from './thread-placement';
import { Tree } from './tree';
import { SHARING_FUSE_OPTIONS, TreeSharing, shareTree } from './tree-sharing';

class BigWritesFuse extends Fuse {
  /** libfuse threads that have served a request: fuse-native sets each one up once, here. */
  threadsStarted = 0;

  protected override _fuseOptions(): string {
    const base = super._fuseOptions();
    // attr_timeout=0: status.json and the event list change while mounted; sizes must not go stale.
    const extra = `${EXTRA_MOUNT_OPTIONS},attr_timeout=0`;
    return base ? `${base},${extra}` : `-o${extra}`;
  }

  protected override _malloc(size: number): Buffer {
    this.threadsStarted++;
    return super._malloc(size);
  }
}

export interface FuseMountOptions {
  mountpoint: string;
  autoSyncMs: number;
  /** Kernel read-ahead for the mount (0 leaves the kernel's default). */
  readAheadBytes: number;
  /** The CPU for fuse-native's threads (see thread-placement.ts). */
  fuseCpu: FuseCpu;
  log: Logger;
  /** `--allow-other`: other users may use the tree, as these owners and modes allow. */
  share?: TreeSharing;
  /** status.json's content, kept fresh by the daemon host. */
  status: () => Buffer;
  startedMs: number;
}

export interface RequestStats {
  writes: number;
  writeBytes: number;
  maxWriteBytes: number;
  reads: number;
  readBytes: number;
  maxReadBytes: number;
}

/**
 * The FUSE adapter: mounts the tree over a volume and unmounts it. It adapts and nothing more;
 * the process around it (control socket, NBD, status timer) is the daemon host's.
 */
export class FuseMount {
  readonly requests: RequestStats = { writes: 0, writeBytes: 0, maxWriteBytes: 0, reads: 0, readBytes: 0, maxReadBytes: 0 };
  private fuse?: BigWritesFuse;
  /** The read-ahead set on the mount's backing device, if it could be set. */
  private readAhead?: { device: string; kib: number };
  /** The connection's congestion threshold, if it could be raised. */
  private congestionThreshold?: number;
  /** fuse-native's threads, if they could be placed (see thread-placement.ts). */
  private fuseThreads?: FuseThreads;
  private policy?: PlacementPolicy;

  private constructor(readonly mountpoint: string, private readonly o: FuseMountOptions) {}

  static async mount(volume: Volume, o: FuseMountOptions): Promise<FuseMount> {
    const m = new FuseMount(o.mountpoint, o);
    await m.start(volume);
    return m;
  }

  private async start(volume: Volume): Promise<void> {
    const o = this.o;
    const tree = new Tree(volume, o.status, o.startedMs);
    const counted = countRequests(makeOps(volume, tree, { autoSyncMs: o.autoSyncMs, log: o.log }), this.requests, (isRead) => this.policy?.onRequest(isRead));
    const ops = o.share ? shareTree(counted, o.share) : counted;
    // timeout: false is load-bearing: with fuse-native's default 15 s timeout a slow request would
    // be answered EIO while our handler still uses its buffer (fuse-ops.ts reads/writes in place).
    this.fuse = new BigWritesFuse(this.mountpoint, ops, { timeout: false, maxRead: MAX_WRITE_BYTES, fsname: 'chronovol', ...(o.share ? SHARING_FUSE_OPTIONS : {}) });
    const mount = () => new Promise<void>((resolve, reject) => this.fuse!.mount((err) => (err ? reject(new ChronoError('IO', `mount at ${this.mountpoint} failed: ${err.message}`)) : resolve())));
    this.fuseThreads = await FuseThreads.mount(o.fuseCpu, mount, o.log);
    if (this.fuseThreads) this.policy = new PlacementPolicy(this.fuseThreads);
    this.tuneReadAhead();
  }

  /** See read-ahead.ts. Not fatal: without these scans are slower, never wrong. */
  private tuneReadAhead(): void {
    if (this.o.readAheadBytes <= 0) return;
    try {
      this.readAhead = setReadAhead(this.mountpoint, this.o.readAheadBytes);
      this.congestionThreshold = setCongestionThreshold(this.mountpoint, CONGESTION_THRESHOLD_REQUESTS);
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'could not tune the mount\'s kernel read-ahead; sequential reads will be slower');
    }
  }

  /** Once a second: lets the thread placement follow the load. */
  tick(): void {
    this.policy?.tick();
  }

  /** Whether the mount table still lists the mount (read from the table, never the mount). */
  isMounted(): boolean {
    return Boolean(mountEntry(this.mountpoint));
  }

  /** What status.json shows of the FUSE side. */
  statusFields(): Record<string, unknown> {
    return {
      fuseRequests: this.requests,
      fuseReadAheadKiB: this.readAhead?.kib ?? null,
      fuseCongestionThreshold: this.congestionThreshold ?? null,
      fuseThreads: { started: this.fuse?.threadsStarted ?? 0, ...(this.fuseThreads ? { cpu: this.fuseThreads.cpu, pinned: this.fuseThreads.pinned } : { cpu: null, pinned: false }) },
    };
  }

  /** The same fields before anything is mounted (status.json is first made before the mount). */
  static noStatusFields(): Record<string, unknown> {
    return {
      fuseRequests: { writes: 0, writeBytes: 0, maxWriteBytes: 0, reads: 0, readBytes: 0, maxReadBytes: 0 },
      fuseReadAheadKiB: null, fuseCongestionThreshold: null, fuseThreads: { started: 0, cpu: null, pinned: false },
    };
  }

  get threadsCpu(): number | undefined {
    return this.fuseThreads?.cpu;
  }

  /** Unmounts, lazily if the mountpoint is busy. */
  unmount(): Promise<void> {
    return new Promise<void>((resolve) => this.fuse!.unmount((err) => {
      if (err && mountEntry(this.mountpoint)) {
        this.o.log.warn({ err: err.message }, 'mountpoint busy; detaching lazily');
        lazyUnmount(this.mountpoint);
      }
      resolve();
    }));
  }
}

/**
 * Counts what the kernel actually sends (request sizes prove big_writes took effect), and tells
 * `seen` of each read and write.
 */
function countRequests(ops: ReturnType<typeof makeOps>, s: RequestStats, seen: (isRead: boolean) => void): ReturnType<typeof makeOps> {
  const read = ops.read!;
  const write = ops.write!;
  return {
    ...ops,
    read(p, fd, buf, len, pos, cb) {
      seen(true);
      s.reads++;
      s.readBytes += len;
      s.maxReadBytes = Math.max(s.maxReadBytes, len);
      read(p, fd, buf, len, pos, cb);
    },
    write(p, fd, buf, len, pos, cb) {
      seen(false);
      s.writes++;
      s.writeBytes += len;
      s.maxWriteBytes = Math.max(s.maxWriteBytes, len);
      write(p, fd, buf, len, pos, cb);
    },
  };
}
