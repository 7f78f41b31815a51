import { ChronoError, isChronoError } from '../errors';
import type { Changes } from '../history/changes';
import type { BlockVersion } from '../history/block-history';
import { LIVE_SEQ, Point, SyncEvent } from '../volume/events';
import type { ResyncWindow } from '../volume/resync-windows';
import type { Volume } from '../volume/volume';

/**
 * The one way the edges (FUSE tree, NBD exports, control socket, CLI) see a volume's images:
 * resolve a point to an image, stream a range of it, and ask what changed. The edges import
 * this, not the volume's parts (test/architecture.test.ts).
 */
export { LIVE_SEQ };
export type { BlockVersion, Changes, Point, ResyncWindow, SyncEvent };

export const LIVE_POINT: Point = { seqLimit: LIVE_SEQ, name: 'live' };

/** Bytes per chunk when a range is streamed: a large image never sits in memory whole. */
export const STREAM_CHUNK_BYTES = 1 << 20;

export function isLive(point: Point): boolean {
  return point.seqLimit === LIVE_SEQ;
}

/** 'live', an event id or label, seq:<n>, or an ISO-8601 time; UNKNOWN_POINT otherwise. */
export function resolveImage(volume: Volume, text: string): Point {
  return volume.resolvePoint(text);
}

/**
 * `live` pinned to the seq it stands at now, so every later read of it sees one state (a diff's
 * `to`, an export streamed a chunk at a time); other points are fixed already.
 */
export function pinPoint(volume: Volume, p: Point): Point {
  return p.seqLimit === LIVE_SEQ ? { seqLimit: volume.lastSeq, name: 'live' } : p;
}

/** A point kept for good (restore): `live` as the state it holds now, refused inside a resync window. */
export function resolveFixedImage(volume: Volume, text: string): Point {
  return volume.resolveFixedPoint(text);
}

/**
 * The event an event name (id, `event:<id>`, label) denotes, by resolvePoint's rule, or undefined
 * when it names no served event (unknown, forgotten, inside a resync window; another kind of point).
 */
export function resolveEventImage(volume: Volume, text: string): SyncEvent | undefined {
  try {
    return volume.resolvePoint(text).event;
  } catch (err) {
    if (isChronoError(err, 'UNKNOWN_POINT') || isChronoError(err, 'POINT_FORGOTTEN') || isChronoError(err, 'POINT_IN_RESYNC')) return undefined;
    throw err;
  }
}

/** The events resolvePoint serves (kept, outside every resync window), oldest first: what events/ lists. */
export function servedEvents(volume: Volume): SyncEvent[] {
  return volume.events.filter((e) => volume.isServedEvent(e));
}

/** A read-only past image (`at/` prefix allowed), or undefined for an unknown point or the live one. */
export function resolvePastImage(volume: Volume, text: string): Point | undefined {
  try {
    const point = volume.resolvePoint(text.replace(/^at\//, ''));
    return isLive(point) ? undefined : point;
  } catch (err) {
    // Inside a resync window is no state the primary had: as unknown as a point that never was.
    if (isChronoError(err, 'UNKNOWN_POINT') || isChronoError(err, 'POINT_IN_RESYNC') || isChronoError(err, 'POINT_LOST')) return undefined;
    throw err;
  }
}

export function describeImage(point: Point): string {
  if (isLive(point)) return 'the live volume (read-write)';
  const e = point.event;
  return e ? `event ${e.id} '${e.label}' at ${new Date(e.timeMs).toISOString()}` : `past image at ${point.name}`;
}

/** Every named image: live, then every served event by id (its label in the description). */
export function listImages(volume: Volume): Array<{ name: string; description: string }> {
  return [
    { name: 'live', description: describeImage(LIVE_POINT) },
    ...servedEvents(volume).map((e) => ({ name: String(e.id), description: `${e.label || '(no label)'} ${new Date(e.timeMs).toISOString()} ${e.kind}` })),
  ];
}

/** A byte range of the image; the length defaults to the end. OUT_OF_RANGE past the end. */
export function imageRange(volume: Volume, offset: number, length?: number): { offset: number; length: number } {
  const len = length ?? volume.sizeBytes - offset;
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(len) || offset < 0 || len < 0 || offset + len > volume.sizeBytes) {
    throw new ChronoError('OUT_OF_RANGE', `range ${offset}+${len} runs past the end of the ${volume.sizeBytes}-byte volume`, { offset, length: len });
  }
  return { offset, length: len };
}

/** The range's bytes as of `point`, in order, a chunk at a time. */
export async function* streamImage(volume: Volume, point: Point, offset: number, length: number, chunkBytes = STREAM_CHUNK_BYTES): AsyncGenerator<Buffer> {
  for (let at = offset; at < offset + length; at += chunkBytes) yield await volume.read(at, Math.min(chunkBytes, offset + length - at), point);
}

/** The extents changed between two points, from the index (no image is read). */
export function changesBetween(volume: Volume, from: Point, to: Point): Changes {
  return volume.changesBetween(from, to);
}

/**
 * The served event just before `e` (what events/ lists before it), undefined for the first. A
 * forget can change it: what is computed from it is keyed by both (fuse/tree.ts).
 */
export function previousServedEvent(volume: Volume, e: SyncEvent): SyncEvent | undefined {
  const events = volume.events;
  for (let i = events.indexOf(e) - 1; i >= 0; i--) if (volume.isServedEvent(events[i])) return events[i];
  return undefined;
}

/** The extents an event changed: since the served event before it (since creation for the first). */
export function changesOfEvent(volume: Volume, e: SyncEvent): Changes {
  const prev = previousServedEvent(volume, e);
  const from = prev ? { name: `event:${prev.id}`, seqLimit: prev.seq } : { name: 'seq:0', seqLimit: 0 };
  return volume.changesBetween(from, { name: `event:${e.id}`, seqLimit: e.seq });
}

/** Every version of the blocks under a byte range, oldest first. */
export function historyOfRange(volume: Volume, offset: number, length: number): { firstBlock: number; blockCount: number; versions: BlockVersion[] } {
  imageRange(volume, offset, length);
  const bs = volume.blockSizeBytes;
  const firstBlock = Math.floor(offset / bs);
  const blockCount = Math.ceil((offset + length) / bs) - firstBlock;
  return { firstBlock, blockCount, versions: volume.blockHistory(firstBlock, blockCount) };
}
