import type { SyncEvent } from '../service/images';

/** `000042-20261127T081500Z-before-upgrade`: sorts by id, no characters a shell would trip on. */
export function eventDirName(e: SyncEvent): string {
  const time = new Date(e.timeMs).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const label = e.label.replace(/[^A-Za-z0-9._+-]+/g, '_').replace(/^[.]+/, '_').slice(0, 100);
  return `${String(e.id).padStart(6, '0')}-${time}${label ? `-${label}` : ''}`;
}

/** The event a directory name under events/ refers to: its listed name, its id, or its label. */
export function findEvent(events: readonly SyncEvent[], name: string): SyncEvent | undefined {
  const m = /^(\d{6,})-\d{8}T\d{6}Z/.exec(name);
  if (m) {
    const e = events.find((x) => x.id === Number(m[1]));
    return e && eventDirName(e) === name ? e : undefined;
  }
  if (/^\d+$/.test(name)) {
    const byId = events.find((x) => x.id === Number(name));
    if (byId) return byId;
  }
  for (let i = events.length - 1; i >= 0; i--) if (events[i].label === name) return events[i];
  return undefined;
}
