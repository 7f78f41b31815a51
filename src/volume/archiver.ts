import { archiveKey, buildArchiveObject, builtTableOf, partsEqual } from '../archive/archive-object';
import { OBJECT_TAIL_BYTES, decodeObjectEnd, keptRecords, readObjectEnd } from '../archive/object-end';
import { decodeSegmentHeader } from '../format/segment-header';
import { ChronoError, isChronoError } from '../errors';
import { ArchiveHead, archiveHeadAfter, encodeArchiveHead } from '../format/archive-head';
import { FILE_NAMES, SEGMENT_HEADER } from '../format/constants';
import { DEFAULTS } from '../options';
import { ArchiveFence, readHeadBytes } from './archive-fence';
import { Core } from './core';

const TIMED_OUT = Symbol('timed out');

/** The promise's value, or TIMED_OUT if it takes longer than `ms`. */
async function raceTimeout<T>(p: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<typeof TIMED_OUT>((r) => (timer = setTimeout(() => r(TIMED_OUT), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** How far the archive reaches: every segment up to `through` is in it, and `nextSeq` is the oldest write that is not. */
export interface ArchivedPoint {
  through: number;
  nextSeq: number;
}

/**
 * Archive on seal (docs/DESIGN.md, "The log and the segment lifecycle"): each segment goes to the
 * archive as soon as its seal is durable, in id order, one at a time, in the background. A
 * segment counts as archived once its object is verified and the archive head names it; only
 * then may its primary copy be recycled (turnover.ts waits for that).
 */
/** What the archiver uses of the volume's parts. */
export type ArchiverParts = Pick<Core, 'sb' | 'segments' | 'store' | 'index' | 'log' | 'volumeLog' | 'archive'>;

export class Archiver {
  /** The last failure, cleared by the next success; status shows it. */
  error?: string;
  private running?: Promise<unknown>;
  private point: ArchivedPoint = { through: 0, nextSeq: 0 };
  /** Failed runs since the last success: the retry backoff's exponent. */
  private failures = 0;
  private failingSinceMs?: number;
  private retryTimer?: NodeJS.Timeout;
  private stopped = false;
  private progress?: { promise: Promise<void>; resolve: () => void };
  /** Called after each segment the archive takes (turnover.ts recycles what waited for it). */
  onArchived?: (through: number) => void;
  /** A second writer of this archive (a copied volume directory) stops this one archiving. */
  readonly fence: ArchiveFence;

  constructor(private readonly core: ArchiverParts) {
    this.fence = new ArchiveFence(core);
  }

  /** The log's next seq: seqs from it on are written nowhere yet. */
  private get nextSeq(): number {
    return this.core.volumeLog.nextSeq;
  }

  /**
   * Learns how far the archive reaches, after replay: the head's point, or, for an archive
   * written before heads (or an unreadable head), the segment before the oldest in primary
   * (older ones were archived before they were recycled). Failure to read it is kept in `error`.
   */
  async load(o: { readOnly?: boolean } = {}): Promise<void> {
    const core = this.core;
    const oldest = core.segments.sealed[0] ?? core.segments.current.id;
    const firstSeq = Number(core.segments.readExact(oldest, 0, SEGMENT_HEADER.lengthBytes).readBigUInt64LE(SEGMENT_HEADER.off.firstSeq));
    const fallback = { through: oldest - 1, nextSeq: firstSeq };
    this.point = fallback;
    try {
      const { head, damage } = this.fence.adoptRead(await readHeadBytes(core.store));
      // Damaged: archive from the oldest segment in primary on, rewriting the head.
      if (damage) this.error = damage;
      if (head && head.lastSegment >= fallback.through) this.point = { through: head.lastSegment, nextSeq: head.nextSeq };
    } catch (err) {
      // Encrypted and failing authentication: damaged too (the fence lets the next head replace it).
      if (isChronoError(err, 'ARCHIVE_AUTH_FAILED')) this.fence.adopt(null);
      if (isChronoError(err, 'FOREIGN_SEGMENT')) throw err;
      // Another history's head: refused for writing; a read-only open reads its own primary.
      if (isChronoError(err, 'ARCHIVE_CONFLICT')) {
        if (!o.readOnly) throw err;
        this.error = err.message;
        return;
      }
      // Unreachable: archive from the oldest segment in primary on, rewriting the head.
      this.error = (err as Error).message;
    }
  }

  get archivedThrough(): number {
    return this.point.through;
  }

  /** The last seq the archive holds (0: none, or not known for an archive written before heads). */
  get archivedSeq(): number {
    return Math.max(0, this.point.nextSeq - 1);
  }

  /** Sealed segments in primary that the archive does not hold yet, oldest first. */
  get pending(): number[] {
    return this.core.segments.sealed.filter((id) => id > this.point.through);
  }

  /**
   * How far the archive is behind the log: sealed segments not archived yet and the current
   * segment if it holds new records; their bytes; and the age of the oldest write not archived.
   */
  lag(nowMs = Date.now()): { segments: number; bytes: number; seconds: number } {
    const { segments, index } = this.core;
    const pending = this.pending;
    let bytes = pending.reduce((n, id) => n + segments.source(id).size, 0);
    let count = pending.length;
    if (this.nextSeq > segments.currentFirstSeq) {
      count++;
      bytes += segments.current.end;
    }
    const oldestSeq = Math.max(this.point.nextSeq, 1);
    const t = oldestSeq < this.nextSeq ? index.times.timeOfSeq(oldestSeq) : -1;
    // Tenths of a second: finer only churns status.json (and its length) every refresh.
    return { segments: count, bytes, seconds: count && t >= 0 ? Math.round(Math.max(0, nowMs - t) / 100) / 10 : 0 };
  }

  /**
   * Starts archiving whatever is sealed and not archived yet, unless a run is under way; never
   * throws. The promise settles with the run's failure (undefined on success). After a failure
   * the archiver retries by itself, with full-jitter backoff (archiveRetry*DelayMs), until the
   * archive takes every sealed segment: an outage's backlog drains without waiting for a write.
   */
  kick(): Promise<unknown> {
    if (!this.running) {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      const run = this.run().then(() => undefined, (err: unknown) => err ?? new Error('archive failed'));
      this.running = run.then((err) => {
        this.running = undefined;
        if (err === undefined) this.succeeded();
        else this.failed(err as Error);
        return err;
      });
    }
    return this.running;
  }

  private succeeded(): void {
    if (this.failingSinceMs !== undefined) {
      this.core.log.info({ archivedThrough: this.point.through, failingForMs: Date.now() - this.failingSinceMs }, 'archive reachable again: the backlog is archived');
    }
    this.error = undefined;
    this.failingSinceMs = undefined;
    this.failures = 0;
  }

  private failed(err: Error): void {
    this.error = err.message;
    this.failures++;
    const first = this.failingSinceMs === undefined;
    this.failingSinceMs ??= Date.now();
    const delayMs = Math.round(Math.random() * Math.min(DEFAULTS.archiveRetryMaxDelayMs, DEFAULTS.archiveRetryBaseDelayMs * 2 ** Math.min(20, this.failures - 1)));
    // The first failure of an outage at warn, the retries at debug: an hour's outage is not 700 warnings.
    const level = first ? 'warn' : 'debug';
    this.core.log[level]({ err: this.error, pending: this.pending.length, retryInMs: delayMs }, 'archiving a sealed segment failed; retrying with backoff (writes go on into the backlog)');
    if (this.stopped || !this.pending.length) return;
    this.retryTimer = setTimeout(() => void this.kick(), delayMs);
    this.retryTimer.unref(); // a volume left open does not keep the process alive for it
  }

  /** When the current outage began (the first failure since the last success); undefined while the archive is healthy. */
  get failingSince(): number | undefined {
    return this.failingSinceMs;
  }

  /** Settles once `segment` is archived (undefined) or a run fails first (its failure). */
  async settled(segment: number): Promise<unknown> {
    while (this.point.through < segment) {
      if (!this.pending.length) return new ChronoError('BAD_ARGUMENT', `segment ${segment} is not sealed, so it cannot be archived`);
      const err = await this.kick();
      if (err !== undefined) return err;
    }
    return undefined;
  }

  /**
   * Waits until `segment` is archived (true) or `deadlineMs` (Date.now() scale) passes (false),
   * starting a run at once if none is under way and then at the backoff's pace. A run still under
   * way at the deadline goes on in the background.
   */
  async waitArchived(segment: number, deadlineMs: number): Promise<boolean> {
    // At least one run that starts after this call is awaited to its end, even with no time
    // left: a stall timeout of 0 means "one more try, then fail".
    const joined = this.running !== undefined;
    for (let attempt = 0; ; attempt++) {
      if (this.point.through >= segment) return true;
      if (!this.pending.length) throw new ChronoError('BAD_ARGUMENT', `segment ${segment} is not sealed, so it cannot be archived`);
      const fresh = attempt === 0 || (attempt === 1 && joined);
      const left = deadlineMs - Date.now();
      if (!fresh && left <= 0) return false;
      const err = fresh && left <= 0 ? await this.kick() : await raceTimeout(this.kick(), Math.max(0, left));
      if (err === undefined || err === TIMED_OUT || (attempt === 0 && joined)) continue;
      // Failed: wait for the backoff, paced faster while a write waits (or the deadline, or a
      // background retry that gets through), then try again.
      const backoffMs = Math.max(50, Math.min(DEFAULTS.archiveRetryWhileWaitingMs, DEFAULTS.archiveRetryBaseDelayMs * 2 ** Math.min(20, this.failures - 1)));
      const wait = Math.min(deadlineMs - Date.now(), backoffMs);
      if (wait > 0) await raceTimeout(this.progressed(), wait);
    }
  }

  /** Settles at the archive's next step forward. */
  private progressed(): Promise<void> {
    if (!this.progress) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.progress = { promise, resolve };
    }
    return this.progress.promise;
  }

  /** Waits for a run under way (at close). */
  async idle(): Promise<void> {
    await this.running;
  }

  /** No more retries (at close); a run under way ends by itself (idle() waits for it). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  private async run(): Promise<void> {
    for (let next = this.pending[0]; next !== undefined; next = this.pending[0]) {
      if (next !== this.point.through + 1) {
        throw new ChronoError('ARCHIVE_MISSING', `segment ${this.point.through + 1} is neither archived nor in primary; segment ${next} cannot be archived after it`, { segment: next });
      }
      await this.fence.check();
      const head = await archiveSegment(this.core, next);
      const bytes = encodeArchiveHead({ ...head, writer: this.fence.writer, sealCrc: this.fence.sealCrcOf(next) });
      this.fence.noteTried(bytes);
      await this.core.store.put(FILE_NAMES.archiveHead, bytes);
      this.fence.notePut(bytes);
      this.point = { through: head.lastSegment, nextSeq: head.nextSeq };
      this.onArchived?.(this.point.through);
      this.progress?.resolve();
      this.progress = undefined;
    }
  }
}

/**
 * Puts one sealed, durable segment into the archive and verifies it (docs/DESIGN.md, ordering
 * rule 7): linked where the store can (the object is the segment file itself, by identity; its
 * length, header and SEAL are checked through the archive's name: no 64 MiB read-back, whose
 * disk read cost steady-state writes), else built and put, then read back whole and compared
 * byte for byte. Returns the head that names it.
 */
async function archiveSegment(core: ArchiverParts, segment: number): Promise<ArchiveHead> {
  const { segments, store, sb } = core;
  await segments.whenSealedDurable(segment);
  const key = archiveKey(segment);
  const size = segments.source(segment).size;
  // Never link a file that does not end with its SEAL (rule 15: it cannot be cut once linked).
  if (store.linkFrom && !endsWithSeal(core, segment, size)) {
    throw new ChronoError('ARCHIVE_MISMATCH', `sealed segment ${segment} does not end with its SEAL record (${size} bytes); not linked`, { segment });
  }
  if (store.linkFrom && (await store.linkFrom(key, segments.pathOf(segment)))) {
    // Linked: the object is the sealed segment itself (the store checked the link names it).
    // What the head needs, and what shows the object whole, is at its ends: the header and SEAL.
    let nextSeq: number;
    try {
      if ((await store.size(key)) !== size) throw new Error(`its length is not the segment's ${size} bytes`);
      const header = decodeSegmentHeader(await store.getRange(key, 0, SEGMENT_HEADER.lengthBytes), sb.volumeId, { segment, archive: true });
      const end = await readObjectEnd(store, key, size, { segment, archive: true });
      if (!end.linked || header.segmentId !== segment) throw new Error('it does not end with its SEAL record');
      nextSeq = header.firstSeq + keptRecords(end, header.firstSeq);
    } catch (err) {
      throw new ChronoError('ARCHIVE_MISMATCH', `archived segment ${segment} (linked) is not the sealed segment: ${(err as Error).message}`, { segment }, err);
    }
    core.log.debug({ segment, archiveBytes: size, linked: true }, 'segment archived');
    return { volumeId: sb.volumeId, lastSegment: segment, nextSeq };
  }
  const whole = await segments.readWholeAsync(segment);
  const obj = buildArchiveObject(whole, sb.blockSizeBytes, segment, sb.volumeId);
  core.archive.local?.remove(segment, 0);
  await store.put(key, obj);
  const back = await store.get(key);
  if (!partsEqual(obj, back)) {
    throw new ChronoError('ARCHIVE_MISMATCH', `archived segment ${segment} reads back different from what was written`, { segment });
  }
  await keepLocalTable(core, segment, 0, back);
  core.log.debug({ segment, archiveBytes: back.length, linked: false }, 'segment archived');
  return archiveHeadAfter(obj, sb.volumeId, segment);
}

/** The primary file's last bytes are its SEAL record (one small read before a link). */
function endsWithSeal(core: ArchiverParts, segment: number, size: number): boolean {
  const n = Math.min(size, OBJECT_TAIL_BYTES);
  try {
    return decodeObjectEnd(core.segments.readExact(segment, size - n, n), size, { segment }).linked;
  } catch {
    return false;
  }
}

/**
 * Keeps a verified built object's offset table in the volume directory (archive-table-file.ts),
 * so a cold read of it is one ranged read. Best effort: the archive does not depend on it (a
 * read without it fetches the object's table), and archiving must not stop for it (archiving is
 * what frees primary space), so a failure is a warning.
 */
export async function keepLocalTable(core: Pick<Core, 'archive' | 'log'>, segment: number, generation: number, obj: Buffer): Promise<void> {
  try {
    await core.archive.local?.save(segment, generation, builtTableOf(obj, segment));
  } catch (err) {
    core.log.warn({ segment, generation, err: (err as Error).message }, 'keeping the local offset table of an archived segment failed; its reads fetch the table from the archive');
  }
}
