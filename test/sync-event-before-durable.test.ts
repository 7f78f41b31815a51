import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isChronoError } from '../src/errors';
import { servedEvents } from '../src/service/images';
import { FaultyFileSystem } from '../src/storage/faulty-file-system';
import { MemoryFileSystem } from '../src/storage/memory-file-system';
import { Volume } from '../src/volume/volume';
import { SMALL } from './helpers/volumes';

const BS = SMALL.blockSizeBytes!;

/**
 * Review 4 (a hazard it named), issue 10: a sync appends its EVENT record and then waits for the
 * fdatasync. In between, the event was already listed (events/) and resolvable by id and label;
 * a crash there cuts it and the next sync takes its id, so a reader that attached to it meanwhile
 * would find the same name meaning another state. While the sync's fdatasync runs (observed from
 * inside it), the event must resolve to nothing; once the sync returns, it resolves.
 */
test('a sync\'s event resolves only once the sync has made it durable', async () => {
  const mem = new MemoryFileSystem();
  const fs = new FaultyFileSystem(mem);
  mem.mkdirp('/v');
  await Volume.create('/v', SMALL, { fs });
  const vol = await Volume.open('/v', { fs });
  try {
    await vol.write(0, Buffer.alloc(BS, 1));
    await vol.sync({ label: 'same' });
    await vol.write(0, Buffer.alloc(BS, 2));
    const seen: string[] = [];
    fs.failWhen = (op) => {
      const pending = vol.events.find((e) => e.label === 'same' && e.id === 2);
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
