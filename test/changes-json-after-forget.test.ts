import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventDirName } from '../src/fuse/event-names';
import { Tree } from '../src/fuse/tree';
import { forget } from '../src/retention/forget';
import { pin } from '../src/retention/pins';
import { freshVolume } from './helpers/volumes';

const BS = 4096;

/**
 * Review 4, finding 3: events/<e>/changes.json lists what changed since the event before it, the
 * one events/ lists before it. Once that event is forgotten, the one before is an earlier one: the
 * file must say so and list the changes since then, not stay as first computed.
 */
test('events/<e>/changes.json after the event before it is forgotten: changes since the event listed before it now', async () => {
  const { vol } = await freshVolume();
  const tree = new Tree(vol, () => Buffer.from('{}'), Date.now());
  const changesJson = (id: number) => {
    const n = tree.resolve(`/events/${eventDirName(vol.events.find((e) => e.id === id)!)}/changes.json`);
    assert.ok(n && n.kind === 'file', `events/${id}/changes.json exists`);
    return JSON.parse(n.content().toString()) as { from: string; changes: Array<{ firstBlock: number; blockCount: number }> };
  };
  try {
    const ids: number[] = [];
    for (const block of [1, 2, 3]) {
      await vol.write(block * BS, Buffer.alloc(BS, block));
      ids.push((await vol.sync({ label: `e${block}` })).id);
    }
    const before = changesJson(ids[2]);
    assert.equal(before.from, `event:${ids[1]}`);
    assert.deepEqual(before.changes.map((c) => [c.firstBlock, c.blockCount]), [[3, 1]]);
    await pin(vol, String(ids[0]), 'keep the first');
    const report = forget(vol, { keepLast: 1 });
    assert.deepEqual(report.forgotten.map((e) => e.id), [ids[1]], 'only the middle event is forgotten');
    assert.equal(tree.resolve(`/events/${ids[1]}/changes.json`), undefined, 'the forgotten event is gone from events/');
    const after = changesJson(ids[2]);
    assert.equal(after.from, `event:${ids[0]}`, 'since the event listed before it now');
    assert.deepEqual(after.changes.map((c) => [c.firstBlock, c.blockCount]), [[2, 2]], 'blocks 2 and 3 changed since then');
  } finally {
    await vol.close();
  }
});
