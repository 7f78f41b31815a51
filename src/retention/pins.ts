import { ChronoError } from '../errors';
import { LIVE_SEQ } from '../volume/events';
import type { Volume } from '../volume/volume';
import type { Pin } from '../volume/retention-state';

export type { Pin };

/**
 * Pins are the one way anything holds a point: the user (`chronovol pin`), a clone (its base
 * point, for its lifetime), rollback (its undo event; its target while the rollback is unfinished). A pinned point is never forgotten and
 * its blocks never pruned. Each holder's pins are its own: unpinning one leaves the others.
 */
export async function pin(volume: Volume, point: string, reason: string, holder = 'user'): Promise<Pin> {
  // `live` moves on; the pin holds the state live has now (refused inside a resync window). It
  // is recorded in the tick that resolved the point, before any await (a forget and prune
  // meanwhile must find it held), and the log up to it is made durable before pin() returns.
  const p = volume.resolveFixedPoint(point);
  const made = pinAt(volume, { seq: p.seqLimit, point: p.name, eventId: p.event?.id ?? null }, reason, holder);
  await volume.flush();
  return made;
}

/** pin() of a point already resolved (a clone's base): durable when it returns. */
export function pinAt(volume: Volume, at: { seq: number; point: string; eventId: number | null }, reason: string, holder: string): Pin {
  const r = volume.retention;
  const same = r.pins.find((x) => x.seq === at.seq && x.holder === holder);
  if (same) return same; // pinning twice holds once: unpin releases it
  const made: Pin = { ...at, reason, holder, createdAt: new Date().toISOString() };
  r.addPin(made);
  return made;
}

/** Releases every pin `holder` has at `seq` (none: nothing happens). */
export function unpinAt(volume: Volume, seq: number, holder: string): void {
  volume.retention.removePins(seq, holder);
}

/** Releases `holder`'s pin on `point`; UNKNOWN_POINT when it holds none there. */
export function unpin(volume: Volume, point: string, holder = 'user'): Pin {
  const r = volume.retention;
  const seq = seqOfPinned(volume, point, holder);
  const held = r.pins.find((x) => x.seq === seq && x.holder === holder);
  if (!held) throw new ChronoError('UNKNOWN_POINT', `${point} is not pinned${holder === 'user' ? '' : ` by ${holder}`}`, { point, holder });
  r.removePins(seq, holder);
  return held;
}

export function listPins(volume: Volume): readonly Pin[] {
  return volume.retention.pins;
}

/** The seq a pinned point names. Resolving it normally could fail: only the pin holds it. */
function seqOfPinned(volume: Volume, point: string, holder: string): number {
  const t = point.trim();
  const byName = volume.retention.pins.find((x) => x.holder === holder && (x.point === t || (x.eventId !== null && (t === String(x.eventId) || t === `event:${x.eventId}`))));
  if (byName) return byName.seq;
  const p = volume.resolvePoint(t);
  return p.seqLimit === LIVE_SEQ ? volume.lastSeq : p.seqLimit;
}
