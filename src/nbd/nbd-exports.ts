import { LIVE_POINT, Point, describeImage, listImages, resolvePastImage } from '../service/images';
import type { Volume } from '../volume/volume';

export interface NbdExport {
  name: string;
  point: Point;
  readOnly: boolean;
  description: string;
}

/**
 * `live` (or the default, empty name) is read-write; an event id or label, `seq:<n>`, an
 * ISO-8601 time (optionally as `at/<time>`) is a read-only past image.
 */
export function resolveExport(volume: Volume, name: string): NbdExport | undefined {
  if (name === '' || name === 'live') return { name: 'live', point: LIVE_POINT, readOnly: false, description: describeImage(LIVE_POINT) };
  const point = resolvePastImage(volume, name);
  return point && { name, point, readOnly: true, description: describeImage(point) };
}

/** What NBD_OPT_LIST shows: live, then every event by id (its label in the description). */
export const listExports = listImages;
