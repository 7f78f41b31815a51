import * as net from 'node:net';
import type { Logger } from 'pino';
import { controlCall } from '../control/control-client';
import type { ControlEndpoint } from '../control/control-endpoint';
import { ChronoError } from '../errors';
import { DEFAULTS } from '../options';
import type { SyncEvent } from '../volume/events';
import type { ResyncWindow } from '../volume/resync-windows';
import { QmpClient, QmpEvent } from './qmp-client';
import { AppExport, Splitter } from './splitter';
import { TargetRelay } from './target-relay';

export type ProtectionState = 'starting' | 'initial-copy' | 'mirroring' | 'resyncing' | 'disconnected' | 'stopped';

export interface ProtectOptions {
  primary: string;
  appExport?: AppExport;
  stateDir: string;
  /** Our volume: where its daemon serves NBD (export `live`) and its control channel. */
  target: ProtectTarget;
  targetTimeoutMs: number;
  initial: 'full' | 'assume-same';
  log: Logger;
}

/**
 * The volume's daemon: on this host (Unix sockets) or on another (TCP; TLS for both NBD, which
 * qemu's client speaks through our relay, and the control channel, which we speak).
 */
export interface ProtectTarget {
  /** Where the relay connects: a Unix socket path, or host and port. */
  nbd: { path: string } | { host: string; port: number };
  control: ControlEndpoint;
  volumeDir?: string;
  /** qemu's TLS credentials for its NBD client: the `--object` it is started with, and the host name a certificate must name. */
  qemuTls?: { object: string; id: string; hostname: string };
}

export interface ResyncReport {
  reason: 'initial' | 'resync';
  bytes: number;
  seconds: number;
  mbPerSecond: number;
  atMs: number;
}

/**
 * Supervises the splitter: keeps a write-blocking mirror of the primary running into our `live`,
 * and after any loss of the target (our daemon killed, hung, restarted) resyncs what a dirty
 * bitmap on `prim-file` marked and mirrors on, by itself. The bitmap holds every block written
 * since our last sync event (the event made the rest durable on our side); each resync, and the
 * initial copy, is a resync window in our log. See docs/REPLICATION.md.
 */
export class Protector {
  state: ProtectionState = 'starting';
  sinceMs = Date.now();
  /** When the target was last lost; 0 while it never was. */
  lostMs = 0;
  lastResync?: ResyncReport;
  lastError?: string;
  private initialDone = false;
  private generation = 1;
  private nodeSeq = 0;
  private stopping = false;
  /** The volume refused our TLS credentials or rights (already logged). */
  private refused = false;
  private splitter: Splitter;
  private relay: TargetRelay;
  private mirrorJob?: string;
  private lossSignal?: () => void;
  /** Serialises sync events with the supervisor's own steps: QMP state changes one at a time. */
  private serial: Promise<unknown> = Promise.resolve();
  private done?: Promise<void>;

  constructor(private readonly o: ProtectOptions) {
    this.splitter = new Splitter({
      primary: o.primary, appExport: o.appExport, stateDir: o.stateDir, objects: o.target.qemuTls ? [o.target.qemuTls.object] : [],
      onExit: (which, code, stderr) => {
        this.lastError = `qemu-storage-daemon (${which}) exited with ${code}: ${stderr}`;
        o.log.error({ which, code, stderr }, 'qemu-storage-daemon exited');
        this.setState('stopped');
        this.stopping = true;
        this.lossSignal?.();
      },
    });
    this.relay = new TargetRelay(`${o.stateDir}/target-relay.sock`, () => net.createConnection(o.target.nbd), o.targetTimeoutMs, () => {
      o.log.warn({ timeoutMs: o.targetTimeoutMs }, 'the target stopped answering: cut off so the application does not wait on it');
      this.lossSignal?.();
    });
  }

  get qmp(): QmpClient {
    return this.splitter.core;
  }

  get relayStats() {
    return this.relay.stats;
  }

  get coreNbdSocket(): string {
    return this.splitter.coreNbdSocket;
  }

  /** Starts the daemons and the bitmap; the supervision loop then runs until stop(). */
  async start(): Promise<void> {
    await this.relay.listen();
    await this.splitter.start();
    await this.qmp.execute('block-dirty-bitmap-add', { node: 'prim-file', name: this.bitmap(this.generation), granularity: DEFAULTS.protectBitmapGranularityBytes });
    this.qmp.on('event', (e: QmpEvent) => this.onQmpEvent(e));
    this.done = this.supervise();
  }

  private bitmap(gen: number): string {
    return `b${gen}`;
  }

  private setState(s: ProtectionState): void {
    if (this.state === s) return;
    this.o.log.info({ from: this.state, to: s }, 'protection state');
    this.state = s;
    this.sinceMs = Date.now();
  }

  private onQmpEvent(e: QmpEvent): void {
    const device = e.data?.device;
    if (device !== this.mirrorJob) return;
    if (e.event === 'BLOCK_JOB_ERROR' || e.event === 'BLOCK_JOB_COMPLETED' || e.event === 'BLOCK_JOB_CANCELLED') {
      this.o.log.warn({ event: e.event, data: e.data }, 'the mirror stopped');
      this.lossSignal?.();
    }
  }

  private async supervise(): Promise<void> {
    while (!this.stopping) {
      await this.waitForTarget();
      if (this.stopping) break;
      const lost = new Promise<void>((resolve) => (this.lossSignal = resolve));
      try {
        await this.exclusive(() => this.connect());
        await this.watchTarget(lost);
      } catch (err) {
        this.noteError(err as Error, 'mirroring failed');
      }
      this.lossSignal = undefined;
      if (this.stopping) break;
      if (!this.lostMs) this.lostMs = Date.now();
      this.setState('disconnected');
      await this.exclusive(() => this.teardown());
    }
  }

  /**
   * While mirroring: the mirror's own error ends it (a write the target failed), and so does our
   * daemon not answering a ping (it died while the application was idle, or hangs).
   */
  private async watchTarget(lost: Promise<void>): Promise<void> {
    let gone = false;
    void lost.then(() => (gone = true));
    while (!gone && !this.stopping) {
      await Promise.race([lost, sleep(DEFAULTS.protectPollMs)]);
      if (gone || this.stopping) return;
      try {
        await controlCall(this.o.target.control, { method: 'ping' }, undefined, this.o.targetTimeoutMs);
      } catch (err) {
        this.noteError(err as Error, 'our daemon does not answer');
        return;
      }
    }
  }

  /** Polls until our daemon answers on both sockets. */
  private async waitForTarget(): Promise<void> {
    for (let first = true; !this.stopping; first = false) {
      if (!first) await sleep(DEFAULTS.protectPollMs);
      if (this.state === 'starting' && !first) this.setState('disconnected');
      try {
        await controlCall(this.o.target.control, { method: 'ping' }, undefined, this.o.targetTimeoutMs);
        await new Promise<void>((resolve, reject) => {
          const s = net.createConnection(this.o.target.nbd);
          s.once('connect', () => (s.destroy(), resolve()));
          s.once('error', reject);
        });
        this.refused = false;
        return;
      } catch (err) {
        // Not back yet; a refusal of our credentials is said once, loudly, and kept in status.json.
        if ((err as ChronoError).code === 'ACCESS_DENIED') this.noteError(err as Error, 'the volume refused our credentials');
      }
    }
  }

  /** One step: the initial copy, or a resync by bitmap; the mirror runs on from it. */
  private async connect(): Promise<void> {
    const q = this.qmp;
    const reason = this.initialDone ? 'resync' : 'initial';
    const full = !this.initialDone && this.o.initial === 'full';
    const windowed = full || this.initialDone;
    const started = Date.now();
    if (windowed) {
      this.setState(full ? 'initial-copy' : 'resyncing');
      await this.control('begin-resync', { reason, lostMs: this.lostMs });
    }
    const target = await this.addTargetNode();
    const job = `mirror${this.nodeSeq}`;
    this.mirrorJob = job;
    const ready = q.waitEvent('BLOCK_JOB_READY', (d) => d.device === job);
    const failed = q.waitEvent('BLOCK_JOB_COMPLETED', (d) => d.device === job).then((e) => {
      throw new ChronoError('PROTECT_FAILED', `the mirror ended before it was ready: ${String(e.data?.error ?? 'no error given')}`);
    });
    await q.execute('blockdev-mirror', { 'job-id': job, device: 'prim', target, sync: full ? 'full' : 'none', 'copy-mode': 'write-blocking', 'on-target-error': 'stop', 'on-source-error': 'stop' });
    const r = await Promise.race([ready, failed, this.lossOrStop()]);
    if (!r) throw new ChronoError('PROTECT_FAILED', 'the target was lost before the mirror was ready');
    let bytes = full ? Number(r.data?.len ?? 0) : 0;
    if (this.initialDone) bytes = await this.backupDirty();
    this.initialDone = true;
    if (windowed) {
      await this.control('end-resync', { bytesCopied: bytes });
      const seconds = (Date.now() - started) / 1000;
      this.lastResync = { reason, bytes, seconds, mbPerSecond: bytes / 1048576 / Math.max(seconds, 1e-3), atMs: Date.now() };
      this.o.log.info(this.lastResync, reason === 'initial' ? 'initial copy done' : 'resync done');
    }
    this.lostMs = 0;
    this.setState('mirroring');
  }

  /**
   * Copies the blocks the bitmap marks, as they are now, into a second NBD node on `live`, while
   * the mirror (sync none) carries every new write. A backup job on `prim` is refused while the
   * mirror holds it, hence `prim-file`. On success the copied bits are cleared.
   */
  private async backupDirty(): Promise<number> {
    const q = this.qmp;
    const node = await this.addTargetNode();
    const job = `resync${this.nodeSeq}`;
    const done = q.waitEvent('BLOCK_JOB_COMPLETED', (d) => d.device === job);
    await q.execute('blockdev-backup', { 'job-id': job, device: 'prim-file', target: node, sync: 'bitmap', bitmap: this.bitmap(this.generation), 'bitmap-mode': 'on-success', 'on-target-error': 'report' });
    const e = await Promise.race([done, this.lossOrStop()]);
    if (!e) {
      await q.execute('block-job-cancel', { device: job, force: true }).catch(() => undefined);
      throw new ChronoError('PROTECT_FAILED', 'the target was lost during the resync');
    }
    await q.execute('blockdev-del', { 'node-name': node }).catch((err: Error) => this.o.log.warn({ err: err.message }, 'could not remove the resync node'));
    if (e.data?.error) throw new ChronoError('PROTECT_FAILED', `the resync failed: ${String(e.data.error)}`);
    return Number(e.data?.len ?? 0);
  }

  /**
   * An NBD node on `live` through our relay. Over TCP qemu's client does the TLS (STARTTLS) end
   * to end through the relay, which only moves bytes; a certificate is checked against the
   * target's host name, as the relay's Unix socket has none.
   */
  private async addTargetNode(): Promise<string> {
    const name = `tgt${++this.nodeSeq}`;
    const t = this.o.target.qemuTls;
    const tls = t ? { 'tls-creds': t.id, 'tls-hostname': t.hostname } : {};
    try {
      await this.qmp.execute('blockdev-add', { driver: 'nbd', 'node-name': name, server: { type: 'unix', path: this.relay.socketPath }, export: 'live', 'reconnect-delay': 0, ...tls });
    } catch (err) {
      const m = (err as Error).message;
      if (t && /TLS|handshake|credential|certificate|denied/i.test(m)) throw new ChronoError('ACCESS_DENIED', `the volume's NBD server refused qemu's TLS credentials: ${m}`, {}, err);
      throw err;
    }
    return name;
  }

  /** Resolves (undefined) when the mirror is lost or protect stops. */
  private lossOrStop(): Promise<undefined> {
    return new Promise((resolve) => {
      const prev = this.lossSignal;
      this.lossSignal = () => {
        prev?.();
        resolve(undefined);
      };
    });
  }

  /** After a loss: the mirror job and every target node go, so nothing waits on the target. */
  private async teardown(): Promise<void> {
    this.relay.cutAll();
    const q = this.qmp;
    const jobs = (await q.execute<Array<{ device: string }>>('query-block-jobs').catch(() => [])) ?? [];
    for (const j of jobs) {
      const gone = q.waitEvent('BLOCK_JOB_CANCELLED', (d) => d.device === j.device, 10_000).catch(() => undefined);
      const ended = q.waitEvent('BLOCK_JOB_COMPLETED', (d) => d.device === j.device, 10_000).catch(() => undefined);
      await q.execute('block-job-cancel', { device: j.device, force: true }).catch(() => undefined);
      await Promise.race([gone, ended]);
    }
    this.mirrorJob = undefined;
    const nodes = (await q.execute<Array<{ 'node-name': string }>>('query-named-block-nodes', { flat: true }).catch(() => [])) ?? [];
    for (const n of nodes) {
      if (/^tgt\d+$/.test(n['node-name'])) await q.execute('blockdev-del', { 'node-name': n['node-name'] }).catch((err: Error) => this.o.log.warn({ node: n['node-name'], err: err.message }, 'could not remove a target node'));
    }
  }

  /**
   * An application-consistent event (the caller has quiesced the application): a new bitmap
   * starts, the event is recorded on our side, and only then the old bitmap goes, so a failed
   * event loses no dirty bit (the two are merged back).
   */
  sync(params: { label?: string; kind?: string }): Promise<SyncEvent> {
    return this.exclusive(async () => {
      if (this.state !== 'mirroring') {
        throw new ChronoError(this.state === 'resyncing' || this.state === 'initial-copy' ? 'POINT_IN_RESYNC' : 'DAEMON', `protection is ${this.state}: no event can be recorded now`);
      }
      const q = this.qmp;
      const old = this.bitmap(this.generation);
      const next = this.bitmap(this.generation + 1);
      await q.execute('block-dirty-bitmap-add', { node: 'prim-file', name: next, granularity: DEFAULTS.protectBitmapGranularityBytes });
      try {
        const event = (await this.control('sync', params)) as SyncEvent;
        await q.execute('block-dirty-bitmap-remove', { node: 'prim-file', name: old });
        this.generation++;
        return event;
      } catch (err) {
        await q.execute('block-dirty-bitmap-merge', { node: 'prim-file', target: old, bitmaps: [next] });
        await q.execute('block-dirty-bitmap-remove', { node: 'prim-file', name: next });
        throw err;
      }
    });
  }

  /** Bytes the current bitmap marks: what a resync would move now. */
  async dirtyBytes(): Promise<number | undefined> {
    const nodes = await this.qmp.execute<Array<{ 'node-name': string; 'dirty-bitmaps'?: Array<{ name: string; count: number }> }>>('query-named-block-nodes', { flat: true }).catch(() => undefined);
    const bitmaps = nodes?.find((n) => n['node-name'] === 'prim-file')?.['dirty-bitmaps'] ?? [];
    return bitmaps.find((b) => b.name === this.bitmap(this.generation))?.count;
  }

  windows(): Promise<ResyncWindow[]> {
    return this.control('windows') as Promise<ResyncWindow[]>;
  }

  control(method: 'sync' | 'begin-resync' | 'end-resync' | 'windows' | 'status' | 'events', params?: Record<string, unknown>): Promise<unknown> {
    return controlCall(this.o.target.control, { method, params }, undefined, Math.max(this.o.targetTimeoutMs, 30_000));
  }

  /**
   * Keeps the error for status.json (with its code). A refusal of our credentials is logged as an
   * error once per incident: protect goes on retrying (the application keeps its disk, the RPO
   * alert fires), and picks up by itself once the keys are put right.
   */
  private noteError(err: Error, what: string): void {
    const code = err instanceof ChronoError ? err.code : undefined;
    this.lastError = code ? `${code}: ${err.message}` : err.message;
    if (code !== 'ACCESS_DENIED') return void this.o.log.warn({ err: err.message, code }, what);
    if (!this.refused) this.o.log.error({ err: err.message, code }, `${what}: fix the key, identity or --nbd-access rules on either side; retrying meanwhile`);
    this.refused = true;
  }

  private exclusive<T>(op: () => Promise<T>): Promise<T> {
    const p = this.serial.then(op, op);
    this.serial = p.catch(() => undefined);
    return p;
  }

  /** Stops mirroring (the primary goes on unprotected) and the splitter (the app export goes). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.lossSignal?.();
    await this.done?.catch(() => undefined);
    await this.exclusive(() => this.teardown()).catch(() => undefined);
    await this.splitter.stop();
    await this.relay.close();
    this.setState('stopped');
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
