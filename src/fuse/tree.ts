import { CloneService, clonesOf, parseCloneSpec } from '../clone/clone-service';
import { ChronoError } from '../errors';
import { LIVE_POINT, Point, SyncEvent, changesOfEvent, previousServedEvent, resolvePastImage, servedEvents } from '../service/images';
import type { Volume } from '../volume/volume';
import { eventDirName, findEvent } from './event-names';

/**
 * The tree, as a pure function of the volume's state:
 *   live/volume.img, events/<name>/{volume.img,event.json,changes.json}, at/<point>/volume.img,
 *   status.json, timeline.svg, clones/<name>/{volume.img,clone.json}
 *
 * A past image's bytes are a function of its path for as long as the path exists: the kernel
 * caches pages per path (libfuse 2's high-level API gives each path one inode), so a path that
 * named one point and then another would serve a reader of the first the second's pages. Names
 * that can move (a label, an id spelled otherwise, a time) are symlinks to the stable path of
 * the point they name now: events/<listed name>/ or at/seq:<n>/ (docs/DESIGN.md, "The FUSE tree:
 * a path never changes its bytes").
 */
export type Node =
  | { kind: 'dir'; mtimeMs: number; list?: () => string[] }
  | { kind: 'image'; point: Point; writable: boolean; mtimeMs: number; clone?: string }
  | { kind: 'file'; content: () => Buffer; mtimeMs: number }
  | { kind: 'link'; target: string; mtimeMs: number };

/** The one at/ name whose image never changes: the seq limit itself. */
export function stableAtName(point: Point): string {
  return `seq:${point.seqLimit}`;
}

export class Tree {
  readonly clones: CloneService;

  /** `timeline` is the recent window's picture, or undefined until the first one is drawn. */
  constructor(private readonly volume: Volume, private readonly status: () => Buffer, private readonly startedMs: number, private readonly timeline: () => Buffer | undefined = () => undefined) {
    this.clones = clonesOf(volume);
  }

  private liveMtime(): number {
    return Math.max(this.volume.lastTimeMs, this.startedMs);
  }

  resolve(path: string): Node | undefined {
    const parts = path.split('/').filter(Boolean);
    const v = this.volume;
    const dir = (list?: () => string[], mtimeMs = this.startedMs): Node => ({ kind: 'dir', mtimeMs, list });
    if (parts.length === 0) return dir(() => ['live', 'events', 'at', 'clones', 'status.json', ...(this.timeline() ? ['timeline.svg'] : [])]);
    const [top, name, leaf] = parts;
    if (parts.length > 3) return undefined;
    switch (top) {
      case 'status.json':
        return parts.length === 1 ? { kind: 'file', content: this.status, mtimeMs: Date.now() } : undefined;
      case 'timeline.svg': {
        const svg = this.timeline();
        return parts.length === 1 && svg ? { kind: 'file', content: () => this.timeline() ?? svg, mtimeMs: Date.now() } : undefined;
      }
      case 'live':
        if (parts.length === 1) return dir(() => ['volume.img'], this.liveMtime());
        return parts.length === 2 && name === 'volume.img' ? { kind: 'image', point: LIVE_POINT, writable: true, mtimeMs: this.liveMtime() } : undefined;
      case 'events': {
        if (parts.length === 1) {
          const events = v.events;
          return dir(() => servedEvents(v).map(eventDirName), events.length ? events[events.length - 1].timeMs : this.startedMs);
        }
        const e = findEvent(v, name);
        if (!e) return undefined;
        if (parts.length === 2) return dir(() => ['volume.img', 'event.json', 'changes.json'], e.timeMs);
        const stable = eventDirName(e);
        if (name !== stable) return EVENT_FILES.has(leaf) ? { kind: 'link', target: `../${stable}/${leaf}`, mtimeMs: e.timeMs } : undefined;
        if (leaf === 'volume.img') return { kind: 'image', point: { seqLimit: e.seq, name: `event:${e.id}`, event: e, timeMs: e.timeMs }, writable: false, mtimeMs: e.timeMs };
        if (leaf === 'event.json') return { kind: 'file', content: () => eventJson(e), mtimeMs: e.timeMs };
        if (leaf === 'changes.json') return { kind: 'file', content: () => this.changesOf(e), mtimeMs: e.timeMs };
        return undefined;
      }
      case 'at': {
        if (parts.length === 1) return dir(() => []); // any time resolves on lookup; none are listed
        const point = resolvePastImage(v, name); // the live image is live/volume.img, not at/live
        if (!point) return undefined;
        const mtimeMs = point.timeMs ?? this.startedMs;
        if (parts.length === 2) return dir(() => ['volume.img'], mtimeMs);
        if (leaf !== 'volume.img') return undefined;
        const stable = stableAtName(point);
        return name === stable ? { kind: 'image', point, writable: false, mtimeMs } : { kind: 'link', target: `../${stable}/volume.img`, mtimeMs };
      }
      case 'clones':
        return this.resolveClone(parts);
      default:
        return undefined;
    }
  }

  /**
   * An event's changes since the served event before it change only when a forget takes that
   * one: computed once per pair (getattr asks on every stat), a few kept.
   */
  private readonly changes = new Map<string, Buffer>();
  private changesOf(e: SyncEvent): Buffer {
    const key = `${previousServedEvent(this.volume, e)?.id ?? 0}:${e.id}`;
    let c = this.changes.get(key);
    if (!c) {
      c = Buffer.from(JSON.stringify(changesOfEvent(this.volume, e), null, 2) + '\n');
      if (this.changes.size >= 32) this.changes.delete(this.changes.keys().next().value!);
      this.changes.set(key, c);
    }
    return c;
  }

  private resolveClone(parts: string[]): Node | undefined {
    const [, spec, leaf] = parts;
    if (parts.length === 1) return { kind: 'dir', mtimeMs: this.startedMs, list: () => this.clones.names() };
    // `<name>@<point>` names the clone `<name>` too: mkdir looks the new directory up by the name it made.
    const name = this.clones.exists(spec) ? spec : parseCloneSpec(spec)?.name;
    if (!name || !this.clones.exists(name)) return undefined;
    const base = this.clones.base(name);
    const mtimeMs = Date.parse(base.createdAt);
    if (parts.length === 2) return { kind: 'dir', mtimeMs, list: () => ['volume.img', 'clone.json'] };
    if (leaf === 'volume.img') {
      this.clones.resolve(name); // POINT_IN_RESYNC (EBUSY) for a clone based inside a resync window
      return { kind: 'image', point: { seqLimit: base.seq, name: base.point }, writable: true, mtimeMs, clone: name };
    }
    if (leaf === 'clone.json') return { kind: 'file', content: () => Buffer.from(JSON.stringify(this.clones.info(name), null, 2) + '\n'), mtimeMs: Date.now() };
    return undefined;
  }

  /** mkdir events/<label> records an app-consistent event with that label; clones/<name>@<point> makes a clone. */
  async mkdir(path: string): Promise<{ event?: SyncEvent; clone?: string }> {
    const parts = path.split('/').filter(Boolean);
    if (parts.length === 2 && parts[0] === 'clones') {
      const spec = parseCloneSpec(parts[1]);
      if (!spec) throw new ChronoError('BAD_ARGUMENT', `mkdir clones/<name>@<point>, got clones/${parts[1]}`);
      await this.clones.create(spec.name, spec.at);
      return { clone: spec.name };
    }
    if (parts.length !== 2 || parts[0] !== 'events') throw new ChronoError('READ_ONLY', `mkdir is only allowed as events/<label> or clones/<name>@<point>`);
    return { event: await this.volume.sync({ label: parts[1], kind: 'app' }) };
  }

  /** rmdir clones/<name> discards the clone; nothing else can be removed. */
  async rmdir(path: string): Promise<void> {
    const parts = path.split('/').filter(Boolean);
    if (parts.length !== 2 || parts[0] !== 'clones') throw new ChronoError('READ_ONLY', 'only clones/<name> can be removed');
    await this.clones.delete(this.clones.exists(parts[1]) ? parts[1] : parseCloneSpec(parts[1])?.name ?? parts[1]);
  }

  /** A file inside clones/<name>: rm -r unlinks these before its rmdir, which does the discarding. */
  isCloneFile(path: string): boolean {
    const parts = path.split('/').filter(Boolean);
    return parts.length === 3 && parts[0] === 'clones' && this.clones.exists(parts[1]);
  }
}

const EVENT_FILES = new Set(['volume.img', 'event.json', 'changes.json']);

export function eventJson(e: SyncEvent): Buffer {
  return Buffer.from(JSON.stringify({ id: e.id, seq: e.seq, time: new Date(e.timeMs).toISOString(), label: e.label, kind: e.kind, changedBlocks: e.changedBlocks }, null, 2) + '\n');
}
