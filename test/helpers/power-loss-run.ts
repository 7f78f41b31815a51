/**
 * One seeded run of the power-loss model: a volume (and its local-directory archive) on the
 * in-memory crash file system, with every threadpool fsync held until the run releases it, in
 * an order it picks (newest first, oldest first, or at random); the power cut at random moments:
 * inside an operation (just before its Nth file-system call), the moment an operation is
 * acknowledged, or between operations while background work (sealing, archiving,
 * checkpoints) still waits on its fsyncs. After each cut the machine reboots with what was
 * durable (plus, for cuts between operations, unsynced pages written back in any order and
 * rewritten sectors torn) and the run checks, against its own model:
 * - the log reopens at a seq no earlier than the last acknowledged sync or flush;
 * - the live image is the model's image at that seq, also with the archive unreachable (the
 *   working set alone must hold the live volume);
 * - the events are exactly the acknowledged ones (plus one sync still running at the cut);
 * - every event's image and a few seq points' images are the model's; verify finds nothing.
 */
import assert from 'node:assert/strict';
import { FaultyStore } from '../../src/archive/faulty-store';
import { LocalDirStore } from '../../src/archive/local-dir-store';
import { FaultyFileSystem } from '../../src/storage/faulty-file-system';
import { HeldSync, MemoryFileSystem, PowerCutOptions } from '../../src/storage/memory-file-system';
import { Volume } from '../../src/volume/volume';
import { Rng } from './rng';
import { ModelEvent, VolumeModel } from './volume-model';
import { whiteBox } from '../../src/volume/white-box';

const SIZE = 128 * 1024;
const BS = 512;
const DIR = '/v';
const ARCHIVE = '/archive';

export interface PowerLossStats {
  ops: number;
  cuts: number;
  reopens: number;
  eventsChecked: number;
}

type Release = 'newest' | 'oldest' | 'random';

/** The machine: the crash file system, the engine's view of it, and the archive on it. */
class Machine {
  readonly fs: FaultyFileSystem;
  readonly store: FaultyStore;
  constructor(readonly mem: MemoryFileSystem) {
    mem.holdSyncs = true;
    this.fs = new FaultyFileSystem(mem);
    this.store = new FaultyStore(new LocalDirStore(ARCHIVE, this.fs));
  }
}

interface Outcome<T> {
  done: boolean;
  value?: T;
  error?: unknown;
}

export interface PowerLossOptions {
  ops?: number;
  /**
   * 'mixed': fsyncs released in a random order (newest first, oldest first, at random), cuts
   * inside operations, at acknowledgments and between operations, with write-back in any order.
   * 'ack': the strictest order for acknowledgments: fsyncs released newest first, only as far as
   * the operation needs, and the power cut (durable bytes only) the moment a sync, flush or close
   * is acknowledged, or a write that made a segment leave the working set returns.
   */
  mode?: 'mixed' | 'ack';
}

export async function powerLossRun(seed: number, o: PowerLossOptions = {}): Promise<PowerLossStats> {
  const rng = new Rng(seed);
  const ackMode = o.mode === 'ack';
  const stats: PowerLossStats = { ops: 0, cuts: 0, reopens: 0, eventsChecked: 0 };
  const direct = rng.bool(0.7);
  let m = new Machine(new MemoryFileSystem({ directAlignBytes: direct ? 4096 : undefined }));
  m.mem.mkdirp(DIR);
  m.mem.mkdirp(ARCHIVE);

  /**
   * Runs an operation to its end, releasing held fsyncs one at a time whenever nothing else can
   * move, until it settles or the power is cut. Each fsync held during the operation (those
   * already waiting when it starts included) is withheld with probability `withhold`: released
   * only once nothing else is left to release. An operation that does not wait for an fsync it
   * depends on is then acknowledged before it. An operation still waiting with no fsync held
   * is a hang, reported as one.
   */
  const drive = async <T>(start: () => Promise<T>, release: Release, withhold = 0): Promise<Outcome<T>> => {
    const out: Outcome<T> = { done: false };
    let settled = false;
    const seen = new Set<HeldSync>();
    const withheld = new Set<HeldSync>();
    start().then((v) => ((settled = true), (out.value = v)), (e) => ((settled = true), (out.error = e)));
    for (let idle = 0; ; ) {
      await new Promise((r) => setImmediate(r));
      if (m.mem.cutImage) return out; // not acknowledged: the power went first (or at the same time)
      if (settled) {
        out.done = true;
        if (out.error !== undefined) throw out.error;
        return out;
      }
      const held = m.mem.heldSyncs;
      if (held.length === 0) {
        assert.ok(++idle < 200, 'an operation waits with no fsync held: it can never finish');
        continue;
      }
      idle = 0;
      for (const h of held) {
        if (seen.has(h)) continue;
        seen.add(h);
        if (rng.bool(withhold)) withheld.add(h);
      }
      const free = held.filter((h) => !withheld.has(h));
      const from = free.length ? free : held;
      m.mem.releaseSync(from[release === 'newest' ? from.length - 1 : release === 'oldest' ? 0 : rng.int(from.length)]);
    }
  };
  const pickRelease = (): Release => (ackMode || rng.bool(0.5) ? 'newest' : rng.bool() ? 'oldest' : 'random');
  const must = async <T>(start: () => Promise<T>): Promise<T> => {
    const r = await drive(start, pickRelease());
    assert.ok(r.done, 'no power cut was armed');
    return r.value as T;
  };

  await must(() => Volume.create(DIR, { sizeBytes: SIZE, blockSizeBytes: BS, segmentSizeBytes: 64 * 1024, archive: ARCHIVE }, { fs: m.fs, store: m.store }));
  let vol = await must(() => Volume.open(DIR, { fs: m.fs, store: m.store, cacheBytes: rng.bool() ? 32 * 1024 : 0 }));
  const model = new VolumeModel(SIZE);
  model.snapshot(0);
  /** The highest seq an acknowledgment made durable (sync, flush, close). */
  let durableSeq = 0;
  const ops = o.ops ?? 300;

  const check = async (context: string, maybe?: ModelEvent[]) => {
    assert.ok(vol.lastSeq >= durableSeq, `reopened at seq ${vol.lastSeq}, but seq ${durableSeq} was acknowledged durable ${context}`);
    const want = model.atSeq.get(vol.lastSeq);
    assert.ok(want, `the model knows seq ${vol.lastSeq} ${context}`);
    assert.ok((await vol.read(0, SIZE)).equals(want), `live image at seq ${vol.lastSeq} ${context}`);
    model.events = model.checkEvents(vol.events, maybe ?? [], context);
    // Every event's image on clean reopens; after a cut the newest few and a few at random.
    const n = model.events.length;
    const some = maybe === undefined ? model.events : model.events.filter((_, i) => i >= n - 3 || rng.bool(3 / Math.max(3, n)));
    for (const e of some) {
      assert.ok((await vol.read(0, SIZE, vol.resolvePoint(String(e.id)))).equals(model.atSeq.get(e.seq)!), `event ${e.id} (seq ${e.seq}) image ${context}`);
      stats.eventsChecked++;
    }
    for (let i = 0; i < 3; i++) {
      const seq = rng.int(vol.lastSeq + 1);
      const img = model.atSeq.get(seq);
      if (img) assert.ok((await vol.read(0, SIZE, vol.resolvePoint(`seq:${seq}`))).equals(img), `seq:${seq} image ${context}`);
    }
    // The working set alone holds the live volume: no live block may be left only in the archive.
    m.store.failWhen = (op) => op === 'getRange';
    try {
      assert.ok((await vol.read(0, SIZE)).equals(want), `live image from the working set alone ${context}`);
    } finally {
      m.store.failWhen = () => false;
    }
  };

  /** After a cut: reboot, reopen, check, and forget what the cut took away. */
  const reboot = async (context: string, maybe: ModelEvent[]) => {
    stats.cuts++;
    m = new Machine(m.mem.cutImage!);
    vol = await must(() => Volume.open(DIR, { fs: m.fs, store: m.store, cacheBytes: rng.bool() ? 32 * 1024 : 0 }));
    await check(context, maybe);
    for (const seq of [...model.atSeq.keys()]) if (seq > vol.lastSeq) model.atSeq.delete(seq);
    model.live = Buffer.from(model.atSeq.get(vol.lastSeq)!);
    durableSeq = vol.lastSeq; // what replay kept is on the disk now
  };

  for (let op = 0; op < ops; op++) {
    stats.ops++;
    m.fs.coldCache = rng.bool(0.3);
    const before = vol.lastSeq;
    const mode = rng.next();
    // How the power may go during this operation: inside it, at its acknowledgment, or not.
    const cut: 'inside' | 'ack' | 'none' = ackMode ? 'none' : mode < 0.06 ? 'inside' : mode < 0.12 ? 'ack' : 'none';
    const oldestSealed = whiteBox(vol).segments.sealed[0];
    if (cut === 'inside') m.mem.armPowerCut(rng.int(rng.bool() ? 8 : 60));
    const reorder: PowerCutOptions = rng.bool() ? { reorder: () => rng.next() } : {};
    const withhold = ackMode || rng.bool() ? 0.5 : 0;
    // Now and then the power goes right after a segment leaves primary (its file removed and
    // that made durable): everything the working set needs must be durable by then.
    const segmentsDir = `${DIR}/segments/`;
    m.mem.onCall = rng.bool(ackMode ? 0.4 : 0.1) ? (call, p) => call === 'remove' && p.startsWith(segmentsDir) && m.mem.armPowerCut(1) : undefined;
    const context = `(op ${op}, cut ${cut})`;
    const r = rng.next();
    let maybe: ModelEvent[] = [];
    /** Seqs a write or zero takes: one per record, which is not always one per operation. */
    let records = 1;
    let outcome: Outcome<unknown>;
    if (r < 0.6) {
      // One record: whole or partial blocks, at most 16 blocks (a record holds more).
      const off = rng.bool(0.5) ? rng.int(SIZE / BS) * BS : rng.int(SIZE - 1);
      const data = rng.bytes(Math.min(SIZE - off, 1 + rng.int(rng.bool(0.8) ? 2048 : 8192 - (off % BS))));
      records = model.writeRecords(off, data, BS, before + 1);
      outcome = await drive(() => vol.write(off, data), pickRelease(), withhold);
    } else if (r < 0.67) {
      const first = rng.int(SIZE / BS);
      const count = 1 + rng.int(Math.min(64, SIZE / BS - first));
      model.zero(first * BS, count * BS);
      model.snapshot(before + 1);
      outcome = await drive(() => vol.writeZeroes(first * BS, count * BS, rng.bool()), pickRelease(), withhold);
    } else if (r < 0.85) {
      const label = `e${op}`;
      model.snapshot(before + 1);
      maybe = [{ id: whiteBox(vol).volumeLog.nextEventId, seq: before + 1, label }];
      outcome = await drive(() => vol.sync({ label }), pickRelease(), withhold);
      if (outcome.done) {
        const e = outcome.value as ModelEvent;
        assert.deepEqual({ id: e.id, seq: e.seq, label: e.label }, maybe[0], `sync returned the event it appended ${context}`);
        model.acknowledge(e);
        maybe = [];
      }
    } else if (r < (ackMode ? 0.88 : 0.92)) {
      outcome = await drive(() => vol.flush(), pickRelease(), withhold);
    } else {
      // Close and reopen, on the same machine (unless the power goes meanwhile).
      outcome = await drive(() => vol.close(), pickRelease(), withhold);
      m.mem.armPowerCut(Number.POSITIVE_INFINITY); // a cut armed for the close, not the reopen
      m.mem.onCall = undefined;
      if (outcome.done && !m.mem.cutImage) durableSeq = vol.lastSeq;
      // A closed volume is all on disk: cut the power the moment close returns, now and then.
      if (outcome.done && !m.mem.cutImage && ackMode && rng.bool(0.6)) m.mem.cutNow();
      if (outcome.done && !m.mem.cutImage) {
        stats.reopens++;
        vol = await must(() => Volume.open(DIR, { fs: m.fs, store: m.store, cacheBytes: rng.bool() ? 32 * 1024 : 0 }));
        await check(`after a clean reopen ${context}`);
      }
    }
    if (outcome.done) {
      if (r < 0.67) assert.equal(vol.lastSeq, before + records, `one seq per record (${records} records) ${context}`);
      if (r >= 0.67 && r < (ackMode ? 0.88 : 0.92)) durableSeq = vol.lastSeq;
    }
    if (ackMode && outcome.done && !m.mem.cutImage) {
      const recycled = r < 0.67 && whiteBox(vol).segments.sealed[0] !== oldestSealed;
      if ((recycled || (r >= 0.67 && r < 0.88)) && rng.bool(0.6)) m.mem.cutNow();
    }
    m.mem.armPowerCut(Number.POSITIVE_INFINITY); // disarm what this operation did not reach
    m.mem.onCall = undefined;
    if (!m.mem.cutImage && cut === 'ack') m.mem.cutNow(reorder);
    if (!m.mem.cutImage && !ackMode && rng.bool(0.03)) {
      // Between operations: let some background fsyncs finish (sealing, archiving, a
      // checkpoint), then cut while others still wait.
      for (let n = rng.int(4); n > 0 && m.mem.heldSyncs.length; n--) {
        m.mem.releaseSync(rng.int(m.mem.heldSyncs.length));
        await new Promise((res) => setImmediate(res));
      }
      if (!m.mem.cutImage) m.mem.cutNow(reorder);
    }
    if (m.mem.cutImage) await reboot(context, maybe);
    else if (!ackMode && rng.bool(0.1)) {
      // Background progress without a cut.
      for (let n = rng.int(3); n > 0 && m.mem.heldSyncs.length; n--) m.mem.releaseSync(rng.int(m.mem.heldSyncs.length));
      await new Promise((res) => setImmediate(res));
    }
  }
  await must(() => vol.close());
  durableSeq = vol.lastSeq;
  vol = await must(() => Volume.open(DIR, { fs: m.fs, store: m.store }));
  await check('(final reopen)');
  const report = await must(() => vol.verify());
  assert.deepEqual(report.problems, [], 'verify finds nothing');
  await must(() => vol.close());
  return stats;
}
