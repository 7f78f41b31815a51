import { clonesOf } from '../clone/clone-service';
import { isChronoError } from '../errors';
import { LIVE_POINT, Point, describeImage, listImages, resolvePastImage } from '../service/images';
import type { Volume } from '../volume/volume';

export interface NbdExport {
  name: string;
  point: Point;
  readOnly: boolean;
  description: string;
  /** `clone/<name>`: reads and writes go to the clone's overlay. */
  clone?: string;
}

/**
 * `live` (or the default, empty name) is read-write; an event id or label, `seq:<n>`, an
 * ISO-8601 time (optionally as `at/<time>`) is a read-only past image; `clone/<name>` is a
 * clone, read-write.
 */
export function resolveExport(volume: Volume, name: string): NbdExport | undefined {
  if (name === '' || name === 'live') return { name: 'live', point: LIVE_POINT, readOnly: false, description: describeImage(LIVE_POINT) };
  if (name.startsWith('clone/')) {
    const clone = name.slice('clone/'.length);
    const clones = clonesOf(volume);
    if (!clones.exists(clone)) return undefined;
    let b;
    try {
      b = clones.resolve(clone);
    } catch (err) {
      // A clone based inside a resync window serves a state the primary never had: as unknown as a point inside one.
      if (isChronoError(err, 'POINT_IN_RESYNC')) return undefined;
      throw err;
    }
    return { name, point: { seqLimit: b.seq, name: b.point }, readOnly: false, clone, description: `clone '${clone}' of ${b.point} (read-write; writes stay in the clone)` };
  }
  const point = resolvePastImage(volume, name);
  return point && { name, point, readOnly: true, description: describeImage(point) };
}

/** What NBD_OPT_LIST shows: live, every event by id (its label in the description), then the clones. */
export function listExports(volume: Volume): Array<{ name: string; description: string }> {
  const clones = clonesOf(volume);
  return [...listImages(volume), ...clones.names().map((c) => ({ name: `clone/${c}`, description: `clone of ${clones.base(c).point} (read-write)` }))];
}
