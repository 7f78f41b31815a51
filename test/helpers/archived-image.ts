import * as path from 'node:path';
import { Volume } from '../../src/volume/volume';
import { Rng } from './rng';
import { tmpDir } from './tmp';

const MiB = 1024 * 1024;

/**
 * A volume whose event `image` (random bytes, written in 1 MiB writes) lives only in its local
 * archive: the image is written over four times after the event, so its segments leave the
 * working set. Closed; reopen it read-only with the store a test wants to watch.
 */
export async function archivedImage(sizeBytes: number, segmentSizeBytes: number, seed: number): Promise<{ dir: string; archive: string; image: Buffer }> {
  const root = tmpDir();
  const dir = path.join(root, 'vol');
  const archive = path.join(root, 'archive');
  await Volume.create(dir, { sizeBytes, blockSizeBytes: 4096, segmentSizeBytes, archive });
  const image = new Rng(seed).bytes(sizeBytes);
  const vol = await Volume.open(dir);
  for (let at = 0; at < sizeBytes; at += MiB) await vol.write(at, image.subarray(at, at + MiB));
  await vol.sync({ label: 'image' });
  for (let pass = 0; pass < 4; pass++) for (let at = 0; at < sizeBytes; at += MiB) await vol.write(at, Buffer.alloc(MiB, pass + 1));
  await vol.close();
  return { dir, archive, image };
}
