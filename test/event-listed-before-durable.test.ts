import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ControlServer } from '../src/control/control-server';
import { historyOf } from '../src/investigate/queries';
import { silentLogger } from '../src/log';
import { servedEvents } from '../src/service/images';
import { FaultyFileSystem } from '../src/storage/faulty-file-system';
import { MemoryFileSystem } from '../src/storage/memory-file-system';
import { whiteBox } from '../src/volume/white-box';
import { Volume } from '../src/volume/volume';
import { SMALL } from './helpers/volumes';

const BS = SMALL.blockSizeBytes!;

/**
 * DESIGN rule 28: a sync's event is no point until its fdatasync returned; a crash in between
 * cuts it and the next sync takes its id, so the id must not be handed out meanwhile. FUSE
 * events/ and NBD's list skip it (servedEvents), but the daemon's `events` reply (what
 * `chronovol events` and `protect`'s events print) and `history` (which names the event each
 * version belongs to) hand out its id and label while the fdatasync runs. After a crash there,
 * the same id names the next sync's different state.
 */
test('while a sync\'s fdatasync runs, the daemon lists and names no event that is not durable yet', async () => {
  const mem = new MemoryFileSystem();
  const fs = new FaultyFileSystem(mem);
  mem.mkdirp('/v');
  await Volume.create('/v', SMALL, { fs });
  const vol = await Volume.open('/v', { fs });
  const server = new ControlServer(vol, '/nonexistent/control.sock', silentLogger());
  try {
    await vol.write(0, Buffer.alloc(BS, 1));
    await vol.sync({ label: 'durable' });
    await vol.write(0, Buffer.alloc(BS, 2));
    let seen: { served: number[]; listed: number[]; history: Array<number | undefined> } | undefined;
    let historyP: Promise<Awaited<ReturnType<typeof historyOf>>> | undefined;
    fs.failWhen = (op, p) => {
      if (op === 'sync' && p.includes('segments') && !seen && whiteBox(vol).events.all.some((e) => e.label === 'pending')) {
        let line = '';
        const sock = { end: (s: string) => void (line = s) };
        void (server as unknown as { handle(r: unknown, s: unknown): Promise<void> }).handle({ method: 'events' }, sock);
        historyP = historyOf(vol, 0, BS, false); // runs synchronously to its end (no hash: no await)
        seen = { served: servedEvents(vol).map((e) => e.id), listed: (JSON.parse(line).result as Array<{ id: number }>).map((e) => e.id), history: [] };
      }
      return false;
    };
    await vol.sync({ label: 'pending' });
    fs.failWhen = () => false;
    assert.ok(seen && historyP, 'looked while the fdatasync ran');
    seen.history = (await historyP).versions.map((v) => v.event?.id);
    assert.deepEqual(seen.served, [1], 'FUSE events/ and NBD list only the durable event');
    assert.deepEqual({ listed: seen.listed, history: seen.history }, { listed: [1], history: [1, undefined] },
      'the control socket\'s events reply and history must not hand out event 2 before its sync made it durable');
  } finally {
    await vol.close();
  }
});
