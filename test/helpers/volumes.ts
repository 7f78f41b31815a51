import * as path from 'node:path';
import { Volume, CreateOptions, OpenOptions } from '../../src/volume/volume';
import { Rng } from './rng';
import { tmpDir } from './tmp';
import { VolumeModel } from './volume-model';

export const SMALL: CreateOptions = { sizeBytes: 256 * 1024, blockSizeBytes: 4096, segmentSizeBytes: 64 * 1024 };

/** A fresh volume on the real file system, in a temporary directory (`root`: the vol/ and archive/ directories' parent). */
export async function freshVolume(c: CreateOptions = SMALL, o: OpenOptions = {}, root = tmpDir()): Promise<{ dir: string; vol: Volume; archive: string }> {
  const dir = path.join(root, 'vol');
  const archive = path.join(path.dirname(dir), 'archive');
  await Volume.create(dir, { archive, ...c }, o);
  return { dir, archive, vol: await Volume.open(dir, o) };
}

/**
 * Random block-aligned and unaligned writes with events every few writes; the model keeps a
 * snapshot per event. Enough writes to push history through the archive.
 */
export async function churn(vol: Volume, model: VolumeModel, rng: Rng, writes: number, eventEvery = 10): Promise<void> {
  for (let i = 0; i < writes; i++) {
    const off = rng.int(model.sizeBytes - 1);
    const len = Math.min(model.sizeBytes - off, 1 + rng.int(12 * 1024));
    const data = rng.bytes(len);
    await vol.write(off, data);
    model.write(off, data);
    if (i % eventEvery === eventEvery - 1) {
      const e = await vol.sync({ label: `w${i}` });
      model.snapshot(e.seq);
    }
  }
}
