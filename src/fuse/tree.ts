import { ChronoError, isChronoError } from '../errors';
import { changesBetween } from '../history/changes';
import { LIVE_SEQ, Point, SyncEvent } from '../volume/events';
import { Volume } from '../volume/volume';
import { eventDirName, findEvent } from './event-names';

/**
 * The tree, as a pure function of the volume's state:
 *   live/volume.img, events/<name>/{volume.img,event.json,changes.json}, at/<point>/volume.img, status.json
 */
export type Node =
  | { kind: 'dir'; mtimeMs: number; list?: () => string[] }
  | { kind: 'image'; point: Point; writable: boolean; mtimeMs: number }
  | { kind: 'file'; content: () => Buffer; mtimeMs: number };

export class Tree {
  constructor(private readonly volume: Volume, private readonly status: () => Buffer, private readonly startedMs: number) {}

  private liveMtime(): number {
    return Math.max(this.volume.internals.lastTimeMs, this.startedMs);
  }

  resolve(path: string): Node | undefined {
    const parts = path.split('/').filter(Boolean);
    const v = this.volume;
    const dir = (list?: () => string[], mtimeMs = this.startedMs): Node => ({ kind: 'dir', mtimeMs, list });
    if (parts.length === 0) return dir(() => ['live', 'events', 'at', 'status.json']);
    const [top, name, leaf] = parts;
    if (parts.length > 3) return undefined;
    switch (top) {
      case 'status.json':
        return parts.length === 1 ? { kind: 'file', content: this.status, mtimeMs: Date.now() } : undefined;
      case 'live':
        if (parts.length === 1) return dir(() => ['volume.img'], this.liveMtime());
        return parts.length === 2 && name === 'volume.img' ? { kind: 'image', point: { seqLimit: LIVE_SEQ, name: 'live' }, writable: true, mtimeMs: this.liveMtime() } : undefined;
      case 'events': {
        const events = v.events;
        if (parts.length === 1) return dir(() => events.map(eventDirName), events.length ? events[events.length - 1].timeMs : this.startedMs);
        const e = findEvent(events, name);
        if (!e) return undefined;
        if (parts.length === 2) return dir(() => ['volume.img', 'event.json', 'changes.json'], e.timeMs);
        if (leaf === 'volume.img') return { kind: 'image', point: { seqLimit: e.seq, name: `event:${e.id}`, event: e, timeMs: e.timeMs }, writable: false, mtimeMs: e.timeMs };
        if (leaf === 'event.json') return { kind: 'file', content: () => eventJson(e), mtimeMs: e.timeMs };
        if (leaf === 'changes.json') return { kind: 'file', content: () => this.changesOf(e), mtimeMs: e.timeMs };
        return undefined;
      }
      case 'at': {
        if (parts.length === 1) return dir(() => []); // any time resolves on lookup; none are listed
        let point: Point;
        try {
          point = v.resolvePoint(name);
        } catch (err) {
          if (isChronoError(err, 'UNKNOWN_POINT')) return undefined;
          throw err;
        }
        if (point.seqLimit === LIVE_SEQ) return undefined; // the live image is live/volume.img
        const mtimeMs = point.timeMs ?? this.startedMs;
        if (parts.length === 2) return dir(() => ['volume.img'], mtimeMs);
        return leaf === 'volume.img' ? { kind: 'image', point, writable: false, mtimeMs } : undefined;
      }
      default:
        return undefined;
    }
  }

  /** An event's changes never change: computed once (getattr asks on every stat), a few kept. */
  private readonly changes = new Map<number, Buffer>();
  private changesOf(e: SyncEvent): Buffer {
    let c = this.changes.get(e.id);
    if (!c) {
      c = changesJson(this.volume, this.volume.events, e);
      if (this.changes.size >= 32) this.changes.delete(this.changes.keys().next().value!);
      this.changes.set(e.id, c);
    }
    return c;
  }

  /** mkdir events/<label> records an app-consistent event with that label. */
  async mkdir(path: string): Promise<SyncEvent> {
    const parts = path.split('/').filter(Boolean);
    if (parts.length !== 2 || parts[0] !== 'events') throw new ChronoError('READ_ONLY', `mkdir is only allowed as events/<label>`);
    return this.volume.sync({ label: parts[1], kind: 'app' });
  }
}

/** The extents changed since the event before this one (since creation for the first). */
function changesJson(v: Volume, events: readonly SyncEvent[], e: SyncEvent): Buffer {
  const prev = events[events.indexOf(e) - 1];
  const from = prev ? { name: `event:${prev.id}`, seqLimit: prev.seq } : { name: 'seq:0', seqLimit: 0 };
  return Buffer.from(JSON.stringify(changesBetween(v.internals.index, v.blockSizeBytes, from, { name: `event:${e.id}`, seqLimit: e.seq }), null, 2) + '\n');
}

export function eventJson(e: SyncEvent): Buffer {
  return Buffer.from(JSON.stringify({ id: e.id, seq: e.seq, time: new Date(e.timeMs).toISOString(), label: e.label, kind: e.kind, changedBlocks: e.changedBlocks }, null, 2) + '\n');
}
