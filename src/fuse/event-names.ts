import { SyncEvent, resolveEventImage } from '../service/images';
import type { Volume } from '../volume/volume';

/** `000042-20261127T081500Z-before-upgrade`: sorts by id, no characters a shell would trip on. */
export function eventDirName(e: SyncEvent): string {
  const time = new Date(e.timeMs).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const label = e.label.replace(/[^A-Za-z0-9._+-]+/g, '_').replace(/^[.]+/, '_').slice(0, 100);
  return `${String(e.id).padStart(6, '0')}-${time}${label ? `-${label}` : ''}`;
}

/**
 * The event a directory name under events/ refers to: its listed name, or any event name the
 * volume resolves (id, `event:<id>`, label), by the volume's one rule (Volume.resolvePoint): a
 * forgotten id or a label whose newest event was forgotten is no entry, never another event.
 */
export function findEvent(volume: Volume, name: string): SyncEvent | undefined {
  const m = /^(\d{6,})-\d{8}T\d{6}Z/.exec(name);
  if (m) {
    const e = resolveEventImage(volume, `event:${Number(m[1])}`);
    return e && eventDirName(e) === name ? e : undefined;
  }
  return resolveEventImage(volume, name);
}
