import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BackingStore, PutData } from '../src/archive/backing-store';
import { MemoryStore } from '../src/archive/memory-store';
import { MemoryFileSystem } from '../src/storage/memory-file-system';
import { Volume } from '../src/volume/volume';
import { whiteBox } from '../src/volume/white-box';

/** A memory store whose puts wait at a gate, and whose listing can run a hook first. */
class GatedStore extends MemoryStore implements BackingStore {
  gate?: Promise<void>;
  beforeList?: () => Promise<void>;
  override async put(key: string, data: PutData): Promise<void> {
    await this.gate;
    return super.put(key, data);
  }
  override async list(prefix: string): Promise<string[]> {
    const hook = this.beforeList;
    this.beforeList = undefined;
    await hook?.();
    return super.list(prefix);
  }
}

test('verify while the archiver recycles segments out of primary: a segment recycled during its listing is checked in the archive, not reported missing', async () => {
  const mem = new MemoryFileSystem();
  mem.mkdirp('/v');
  const store = new GatedStore();
  const deps = { fs: mem, store };
  await Volume.create('/v', { sizeBytes: 256 * 1024, blockSizeBytes: 4096, segmentSizeBytes: 64 * 1024 }, deps);
  const vol = await Volume.open('/v', deps);
  let open!: () => void;
  store.gate = new Promise<void>((r) => (open = r));
  // Turnover while the archive takes nothing: sealed segments wait in primary (the backlog).
  let n = 0;
  const core = whiteBox(vol);
  while (core.leaving.length < 2) await vol.write((n++ % 60) * 4096, Buffer.alloc(8192, n & 0xff));
  const waiting = [...core.leaving];
  // verify takes its list of primary segments, then lists the archive; meanwhile the archive
  // opens and the waiting segments are archived and recycled.
  store.beforeList = async () => {
    open();
    for (let i = 0; i < 200 && waiting.some((id) => core.segments.has(id)); i++) await new Promise((r) => setTimeout(r, 5));
  };
  const report = await vol.verify();
  assert.ok(waiting.every((id) => !core.segments.has(id)), 'the segments were recycled during the verify');
  assert.deepEqual(report.problems, []);
  assert.ok(report.ok);
  await vol.close();
});
