/**
 * Child process for the "clone of live, then SIGKILL" test: writes block 0 = 0xaa, syncs, writes
 * block 0 = 0xbb (acknowledged, no flush or sync asked for), makes clone `c` of `live` and pins
 * `live`, prints what it recorded, and SIGKILLs itself.
 */
import { clonesOf } from '../../src/clone/clone-service';
import { pin } from '../../src/retention/pins';
import { Volume } from '../../src/volume/volume';

async function main(): Promise<void> {
  const vol = await Volume.open(process.argv[2]);
  const bs = vol.blockSizeBytes;
  await vol.write(0, Buffer.alloc(bs, 0xaa));
  await vol.sync({ label: 'a' });
  await vol.write(0, Buffer.alloc(bs, 0xbb));
  const info = await clonesOf(vol).create('c', 'live');
  const p = await pin(vol, 'live', 'held');
  process.stdout.write(`${JSON.stringify({ cloneSeq: info.seq, pinSeq: p.seq })}\n`);
  process.kill(process.pid, 'SIGKILL');
}

if (require.main === module) void main();
