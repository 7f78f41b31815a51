import * as path from 'node:path';
import type { Logger } from 'pino';
import { clonesOf } from '../clone/clone-service';
import type { ControlTcpOptions } from '../control/control-listener';
import { ControlServer } from '../control/control-server';
import { ChronoError } from '../errors';
import { FuseMount } from '../fuse/fuse-mount';
import { prepareMountpoint } from '../fuse/mount-guard';
import { FuseCpu } from '../fuse/thread-placement';
import { TreeSharing } from '../fuse/tree-sharing';
import { TreeTimeline } from '../fuse/tree-timeline';
import type { HttpListen } from '../http/http-listen';
import type { HttpPageServer } from '../http/http-page-server';
import { NbdServer, NbdServerOptions } from '../nbd/nbd-server';
import { Volume } from '../volume/volume';

export interface MountOptions {
  mountpoint: string;
  autoSyncMs: number;
  /** Kernel read-ahead for the mount (0 leaves the kernel's default). */
  readAheadBytes: number;
  /** The CPU for fuse-native's threads (see thread-placement.ts). */
  fuseCpu: FuseCpu;
  /** `--allow-other`: other users may use the tree, as these owners and modes allow. */
  share?: TreeSharing;
}

export interface DaemonHostOptions {
  dir: string;
  cacheBytes: number;
  /** --archive-cache (default DEFAULTS.archiveCacheBytes; 0: off). */
  archiveCacheBytes?: number;
  log: Logger;
  /** Mount the file tree (`chronovol mount`). */
  fuse?: MountOptions;
  /** Serve NBD (`chronovol serve`, or `mount --nbd`). */
  nbd?: Omit<NbdServerOptions, 'log'>;
  /** `--control-listen`: the control channel over TCP (TLS) as well as its Unix socket. */
  controlTcp?: ControlTcpOptions;
  /** `mount --http`: serve the read-only web page here as well. */
  http?: HttpListen;
  /** `--seal-after`: seal a quiet current segment so its writes reach the archive (0: off). */
  sealAfterMs?: number;
  /** --archive-backlog / --archive-stall-timeout for this run (absent: as stored at init). */
  archiveBacklogBytes?: number;
  archiveStallTimeoutMs?: number;
}

/**
 * One process around one open volume (`mount` and `serve`): the control socket, the FUSE mount
 * and NBD as asked, and with a mount the status.json timer and the watch for an unmount done
 * from outside. The edges it hosts adapt;
 * this owns their lifetime and the order they start and stop in.
 */
export class DaemonHost {
  private fuse?: FuseMount;
  private nbd?: NbdServer;
  private control?: ControlServer;
  private http?: HttpPageServer;
  private readonly timeline = new TreeTimeline();
  private statusJson = Buffer.from('{}\n');
  private timer?: NodeJS.Timeout;
  private stopping?: Promise<void>;
  /** Called when a stop was asked over the control socket (`chronovol umount`). */
  onStopped?: () => void;

  private constructor(readonly volume: Volume, private readonly o: DaemonHostOptions) {}

  get mountpoint(): string | undefined {
    return this.o.fuse?.mountpoint;
  }

  /** The web page's URL (token included), when --http serves one. */
  get httpUrl(): string | undefined {
    return this.http?.url;
  }

  /** tls://host:port of the control channel over TCP, when --control-listen asked for it. */
  controlAddress?: string;

  get nbdAddresses(): string[] {
    return this.nbd?.addresses ?? [];
  }

  static async start(o: DaemonHostOptions): Promise<DaemonHost> {
    const dir = path.resolve(o.dir);
    const fuse = o.fuse && { ...o.fuse, mountpoint: path.resolve(o.fuse.mountpoint) };
    if (fuse) {
      if (dir === fuse.mountpoint || dir.startsWith(fuse.mountpoint + path.sep)) {
        throw new ChronoError('BAD_ARGUMENT', 'the volume directory must not be inside the mountpoint: the daemon would touch its own mount');
      }
      prepareMountpoint(fuse.mountpoint, o.log);
    }
    const socket = path.join(dir, 'control.sock');
    const volume = await Volume.open(dir, { cacheBytes: o.cacheBytes, archiveCacheBytes: o.archiveCacheBytes, log: o.log, role: fuse ? `mount at ${fuse.mountpoint}` : 'serve', socket, sealAfterMs: o.sealAfterMs, archiveBacklogBytes: o.archiveBacklogBytes, archiveStallTimeoutMs: o.archiveStallTimeoutMs });
    const d = new DaemonHost(volume, { ...o, dir, fuse });
    try {
      await d.startServing(socket);
    } catch (err) {
      await d.stop().catch(() => undefined); // whatever did start, stopped in order; the volume closed
      throw err;
    }
    return d;
  }

  private async startServing(socket: string): Promise<void> {
    const o = this.o;
    const startedMs = Date.now();
    if (o.fuse) {
      // status.json is the tree's: refreshed once a second while mounted.
      await this.refreshStatus(socket);
      this.timer = setInterval(() => {
        this.fuse?.tick();
        this.noticeExternalUnmount();
        void this.refreshStatus(socket);
        this.timeline.refresh(this.volume, o.log);
      }, 1000);
      this.timeline.refresh(this.volume, o.log);
      this.timer.unref();
    }
    this.control = new ControlServer(this.volume, socket, o.log, { shutdown: () => (this.onStopped ? this.onStopped() : void this.stop()), mountpoint: this.mountpoint });
    await this.control.listen();
    if (o.controlTcp) this.controlAddress = await this.control.listenTcp(o.controlTcp);
    if (o.fuse) {
      this.fuse = await FuseMount.mount(this.volume, { ...o.fuse, log: o.log, status: () => this.statusJson, startedMs, timeline: () => this.timeline.svg });
      o.log.info({ mountpoint: this.mountpoint, dir: o.dir, fuseThreadsCpu: this.fuse.threadsCpu }, 'mounted');
    }
    if (o.nbd) {
      this.nbd = new NbdServer(this.volume, { ...o.nbd, log: o.log });
      await this.nbd.start();
    }
    if (o.http) {
      const { HttpPageServer } = await import('../http/http-page-server');
      this.http = new HttpPageServer(this.volume, o.http, o.log, () => this.statusJson);
      await this.http.start();
    }
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
        daemon: { pid: process.pid, volumeDir: this.o.dir, mountpoint: this.mountpoint, controlSocket: socket, autoSyncMs: this.o.fuse?.autoSyncMs },
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
      await this.http?.close();
      await this.control?.close();
      await clonesOf(this.volume).closeAll();
      await this.volume.close();
      this.o.log.info({ mountpoint: this.mountpoint, dir: this.o.dir }, this.fuse ? 'unmounted and closed' : 'closed');
    })();
    return this.stopping;
  }
}
