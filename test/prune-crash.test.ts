import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BackingStore, PutData } from '../src/archive/backing-store';
import { MemoryStore } from '../src/archive/memory-store';
import { ArchiveCatalog, decodeCatalog } from '../src/archive/archive-catalog';
import { ChronoError, isChronoError } from '../src/errors';
import { forget } from '../src/retention/forget';
import { pin } from '../src/retention/pins';
import { MemoryFileSystem } from '../src/storage/memory-file-system';
import { recoverFromArchive } from '../src/volume/recover';
import { sealNow } from '../src/volume/turnover';
import { Volume } from '../src/volume/volume';
import { whiteBox } from '../src/volume/white-box';
import { hotWrites } from './helpers/prune';
import { Rng } from './helpers/rng';
import { SMALL } from './helpers/volumes';
import { VolumeModel } from './helpers/volume-model';

/**
 * Power cuts during prune, counted across both sides: every store put and delete and every
 * file-system call that changes the disk is one step, and the cut falls just before step N
 * (a store put is atomic: it happened or not; the disk keeps only what was durable). The dead
 * process's later calls fail. Then: reopen on the rebooted disk, every kept point bit-exact, live
 * exact, forgotten points refused, verify clean; prune again finishes; verify clean; the objects
 * of segments prune never touched are all still there; and a recovery from the archive alone
 * reads every kept point bit-exact.
 */

type Step = { side: 'store' | 'fs'; op: string; key: string };

/** A store whose mutations are counted steps; dead (every call fails) once the cut happened. */
class CutStore implements BackingStore {
  readonly description = 'cut-memory';
  dead = false;
  constructor(readonly inner: MemoryStore, private readonly step: (s: Step) => boolean) {}
  private alive(): void {
    if (this.dead) throw new ChronoError('ARCHIVE_UNAVAILABLE', 'the process died (power cut)');
  }
  async put(key: string, data: PutData): Promise<void> {
    this.alive();
    if (this.step({ side: 'store', op: 'put', key })) this.alive();
    return this.inner.put(key, data);
  }
  async delete(key: string): Promise<void> {
    this.alive();
    if (this.step({ side: 'store', op: 'delete', key })) this.alive();
    return this.inner.delete(key);
  }
  async getRange(key: string, offset: number, length: number): Promise<Buffer> {
    this.alive();
    return this.inner.getRange(key, offset, length);
  }
  async get(key: string): Promise<Buffer> {
    this.alive();
    return this.inner.get(key);
  }
  async size(key: string): Promise<number | undefined> {
    this.alive();
    return this.inner.size(key);
  }
  async list(prefix: string): Promise<string[]> {
    this.alive();
    return this.inner.list(prefix);
  }
}

interface Base {
  fs: MemoryFileSystem;
  store: MemoryStore;
  model: VolumeModel;
  kept: Array<{ id: number; seq: number }>;
  forgotten: number[];
}

/** A closed volume, everything archived, forgotten down to 2 events and a pin: what prune then works on. */
async function base(seed: number): Promise<Base> {
  const fs = new MemoryFileSystem();
  const store = new MemoryStore();
  fs.mkdirp('/v');
  await Volume.create('/v', SMALL, { fs, store });
  const vol = await Volume.open('/v', { fs, store });
  const model = new VolumeModel(SMALL.sizeBytes);
  const events = await hotWrites(vol, model, new Rng(seed), 300, 30); // few events: some segments hold none, and are deleted
  await pin(vol, String(events[3].id), 'crash test');
  forget(vol, { keepLast: 2 });
  const core = whiteBox(vol);
  const last = core.segments.current.id;
  await sealNow(core);
  assert.equal(await core.archiver.settled(last), undefined);
  await vol.close();
  const kept = [events[3], ...events.slice(-2)];
  return { fs, store, model, kept, forgotten: events.filter((e) => !kept.includes(e)).map((e) => e.id) };
}

function copyStore(s: MemoryStore): MemoryStore {
  const c = new MemoryStore();
  for (const [k, v] of s.objects) c.objects.set(k, Buffer.from(v));
  return c;
}

async function checkPoints(vol: Volume, b: Base, ctx: string): Promise<void> {
  for (const e of b.kept) assert.ok((await vol.read(0, vol.sizeBytes, vol.resolvePoint(String(e.id)))).equals(b.model.atSeq.get(e.seq)!), `${ctx}: event ${e.id} bit-exact`);
  assert.ok((await vol.read(0, vol.sizeBytes)).equals(b.model.live), `${ctx}: live`);
  for (const id of b.forgotten) assert.throws(() => vol.resolvePoint(String(id)), (err) => isChronoError(err, 'POINT_FORGOTTEN'), `${ctx}: event ${id} refused`);
  const v = await vol.verify();
  assert.ok(v.ok, `${ctx}: verify: ${JSON.stringify(v.problems.slice(0, 3))}`);
}

/** One prune with the cut before step `cutAt` (Infinity: none); returns the steps taken. */
async function pruneWithCut(b: Base, cutAt: number): Promise<{ steps: Step[]; cut: boolean; fs: MemoryFileSystem; store: MemoryStore }> {
  const fs = unlocked(b.fs.afterPowerCut()); // a copy of the closed volume's disk
  const inner = copyStore(b.store);
  const steps: Step[] = [];
  let cut = false;
  const step = (s: Step): boolean => {
    if (cut) return true;
    steps.push(s);
    if (steps.length === cutAt) {
      cut = true;
      fs.cutNow();
      store.dead = true;
      return true;
    }
    return false;
  };
  const store = new CutStore(inner, step);
  const vol = await Volume.open('/v', { fs, store });
  // Only prune's own steps count: from here on.
  fs.onCall = (op, path) => {
    if (step({ side: 'fs', op, key: path })) return;
  };
  let err: unknown;
  try {
    await vol.prune();
  } catch (e) {
    err = e;
  }
  fs.onCall = undefined;
  if (!cut) {
    assert.equal(err, undefined, `prune failed without a cut: ${String(err)}`);
    await vol.close();
    return { steps, cut, fs, store: inner };
  }
  await vol.close().catch(() => undefined); // the dead process: whatever it does lands on the dead disk
  return { steps, cut, fs: unlocked(fs.cutImage!), store: inner };
}

/** The disk as a new process finds it: LOCK names this (test) process, which here stands for the dead one. */
function unlocked(fs: MemoryFileSystem): MemoryFileSystem {
  if (fs.exists('/v/LOCK')) fs.remove('/v/LOCK');
  return fs;
}

async function afterCut(b: Base, cutAt: number, untouched: string[]): Promise<Step | undefined> {
  const r = await pruneWithCut(b, cutAt);
  if (!r.cut) return undefined;
  const ctx = `cut before step ${cutAt} (${JSON.stringify(r.steps[cutAt - 1])})`;
  let vol = await Volume.open('/v', { fs: r.fs, store: r.store });
  try {
    await checkPoints(vol, b, `${ctx}, reopened`);
    await vol.prune();
    await checkPoints(vol, b, `${ctx}, pruned again`);
    const keys = new Set(r.store.objects.keys());
    for (const k of untouched) assert.ok(keys.has(k), `${ctx}: ${k} (a segment prune never touched) is gone`);
    // Only the catalog's objects remain: no leftovers.
    const cat = whiteBox(vol).catalog;
    for (const k of keys) {
      const m = /^segments\/([0-9a-f]{8})(?:\.g(\d+))?\.cvseg$/.exec(k);
      if (m) assert.equal(k, cat.keyOf(parseInt(m[1], 16)), `${ctx}: leftover ${k}`);
    }
  } finally {
    await vol.close();
  }
  const rfs = new MemoryFileSystem();
  rfs.mkdirp('/r');
  await recoverFromArchive({ archive: 'memory' } as never, '/r', { fs: rfs, store: r.store });
  vol = await Volume.open('/r', { fs: rfs, store: r.store });
  try {
    await checkPoints(vol, b, `${ctx}, recovered`);
  } finally {
    await vol.close();
  }
  return r.steps[cutAt - 1];
}

/** The steps of an uncut prune, and the keys of objects it must never touch. */
async function trace(b: Base): Promise<{ steps: Step[]; untouched: string[] }> {
  const r = await pruneWithCut(b, Infinity);
  const touched = new Set(r.steps.filter((s) => s.side === 'store').map((s) => s.key));
  const untouched = [...b.store.objects.keys()].filter((k) => k.startsWith('segments/') && !touched.has(k));
  assert.ok(r.steps.some((s) => s.op === 'delete'), `the prune deletes something: ${JSON.stringify(r.steps)}`);
  const cat = new ArchiveCatalog(decodeCatalog(r.store.objects.get('catalog.cvct')!, undefined));
  assert.ok(cat.body.segments.some((e) => e.state === 'deleted') && cat.body.segments.some((e) => e.state === 'compacted'), 'both deletes and rewrites');
  return { steps: r.steps, untouched };
}

const b0 = base(1533);

/** Every cut point whose step matches `which`, and the one after the last of them. */
async function sweep(which: (s: Step, i: number, all: Step[]) => boolean, what: string): Promise<void> {
  const b = await b0;
  const { steps, untouched } = await trace(b);
  const points = steps.map((s, i) => (which(s, i, steps) ? i + 1 : 0)).filter((n) => n > 0);
  assert.ok(points.length > 0, `${what}: no such step in ${JSON.stringify(steps)}`);
  for (const n of points) await afterCut(b, n, untouched);
}

const catalogPut = (all: Step[]) => all.findIndex((s) => s.side === 'store' && s.op === 'put' && s.key === 'catalog.cvct');
const firstDelete = (all: Step[]) => all.findIndex((s) => s.side === 'store' && s.op === 'delete');

test('prune crash (b): cut while rewritten objects are put, before the catalog names them', async () => {
  await sweep((s, i, all) => i < catalogPut(all), 'rewrite puts');
});

test('prune crash (c): cut at the catalog put (the old catalog, or none, stays in force)', async () => {
  await sweep((s, i, all) => i === catalogPut(all), 'catalog put');
});

test('prune crash (d): cut while the index drops the pruned versions (runs and manifest)', async () => {
  await sweep((s, i, all) => i > catalogPut(all) && i < firstDelete(all), 'index persist');
});

test('prune crash (e): cut while old objects are deleted', async () => {
  await sweep((s, i, all) => i >= firstDelete(all), 'deletes');
});
