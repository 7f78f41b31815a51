import * as fs from 'node:fs';
import * as path from 'node:path';
import { ChronoError, ioError } from '../errors';
import { DEFAULTS } from '../options';
import { countedHold } from '../util/counted-hold';
import { FILE_NAMES } from '../format/constants';
import { pinAt, unpinAt } from '../retention/pins';
import { Point } from '../volume/events';
import { Volume } from '../volume/volume';
import { encodeCloneMapHeader, mapFileBytes } from './clone-map';
import { createChecksumsFile } from './clone-checksums';
import { CloneOverlay } from './clone-overlay';

/** What clone.json records: the point the clone was made from, fixed at creation. */
export interface CloneBase {
  name: string;
  /** The canonical point it was made from; `live` is recorded as the seq it stood at. */
  point: string;
  seq: number;
  event: { id: number; label: string; kind: string } | null;
  /** The point's time, when it has one (events and times; a bare seq has none). */
  time: string | null;
  createdAt: string;
}

export interface CloneInfo extends CloneBase {
  overlayBytes: number;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const services = new WeakMap<Volume, CloneService>();

/** The one clone service of an open volume, shared by the FUSE tree, the control socket and NBD. */
export function clonesOf(volume: Volume): CloneService {
  let s = services.get(volume);
  if (!s) {
    services.set(volume, (s = new CloneService(volume)));
    const service = s;
    volume.whenClosing(() => service.closeAll());
  }
  return s;
}

/**
 * Clones of a volume: `<dir>/clones/<name>/` holds clone.json, overlay.map and overlay.data.
 * Creating one writes three small files and costs the same whatever the volume's size or
 * history; discarding one removes its directory. Half-made or half-removed directories are
 * dot-named, so a crash leaves nothing that lists as a clone.
 */
export class CloneService {
  private readonly open = new Map<string, CloneOverlay>();
  /** Handles on each clone's image: FUSE handles and NBD `clone/<name>` clients (see hold). */
  private readonly held = new Map<string, number>();
  /**
   * Names whose delete has passed its `held` check and not yet ended: hold and overlay refuse
   * them (UNKNOWN_CLONE: the clone is going away), so nothing reopens the old clone's files (its
   * directory is still there) and caches them where a clone made again under the name would find them.
   */
  private readonly deleting = new Set<string>();
  private readonly root: string;

  constructor(private readonly volume: Volume) {
    this.root = path.join(volume.directory.root, FILE_NAMES.clonesDir);
    this.sweep();
  }

  /** Removes what a crash left of a clone being made or discarded (the volume's lock makes them ours). */
  private sweep(): void {
    let entries: string[] = [];
    try {
      entries = fs.readdirSync(this.root);
    } catch {
      // No clones directory (a crash before the first clone's files): pins may still be left.
    }
    for (const n of entries) if (/^\..+\.(new|discard)$/.test(n)) fs.rmSync(path.join(this.root, n), { recursive: true, force: true });
    // A crash between a clone's pin and its rename (or its discard and its unpin) leaves a pin
    // nothing holds: release it.
    for (const p of this.volume.retention.pins) {
      const m = /^clone:(.+)$/.exec(p.holder);
      if (m && !this.exists(m[1])) unpinAt(this.volume, p.seq, p.holder);
    }
    // Clones made before pins existed get theirs now.
    for (const n of this.names()) {
      if (this.volume.retention.pins.some((p) => p.holder === `clone:${n}`)) continue;
      const b = this.base(n);
      pinAt(this.volume, { seq: b.seq, point: b.point, eventId: b.event?.id ?? null }, `clone ${n}`, `clone:${n}`);
    }
  }

  static checkName(name: string): void {
    if (!NAME.test(name)) throw new ChronoError('BAD_ARGUMENT', `bad clone name '${name}': letters, digits, '.', '_' and '-', at most 64, not starting with '.', '_' or '-'`, { name });
  }

  names(): string[] {
    let entries: string[];
    try {
      entries = fs.readdirSync(this.root);
    } catch {
      return [];
    }
    return entries.filter((n) => NAME.test(n) && !this.deleting.has(n) && fs.existsSync(path.join(this.root, n, FILE_NAMES.cloneMeta))).sort();
  }

  exists(name: string): boolean {
    return NAME.test(name) && fs.existsSync(path.join(this.root, name, FILE_NAMES.cloneMeta));
  }

  list(): CloneInfo[] {
    return this.names().map((n) => this.info(n));
  }

  info(name: string): CloneInfo {
    const base = this.base(name);
    return { ...base, overlayBytes: this.overlay(name).overlayBytes };
  }

  base(name: string): CloneBase {
    const file = path.join(this.dirOf(name), FILE_NAMES.cloneMeta);
    try {
      return JSON.parse(fs.readFileSync(file, 'utf8')) as CloneBase;
    } catch (err) {
      throw ioError('read', file, err);
    }
  }

  /**
   * The base of clone `name` for serving it (NBD `clone/<name>`, FUSE clones/<name>/volume.img,
   * rollback --to clone:<name>): UNKNOWN_CLONE without one, POINT_IN_RESYNC when its base lies
   * inside a resync window (a clone of live made during one, before such clones were refused,
   * holds a state the primary never had). base() still reads it, so it can be listed and discarded.
   */
  resolve(name: string): CloneBase {
    if (!this.exists(name)) throw new ChronoError('UNKNOWN_CLONE', `no clone named '${name}'`, { name });
    const b = this.base(name);
    this.volume.checkRecordedPoint(`clone:${name} (${b.point})`, b.seq);
    return b;
  }

  /** The clone's open overlay (opened on first use, kept open until discarded or closed). */
  overlay(name: string): CloneOverlay {
    this.refuseDeleting(name);
    let o = this.open.get(name);
    if (!o) {
      const b = this.base(name);
      const point: Point = { seqLimit: b.seq, name: b.point };
      o = CloneOverlay.open(this.volume, this.dirOf(name), point);
      this.open.set(name, o);
    }
    return o;
  }

  /**
   * A handle on clone `name`'s image (a FUSE handle, an NBD client of `clone/<name>`); call the
   * result when it is released. delete refuses meanwhile: the kernel caches pages per path, so a
   * clone made again under the same name would have its pages served to the old clone's handle,
   * and an NBD client would have the overlay closed under its requests. A rollback to the clone
   * holds it too. Refused (UNKNOWN_CLONE) once a delete of the name is under way.
   */
  hold(name: string): () => void {
    this.refuseDeleting(name);
    return countedHold(this.held, name);
  }

  /** Creates clone `name` of `at` (any point the CLI takes). */
  async create(name: string, at: string): Promise<CloneInfo> {
    CloneService.checkName(name);
    if (this.exists(name)) throw new ChronoError('EXISTS', `clone '${name}' already exists`, { name });
    // `live` moves on; the clone is of the state live has now (refused inside a resync window).
    const p = this.volume.resolveFixedPoint(at);
    const seq = p.seqLimit;
    const e = p.event;
    const base: CloneBase = {
      name,
      point: p.name,
      seq,
      event: e ? { id: e.id, label: e.label, kind: e.kind } : null,
      time: p.timeMs !== undefined ? new Date(p.timeMs).toISOString() : null,
      createdAt: new Date().toISOString(),
    };
    const bs = this.volume.blockSizeBytes;
    const blockCount = Math.ceil(this.volume.sizeBytes / bs);
    // The base point is pinned (durably) in the tick that resolved it, before any await: a
    // forget and prune (the daemon's schedule) during the flush below must find it held. A
    // crash before the clone exists leaves a pin the next open's sweep releases.
    pinAt(this.volume, { seq, point: base.point, eventId: e?.id ?? null }, `clone ${name}`, `clone:${name}`);
    try {
      // The log up to the base is made durable before the clone names it (DESIGN.md, "Clones").
      await this.volume.flush();
      if (this.exists(name)) throw new ChronoError('EXISTS', `clone '${name}' already exists`, { name });
      // Never served through an overlay cached for an older clone of the name (deleting makes
      // none; this keeps a new clone's image its own whatever did).
      const stale = this.open.get(name);
      this.open.delete(name);
      if (stale) await stale.close().catch(() => undefined);
      if (this.exists(name)) throw new ChronoError('EXISTS', `clone '${name}' already exists`, { name });
      this.makeFiles(name, base, blockCount);
    } catch (err) {
      // Released unless a clone of that name (made meanwhile) holds the same pin.
      if (!this.exists(name) || this.base(name).seq !== seq) unpinAt(this.volume, seq, `clone:${name}`);
      throw err;
    }
    return { ...base, overlayBytes: 0 };
  }

  private makeFiles(name: string, base: CloneBase, blockCount: number): void {
    const bs = this.volume.blockSizeBytes;
    mkdirPrivate(this.root);
    const tmp = path.join(this.root, `.${name}.new`);
    fs.rmSync(tmp, { recursive: true, force: true });
    mkdirPrivate(tmp);
    writeNew(path.join(tmp, FILE_NAMES.cloneMeta), Buffer.from(JSON.stringify(base, null, 2) + '\n'));
    // The map at its full length, sparse past the header: no cost that grows with the volume.
    writeNew(path.join(tmp, FILE_NAMES.cloneMap), encodeCloneMapHeader({ volumeId: Buffer.from(this.volume.volumeId, 'hex'), blockSizeBytes: bs, blockCount }), mapFileBytes(blockCount));
    writeNew(path.join(tmp, FILE_NAMES.cloneData), Buffer.alloc(0));
    createChecksumsFile(path.join(tmp, FILE_NAMES.cloneCrc), { volumeId: Buffer.from(this.volume.volumeId, 'hex'), blockSizeBytes: bs, blockCount });
    syncDir(tmp);
    // Every file is durable before the name that makes it a clone appears.
    fs.renameSync(tmp, path.join(this.root, name));
    syncDir(this.root);
  }

  /** Discards clone `name` and every byte written into it. */
  async delete(name: string): Promise<void> {
    if (!this.exists(name)) throw new ChronoError('UNKNOWN_CLONE', `no clone named '${name}'`, { name });
    // The kernel sends a file's RELEASE after close(2) has returned, asynchronously: a delete
    // right after the last reader exited (bisect's probes) waits for it, briefly.
    for (const until = Date.now() + DEFAULTS.cloneReleaseWaitMs; (this.held.get(name) ?? 0) > 0 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 10));
    const handles = this.held.get(name) ?? 0;
    if (handles) throw new ChronoError('CLONE_IN_USE', `clone '${name}' is open (${handles} handle${handles > 1 ? 's' : ''} through the mounted tree, NBD clone/${name} or a rollback to it: a loop device, mount or NBD client?); close it first`, { name, handles });
    if (this.deleting.has(name)) throw new ChronoError('UNKNOWN_CLONE', `clone '${name}' is being deleted`, { name });
    // A rollback to it that was cut short must be able to finish (its intent admits only this
    // target, and live is a mix until it does): the clone stays until then.
    const intent = this.volume.rollbackIntent();
    if (intent?.clone === name) throw new ChronoError('CLONE_IN_USE', `clone '${name}' is the target of a rollback that was cut short; repeat it (chronovol rollback --to clone:${name}) before deleting the clone`, { name, rollback: intent.label });
    const { seq } = this.base(name);
    const dir = this.dirOf(name);
    // From here to the end no hold or overlay of the name is granted (refuseDeleting).
    this.deleting.add(name);
    try {
      const o = this.open.get(name);
      this.open.delete(name);
      if (o) await o.close().catch(() => undefined); // its bytes are being thrown away
      const gone = path.join(this.root, `.${name}.discard`);
      fs.rmSync(gone, { recursive: true, force: true });
      fs.renameSync(dir, gone);
      syncDir(this.root);
      fs.rmSync(gone, { recursive: true, force: true });
      unpinAt(this.volume, seq, `clone:${name}`); // the clone is gone first: its point was held throughout
    } finally {
      this.deleting.delete(name);
    }
  }

  private refuseDeleting(name: string): void {
    if (this.deleting.has(name)) throw new ChronoError('UNKNOWN_CLONE', `clone '${name}' is being deleted`, { name });
  }

  /** Syncs and closes every open overlay (the daemon's stop). */
  async closeAll(): Promise<void> {
    const all = [...this.open.values()];
    this.open.clear();
    await Promise.all(all.map((o) => o.close()));
  }

  /** A control-socket request: { op: 'create' | 'delete' | 'list', name, at }. */
  async request(p: Record<string, unknown>): Promise<unknown> {
    switch (p.op) {
      case 'create':
        return this.create(String(p.name ?? ''), String(p.at ?? 'live'));
      case 'delete':
        await this.delete(String(p.name ?? ''));
        return { deleted: String(p.name) };
      case 'list':
        return this.list();
      default:
        throw new ChronoError('BAD_ARGUMENT', `unknown clone op ${String(p.op)}`);
    }
  }

  private dirOf(name: string): string {
    if (!this.exists(name)) throw new ChronoError('UNKNOWN_CLONE', `no clone named '${name}'`, { name });
    return path.join(this.root, name);
  }
}

/** `<name>@<point>`, the spelling of `mkdir clones/<name>@<point>`. */
export function parseCloneSpec(spec: string): { name: string; at: string } | undefined {
  const i = spec.indexOf('@');
  if (i <= 0 || i === spec.length - 1) return undefined;
  return { name: spec.slice(0, i), at: spec.slice(i + 1) };
}

function mkdirPrivate(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw ioError('mkdir', dir, err);
  }
}

function writeNew(file: string, head: Buffer, lengthBytes = head.length): void {
  try {
    const fd = fs.openSync(file, 'wx', 0o600);
    try {
      fs.writeSync(fd, head, 0, head.length, 0);
      if (lengthBytes > head.length) fs.ftruncateSync(fd, lengthBytes);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    throw ioError('create', file, err);
  }
}

function syncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    throw ioError('fsync', dir, err);
  }
}
