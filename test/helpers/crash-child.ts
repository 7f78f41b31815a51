/**
 * Child process for the SIGKILL crash test: writes a seeded sequence under load and prints
 * "synced <eventId> <writeCount>" after every sync returns. The parent kills it at a random
 * moment and replays the same sequence to know what every acknowledged event must contain.
 */
import { Volume } from '../../src/volume/volume';
import { Rng } from './rng';

export const WRITES_PER_EVENT = 5;

export function nthWrite(rng: Rng, sizeBytes: number): { offset: number; data: Buffer } {
  const offset = rng.int(sizeBytes - 1);
  const len = Math.min(sizeBytes - offset, 1 + rng.int(64 * 1024));
  return { offset, data: rng.bytes(len) };
}

async function main(): Promise<void> {
  const [dir, seed] = process.argv.slice(2);
  const vol = await Volume.open(dir);
  const rng = new Rng(Number(seed));
  for (let i = 1; ; i++) {
    const w = nthWrite(rng, vol.sizeBytes);
    await vol.write(w.offset, w.data);
    if (i % WRITES_PER_EVENT === 0) {
      const e = await vol.sync({ label: `w${i}` });
      process.stdout.write(`synced ${e.id} ${i}\n`);
    }
  }
}

if (require.main === module) void main();
