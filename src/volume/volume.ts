import * as path from 'node:path';
import type { Logger } from 'pino';
import { ArchiveReader } from '../archive/archive-reader';
import { ArchiveTableFiles } from '../archive/archive-table-file';
import { ArchiveCatalog } from '../archive/archive-catalog';
import { ArchiveDiskCache, DiskCacheStats } from '../archive/archive-disk-cache';
import { BackingStore } from '../archive/backing-store';
import { ArchiveSettings, localArchiveDir, openStore, parseArchiveUrl } from '../archive/open-store';
import { ChronoError, isChronoError } from '../errors';
import { EventKindName, FILE_NAMES, LOST_PAYLOAD, RecordType, ResyncReasonName } from '../format/constants';
import { HEADER_BYTES, LostPayload, encodeLostPayload, encodeResyncPayload } from '../format/record';
import { encodeSuperblock, newVolumeId } from '../format/superblock';
import { BlockVersion, blockHistory } from '../history/block-history';
import { Changes, changesBetween } from '../history/changes';
import { VersionIndex } from '../index/version-index';
import { silentLogger } from '../log';
import { DEFAULTS } from '../options';
import { prunableVersions } from './prunable';
import { CatalogRefreshOptions, refreshCatalogUntilRead } from './catalog-refresh';
import { PruneOptions, PruneReport, noteIndexFiltered, pruneVolume } from './prune';
import { ForegroundActivity } from './prune-pacer';

export type { PruneOptions, PruneReport } from './prune';
import { RetentionState } from './retention-state';
import { SegmentSet } from '../segment/segment-set';
import { writeFileDurable } from '../storage/durable-file';
import { FileSystem } from '../storage/file-system';
import { NodeFileSystem } from '../storage/node-file-system';
import { BlockReader } from './block-reader';
import { Checkpointer } from './checkpoint';
import { Core } from './core';
import { EventList, LIVE_SEQ, Point, ResolveContext, SyncEvent } from './events';
import { replay, ReplayReport } from './replay';
import { blocksPerSegment, planGeometry } from './sizing';
import { Archiver } from './archiver';
import { ensureSpace, drainEvictions, quiesceTurnover, recycleArchived, sealNow } from './turnover';
import { SpaceGuard, noSpaceError, openSpaceCheckEnabled } from './space-check';
import { checkVolumeDirPermissions, makeVolumeDir } from './dir-permissions';
import { VolumeDir } from './volume-dir';
import { RollbackIntent, clearRollbackIntent, readRollbackIntent, writeRollbackIntent } from './rollback-intent';
import { VolumeStatus, volumeStatus } from './volume-status';
import { VerifyReport, verifyVolume } from './verify';
import { VolumeLog } from './volume-log';
import { VolumeWriter } from './volume-writer';
import { ResyncWindow } from './resync-windows';
import { registerCore } from './white-box';

export interface CreateOptions {
  sizeBytes: number;
  blockSizeBytes?: number;
  segmentSizeBytes?: number;
  workingSetSegments?: number;
  /** Archive directory; default `<dir>/archive`. */
  archive?: string;
  /** Where and how the archive is (an s3:// URL, endpoint, encryption); overrides `archive`. */
  archiveSettings?: ArchiveSettings;
  /** --archive-backlog / --archive-stall-timeout, kept in config.json (absent: the defaults). */
  archiveBacklogBytes?: number;
  archiveStallTimeoutMs?: number;
}

export interface OpenOptions {
  fs?: FileSystem;
  /** Overrides the configured archive (tests, fault injection). */
  store?: BackingStore;
  /** Retry delays for a catalog the archive could not give at open (tests). */
  catalogRefresh?: CatalogRefreshOptions;
  cacheBytes?: number;
  /** --archive-cache: the on-disk read cache of archived data (0: off); default DEFAULTS.archiveCacheBytes. */
  archiveCacheBytes?: number;
  log?: Logger;
  /** Recorded in LOCK, so a second opener learns who holds the volume. */
  role?: string;
  socket?: string;
  /**
   * Seal the current segment once no write has come for this long, so a quiet volume's last
   * writes reach the archive (a short sealed segment). Off when absent or 0.
   */
  sealAfterMs?: number;
  /** Overrides config.json's --archive-backlog (bytes, rounded down to whole segments) for this open. */
  archiveBacklogBytes?: number;
  /** Overrides config.json's --archive-stall-timeout for this open. */
  archiveStallTimeoutMs?: number;
  /**
   * Open for reading only: nothing is written (no turnover, no checkpoint at close), so the
   * read-only commands work on a full disk. Mutations fail with READ_ONLY.
   */
  readOnly?: boolean;
}

/** The backlog bounds for this open: the open's options, else config.json's, else the defaults. */
function backlogSettings(segmentSizeBytes: number, config: { archiveBacklogBytes?: number; archiveStallTimeoutMs?: number }, o: OpenOptions): { segments: number; stallTimeoutMs: number } {
  const bytes = o.archiveBacklogBytes ?? config.archiveBacklogBytes;
  return {
    segments: bytes === undefined ? DEFAULTS.archiveBacklogSegments : Math.floor(bytes / segmentSizeBytes),
    stallTimeoutMs: o.archiveStallTimeoutMs ?? config.archiveStallTimeoutMs ?? DEFAULTS.archiveStallTimeoutMs,
  };
}

/**
 * A chronovol volume: the orchestrator. It owns the lock and sequences mutations; what each
 * step means lives in its own module (writer, turnover, replay, reader, checkpoint).
 */
export class Volume {
  private serial: Promise<unknown> = Promise.resolve();
  /** Mutations queued or running: a synchronous write may only go when none is. */
  private mutations = 0;
  private failure?: ChronoError;
  private closed = false;
  private sealTimer?: NodeJS.Timeout;
  private readonly writer: VolumeWriter;

  private constructor(private readonly core: Core, readonly replayReport: ReplayReport, private readonly readOnly: boolean, private readonly space?: SpaceGuard) {
    this.writer = new VolumeWriter(core);
    registerCore(this, core);
  }

  static async create(dir: string, c: CreateOptions, o: OpenOptions = {}): Promise<void> {
    const fs = o.fs ?? new NodeFileSystem();
    const vd = new VolumeDir(fs, dir);
    if (vd.isVolume()) throw new ChronoError('EXISTS', `${dir} already holds a volume`, { dir });
    if (fs instanceof NodeFileSystem) makeVolumeDir(dir, fs.modes);
    const g = planGeometry({
      volumeSizeBytes: c.sizeBytes,
      blockSizeBytes: c.blockSizeBytes ?? DEFAULTS.blockSizeBytes,
      segmentSizeBytes: c.segmentSizeBytes ?? DEFAULTS.segmentSizeBytes,
      workingSetSegments: c.workingSetSegments,
    });
    const sb = { volumeId: newVolumeId(), ...g, createdMs: Date.now() };
    const settings = c.archiveSettings ?? { archive: path.resolve(c.archive ?? path.join(dir, 'archive')) };
    const store = o.store ?? openStore(settings, { fs, create: true });
    if ((await store.size(FILE_NAMES.archiveSuperblock)) !== undefined) {
      throw new ChronoError('EXISTS', `archive ${store.description} already belongs to a volume; recover from it with 'chronovol recover', or choose another`);
    }
    fs.mkdirp(vd.segmentsDir);
    fs.mkdirp(vd.indexDir);
    vd.writeConfig({
      ...settings,
      ...(c.archiveBacklogBytes === undefined ? {} : { archiveBacklogBytes: c.archiveBacklogBytes }),
      ...(c.archiveStallTimeoutMs === undefined ? {} : { archiveStallTimeoutMs: c.archiveStallTimeoutMs }),
    });
    const bytes = encodeSuperblock(sb);
    // The archive learns the geometry first, so it is self-sufficient from its first segment on.
    await store.put(FILE_NAMES.archiveSuperblock, bytes);
    writeFileDurable(fs, vd.superblockPath, bytes);
  }

  static async open(dir: string, o: OpenOptions = {}): Promise<Volume> {
    const fs = o.fs ?? new NodeFileSystem(checkVolumeDirPermissions(dir));
    if (o.fs instanceof NodeFileSystem) checkVolumeDirPermissions(dir);
    const vd = new VolumeDir(fs, dir);
    const sb = vd.readSuperblock();
    vd.lock({ pid: process.pid, role: o.role, socket: o.socket }, o.log, o.readOnly);
    let closedOnFailure = false;
    try {
      const store = o.store ?? openStore(vd.readConfig(), { fs });
      const index = new VersionIndex(fs, vd.indexDir);
      const segments = new SegmentSet(fs, vd.segmentsDir, { volumeId: sb.volumeId, segmentSizeBytes: sb.segmentSizeBytes, writeBufferBytes: DEFAULTS.writeBufferBytes });
      // The on-disk read cache is for a remote archive (a local one reads as fast as the cache
      // would) and needs a real volume directory (not a test's in-memory file system).
      const remote = parseArchiveUrl(vd.readConfig().archive).kind !== 'dir';
      const disk = remote && fs instanceof NodeFileSystem ? ArchiveDiskCache.open(dir, sb.volumeId, o.archiveCacheBytes ?? DEFAULTS.archiveCacheBytes, fs.modes) : undefined;
      const { catalog, read: catalogRead } = await loadCatalog(store, sb.volumeId, o.log);
      // Local offset tables: a cold read of a built archived object is one ranged read.
      const tables = new ArchiveTableFiles(fs, dir, sb.volumeId, !o.readOnly);
      const archive = new ArchiveReader(store, DEFAULTS.archiveFooterCacheSegments, disk, catalog, tables);
      const manifest = index.load();
      const perRecord = Math.max(1, Math.min(Math.floor(DEFAULTS.maxRecordDataBytes / sb.blockSizeBytes), Math.floor(blocksPerSegment(sb.segmentSizeBytes, sb.blockSizeBytes) / 4)));
      // Forgotten events are filtered before the log re-reads the manifest's and replay's events.
      const retention = RetentionState.load(fs, dir);
      const events = new EventList();
      events.retention = retention;
      const parts = {
        sb, fs, dir: vd, segments, index, store, archive, catalog, events, retention,
        reader: new BlockReader(index, segments, archive, sb.blockSizeBytes, o.cacheBytes ?? 0),
        log: o.log ?? silentLogger(),
        volumeLog: new VolumeLog(sb.blockSizeBytes, index, events, segments, manifest),
        maxBlocksPerRecord: perRecord,
        leaving: [] as number[],
        backlog: backlogSettings(sb.segmentSizeBytes, vd.readConfig(), o),
        foreground: new ForegroundActivity(),
      };
      const withArchiver = Object.assign(parts, { archiver: new Archiver(parts) });
      const core: Core = Object.assign(withArchiver, { checkpointer: new Checkpointer(withArchiver) });
      // A backlog drains out of primary as the archive takes it, writes or not.
      core.archiver.onArchived = () => {
        try {
          recycleArchived(core);
        } catch (err) {
          core.log.warn({ err: (err as Error).message }, 'recycling an archived segment failed; retried at the next turnover');
        }
      };
      index.removeStrayRuns();
      const report = replay(core, manifest);
      // A prune cut between its catalog and its index step: the index still names records the
      // archive dropped. Dropped here in memory (persisted by the next checkpoint).
      if (catalog.present) core.index.dropVersions(catalog.prunedTest());
      noteIndexFiltered(core.index, catalog.generation);
      await core.archiver.load({ readOnly: o.readOnly });
      const retryCatalog = (v: Volume) => {
        if (!catalogRead) v.whenClosing(refreshCatalogUntilRead(core, !!o.readOnly, o.catalogRefresh));
        return v;
      };
      if (o.readOnly) return retryCatalog(new Volume(core, report, true));
      // A pin is recorded before the flush that makes its point durable (retention/pins.ts): a
      // crash between the two leaves a pin past the log's end, on seqs later writes will take.
      // The same for a rollback's target, pinned before its before-event's sync: only the
      // rollback an intent says was cut short still holds its target.
      const intent = readRollbackIntent(core);
      for (const p of [...retention.pins]) {
        if (p.seq > core.volumeLog.nextSeq - 1 || (p.holder.startsWith('rollback-target:') && p.holder !== `rollback-target:${intent?.label}`)) retention.removePins(p.seq, p.holder);
      }
      const space = fs instanceof NodeFileSystem ? new SpaceGuard(core, o.store ? undefined : localArchiveDir(vd.readConfig().archive), core.log) : undefined;
      if (space && openSpaceCheckEnabled() && !space.fits()) {
        await segments.close().catch(() => undefined);
        throw noSpaceError(space.need(), dir);
      }
      void core.archiver.kick(); // sealed segments a crash or an outage left unarchived
      await drainEvictions(core, false); // finish a turnover a crash interrupted
      const vol = retryCatalog(new Volume(core, report, false, space));
      // A recovery's lost span is in the manifest before its LOST record exists (rule 27): the
      // record, which carries the span into the archive, is appended here, before any write, by
      // recover's own open or, were that cut, by the next.
      const unrecorded = core.events.lost.find((s) => s.seq === core.volumeLog.nextSeq);
      if (unrecorded) {
        await vol.recordLost({ fromMs: unrecorded.fromMs, lastSeq: unrecorded.lastSeq }).catch(async (err) => {
          closedOnFailure = true; // close unlocks: the catch below must not (the lock may be another's by then)
          await vol.close().catch(() => undefined);
          throw err;
        });
      }
      if (o.sealAfterMs) vol.startSealAfter(o.sealAfterMs);
      return vol;
    } catch (err) {
      if (!closedOnFailure) vd.unlock();
      throw err;
    }
  }

  get sizeBytes(): number {
    return this.core.sb.volumeSizeBytes;
  }
  get blockSizeBytes(): number {
    return this.core.sb.blockSizeBytes;
  }
  get volumeId(): string {
    return this.core.sb.volumeId.toString('hex');
  }
  get createdMs(): number {
    return this.core.sb.createdMs;
  }
  get lastSeq(): number {
    return this.core.volumeLog.nextSeq - 1;
  }
  /** The events a reader may see: durable ones only (DESIGN rule 28). */
  get events(): readonly SyncEvent[] {
    return this.core.events.durableAll;
  }
  get directory(): VolumeDir {
    return this.core.dir;
  }
  /** What runs first when the volume closes (whenClosing). */
  private readonly closing: Array<() => Promise<void>> = [];
  /** The volume's logger (warnings of things opened alongside it, such as a clone adopted or recovered). */
  get logger(): Logger {
    return this.core.log;
  }
  /** Wall-clock time of the newest record (0 for a volume never written). */
  get lastTimeMs(): number {
    return this.core.volumeLog.lastTimeMs;
  }

  /** The extents changed between two points, from the index alone. */
  changesBetween(from: Pick<Point, 'name' | 'seqLimit'>, to: Pick<Point, 'name' | 'seqLimit'>): Changes {
    this.open();
    return changesBetween(this.core.index, this.core.sb.blockSizeBytes, from, to, Math.ceil(this.core.sb.volumeSizeBytes / this.core.sb.blockSizeBytes));
  }

  /**
   * Every version written in (fromSeq, toSeq], in no particular order, with whether its data is
   * still in primary storage (false: the archive alone holds it, or it holds no data).
   */
  versionsInSeqRange(fromSeq: number, toSeq: number, visit: (block: number, seq: number, dataInPrimary: boolean, hasData: boolean) => void): void {
    this.open();
    const segments = this.core.segments;
    // Per segment id: 0 not looked up yet, 1 archive only, 2 in primary.
    let state = new Uint8Array(1024);
    this.core.index.versionsInSeqRange(fromSeq, toSeq, (block, seq, segment, offset) => {
      if (offset === 0) return visit(block, seq, false, false);
      if (segment >= state.length) {
        const grown = new Uint8Array(Math.max(segment + 1, state.length * 2));
        grown.set(state);
        state = grown;
      }
      let st = state[segment];
      if (st === 0) st = state[segment] = segments.has(segment) ? 2 : 1;
      visit(block, seq, st === 2, true);
    });
  }

  /** Time of the record with this seq (-1 if none); the last seq written at or before a time (-1 if none). */
  timeOfSeq(seq: number): number {
    return this.core.index.times.timeOfSeq(seq);
  }
  seqAtOrBefore(timeMs: number): number {
    return this.core.index.times.seqAtOrBefore(timeMs);
  }

  /** The intent of a rollback that runs or was cut short (docs/FORMAT.md, rollback.json). */
  rollbackIntent(): RollbackIntent | undefined {
    this.open();
    return readRollbackIntent(this.core);
  }

  /** Writes the rollback intent durably, or (undefined) removes it durably: rollback's steps (DESIGN rule 13). */
  setRollbackIntent(intent: RollbackIntent | undefined): void {
    this.open();
    if (this.readOnly) throw new ChronoError('READ_ONLY', 'volume is open read-only');
    if (intent) writeRollbackIntent(this.core, intent);
    else clearRollbackIntent(this.core);
  }

  /** Every version of blocks first … first+count-1, oldest first, from the index. */
  blockHistory(firstBlock: number, blockCount: number): BlockVersion[] {
    this.open();
    return blockHistory(this.core.index, this.core.events.durableAll, firstBlock, blockCount);
  }

  /** Reads everything once and reports every problem found (see verify.ts). */
  verify(progress?: (done: number, total: number) => void): Promise<VerifyReport> {
    this.open();
    return verifyVolume(this.core, progress);
  }

  /**
   * The volume's retention state (pins, forgotten events, the continuous span's start), read at
   * open; src/retention/ decides with it. Its changes are durable when its methods return.
   */
  get retention(): RetentionState {
    return this.core.retention;
  }

  /** What a prune would free once only `keptSeqs` and the span from `continuousFromSeq` stay (an index walk). */
  prunable(keptSeqs: readonly number[], continuousFromSeq: number): { versions: number; bytes: number } {
    this.open();
    return prunableVersions(this.core.index, keptSeqs, continuousFromSeq, this.core.sb.blockSizeBytes);
  }

  private pruning?: Promise<PruneReport>;

  /**
   * Prune (docs/DESIGN.md, "Prune"): what no kept point reads leaves the archive and the index.
   * Runs beside reads and writes (not in the mutation queue); one prune at a time.
   */
  async prune(o: PruneOptions = {}): Promise<PruneReport> {
    this.open();
    if (this.readOnly && !o.dryRun) throw new ChronoError('READ_ONLY', 'volume is open read-only');
    while (this.pruning) await this.pruning.catch(() => undefined);
    const run = pruneVolume(this.core, o);
    this.pruning = run;
    try {
      return await run;
    } finally {
      this.pruning = undefined;
    }
  }

  /**
   * Records `eventIds` as forgotten, with the labels they carried, and the span's new start
   * (durably), then drops them from the event list.
   */
  forgetEvents(eventIds: readonly number[], continuousFromSeq: number): void {
    this.open();
    const ids = new Set(eventIds);
    const labels: Array<[string, number]> = [...this.core.events.forgottenLabelsSeen()];
    for (const e of this.core.events.all) if (ids.has(e.id) && e.label) labels.push([e.label, e.id]);
    this.core.retention.forget(eventIds, continuousFromSeq, labels); // durable before anything acts on it
    this.core.events.drop(ids);
  }

  private resolveContext(): ResolveContext {
    const c = this.core;
    return { times: c.index.times, lastSeq: this.lastSeq, createdMs: c.sb.createdMs, nextEventId: c.volumeLog.nextEventId, lastTimeMs: c.volumeLog.lastTimeMs };
  }

  /**
   * A point by name: the one place every edge resolves one (events/, at/, NBD exports, export
   * --at, clone --at, rollback --to, pin, restore --at, diff/history/bisect). Refused with
   * UNKNOWN_POINT (no such point, or a time not over yet), POINT_FORGOTTEN (a forgotten event by
   * id or by a label it carried last, a time or seq in a thinned span; names the nearest kept
   * points) or POINT_IN_RESYNC (inside a resync window). `live` is returned as live.
   */
  resolvePoint(text: string): Point {
    const c = this.core;
    const p = c.events.resolve(text, this.resolveContext());
    c.retention.checkPoint(p, c.events.all);
    return p;
  }

  /**
   * resolvePoint for what keeps the point for good (a clone's base, a pin, restore): `live`
   * becomes the state it holds now, `seq:<lastSeq>`, refused (POINT_IN_RESYNC) while a resync
   * window makes live a torn mix.
   */
  resolveFixedPoint(text: string): Point {
    const p = this.resolvePoint(text);
    return p.seqLimit === LIVE_SEQ ? this.core.events.fixLive(this.resolveContext()) : p;
  }

  /**
   * POINT_IN_RESYNC when a point recorded earlier (a clone's base, made before this check
   * existed or before the window that now covers it was known) lies inside a resync window.
   */
  checkRecordedPoint(name: string, seqLimit: number): void {
    this.core.events.checkWindows({ name, seqLimit }, this.core.index.times);
  }

  /**
   * Keeps a resolved point whole for a reader that must not fail half way (an export streamed
   * through the control socket), in memory only: forget and prune treat it as pinned until the
   * returned release runs. Call it in the tick that resolved the point.
   */
  holdPoint(p: Point): () => void {
    return this.core.retention.hold(p.seqLimit);
  }

  /** False while the sync that appended it has not made it durable (DESIGN rule 28). */
  isDurableEvent(e: SyncEvent): boolean {
    return this.core.events.isDurable(e.id);
  }

  /** Whether an event is a point resolvePoint serves (kept, outside every resync window). */
  isServedEvent(e: SyncEvent): boolean {
    const c = this.core;
    try {
      c.events.checkWindows({ name: `event:${e.id}`, seqLimit: e.seq, event: e }, c.index.times);
      return !c.retention.isForgotten(e.id) && c.events.isDurable(e.id);
    } catch {
      return false;
    }
  }

  /**
   * A point resolved earlier (an NBD export's, a FUSE handle's, an export or diff in progress)
   * may have been forgotten since, and a prune may have dropped what only it read: every read
   * through it checks it again (POINT_FORGOTTEN), never serving another state (DESIGN rule 25).
   */
  private checkHeld(point: Point | undefined): void {
    if (point && point.seqLimit !== LIVE_SEQ) this.core.retention.checkHeldPoint(point, this.core.events.all);
  }

  /**
   * One block as version `seq` of it left it (history --hash): not a point, so no held-point
   * check, but the version itself must still be in the index, looked up in the same tick as the
   * read's own lookup (a prune meanwhile drops it: VERSION_PRUNED, never an older version).
   */
  async readVersion(block: number, seq: number): Promise<Buffer> {
    this.open();
    const bs = this.core.sb.blockSizeBytes;
    this.checkRange(block * bs, bs);
    const at = this.core.index.floor(block, seq);
    if (!at || at.seq !== seq) throw new ChronoError('VERSION_PRUNED', `block ${block} has no version ${seq} (prune removed it)`, { block, seq });
    const out = Buffer.allocUnsafe(bs);
    const rest = this.core.reader.readNow(block, 1, seq, out, 0);
    if (rest) await rest;
    return out;
  }

  /** Reads `length` bytes at `offset` as of `point` (default: live). */
  async read(offset: number, length: number, point?: Point): Promise<Buffer> {
    const out = Buffer.allocUnsafe(length);
    await this.readInto(out, offset, length, point);
    return out;
  }

  /**
   * readInto, done by the time it returns (undefined) when primary storage and the OS cache hold
   * every block, as they do for the live volume and recent history; otherwise the promise of
   * the rest, which settles once nothing writes into `out` any more. The FUSE edge answers at
   * once in the first case, without a promise and without looking anything up twice.
   */
  readIntoNow(out: Buffer, offset: number, length: number, point?: Point): Promise<void> | undefined {
    this.open();
    this.core.foreground.requests++;
    this.checkRange(offset, length);
    const bs = this.core.sb.blockSizeBytes;
    if (offset % bs !== 0 || length % bs !== 0) return this.readInto(out, offset, length, point);
    this.checkHeld(point); // same tick as readNow's index lookup
    const rest = this.core.reader.readNow(offset / bs, length / bs, point?.seqLimit ?? LIVE_SEQ, out, 0);
    return rest && this.core.foreground.track(rest);
  }

  /**
   * Reads into the caller's buffer. Block-aligned ranges are reconstructed in place, with no
   * intermediate copy: the FUSE and NBD edges hand in their request buffers.
   */
  async readInto(out: Buffer, offset: number, length: number, point?: Point): Promise<void> {
    this.open();
    this.core.foreground.requests++;
    return this.core.foreground.track(this.readIntoTracked(out, offset, length, point));
  }

  private async readIntoTracked(out: Buffer, offset: number, length: number, point?: Point): Promise<void> {
    this.checkRange(offset, length);
    const bs = this.core.sb.blockSizeBytes;
    const first = Math.floor(offset / bs);
    const end = Math.ceil((offset + length) / bs);
    const seqLimit = point?.seqLimit ?? LIVE_SEQ;
    // The check and the reader's index lookup run in one tick: no forget or prune falls between.
    this.checkHeld(point);
    if (offset % bs === 0 && length % bs === 0) return this.core.reader.read(first, end - first, seqLimit, out, 0);
    const whole = Buffer.allocUnsafe((end - first) * bs);
    await this.core.reader.read(first, end - first, seqLimit, whole, 0);
    whole.copy(out, 0, offset - first * bs, offset - first * bs + length);
  }

  async write(offset: number, data: Buffer): Promise<void> {
    this.checkRange(offset, data.length);
    this.core.foreground.requests++;
    return this.core.foreground.track(this.mutate(() => {
      this.space?.admit(); // a full disk refuses the write before anything of it is appended
      return this.writer.write(offset, data);
    }));
  }

  /**
   * Does the whole write now, without a promise, when it needs nothing waited for (see
   * VolumeWriter.tryWriteSync) and no other mutation is queued; false means use write(). Once it
   * returns true the write is done in the same sense as write()'s promise resolving.
   */
  tryWriteSync(offset: number, data: Buffer): boolean {
    this.open();
    this.core.foreground.requests++;
    this.checkRange(offset, data.length);
    if (this.mutations > 0 || this.failure || this.readOnly || (this.space && !this.space.fits())) return false;
    try {
      return this.writer.tryWriteSync(offset, data);
    } catch (err) {
      this.noteFailure(err);
      throw err;
    }
  }

  /** Zeros a range; `trim` records it as discarded (reads still return zeros). */
  async writeZeroes(offset: number, length: number, trim = false): Promise<void> {
    this.checkRange(offset, length);
    this.core.foreground.requests++;
    return this.core.foreground.track(this.mutate(() => {
      this.space?.admit();
      return this.writer.zero(offset, length, trim ? RecordType.TRIM : RecordType.ZERO);
    }));
  }

  /**
   * Every completed write is in the kernel (page cache or device) when this resolves: it then
   * survives this process being killed, not a power cut (flush() is for that). The NBD edge
   * awaits it before acknowledging a write (docs/DESIGN.md, "Acknowledged writes").
   */
  handOff(): Promise<void> {
    this.open();
    return this.core.segments.handOff();
  }

  /** Makes every completed write durable. */
  flush(): Promise<void> {
    this.core.foreground.requests++;
    return this.core.foreground.track(this.mutate(() => this.core.segments.syncAll()));
  }

  /** Records a sync event; once this resolves, it and everything before it are durable. */
  sync(opts: { label?: string; kind?: EventKindName } = {}): Promise<SyncEvent> {
    return this.mutate(async () => {
      const core = this.core;
      const open = core.events.windows.open;
      if (open) throw new ChronoError('POINT_IN_RESYNC', `resync window ${open.id} is open: the volume is a torn mix of old and new blocks until the resync ends, so no event can be recorded now`, { window: open.id });
      const payload = core.volumeLog.eventPayload(opts.kind ?? 'app', opts.label ?? '');
      await ensureSpace(core, HEADER_BYTES + payload.length);
      const e = core.volumeLog.appendEvent(payload);
      core.events.holdUntilDurable(e.id); // same tick: never resolvable before it is durable
      await core.segments.syncAll();
      core.events.durable(e.id); // a failed sync leaves it unresolvable: it may not be on disk
      return e;
    });
  }

  get resyncWindows(): readonly ResyncWindow[] {
    return this.core.events.windows.all;
  }

  /**
   * Opens a resync window (RESYNC_BEGIN), durably, before the caller starts copying: points
   * from here until endResync are refused. An already open window is returned as it is (a
   * resync that failed part-way and starts over is still the same torn stretch).
   */
  beginResync(opts: { reason: ResyncReasonName; lostMs?: number }): Promise<ResyncWindow> {
    return this.mutate(async () => {
      const w = this.core.events.windows;
      if (w.open) return w.open;
      await this.appendResync(RecordType.RESYNC_BEGIN, encodeResyncPayload({ windowId: w.nextId, reason: opts.reason, lostMs: opts.lostMs ?? 0, bytesCopied: 0 }));
      return w.open!;
    });
  }

  /**
   * Closes the open window (RESYNC_END), durably with every write before it: the caller has
   * seen the copy complete, so from here the volume equals the primary again.
   */
  endResync(opts: { bytesCopied: number }): Promise<ResyncWindow> {
    return this.mutate(async () => {
      const open = this.core.events.windows.open;
      if (!open) throw new ChronoError('BAD_ARGUMENT', 'no resync window is open');
      await this.appendResync(RecordType.RESYNC_END, encodeResyncPayload({ windowId: open.id, lostMs: 0, bytesCopied: opts.bytesCopied }));
      return open;
    });
  }

  /**
   * recover's first record (LOST, DESIGN rule 27), durable when this returns: times from the
   * recovered history's last record up to now name no known state and are refused.
   */
  recordLost(p: LostPayload): Promise<void> {
    return this.mutate(async () => {
      await ensureSpace(this.core, HEADER_BYTES + LOST_PAYLOAD.lengthBytes);
      this.core.volumeLog.appendLost(encodeLostPayload(p));
      await this.core.segments.syncAll();
    });
  }

  /** Appends a RESYNC record and makes it and everything before it durable. */
  private async appendResync(type: typeof RecordType.RESYNC_BEGIN | typeof RecordType.RESYNC_END, payload: Buffer): Promise<void> {
    const core = this.core;
    await ensureSpace(core, HEADER_BYTES + payload.length);
    core.volumeLog.appendResync(type, payload);
    await core.segments.syncAll();
  }

  async status(): Promise<VolumeStatus> {
    this.open();
    return volumeStatus(this.core);
  }

  /**
   * --seal-after: checks a few times per interval whether the current segment holds writes and
   * none has come for `quietMs`; then seals it (through the mutation queue, like a write).
   */
  private startSealAfter(quietMs: number): void {
    const core = this.core;
    let queued = false;
    this.sealTimer = setInterval(() => {
      const fresh = core.volumeLog.nextSeq > core.segments.currentFirstSeq;
      if (queued || !fresh || this.mutations > 0 || this.failure || Date.now() - core.volumeLog.lastTimeMs < quietMs) return;
      queued = true;
      this.mutate(async () => {
        if (core.volumeLog.nextSeq > core.segments.currentFirstSeq && Date.now() - core.volumeLog.lastTimeMs >= quietMs) {
          core.log.debug({ segment: core.segments.current.id, quietMs }, 'sealing a quiet segment (--seal-after)');
          await sealNow(core);
        }
      }).catch((err) => core.log.warn({ err: (err as Error).message }, '--seal-after could not seal the current segment')).finally(() => { queued = false; });
    }, Math.max(10, Math.min(1000, Math.floor(quietMs / 4))));
    this.sealTimer.unref();
  }

  /** Checkpoints the index (so the next open replays nothing) and releases the lock. */
  /** The on-disk archive read cache (--archive-cache): its counters and size; undefined when off. */
  get archiveCache(): { stats: DiskCacheStats; sizeBytes: number } | undefined {
    const d = this.core.archive.disk;
    return d && { stats: { ...d.stats }, sizeBytes: d.sizeBytes };
  }

  /** Runs `fn` first when the volume closes (clones close their overlays: a clean close, see FORMAT.md "Clone checksums"). */
  whenClosing(fn: () => Promise<void>): void {
    this.closing.push(fn);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    for (const fn of this.closing.splice(0)) await fn().catch(() => undefined);
    clearInterval(this.sealTimer);
    await this.serial.catch(() => undefined);
    await this.pruning?.catch(() => undefined);
    this.closed = true;
    try {
      await quiesceTurnover(this.core);
      if (!this.failure && !this.readOnly) {
        // Through the checkpointer, so it cannot overlap a background one.
        await this.core.checkpointer.idle();
        this.core.checkpointer.request();
        await this.core.checkpointer.idle();
      }
    } finally {
      await this.core.archive.disk?.settled();
      await this.core.segments.close();
      this.core.dir.unlock();
    }
  }

  private open(): void {
    if (this.closed) throw new ChronoError('CLOSED', 'volume is closed');
  }

  private checkRange(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw new ChronoError('BAD_ARGUMENT', `invalid offset/length ${offset}/${length}`);
    }
    if (offset + length > this.core.sb.volumeSizeBytes) {
      throw new ChronoError('OUT_OF_RANGE', `range ${offset}+${length} runs past the end of the ${this.core.sb.volumeSizeBytes}-byte volume`, { offset, length });
    }
  }

  /** Runs mutations one at a time; an I/O error poisons the volume for writing. */
  private mutate<T>(op: () => Promise<T>): Promise<T> {
    this.open();
    const run = async (): Promise<T> => {
      try {
        if (this.readOnly) throw new ChronoError('READ_ONLY', 'volume is open read-only');
        if (this.failure) throw new ChronoError('WRITER_FAILED', `volume stopped accepting writes after an I/O error: ${this.failure.message}; close and reopen it`, {}, this.failure);
        return await op();
      } catch (err) {
        this.noteFailure(err);
        throw err;
      } finally {
        this.mutations--;
      }
    };
    this.mutations++;
    const p = this.serial.then(run, run);
    this.serial = p.catch(() => undefined);
    return p;
  }

  /** What reached the disk after an I/O error is unknown: refuse further writes rather than guess. */
  private noteFailure(err: unknown): void {
    if (!this.failure && (isChronoError(err, 'IO') || isChronoError(err, 'WRITER_FAILED'))) this.failure = err;
  }
}

/**
 * The archive catalog at open. Damaged or foreign: refused (its codes). Unreachable: an empty
 * one, which is safe for reads (an object prune replaced is then missing, never other bytes:
 * keys are never reused) and read again in the background (catalog-refresh.ts); prune reads it
 * afresh before it acts.
 */
async function loadCatalog(store: BackingStore, volumeId: Buffer, log: Logger | undefined): Promise<{ catalog: ArchiveCatalog; read: boolean }> {
  try {
    return { catalog: await ArchiveCatalog.load(store, volumeId), read: true };
  } catch (err) {
    if (isChronoError(err) && err.code !== 'ARCHIVE_UNAVAILABLE' && err.code !== 'IO') throw err;
    log?.warn({ err: (err as Error).message }, 'the archive catalog could not be read; reading as if no prune had run until it can be');
    return { catalog: new ArchiveCatalog(), read: false };
  }
}
