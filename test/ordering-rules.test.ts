/**
 * The ordering rules of docs/DESIGN.md, one scenario each, through the power-loss model: the
 * fsyncs a rule is about are held back (released only when nothing else can move), and the
 * power is cut the moment the engine acknowledges, or right after it removes what the rule
 * protects. Deterministic, unlike the seeded runs of power-loss.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FaultyStore } from '../src/archive/faulty-store';
import { LocalDirStore } from '../src/archive/local-dir-store';
import { rollback } from '../src/rollback/rollback';
import { recoverFromArchive } from '../src/volume/recover';
import { ChronoError, isChronoError } from '../src/errors';
import { decodeArchiveHead } from '../src/format/archive-head';
import { HeldSync, MemoryFileSystem } from '../src/storage/memory-file-system';
import { Volume } from '../src/volume/volume';
import { Rng } from './helpers/rng';
import { VolumeModel } from './helpers/volume-model';
import { whiteBox } from '../src/volume/white-box';

const SIZE = 128 * 1024;
const BS = 512;
const SEGMENTS = '/v/segments';

class Rig {
  mem: MemoryFileSystem;
  store: FaultyStore;
  vol!: Volume;
  readonly model = new VolumeModel(SIZE);
  readonly rng = new Rng(5);
  /** Held fsyncs this predicate picks are released only when nothing else is left to release. */
  withhold: (h: HeldSync) => boolean = () => false;

  constructor() {
    this.mem = new MemoryFileSystem({ directAlignBytes: 4096 });
    this.mem.holdSyncs = true;
    this.mem.mkdirp('/v');
    this.mem.mkdirp('/archive');
    this.store = new FaultyStore(new LocalDirStore('/archive', this.mem));
    this.model.snapshot(0);
  }

  /** Runs an operation, releasing held fsyncs (withheld ones last) until it settles or the power goes. */
  async drive<T>(op: () => Promise<T>): Promise<{ done: boolean; value?: T }> {
    let settled = false;
    let value: T | undefined;
    let error: unknown;
    op().then((v) => ((settled = true), (value = v)), (e) => ((settled = true), (error = e)));
    for (let idle = 0; ; ) {
      await new Promise((r) => setImmediate(r));
      if (this.mem.cutImage) return { done: false };
      if (settled) {
        if (error !== undefined) throw error;
        return { done: true, value };
      }
      const held = this.mem.heldSyncs;
      if (!held.length) {
        assert.ok(++idle < 200, 'an operation waits with no fsync held');
        continue;
      }
      const free = held.filter((h) => !this.withhold(h));
      this.mem.releaseSync((free.length ? free : held)[0]);
    }
  }

  async must<T>(op: () => Promise<T>): Promise<T> {
    const r = await this.drive(op);
    assert.ok(r.done, 'the power went unexpectedly');
    return r.value as T;
  }

  async open(): Promise<void> {
    this.vol = await this.must(() => Volume.open('/v', { fs: this.mem, store: this.store }));
  }

  async create(): Promise<void> {
    await this.must(() => Volume.create('/v', { sizeBytes: SIZE, blockSizeBytes: BS, segmentSizeBytes: 64 * 1024, archive: '/archive' }, { fs: this.mem, store: this.store }));
    await this.open();
  }

  /** One random write of whole blocks, remembered by the model. */
  async write(): Promise<void> {
    const off = this.rng.int(SIZE / BS - 8) * BS;
    const data = this.rng.bytes(BS * (1 + this.rng.int(8)));
    this.model.write(off, data);
    await this.must(() => this.vol.write(off, data));
    this.model.snapshot(this.vol.lastSeq);
  }

  /** Writes until the current segment changes (a rollover: the old one is sealing in the background). */
  async writeUntilRollover(): Promise<void> {
    const id = whiteBox(this.vol).segments.current.id;
    while (whiteBox(this.vol).segments.current.id === id) await this.write();
  }

  /** Reboots into what the cut left, reopens, and checks the live image at the acknowledged seq at least. */
  async rebootAndCheck(durableSeq: number, what: string): Promise<void> {
    const after = this.mem.cutImage;
    assert.ok(after, 'the power was cut');
    this.mem = after;
    this.mem.holdSyncs = true;
    this.store = new FaultyStore(new LocalDirStore('/archive', this.mem));
    this.withhold = () => false;
    await this.open();
    assert.ok(this.vol.lastSeq >= durableSeq, `${what}: reopened at seq ${this.vol.lastSeq}, but seq ${durableSeq} was acknowledged durable`);
    const want = this.model.atSeq.get(this.vol.lastSeq)!;
    assert.ok((await this.vol.read(0, SIZE)).equals(want), `${what}: live image at seq ${this.vol.lastSeq}`);
    this.model.checkEvents(this.vol.events, [], what);
    // The working set alone holds the live volume.
    this.store.failWhen = (op) => op === 'getRange';
    assert.ok((await this.vol.read(0, SIZE)).equals(want), `${what}: live image from the working set alone`);
    this.store.failWhen = () => false;
  }
}

for (const [rule, withhold] of [
  ['the fsync of the segment still being sealed', (h: HeldSync) => h.kind === 'file' && h.path.startsWith(SEGMENTS)],
  ["the directory fsync of the new segment's entry", (h: HeldSync) => h.kind === 'dir' && h.path === SEGMENTS],
] as const) {
  test(`rules 2 and 3: a sync right after a rollover is acknowledged only once ${rule} is done; a power cut at the acknowledgment keeps the event`, async () => {
    const rig = new Rig();
    await rig.create();
    for (let round = 0; round < 3; round++) {
      await rig.writeUntilRollover();
      // The old segment's seal and the new one's directory entry are still waiting on their fsyncs.
      rig.withhold = (h) => withhold(h) && !h.path.endsWith(`${whiteBox(rig.vol).segments.current.id.toString(16).padStart(8, '0')}.cvseg`);
      const label = `after-rollover-${round}`;
      const seqBefore = rig.vol.lastSeq;
      const e = await rig.must(() => rig.vol.sync({ label }));
      rig.model.snapshot(e.seq);
      rig.model.acknowledge(e);
      assert.equal(e.seq, seqBefore + 1);
      rig.mem.cutNow();
      await rig.rebootAndCheck(e.seq, `round ${round}`);
    }
  });
}

test('rule 4: a volume closed just before a power cut reopens with every write (the checkpoint never covers log that is not durable)', async () => {
  const rig = new Rig();
  await rig.create();
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 5; i++) await rig.write();
    // The index files' fsyncs go first; the log's are held back as long as anything else can go.
    rig.withhold = (h) => h.path.startsWith(SEGMENTS);
    await rig.must(() => rig.vol.close());
    rig.mem.cutNow();
    await rig.rebootAndCheck(rig.model.atSeq.size - 1, `round ${round}`);
    assert.equal(rig.vol.lastSeq, rig.model.atSeq.size - 1, 'every write of the closed volume is there');
  }
});

test('rule 6: a segment leaves primary only once its copied-forward blocks are durable (power cut right after its file is removed)', async () => {
  const rig = new Rig();
  await rig.create();
  // Steady turnover first, then a close: its checkpoint covers past the segments that leave next,
  // so their turnover needs no checkpoint of its own.
  for (let i = 0; i < 400; i++) await rig.write();
  await rig.must(() => rig.vol.close());
  await rig.open();
  let cuts = 0;
  for (let round = 0; round < 3; round++) {
    // The power goes right after a segment file is removed (and that removal made durable).
    rig.mem.onCall = (call, p) => call === 'remove' && p.startsWith(`${SEGMENTS}/`) && rig.mem.armPowerCut(1);
    rig.withhold = (h) => h.path.startsWith(`${SEGMENTS}/`);
    for (let i = 0; i < 400 && !rig.mem.cutImage; i++) {
      const off = rig.rng.int(SIZE / BS - 8) * BS;
      const data = rig.rng.bytes(BS * (1 + rig.rng.int(8)));
      rig.model.write(off, data);
      rig.model.snapshot(rig.vol.lastSeq + 1);
      const r = await rig.drive(() => rig.vol.write(off, data));
      if (r.done) assert.equal(rig.vol.lastSeq, rig.model.atSeq.size - 1);
    }
    assert.ok(rig.mem.cutImage, 'a segment left primary');
    cuts++;
    const kept = rig.model.atSeq.size - 1;
    await rig.rebootAndCheck(0, `round ${round}`);
    for (let s = rig.vol.lastSeq + 1; s <= kept; s++) rig.model.atSeq.delete(s);
    rig.model.live = Buffer.from(rig.model.atSeq.get(rig.vol.lastSeq)!);
  }
  assert.equal(cuts, 3);
});

for (const step of ['written', 'removed'] as const) {
  test(`rule 13: a rollback's intent is ${step} only once the event ${step === 'written' ? 'before' : 'after'} it is durable (the log's fsyncs held back; power cut right after the intent is ${step})`, async () => {
    const rig = new Rig();
    await rig.create();
    for (let i = 0; i < 12; i++) await rig.write();
    const target = await rig.must(() => rig.vol.sync({ label: 'target' }));
    const targetImage = Buffer.from(rig.model.live);
    for (let i = 0; i < 12; i++) await rig.write();
    const left = Buffer.from(rig.model.live);
    // The rename that puts the intent in place, or its removal, then that directory fsync.
    const intent = '/v/rollback.json';
    rig.mem.onCall = (call, p) => (step === 'written' ? call === 'rename' && p === `${intent}.tmp` : call === 'remove' && p === intent) && rig.mem.armPowerCut(1);
    rig.withhold = (h) => h.path.startsWith(SEGMENTS);
    const r = await rig.drive(() => rollback(rig.vol, { to: 'target' }));
    // After the removal's directory fsync a correct rollback makes no further call: cut as it returns.
    if (step === 'written') assert.equal(r.done, false, 'the power went during the rollback');
    else if (!rig.mem.cutImage) rig.mem.cutNow();
    rig.mem = rig.mem.cutImage!;
    rig.mem.holdSyncs = true;
    rig.mem.remove('/v/LOCK'); // the dead owner's (made durable by the intent's directory fsync)
    rig.store = new FaultyStore(new LocalDirStore('/archive', rig.mem));
    rig.withhold = () => false;
    await rig.open();
    const flagged = (await rig.must(() => rig.vol.status())).rollbackUnfinished;
    const read = (point?: string) => rig.must(() => rig.vol.read(0, SIZE, point === undefined ? undefined : rig.vol.resolvePoint(point)));
    if (step === 'written') {
      assert.ok(flagged, 'the intent is there');
      const b = rig.vol.events.find((e) => e.id === flagged.beforeEvent.id);
      assert.ok(b && b.seq === flagged.beforeEvent.seq, 'its before-event is in the log');
      assert.ok((await read(String(flagged.beforeEvent.id))).equals(left), 'the before-event holds the state left');
    } else {
      assert.equal(flagged, null, 'the intent is gone');
      assert.equal(rig.vol.events[rig.vol.events.length - 1].label, `rollback-to-event:${target.id}`, 'so the event after is in the log');
      assert.ok((await read()).equals(targetImage), 'and live is the target');
    }
  });
}

test('rule 7 (archive on seal): each sealed segment is archived, linked and verified, before it leaves the working set; its primary copy goes only once the head names it; a power cut right after the head is written recovers every event up to it from the archive alone', async () => {
  const rig = new Rig();
  // A store that can link (the FaultyStore wrapper cannot): the local archive on the same file
  // system, with an outage switch.
  let outage = false;
  class OutageStore extends LocalDirStore {
    override async linkFrom(key: string, file: string): Promise<boolean> {
      if (outage) throw new ChronoError('ARCHIVE_UNAVAILABLE', 'injected outage');
      return super.linkFrom(key, file);
    }
  }
  const linking = () => new OutageStore('/archive', rig.mem);
  const headSegment = (): number => (rig.mem.exists('/archive/volume.cvhd') ? decodeArchiveHead(rig.mem.readFile('/archive/volume.cvhd')).lastSegment : 0);
  await rig.must(() => Volume.create('/v', { sizeBytes: SIZE, blockSizeBytes: BS, segmentSizeBytes: 64 * 1024, archive: '/archive' }, { fs: rig.mem, store: linking() }));
  // A backlog of 2 segments and no stall (the rig wants every operation to settle with no fsync held).
  rig.vol = await rig.must(() => Volume.open('/v', { fs: rig.mem, store: linking(), archiveBacklogBytes: 2 * 64 * 1024, archiveStallTimeoutMs: 0 }));
  const k = whiteBox(rig.vol).sb.workingSetSegments;
  let recycled = 0;
  const violations: string[] = [];
  rig.mem.onCall = (call, p) => {
    if (call !== 'remove' || !p.startsWith(`${SEGMENTS}/`) || !p.endsWith('.cvseg')) return;
    // A primary copy is deleted only once the head names it, and its archived object is there.
    const id = parseInt(p.slice(SEGMENTS.length + 1), 16);
    if (headSegment() < id) violations.push(`segment ${id} recycled while the head names ${headSegment()}`);
    if (!rig.mem.exists(`/archive/segments/${p.slice(SEGMENTS.length + 1)}`)) violations.push(`segment ${id} recycled with no archived object`);
    recycled++;
  };
  for (let round = 0; round < 2 * k; round++) {
    await rig.writeUntilRollover();
    const e = await rig.must(() => rig.vol.sync({ label: `r${round}` }));
    rig.model.snapshot(e.seq);
    rig.model.acknowledge(e);
    await rig.must(() => whiteBox(rig.vol).archiver.idle());
    // Archived on seal: every sealed segment, including those still in the working set.
    const segs = whiteBox(rig.vol).segments;
    assert.equal(headSegment(), segs.current.id - 1, `round ${round}: sealed segments ${segs.sealed.join(',')}, head ${headSegment()}`);
    assert.ok(rig.mem.readFile(`/archive/segments/${(segs.current.id - 1).toString(16).padStart(8, '0')}.cvseg`).equals(rig.mem.readFile(segs.pathOf(segs.current.id - 1))), 'the archived object is the sealed segment (linked)');
  }
  // An outage: nothing leaves primary unarchived; writes go on into the backlog, and once it is
  // full they fail with ARCHIVE_BACKLOG_FULL after one more try (acknowledging nothing);
  // they go on once the archive is back.
  outage = true;
  let refused: unknown;
  for (let i = 0; i < 40 * k && refused === undefined; i++) {
    const off = rig.rng.int(SIZE / BS - 8) * BS;
    const data = rig.rng.bytes(BS * (1 + rig.rng.int(8)));
    try {
      await rig.must(() => rig.vol.write(off, data));
      rig.model.write(off, data);
      rig.model.snapshot(rig.vol.lastSeq);
    } catch (err) {
      refused = err;
    }
  }
  assert.ok(isChronoError(refused, 'ARCHIVE_BACKLOG_FULL'), `writes stopped with ${String(refused)}`);
  assert.equal(whiteBox(rig.vol).segments.count, k + 1 + 2, 'primary holds K + 1 + backlog segments');
  outage = false;
  for (let i = 0; i < 20; i++) await rig.write();
  assert.deepEqual(violations, []);
  assert.ok(recycled > 0, 'segments left the working set');
  // Cut the power right after the next head reaches the disk, then lose primary: recover from the archive.
  rig.mem.onCall = (call, p) => call === 'syncDir' && p === '/archive' && rig.mem.exists('/archive/volume.cvhd') && headSegment() > 0 && rig.mem.armPowerCut(1);
  for (let i = 0; i < 400 && !rig.mem.cutImage; i++) {
    const off = rig.rng.int(SIZE / BS - 8) * BS;
    const data = rig.rng.bytes(BS * (1 + rig.rng.int(8)));
    rig.model.write(off, data);
    rig.model.snapshot(rig.vol.lastSeq + 1);
    if ((await rig.drive(() => rig.vol.write(off, data))).done) await rig.drive(() => whiteBox(rig.vol).archiver.idle());
  }
  assert.ok(rig.mem.cutImage, 'a head was written');
  const after = rig.mem.cutImage;
  const head = decodeArchiveHead(after.readFile('/archive/volume.cvhd'));
  for (const name of after.list(SEGMENTS)) after.remove(`${SEGMENTS}/${name}`);
  after.holdSyncs = false;
  const report = await recoverFromArchive('/archive', '/r', { fs: after });
  assert.equal(report.missing, undefined);
  assert.equal(report.lastSeq, head.nextSeq - 1);
  const v = await Volume.open('/r', { fs: after });
  try {
    const expected = rig.model.events.filter((e) => e.seq <= report.lastSeq);
    assert.ok(expected.length >= 2 * k - 1, `${expected.length} events recovered`);
    assert.deepEqual(v.events.map((e) => e.label), expected.map((e) => e.label));
    for (const e of expected) assert.ok((await v.read(0, SIZE, v.resolvePoint(e.label))).equals(rig.model.atSeq.get(e.seq)!), `event ${e.label}`);
    assert.ok((await v.read(0, SIZE)).equals(rig.model.atSeq.get(report.lastSeq)!), 'live = the state at the head');
  } finally {
    await v.close();
  }
});

test('rules 7 and 15: a crash between a sealed segment\'s padded SEAL write and the cut of its padding leaves nothing in the archive that ends in neither a trailer nor a SEAL (replay finishes the cut before the segment is linked)', async () => {
  const rig = new Rig();
  // A plain local-directory store links sealed segments (FaultyStore builds objects instead).
  const linking = () => new LocalDirStore('/archive', rig.mem);
  await rig.must(() => Volume.create('/v', { sizeBytes: SIZE, blockSizeBytes: BS, segmentSizeBytes: 64 * 1024, archive: '/archive' }, { fs: rig.mem, store: linking() }));
  rig.vol = await rig.must(() => Volume.open('/v', { fs: rig.mem, store: linking() }));
  // Direct writes pad the SEAL's page with zeros; the writer's close cuts them once the SEAL is
  // fdatasynced. The power goes just before that cut (a SIGKILL there leaves the same file).
  let cutAt: string | undefined;
  rig.mem.onCall = (call, p) => {
    if (call === 'truncate' && p.startsWith(`${SEGMENTS}/`) && !rig.mem.cutImage) {
      cutAt = p;
      rig.mem.cutNow();
    }
  };
  for (let i = 0; i < 400 && !rig.mem.cutImage; i++) await rig.drive(() => rig.vol.write(rig.rng.int(SIZE / BS - 8) * BS, rig.rng.bytes(BS * (1 + rig.rng.int(8)))));
  assert.ok(cutAt, 'a sealed segment was about to be cut');
  const name = cutAt.slice(SEGMENTS.length + 1);
  rig.mem = rig.mem.cutImage!;
  rig.mem.holdSyncs = true;
  const sealedBytes = rig.mem.readFile(cutAt).length;
  assert.equal(sealedBytes % 4096, 0, `the segment file still holds its padding (${sealedBytes} bytes)`);
  rig.vol = await rig.must(() => Volume.open('/v', { fs: rig.mem, store: linking() }));
  await rig.must(() => whiteBox(rig.vol).archiver.idle());
  assert.equal(whiteBox(rig.vol).archiver.error, undefined);
  assert.ok(rig.mem.sameFile(`/archive/segments/${name}`, cutAt), 'the archived object is the sealed segment (linked)');
  const obj = rig.mem.readFile(`/archive/segments/${name}`);
  assert.ok(obj.length < sealedBytes, `the archived object (${obj.length} bytes) ends at the SEAL, not in the padding`);
  const report = await rig.must(() => rig.vol.verify());
  assert.deepEqual(report.problems, []);
  await rig.must(() => rig.vol.close());
});
