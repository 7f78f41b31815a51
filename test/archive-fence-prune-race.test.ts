import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BackingStore, PutData } from '../src/archive/backing-store';
import { LocalDirStore } from '../src/archive/local-dir-store';
import { isChronoError } from '../src/errors';
import { FILE_NAMES } from '../src/format/constants';
import { sealNow } from '../src/volume/turnover';
import { Volume } from '../src/volume/volume';
import { whiteBox } from '../src/volume/white-box';
import { freshVolume } from './helpers/volumes';
import { archiveAll } from './helpers/versioned-blocks';

const BS = 4096;

/** A local store whose next read of the archive head, once armed, is held (its bytes read at once). */
class HeldHeadStore implements BackingStore {
  armed = false;
  release?: () => void;
  hit?: () => void;
  readonly getTail?: BackingStore['getTail'];
  readonly linkFrom?: BackingStore['linkFrom'];
  constructor(private readonly inner: BackingStore) {
    if (inner.getTail) this.getTail = (k, n) => inner.getTail!(k, n);
    if (inner.linkFrom) this.linkFrom = (k, f) => inner.linkFrom!(k, f);
  }
  get description(): string { return this.inner.description; }
  put(key: string, data: PutData): Promise<void> { return this.inner.put(key, data); }
  getRange(key: string, offset: number, length: number): Promise<Buffer> { return this.inner.getRange(key, offset, length); }
  async get(key: string): Promise<Buffer> {
    if (key === FILE_NAMES.archiveHead && this.armed) {
      this.armed = false;
      const bytes = await this.inner.get(key); // the head as it is now
      const gate = new Promise<void>((r) => (this.release = r));
      this.hit?.();
      await gate; // ... delivered later, as a slow GET (S3) or a busy disk would
      return bytes;
    }
    return this.inner.get(key);
  }
  size(key: string): Promise<number | undefined> { return this.inner.size(key); }
  list(prefix: string): Promise<string[]> { return this.inner.list(prefix); }
  delete(key: string): Promise<void> { return this.inner.delete(key); }
}

// Review finding: prune's fence.check reads the head concurrently with the archiver. A read that
// returns the head as it was before the archiver's own next put lands (base moved on, tried
// cleared) is taken for another writer's head: ARCHIVE_CONFLICT, sticky, and this single,
// un-copied volume never archives again.
test('a prune racing the archiver\'s own head put does not fence off the only writer', { timeout: 60_000 }, async () => {
  const { dir, vol: v0, archive } = await freshVolume();
  await v0.write(0, Buffer.alloc(BS, 1));
  await v0.sync({ label: 'a' });
  await archiveAll(v0);
  await v0.close();

  const store = new HeldHeadStore(new LocalDirStore(archive));
  const vol = await Volume.open(dir, { store });
  try {
    const hit = new Promise<void>((r) => (store.hit = r));
    store.armed = true;
    // Prune starts: its first fence check reads the head (held in flight).
    const pruning = vol.prune().then(() => 'ok', (e: unknown) => (isChronoError(e) ? e.code : String(e)));
    await hit;
    // Meanwhile the volume writes and archives a segment: the archiver puts a new head.
    await vol.write(0, Buffer.alloc(BS, 2));
    await vol.sync({ label: 'b' });
    const core = whiteBox(vol);
    let seg = core.segments.current.id;
    await sealNow(core);
    assert.equal(await core.archiver.settled(seg), undefined, 'the archiver archives while prune reads');
    // The prune's read (the head before that put) now arrives.
    store.release?.();
    const pruned = await pruning;
    // Whatever prune says, the volume's own archiving must go on.
    await vol.write(0, Buffer.alloc(BS, 3));
    await vol.sync({ label: 'c' });
    seg = core.segments.current.id;
    await sealNow(core);
    const err = await core.archiver.settled(seg);
    assert.equal(err, undefined, `the next segment is archived (prune: ${pruned}): ${String(err)}`);
    assert.equal(pruned, 'ok', 'the prune of the only writer succeeds');
  } finally {
    store.release?.();
    await vol.close();
  }
});
