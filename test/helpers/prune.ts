import * as fs from 'node:fs';
import * as path from 'node:path';
import { Volume } from '../../src/volume/volume';
import { Rng } from './rng';
import { VolumeModel } from './volume-model';

const BS = 4096;

/** Bytes of every object under the archive's segments/. */
export function archiveSegmentBytes(archive: string): number {
  const d = path.join(archive, 'segments');
  return fs.readdirSync(d).reduce((n, f) => n + fs.statSync(path.join(d, f)).size, 0);
}

/** Block-aligned writes to a few hot blocks (most versions die), an event every `every` writes. */
export async function hotWrites(vol: Volume, model: VolumeModel, rng: Rng, writes: number, every = 8): Promise<Array<{ id: number; seq: number }>> {
  const events: Array<{ id: number; seq: number }> = [];
  for (let i = 0; i < writes; i++) {
    const off = rng.int(vol.sizeBytes / BS / 2) * BS;
    const data = rng.bytes(BS * (1 + rng.int(2)));
    await vol.write(off, data);
    model.write(off, data);
    model.snapshot(vol.lastSeq);
    if (i % every === every - 1) {
      const e = await vol.sync({ label: `w${i}` });
      model.snapshot(e.seq);
      events.push({ id: e.id, seq: e.seq });
    }
  }
  return events;
}

