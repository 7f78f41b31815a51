import { clonesOf } from '../clone/clone-service';
import type { CloneOverlay } from '../clone/clone-overlay';
import { pinAt, unpinAt } from '../retention/pins';
import { ChronoError } from '../errors';
import { EventKindName } from '../format/constants';
import { BlockExtent, extentBlocks, unionExtents } from '../history/index-diff';
import { isLive, type Point } from '../service/images';
import { liveUsersOf } from '../service/live-users';
import type { SyncEvent } from '../volume/events';
import type { RollbackIntent } from '../volume/rollback-intent';
import { Volume } from '../volume/volume';

export interface RollbackOptions {
  /** Any point the CLI takes but `live`, or `clone:<name>` to promote a clone. */
  to: string;
  /** The label of the event recorded after; default `rollback-to-<point>`. */
  label?: string;
  /** Roll back even while live is open for writing or attached over NBD. */
  force?: boolean;
  onProgress?: (doneBlocks: number, totalBlocks: number) => void;
}

type EventRef = { id: number; seq: number; label: string };

export interface RollbackResult {
  to: string;
  toSeq: number;
  clone: string | null;
  /** The state left behind: roll back to this event to undo. */
  before: EventRef;
  after: EventRef;
  /** True when this finished a rollback a crash had cut short. */
  resumed: boolean;
  /** Blocks the index diff listed (and, for a clone, its overlay): each was read and compared. */
  comparedBlocks: number;
  /** Blocks that differed, and were written. */
  writtenBlocks: number;
  writtenBytes: number;
  elapsedMs: number;
}

const running = new WeakSet<Volume>();

/**
 * Makes live the state of a past point, or of a clone, by writing only the blocks that differ:
 * the index diff lists the blocks with a version since the point (plus a clone's overlay), and
 * of those only the ones whose bytes differ are written, so the cost follows what changed, not
 * the volume. Order (docs/DESIGN.md, MUST 13): the event holding the state being left is
 * durable, then the intent file, then the blocks, then the event after, and only then the
 * intent is removed. A rollback cut short leaves the intent; repeating it finishes it.
 */
export async function rollback(volume: Volume, o: RollbackOptions): Promise<RollbackResult> {
  const started = performance.now();
  if (running.has(volume)) throw new ChronoError('LIVE_IN_USE', 'another rollback of this volume is running');
  const holders = liveUsersOf(volume).describe();
  if (holders && !o.force) throw new ChronoError('LIVE_IN_USE', `refusing to roll back: ${holders}; unmount or disconnect it first, or give --force`, liveUsersOf(volume).counts);
  running.add(volume);
  let target: Target | undefined;
  try {
    target = resolveTarget(volume, o.to);
    const intent = volume.rollbackIntent();
    if (intent && (intent.to !== target.name || intent.toSeq !== target.seq)) {
      throw new ChronoError('ROLLBACK_UNFINISHED', `a rollback to ${intent.to} was cut short; repeat it (--to ${intent.to}) before rolling back elsewhere`, { to: intent.to });
    }
    let current: RollbackIntent;
    if (intent) current = intent;
    else {
      const label = o.label ?? `rollback-to-${target.name}`;
      // The target is held until the rollback is done, pinned in the tick that resolved it: a
      // forget and prune during the sync below must not thin it (rollback would then write an
      // older state into live), and a forget while it is cut short must not make it unresolvable
      // (the intent admits only this target: live would stay a mix).
      pinAt(volume, target.pin, `target of rollback ${label}`, targetHolder(label));
      let before: SyncEvent;
      try {
        before = await volume.sync({ label: `before-${label}`, kind: 'crash' });
      } catch (err) {
        unpinAt(volume, target.pin.seq, targetHolder(label));
        throw err;
      }
      // The state being left is the undo point: pinned (durable) before anything changes live.
      pinAt(volume, { seq: before.seq, point: `event:${before.id}`, eventId: before.id }, `undo of rollback ${label}`, `rollback:${label}`);
      current = { version: 1, to: target.name, toSeq: target.seq, clone: target.clone, beforeEvent: ref(before), label, startedAt: new Date().toISOString() };
      volume.setRollbackIntent(current); // MUST 13: after the before-event is durable, before any block
    }
    const extents = candidates(volume, target);
    const total = extentBlocks(extents);
    let compared = 0;
    let written = 0;
    const bs = volume.blockSizeBytes;
    const chunkBlocks = Math.max(1, Math.floor(CHUNK_BYTES / bs));
    for (const e of extents) {
      for (let b = e.firstBlock; b < e.firstBlock + e.blockCount; b += chunkBlocks) {
        const n = Math.min(chunkBlocks, e.firstBlock + e.blockCount - b);
        const want = await target.read(b * bs, n * bs);
        const have = await volume.read(b * bs, n * bs);
        for (const r of differingRuns(want, have, bs)) {
          await volume.write((b + r.firstBlock) * bs, want.subarray(r.firstBlock * bs, (r.firstBlock + r.blockCount) * bs));
          written += r.blockCount;
        }
        compared += n;
        o.onProgress?.(compared, total);
      }
    }
    const after = await volume.sync({ label: current.label, kind: target.kind });
    volume.setRollbackIntent(undefined); // MUST 13: only once the event after is durable
    unpinAt(volume, current.toSeq, targetHolder(current.label)); // MUST 14: released once nothing relies on it
    return {
      to: current.to, toSeq: current.toSeq, clone: current.clone, before: current.beforeEvent, after: ref(after), resumed: intent !== undefined,
      comparedBlocks: compared, writtenBlocks: written, writtenBytes: written * bs, elapsedMs: performance.now() - started,
    };
  } finally {
    target?.release?.();
    running.delete(volume);
  }
}

const CHUNK_BYTES = 1 << 20;

/** Who holds a rollback's target while it runs or is cut short. */
const targetHolder = (label: string): string => `rollback-target:${label}`;

interface Target {
  name: string;
  seq: number;
  /** The point a pin holds for it (a clone's: its base point). */
  pin: { seq: number; point: string; eventId: number | null };
  clone: string | null;
  kind: EventKindName;
  read(offset: number, length: number): Promise<Buffer>;
  /** Ends the hold on a clone target (rollback's end, done or failed). */
  release?: () => void;
}

function resolveTarget(volume: Volume, to: string): Target {
  if (to.startsWith('clone:')) {
    const name = to.slice('clone:'.length);
    const clones = clonesOf(volume);
    const base = clones.resolve(name); // UNKNOWN_CLONE if there is none; POINT_IN_RESYNC for a base inside a window
    // Held, in the tick that resolved it, until the rollback is done: a delete meanwhile (during
    // the before-event sync) is refused (CLONE_IN_USE) rather than leaving a durable intent that
    // names a clone no longer there. A delete already under way refuses the hold (UNKNOWN_CLONE).
    const release = clones.hold(name);
    let overlay: CloneOverlay;
    try {
      overlay = clones.overlay(name);
    } catch (err) {
      release();
      throw err;
    }
    return {
      release,
      name: `clone:${name}`, seq: base.seq, pin: { seq: base.seq, point: base.point, eventId: base.event?.id ?? null }, clone: name, kind: 'crash',
      read: async (offset, length) => {
        const out = Buffer.allocUnsafe(length);
        const p = overlay.readInto(out, offset, length);
        if (p) await p;
        return out;
      },
    };
  }
  const p: Point = volume.resolvePoint(to);
  if (isLive(p)) throw new ChronoError('BAD_ARGUMENT', 'live is already live: roll back to an event, seq:<n>, a time or clone:<name>');
  return { name: p.name, seq: p.seqLimit, pin: { seq: p.seqLimit, point: p.name, eventId: p.event?.id ?? null }, clone: null, kind: p.event?.kind ?? 'crash', read: (offset, length) => volume.read(offset, length, p) };
}

/** Blocks that may differ between live and the target: a version since its seq, or in its overlay. */
function candidates(volume: Volume, t: Target): BlockExtent[] {
  const fromIndex = volume.changesBetween({ name: t.name, seqLimit: t.seq }, { name: 'live', seqLimit: volume.lastSeq }).changes.map((c) => ({ firstBlock: c.firstBlock, blockCount: c.blockCount }));
  return t.clone ? unionExtents(fromIndex, clonesOf(volume).overlay(t.clone).overlayExtents()) : fromIndex;
}

/** Runs of blocks (numbered from the start of the buffers) whose bytes differ. */
export function differingRuns(a: Buffer, b: Buffer, blockSizeBytes: number): BlockExtent[] {
  const out: BlockExtent[] = [];
  const n = a.length / blockSizeBytes;
  for (let i = 0; i < n; i++) {
    const at = i * blockSizeBytes;
    if (a.compare(b, at, at + blockSizeBytes, at, at + blockSizeBytes) === 0) continue;
    const last = out[out.length - 1];
    if (last && last.firstBlock + last.blockCount === i) last.blockCount++;
    else out.push({ firstBlock: i, blockCount: 1 });
  }
  return out;
}

function ref(e: SyncEvent | EventRef): EventRef {
  return { id: e.id, seq: e.seq, label: e.label };
}
