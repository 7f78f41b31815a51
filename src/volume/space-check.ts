import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { ChronoError } from '../errors';
import { INDEX_RUN } from '../format/constants';
import { Superblock } from '../format/superblock';
import { DEFAULTS } from '../options';
import { Core } from './core';

/**
 * Room on the primary file system. The working set is the volume's fixed footprint there:
 * K + 1 segments at most (turnover.ts), plus the archive backlog's segments (--archive-backlog:
 * sealed segments that wait in primary while the archive is unreachable). What is not allocated yet is owed to it: the current
 * segment's unwritten rest, the segments still to come, the bytes appended but not handed to
 * the OS; plus, when the archive shares the file system, one archived object in flight; plus
 * headroom for index checkpoints. Appends are admitted only while the file system can still pay
 * all of that, so a full disk stops a write before anything of it is appended (NO_SPACE, ENOSPC
 * at the edges) instead of failing a background write-out after it was acknowledged, which
 * would leave the log in an unknown state. Later needs (caches, clone overlays) add their terms here.
 */
export interface SpaceNeed {
  /** Bytes the file system must still have free. */
  needBytes: number;
  freeBytes: number;
  /** The parts of needBytes. */
  workingSetBytes: number;
  /** Of workingSetBytes: the part owed to the archive backlog (segments beyond K + 1). */
  backlogBytes: number;
  archiveBytes: number;
  indexBytes: number;
  /** The archive is on the primary's file system. */
  archiveShared: boolean;
}

/** CHRONOVOL_SPACE_CHECK=0 skips the check when a volume is opened (`init --skip-space-check` at creation). */
export const openSpaceCheckEnabled = (): boolean => process.env.CHRONOVOL_SPACE_CHECK !== '0';

/** Free bytes at `p` (or its nearest existing ancestor) for this process: root may use the reserved blocks. */
export function freeBytesAt(p: string): number {
  const s = fs.statfsSync(existingAncestor(p));
  const blocks = process.getuid?.() === 0 ? s.bfree : s.bavail;
  return blocks * s.bsize;
}

function existingAncestor(p: string): string {
  let at = path.resolve(p);
  while (!fs.existsSync(at) && path.dirname(at) !== at) at = path.dirname(at);
  return at;
}

/** Are both paths (or their nearest existing ancestors) on one file system? */
export function sameFileSystem(a: string, b: string): boolean {
  return fs.statSync(existingAncestor(a)).dev === fs.statSync(existingAncestor(b)).dev;
}

/** Headroom for index checkpoints: a fresh run of every block once over, twice (a merge), at least the default. */
function indexReserveBytes(sb: Superblock): number {
  return Math.max(DEFAULTS.spaceReserveBytes, 2 * (sb.volumeSizeBytes / sb.blockSizeBytes) * INDEX_RUN.entryBytes);
}

/**
 * What a volume with `sb` needs on its primary file system, `workingSetOwedBytes` of working set
 * not allocated yet (`backlogBytes` of it for the archive backlog).
 */
export function spaceNeed(sb: Superblock, primaryDir: string, archiveDir: string | undefined, workingSetOwedBytes: number, backlogBytes = 0): SpaceNeed {
  const archiveShared = archiveDir !== undefined && sameFileSystem(primaryDir, archiveDir);
  // An archived object can exceed its segment by its offset table: 8 bytes a kept record of 64 bytes or more.
  const archiveBytes = archiveShared ? Math.ceil(sb.segmentSizeBytes * 1.125) : 0;
  const indexBytes = indexReserveBytes(sb);
  return { needBytes: workingSetOwedBytes + archiveBytes + indexBytes, freeBytes: freeBytesAt(primaryDir), workingSetBytes: workingSetOwedBytes, backlogBytes, archiveBytes, indexBytes, archiveShared };
}

/** The whole working set and the archive backlog (`backlogSegments`): what `init` must find free. */
export function initialSpaceNeed(sb: Superblock, primaryDir: string, archiveDir: string | undefined, backlogSegments = 0): SpaceNeed {
  const backlogBytes = backlogSegments * sb.segmentSizeBytes;
  return spaceNeed(sb, primaryDir, archiveDir, (sb.workingSetSegments + 1) * sb.segmentSizeBytes + backlogBytes, backlogBytes);
}

/**
 * Working-set bytes not allocated yet in an open volume (see the comment at the top), and the
 * part of them owed to the archive backlog: primary may hold K + 1 + backlog segments.
 */
export function owedBytes(core: Core): { owedBytes: number; backlogBytes: number } {
  const seg = core.sb.segmentSizeBytes;
  const current = core.segments.current;
  const onDisk = current.end - current.pendingBytes;
  const toCome = Math.max(0, core.sb.workingSetSegments + 1 + core.backlog.segments - core.segments.count);
  return { owedBytes: seg - onDisk + toCome * seg, backlogBytes: Math.min(toCome, core.backlog.segments) * seg };
}

export function describeNeed(n: SpaceNeed, where: string): string {
  const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;
  const ws = n.backlogBytes ? `working set ${mib(n.workingSetBytes - n.backlogBytes)} + archive backlog ${mib(n.backlogBytes)}` : `working set ${mib(n.workingSetBytes)}`;
  const parts = [ws, n.archiveShared ? `archive (same file system) ${mib(n.archiveBytes)}` : '', `index ${mib(n.indexBytes)}`].filter(Boolean).join(' + ');
  return `${where} has ${mib(n.freeBytes)} free; the volume needs ${mib(n.needBytes)} there (${parts}): ${mib(n.needBytes - n.freeBytes)} more`;
}

export function noSpaceError(n: SpaceNeed, where: string): ChronoError {
  return new ChronoError('NO_SPACE', describeNeed(n, where), { needBytes: n.needBytes, freeBytes: n.freeBytes, shortBytes: n.needBytes - n.freeBytes, workingSetBytes: n.workingSetBytes, backlogBytes: n.backlogBytes, archiveBytes: n.archiveBytes, indexBytes: n.indexBytes });
}

/**
 * Admission of appends while the volume is open. A refusal is logged once per episode, with the
 * numbers; the first admission after it says writes resumed. Nothing is poisoned: a refused
 * write appended nothing. A statfs costs about 8 µs, a sixth of a FUSE write's event-loop time,
 * so with room to spare (four segments beyond the need) it is asked again only every
 * spaceRecheckMs: our own appends do not eat into that slack (they are part of what is owed),
 * only the archive (reserved) and other processes do.
 */
export class SpaceGuard {
  private short = false;
  private comfortableUntilMs = 0;

  constructor(private readonly core: Core, private readonly archiveDir: string | undefined, private readonly log: Logger) {}

  need(): SpaceNeed {
    const o = owedBytes(this.core);
    return spaceNeed(this.core.sb, this.core.dir.root, this.archiveDir, o.owedBytes, o.backlogBytes);
  }

  /** Throws NO_SPACE when the file system can no longer pay what the working set is owed. */
  admit(): void {
    if (!this.fits()) throw noSpaceError(this.need(), this.core.dir.root);
  }

  fits(): boolean {
    const now = Date.now();
    if (now < this.comfortableUntilMs) return true;
    const n = this.need();
    const ok = n.freeBytes >= n.needBytes;
    this.comfortableUntilMs = n.freeBytes - n.needBytes >= 4 * this.core.sb.segmentSizeBytes ? now + DEFAULTS.spaceRecheckMs : 0;
    if (!ok && !this.short) this.log.warn({ needBytes: n.needBytes, freeBytes: n.freeBytes, shortBytes: n.needBytes - n.freeBytes }, `disk full: writes are refused (ENOSPC) until space is freed: ${describeNeed(n, this.core.dir.root)}`);
    if (ok && this.short) this.log.info({ freeBytes: n.freeBytes }, 'space available again: writes resume');
    this.short = !ok;
    return ok;
  }
}
