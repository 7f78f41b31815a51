import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isChronoError } from '../src/errors';
import { forget } from '../src/retention/forget';
import { servedEvents } from '../src/service/images';
import { FaultyFileSystem } from '../src/storage/faulty-file-system';
import { MemoryFileSystem } from '../src/storage/memory-file-system';
import { whiteBox } from '../src/volume/white-box';
import { Volume } from '../src/volume/volume';
import { SMALL } from './helpers/volumes';

const BS = SMALL.blockSizeBytes!;

/** A volume on a memory file system behind a fault injector, whose hook sees inside each fdatasync. */
async function faultyVolume(): Promise<{ fs: FaultyFileSystem; vol: Volume }> {
  const mem = new MemoryFileSystem();
  const fs = new FaultyFileSystem(mem);
  mem.mkdirp('/v');
  await Volume.create('/v', SMALL, { fs });
  return { fs, vol: await Volume.open('/v', { fs }) };
}

/**
 * Review 4 (a hazard it named), issue 10: a sync appends its EVENT record and then waits for the
 * fdatasync. In between, the event was already listed (events/) and resolvable by id and label;
 * a crash there cuts it and the next sync takes its id, so a reader that attached to it meanwhile
 * would find the same name meaning another state. While the sync's fdatasync runs (observed from
 * inside it), the event must resolve to nothing; once the sync returns, it resolves.
 */
test('a sync\'s event resolves only once the sync has made it durable', async () => {
  const { fs, vol } = await faultyVolume();
  try {
    await vol.write(0, Buffer.alloc(BS, 1));
    await vol.sync({ label: 'same' });
    await vol.write(0, Buffer.alloc(BS, 2));
    const seen: string[] = [];
    fs.failWhen = (op) => {
      const pending = whiteBox(vol).events.all.find((e) => e.label === 'same' && e.id === 2);
      if (op === 'sync' && pending && seen.length === 0) {
        const answer = (text: string) => {
          try {
            return `${text} -> ${vol.resolvePoint(text).name}`;
          } catch (err) {
            return `${text} -> ${isChronoError(err) ? err.code : String(err)}`;
          }
        };
        seen.push(answer('2'), answer('event:2'), answer('same'), `served: ${servedEvents(vol).map((e) => e.id).join(',')}`);
      }
      return false;
    };
    const e = await vol.sync({ label: 'same' });
    fs.failWhen = () => false;
    assert.equal(e.id, 2);
    assert.deepEqual(seen, ['2 -> UNKNOWN_POINT', 'event:2 -> UNKNOWN_POINT', 'same -> event:1', 'served: 1'], 'during the fdatasync: not yet a point (the label still names the durable event)');
    assert.equal(vol.resolvePoint('2').name, 'event:2', 'after the sync returned');
    assert.equal(vol.resolvePoint('same').name, 'event:2');
    assert.deepEqual(servedEvents(vol).map((x) => x.id), [1, 2]);
  } finally {
    await vol.close();
  }
});

/**
 * Review 6: a forget run while a sync's fdatasync is under way (a daemon's --retention-every can)
 * counted the not-yet-durable event: keep-last 1 kept it and durably forgot the durable event
 * before it, so a power cut there left no event at all. It must see only durable events.
 */
test('a forget during a sync\'s fdatasync keeps by the durable events only', async () => {
  const { fs, vol } = await faultyVolume();
  try {
    await vol.write(0, Buffer.alloc(BS, 1));
    const first = await vol.sync({ label: 'first' });
    await vol.write(0, Buffer.alloc(BS, 2));
    let report: ReturnType<typeof forget> | undefined;
    let ran = false;
    fs.failWhen = (op, p) => {
      // The segment's fdatasync (the forget's own file writes come back through here too).
      if (op === 'sync' && p.includes('segments') && !ran && whiteBox(vol).events.all.some((e) => e.label === 'second')) {
        ran = true;
        report = forget(vol, { keepLast: 1 });
      }
      return false;
    };
    const second = await vol.sync({ label: 'second' });
    fs.failWhen = () => false;
    assert.ok(report, 'the forget ran inside the fdatasync');
    assert.deepEqual(report.kept.map((e) => e.id), [first.id], 'kept: the newest durable event');
    assert.deepEqual(report.forgotten.map((e) => e.id), [], 'nothing durable forgotten');
    assert.equal(vol.resolvePoint(String(first.id)).name, `event:${first.id}`);
    assert.equal(vol.resolvePoint(String(second.id)).name, `event:${second.id}`);
  } finally {
    await vol.close();
  }
});
