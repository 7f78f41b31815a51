import * as path from 'node:path';
import type { Logger } from 'pino';
import { clonesOf } from '../clone/clone-service';
import { ControlServer } from '../control/control-server';
import { ChronoError } from '../errors';
import { FuseMount } from '../fuse/fuse-mount';
import { prepareMountpoint } from '../fuse/mount-guard';
import { FuseCpu } from '../fuse/thread-placement';
import { TreeSharing } from '../fuse/tree-sharing';
import { NbdServer, NbdServerOptions } from '../nbd/nbd-server';
import { Volume } from '../volume/volume';

export interface DaemonHostOptions {
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

/**
 * One process around one open volume: the FUSE mount, the control socket, NBD if asked, the
 * status.json timer and the watch for an unmount done from outside. The edges it hosts adapt;
 * this owns their lifetime and the order they start and stop in.
 */
export class DaemonHost {
  private fuse?: FuseMount;
  private nbd?: NbdServer;
  private control?: ControlServer;
  private statusJson = Buffer.from('{}\n');
  private timer?: NodeJS.Timeout;
  private stopping?: Promise<void>;
  /** Called when a stop was asked over the control socket (`chronovol umount`). */
  onStopped?: () => void;

  private constructor(readonly volume: Volume, readonly mountpoint: string, private readonly o: DaemonHostOptions) {}

  get nbdAddresses(): string[] {
    return this.nbd?.addresses ?? [];
  }

  static async start(o: DaemonHostOptions): Promise<DaemonHost> {
    const mountpoint = path.resolve(o.mountpoint);
    const dir = path.resolve(o.dir);
    if (dir === mountpoint || dir.startsWith(mountpoint + path.sep)) {
      throw new ChronoError('BAD_ARGUMENT', 'the volume directory must not be inside the mountpoint: the daemon would touch its own mount');
    }
    prepareMountpoint(mountpoint, o.log);
    const socket = path.join(dir, 'control.sock');
    const volume = await Volume.open(dir, { cacheBytes: o.cacheBytes, log: o.log, role: `mount at ${mountpoint}`, socket });
    const d = new DaemonHost(volume, mountpoint, { ...o, dir });
    try {
      await d.startServing(socket);
    } catch (err) {
      await volume.close();
      throw err;
    }
    return d;
  }

  private async startServing(socket: string): Promise<void> {
    const startedMs = Date.now();
    await this.refreshStatus(socket);
    this.timer = setInterval(() => {
      this.fuse?.tick();
      this.noticeExternalUnmount();
      void this.refreshStatus(socket);
    }, 1000);
    this.timer.unref();
    this.control = new ControlServer(this.volume, socket, this.o.log, { shutdown: () => (this.onStopped ? this.onStopped() : void this.stop()) });
    await this.control.listen();
    const o = this.o;
    this.fuse = await FuseMount.mount(this.volume, {
      mountpoint: this.mountpoint, autoSyncMs: o.autoSyncMs, readAheadBytes: o.readAheadBytes, fuseCpu: o.fuseCpu, log: o.log, share: o.share,
      status: () => this.statusJson, startedMs,
    });
    if (o.nbd) {
      this.nbd = new NbdServer(this.volume, { ...o.nbd, log: o.log });
      await this.nbd.start();
    }
    o.log.info({ mountpoint: this.mountpoint, dir: o.dir, fuseThreadsCpu: this.fuse.threadsCpu }, 'mounted');
  }

  /**
   * `umount` or `fusermount -u` run by hand ends the FUSE session without telling fuse-native's
   * JS side, which would leave this process holding the volume's lock with nothing mounted. The
   * mount table is read (never the mount) once a second; once the mount is gone, the daemon stops.
   */
  private noticeExternalUnmount(): void {
    if (!this.fuse || this.stopping || this.fuse.isMounted()) return;
    this.o.log.warn({ mountpoint: this.mountpoint }, 'unmounted from outside; closing the volume');
    if (this.onStopped) this.onStopped();
    else void this.stop();
  }

  private async refreshStatus(socket: string): Promise<void> {
    try {
      const status = await this.volume.status();
      this.statusJson = Buffer.from(JSON.stringify({
        daemon: { pid: process.pid, volumeDir: this.o.dir, mountpoint: this.mountpoint, controlSocket: socket, autoSyncMs: this.o.autoSyncMs },
        ...(this.fuse?.statusFields() ?? FuseMount.noStatusFields()),
        ...status,
      }, null, 2) + '\n');
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'status refresh failed');
    }
  }

  /** Unmounts (lazily if busy), stops NBD and the control socket, checkpoints and closes the volume. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      clearInterval(this.timer);
      await this.fuse?.unmount();
      await this.nbd?.close();
      await this.control?.close();
      await clonesOf(this.volume).closeAll();
      await this.volume.close();
      this.o.log.info({ mountpoint: this.mountpoint }, 'unmounted and closed');
    })();
    return this.stopping;
  }
}
