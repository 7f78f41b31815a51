import Fuse from 'fuse-native';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { clonesOf } from '../clone/clone-service';
import { ControlServer } from '../control/control-server';
import { ChronoError } from '../errors';
import { NbdServer, NbdServerOptions } from '../nbd/nbd-server';
import { Volume } from '../volume/volume';
import { makeOps } from './fuse-ops';
import { lazyUnmount, mountEntry, prepareMountpoint } from './mount-guard';
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

export interface FuseDaemonOptions {
  dir: string;
  mountpoint: string;
  cacheBytes: number;
  autoSyncMs: number;
  /** Kernel read-ahead for the mount (0 leaves the kernel's default). */
  readAheadBytes: number;
  /** The CPU for fuse-native's threads (see thread-placement.ts). */
  fuseCpu: FuseCpu;
  log: Logger;
  /** Serve NBD from the same process as well. */
  nbd?: Omit<NbdServerOptions, 'log'>;
  /** `--allow-other`: other users may use the tree, as these owners and modes allow. */
  share?: TreeSharing;
}

export interface RequestStats {
  writes: number;
  writeBytes: number;
  maxWriteBytes: number;
  reads: number;
  readBytes: number;
  maxReadBytes: number;
}

/** One process: the engine, the FUSE tree over it, and the control socket. */
export class FuseDaemon {
  private fuse?: BigWritesFuse;
  private nbd?: NbdServer;
  private control?: ControlServer;
  private statusJson = Buffer.from('{}\n');
  private timer?: NodeJS.Timeout;
  private stopping?: Promise<void>;
  /** Called when a stop was asked over the control socket (`chronovol umount`). */
  onStopped?: () => void;
  /** The read-ahead set on the mount's backing device, if it could be set. */
  private readAhead?: { device: string; kib: number };
  /** The connection's congestion threshold, if it could be raised. */
  private congestionThreshold?: number;
  /** fuse-native's threads, if they could be placed (see thread-placement.ts). */
  private fuseThreads?: FuseThreads;
  readonly requests: RequestStats = { writes: 0, writeBytes: 0, maxWriteBytes: 0, reads: 0, readBytes: 0, maxReadBytes: 0 };

  private constructor(readonly volume: Volume, readonly mountpoint: string, private readonly o: FuseDaemonOptions) {}

  get nbdAddresses(): string[] {
    return this.nbd?.addresses ?? [];
  }

  static async start(o: FuseDaemonOptions): Promise<FuseDaemon> {
    const mountpoint = path.resolve(o.mountpoint);
    const dir = path.resolve(o.dir);
    if (dir === mountpoint || dir.startsWith(mountpoint + path.sep)) {
      throw new ChronoError('BAD_ARGUMENT', 'the volume directory must not be inside the mountpoint: the daemon would touch its own mount');
    }
    prepareMountpoint(mountpoint, o.log);
    const socket = path.join(dir, 'control.sock');
    const volume = await Volume.open(dir, { cacheBytes: o.cacheBytes, log: o.log, role: `mount at ${mountpoint}`, socket });
    const d = new FuseDaemon(volume, mountpoint, { ...o, dir });
    try {
      await d.startServing(socket);
    } catch (err) {
      await volume.close();
      throw err;
    }
    return d;
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

  private async startServing(socket: string): Promise<void> {
    const startedMs = Date.now();
    await this.refreshStatus(socket);
    let policy: PlacementPolicy | undefined; // set once mounted
    this.timer = setInterval(() => {
      policy?.tick();
      this.noticeExternalUnmount();
      void this.refreshStatus(socket);
    }, 1000);
    this.timer.unref();
    const tree = new Tree(this.volume, () => this.statusJson, startedMs);
    const counted = countRequests(makeOps(this.volume, tree, { autoSyncMs: this.o.autoSyncMs, log: this.o.log }), this.requests, (isRead) => policy?.onRequest(isRead));
    const ops = this.o.share ? shareTree(counted, this.o.share) : counted;
    this.control = new ControlServer(this.volume, socket, this.o.log, { shutdown: () => (this.onStopped ? this.onStopped() : void this.stop()) });
    await this.control.listen();
    // timeout: false is load-bearing: with fuse-native's default 15 s timeout a slow request would
    // be answered EIO while our handler still uses its buffer (fuse-ops.ts reads/writes in place).
    this.fuse = new BigWritesFuse(this.mountpoint, ops, { timeout: false, maxRead: MAX_WRITE_BYTES, fsname: 'chronovol', ...(this.o.share ? SHARING_FUSE_OPTIONS : {}) });
    const mount = () => new Promise<void>((resolve, reject) => this.fuse!.mount((err) => (err ? reject(new ChronoError('IO', `mount at ${this.mountpoint} failed: ${err.message}`)) : resolve())));
    this.fuseThreads = await FuseThreads.mount(this.o.fuseCpu, mount, this.o.log);
    if (this.fuseThreads) policy = new PlacementPolicy(this.fuseThreads);
    this.tuneReadAhead();
    if (this.o.nbd) {
      this.nbd = new NbdServer(this.volume, { ...this.o.nbd, log: this.o.log });
      await this.nbd.start();
    }
    this.o.log.info({ mountpoint: this.mountpoint, dir: this.o.dir, fuseThreadsCpu: this.fuseThreads?.cpu }, 'mounted');
  }

  /**
   * `umount` or `fusermount -u` run by hand ends the FUSE session without telling fuse-native's
   * JS side, which would leave this process holding the volume's lock with nothing mounted. The
   * mount table is read (never the mount) once a second; once the mount is gone, the daemon stops.
   */
  private noticeExternalUnmount(): void {
    if (!this.fuse || this.stopping || mountEntry(this.mountpoint)) return;
    this.o.log.warn({ mountpoint: this.mountpoint }, 'unmounted from outside; closing the volume');
    if (this.onStopped) this.onStopped();
    else void this.stop();
  }

  private async refreshStatus(socket: string): Promise<void> {
    try {
      const status = await this.volume.status();
      this.statusJson = Buffer.from(JSON.stringify({
        daemon: { pid: process.pid, volumeDir: this.o.dir, mountpoint: this.mountpoint, controlSocket: socket, autoSyncMs: this.o.autoSyncMs },
        fuseRequests: this.requests,
        fuseReadAheadKiB: this.readAhead?.kib ?? null,
        fuseCongestionThreshold: this.congestionThreshold ?? null,
        fuseThreads: { started: this.fuse?.threadsStarted ?? 0, ...(this.fuseThreads ? { cpu: this.fuseThreads.cpu, pinned: this.fuseThreads.pinned } : { cpu: null, pinned: false }) },
        ...status,
      }, null, 2) + '\n');
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'status refresh failed');
    }
  }

  /** Unmounts (lazily if busy), stops the control socket, checkpoints and closes the volume. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      clearInterval(this.timer);
      if (this.fuse) {
        await new Promise<void>((resolve) => this.fuse!.unmount((err) => {
          if (err && mountEntry(this.mountpoint)) {
            this.o.log.warn({ err: err.message }, 'mountpoint busy; detaching lazily');
            lazyUnmount(this.mountpoint);
          }
          resolve();
        }));
      }
      await this.nbd?.close();
      await this.control?.close();
      await clonesOf(this.volume).closeAll();
      await this.volume.close();
      this.o.log.info({ mountpoint: this.mountpoint }, 'unmounted and closed');
    })();
    return this.stopping;
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
