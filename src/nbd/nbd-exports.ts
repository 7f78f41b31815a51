import { isChronoError } from '../errors';
import { LIVE_SEQ, Point } from '../volume/events';
import { Volume } from '../volume/volume';

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
  if (name === '' || name === 'live') return { name: 'live', point: { seqLimit: LIVE_SEQ, name: 'live' }, readOnly: false, description: 'the live volume (read-write)' };
  try {
    const point = volume.resolvePoint(name.replace(/^at\//, ''));
    if (point.seqLimit === LIVE_SEQ) return undefined;
    const e = point.event;
    return { name, point, readOnly: true, description: e ? `event ${e.id} '${e.label}' at ${new Date(e.timeMs).toISOString()}` : `past image at ${point.name}` };
  } catch (err) {
    // A point inside a resync window is no state the primary had: no such export.
    if (isChronoError(err, 'UNKNOWN_POINT') || isChronoError(err, 'POINT_IN_RESYNC')) return undefined;
    throw err;
  }
}

/** What NBD_OPT_LIST shows: live, then every event by id (its label in the description). */
export function listExports(volume: Volume): Array<{ name: string; description: string }> {
  return [
    { name: 'live', description: 'the live volume (read-write)' },
    ...volume.events.map((e) => ({ name: String(e.id), description: `${e.label || '(no label)'} ${new Date(e.timeMs).toISOString()} ${e.kind}` })),
  ];
}
